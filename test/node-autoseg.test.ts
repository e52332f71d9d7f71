// End to end: Orthanc (the PACS) pushes a synthetic thorax CT to the node; the node segments it with
// the built-in engine and the RTSTRUCT comes back to Orthanc in the same study. The RTSTRUCT is
// validated with dciodvfy, rasterised by plastimatch, and compared with the phantom's truth.
import { describe, it, expect, afterAll } from 'vitest';
import { readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { startNode, tempDir, type NodeHandle } from './helpers/node.js';
import { startOrthanc, type OrthancHandle } from './helpers/orthanc.js';
import { run } from './helpers/ports.js';
import { readMha, resampleToGrid } from './helpers/mha.js';
import { phantomTruth } from './helpers/phantom-truth.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';
import { readCtSeries } from '../src/dicom/ct-series-reader.js';
import { readRtStruct } from '../src/rt/rtstruct.js';
import { dice } from '../src/geometry/types.js';
import type { PhantomSpec } from '../src/phantom/thorax.js';

const SPEC: PhantomSpec = { rows: 128, columns: 128, slices: 60, pixelSpacingMm: [3.5, 3.5], sliceThicknessMm: 5 };

describe('built-in auto-segmentation, end to end with Orthanc', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    await Promise.allSettled(cleanup.map((f) => f()));
  });

  it('sends RS_auto back to the PACS in the same study, valid and matching the phantom', async () => {
    const pacs: OrthancHandle = await startOrthanc({ aet: 'PACS' });
    cleanup.push(() => pacs.stop());
    const node: NodeHandle = await startNode({ args: ['--stable-seconds', '1', '--destination', `PACS@127.0.0.1:${pacs.dicomPort}`] });
    cleanup.push(() => node.stop());
    await pacs.addModality('rtp', { aet: 'RTPIPELINE', host: '127.0.0.1', port: node.dicomPort });

    const ctDir = path.join(tempDir(), 'ct');
    const series = await writeCtSeries(ctDir, { patientId: 'AUTO-1', patientName: 'Auto^Seg', studyDate: '20260315', phantom: SPEC });
    let studyId = '';
    for (const f of series.files) studyId = (await pacs.uploadInstance(readFileSync(f))).ParentStudy as string;
    const push = await pacs.storeToModality('rtp', [studyId]);
    expect(push.status, JSON.stringify(push.body)).toBe(200);

    // The RTSTRUCT arrives in the same Orthanc study.
    const rsId = await node.waitFor(async () => {
      const instances = (await pacs.rest('GET', `/studies/${studyId}/instances`)).body as { ID: string; MainDicomTags: Record<string, string> }[];
      for (const inst of instances) {
        const tags = (await pacs.rest('GET', `/instances/${inst.ID}/simplified-tags`)).body;
        if (tags.Modality === 'RTSTRUCT') return inst.ID as string;
      }
      return undefined;
    }, 90_000, 'RTSTRUCT in the PACS');
    const rsFile = path.join(tempDir(), 'RS_auto.dcm');
    writeFileSync(rsFile, await pacs.instanceFile(rsId));

    const v = await run('dciodvfy', [rsFile]);
    expect(v.stdout + v.stderr).not.toMatch(/^Error/m);
    const rs = readRtStruct(readFileSync(rsFile));
    expect(rs.rois.map((r) => r.name).sort()).toEqual(['BODY', 'BONES', 'LUNG_L', 'LUNG_R']);
    expect(rs.referencedSeriesInstanceUid).toBe(series.seriesInstanceUid);
    expect(rs.referencedSopInstanceUids).toHaveLength(SPEC.slices);

    // The course folder of the contract.
    const job = ((await node.api('/api/jobs')).body as any[])[0];
    expect(job.state).toBe('done');
    const course = job.result.courseDir as string;
    expect(path.basename(course)).toBe('2026-03-15');
    for (const f of ['NIFTI/ct.nii.gz', 'RS_auto.dcm', 'case_metadata.json', 'Segmentation/builtin/BODY.nii.gz', 'Segmentation/builtin/LUNG_L.nii.gz']) {
      expect(existsSync(path.join(course, f)), f).toBe(true);
    }

    // plastimatch rasterises the RTSTRUCT onto the CT; Dice against the phantom's truth.
    const out = path.join(tempDir(), 'plm');
    const p = await run('plastimatch', ['convert', '--input', rsFile, '--referenced-ct', ctDir, '--output-prefix', out, '--prefix-format', 'mha', '--xor-contours'], { timeoutMs: 120_000 });
    expect(p.code, p.stdout + p.stderr).toBe(0);
    const ct = await readCtSeries(series.files);
    const truth = phantomTruth(SPEC, ct.grid);
    const plm = (name: string) => resampleToGrid(readMha(readFileSync(path.join(out, `${name}.mha`))), ct.grid);
    expect(readdirSync(out).sort()).toEqual(['BODY.mha', 'BONES.mha', 'LUNG_L.mha', 'LUNG_R.mha']);
    const scores = {
      BODY: dice(plm('BODY'), truth.body),
      LUNG_L: dice(plm('LUNG_L'), truth.lungL),
      LUNG_R: dice(plm('LUNG_R'), truth.lungR),
      BONES: dice(plm('BONES'), truth.bones),
    };
    console.log('Dice of the RTSTRUCT in the PACS (plastimatch raster) vs phantom truth', scores);
    expect(scores.BODY).toBeGreaterThanOrEqual(0.98);
    expect(scores.LUNG_L).toBeGreaterThanOrEqual(0.95);
    expect(scores.LUNG_R).toBeGreaterThanOrEqual(0.95);
    expect(scores.BONES).toBeGreaterThanOrEqual(0.9);

    // Outbound: one RS_auto item, delivered.
    const outbound = (await node.api('/api/outbound')).body as any[];
    expect(outbound).toHaveLength(1);
    expect(outbound[0].state).toBe('done');
  });
});
