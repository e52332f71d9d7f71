// The pipeline engine in the real node: TotalSegmentator (a stand-in honouring its command line) as
// the engine, custom structures with the planning RTSTRUCT, a hung tool killed at its timeout, and
// SIGTERM / kill -9 in the middle of a stage, with the job resuming at the next start.
import { describe, it, expect, beforeAll } from 'vitest';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNode, tempDir, type NodeHandle } from './helpers/node.js';
import { storescu, echoscu } from './helpers/dcmtk.js';
import { run, sleep } from './helpers/ports.js';
import { processesWithMarker } from './helpers/processes.js';
import { plannedPatient } from './helpers/planned-patient.js';
import { writeCtSeries, type CtSeriesResult } from '../src/dicom/ct-series-writer.js';
import { readCtSeries } from '../src/dicom/ct-series-reader.js';
import { buildRtStruct, readRtStruct } from '../src/rt/rtstruct.js';
import { ctReference, maskContours } from '../src/rt/structure-set.js';
import { voxelToPatient, type Mask } from '../src/geometry/types.js';

const BIN = fileURLToPath(new URL('./fixtures/bin', import.meta.url));
const phantom = { rows: 64, columns: 64, slices: 20, pixelSpacingMm: [6, 6] as [number, number], sliceThicknessMm: 10 };
const STUDY_DATE = '20260301';

async function dciodvfyErrors(file: string): Promise<string[]> {
  const r = await run('dciodvfy', [file]);
  return (r.stdout + r.stderr).split('\n').filter((l) => l.startsWith('Error'));
}

/** A planning RTSTRUCT with one PTV (a 30 mm sphere in the middle of the CT), in the CT's study. */
async function planningRtstruct(ct: CtSeriesResult, patientId: string, file: string): Promise<void> {
  const vol = await readCtSeries(ct.files);
  const [nx, ny, nz] = vol.grid.dims;
  const mask: Mask = { grid: vol.grid, data: new Uint8Array(nx * ny * nz) };
  const centre = voxelToPatient(vol.grid, nx / 2, ny / 2, nz / 2);
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++) {
        const p = voxelToPatient(vol.grid, i, j, k);
        if (Math.hypot(p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]) <= 30) mask.data[i + nx * (j + ny * k)] = 1;
      }
  const study = {
    studyInstanceUid: ct.studyInstanceUid,
    seriesInstanceUid: ct.seriesInstanceUid,
    frameOfReferenceUid: ct.frameOfReferenceUid,
    patientId,
    patientName: 'PLAN^TEST',
    studyDate: STUDY_DATE,
    studyTime: '120000',
    accessionNumber: '',
  };
  const bytes = buildRtStruct({
    ct: ctReference(vol.grid, vol.sliceSopInstanceUids, study),
    rois: [{ number: 1, name: 'PTV', color: [255, 0, 0], interpretedType: 'PTV', algorithm: 'MANUAL', contours: maskContours(mask, vol.sliceSopInstanceUids) }],
    seriesDescription: 'planning structures',
    structureSetLabel: 'PLAN',
  });
  writeFileSync(file, bytes);
}

function config(o: { command: string; extra?: string }): string {
  return `heartbeat_seconds: 0.3
segmentation:
  engine: totalsegmentator
  device: cpu
  command: "${o.command} -i {input} -o {output} {args}"
${o.extra ?? ''}node:
  stable_seconds: 0.5
  shutdown_grace_seconds: 2
`;
}

async function sendStudy(node: NodeHandle, files: string[]): Promise<void> {
  const r = await storescu({ port: node.dicomPort, calledAet: 'RTPIPELINE', files });
  expect(r.code, r.stderr).toBe(0);
}

/** The external tool's processes (they inherit the marker from the node, which is not one of them). */
const toolProcesses = (marker: string, node: NodeHandle) => processesWithMarker(marker).filter((p) => p.pid !== node.proc.pid);

const jobs = async (node: NodeHandle) => (await node.api('/api/jobs')).body as any[];

describe('pipeline engine in the node', () => {
  let ct: CtSeriesResult;
  beforeAll(async () => {
    ct = await writeCtSeries(path.join(tempDir(), 'ct'), { patientId: 'PIPE', patientName: 'Pipe^Line', studyDate: STUDY_DATE, phantom });
  });

  it('TotalSegmentator engine + custom structures + planning RTSTRUCT: RS_auto and RS_custom, valid, with the expected ROIs', async () => {
    const work = tempDir();
    const rsPlan = path.join(work, 'RS_plan.dcm');
    await planningRtstruct(ct, 'PIPE', rsPlan);
    const customFile = path.join(work, 'custom.yaml');
    writeFileSync(
      customFile,
      `custom_structures:
  - name: LUNGS
    operation: union
    source_structures: [lung_left, lung_right]
  - name: PTV_minus_LUNGS
    operation: subtract
    source_structures: [PTV, LUNGS]
  - name: PTV_ant10
    operation: union
    source_structures: [PTV]
    margin: { anterior: 10 }
  - name: HEART_PRV
    operation: union
    source_structures: [heart]
    margin: 5
`,
    );
    const node = await startNode({ configYaml: config({ command: path.join(BIN, 'TotalSegmentator'), extra: `custom_structures: ${customFile}\n` }) });
    try {
      await sendStudy(node, [...ct.files, rsPlan]);
      const job = await node.waitFor(async () => (await jobs(node)).find((j) => j.state === 'done' || j.state === 'failed'), 60_000, 'study job');
      expect(job.error).toBeNull();
      expect(job.result.stages.map((s: any) => `${s.stage}:${s.status}`)).toEqual(['organize:done', 'segmentation:done', 'qc:done']);
      const course = job.result.courseDir as string;
      expect(course.endsWith(path.join('PIPE', '2026-03-01'))).toBe(true);

      // organize: the source objects under DICOM/<modality>, and the metadata.
      expect(readdirSync(path.join(course, 'DICOM', 'CT'))).toHaveLength(20);
      expect(readdirSync(path.join(course, 'DICOM', 'RTSTRUCT'))).toHaveLength(1);
      const meta = JSON.parse(readFileSync(path.join(course, 'case_metadata.json'), 'utf8'));
      expect(meta.dicom).toEqual({ CT: 20, RTSTRUCT: 1 });

      // RS_auto: TotalSegmentator's class names, valid; masks in Segmentation/totalsegmentator.
      const rsAuto = readFileSync(path.join(course, 'RS_auto.dcm'));
      const autoNames = readRtStruct(rsAuto).rois.map((r) => r.name).sort();
      expect(autoNames).toEqual(expect.arrayContaining(['body', 'lung_left', 'lung_right']));
      expect(autoNames).not.toContain('brain'); // empty classes are dropped
      expect(await dciodvfyErrors(path.join(course, 'RS_auto.dcm'))).toEqual([]);
      for (const n of autoNames) expect(existsSync(path.join(course, 'Segmentation', 'totalsegmentator', `${n}.nii.gz`))).toBe(true);

      // RS_custom: manual + auto + custom; the one with a missing source is reported, not fatal.
      const rsCustom = readRtStruct(readFileSync(path.join(course, 'RS_custom.dcm')));
      const byName = new Map(rsCustom.rois.map((r) => [r.name, r]));
      expect(byName.get('PTV')?.algorithm).toBe('MANUAL');
      expect(byName.get('body')?.algorithm).toBe('AUTOMATIC');
      for (const n of ['LUNGS', 'PTV_minus_LUNGS', 'PTV_ant10']) expect(byName.get(n)?.contours.length, n).toBeGreaterThan(0);
      expect(byName.has('HEART_PRV')).toBe(false);
      expect(await dciodvfyErrors(path.join(course, 'RS_custom.dcm'))).toEqual([]);
      const report = job.result.segmentation.rsCustom.report;
      expect(report.missing).toEqual([expect.objectContaining({ name: 'HEART_PRV', missingSources: ['heart'] })]);
      const vol = (name: string) => report.rois.find((r: any) => r.name === name).volumeCm3;
      expect(vol('PTV_ant10')).toBeGreaterThan(vol('PTV'));
      expect(vol('PTV_minus_LUNGS')).toBeLessThanOrEqual(vol('PTV'));
      expect(existsSync(path.join(course, 'Segmentation', 'custom', 'LUNGS.nii.gz'))).toBe(true);

      // The heartbeat names the stage and the course.
      expect(node.logs()).toMatch(/Still processing segmentation for PIPE\/2026-03-01 \(\d+ s\)/);

      // A requested re-run redoes only the forced stage (the same instances: organize is kept).
      const post = (uid: string, body: string) => node.api(`/api/studies/${uid}/reprocess`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
      expect((await post(ct.studyInstanceUid, '{"force_redo": ["segmentaton"]}')).status).toBe(400);
      expect((await post('1.2.3.4', '{}')).status).toBe(409);
      const again = await post(ct.studyInstanceUid, '{"force_redo": ["segmentation"]}');
      expect(again.status).toBe(202);
      const rerun = await node.waitFor(async () => (await jobs(node)).find((j) => j.id === again.body.id && (j.state === 'done' || j.state === 'failed')), 60_000, 'the re-run');
      expect(rerun.generation).toBe(2);
      expect(rerun.result.stages.map((s: any) => `${s.stage}:${s.status}`)).toEqual(['organize:skipped', 'segmentation:done', 'qc:done']);
    } finally {
      expect(await node.stop()).toBe(0);
    }
  });

  it('a study with a plan and a dose: course named by the plan month, DVH for the planning ROIs and RS_auto', async () => {
    const planned = await plannedPatient(tempDir(), 'DVHNODE');
    const node = await startNode({ configYaml: 'node:\n  stable_seconds: 0.5\n' });
    try {
      await sendStudy(node, [...planned.files, ...planned.rtFiles]);
      const job = await node.waitFor(async () => (await jobs(node)).find((j) => j.state === 'done' || j.state === 'failed'), 60_000, 'study job');
      expect(job.error).toBeNull();
      expect(job.result.stages.map((s: any) => `${s.stage}:${s.status}`)).toEqual(['organize:done', 'segmentation:done', 'dvh:done', 'qc:done']);
      expect(job.result.courseId).toBe('2025-03');
      const rows = readFileSync(path.join(job.result.courseDir, 'dvh_metrics.csv'), 'utf8').split('\r\n');
      expect(rows.some((r) => r.startsWith('DVHNODE,2025-03,PTV,1,Manual,'))).toBe(true);
      expect(rows.some((r) => /^DVHNODE,2025-03,BODY(__partial)?,\d+,RS_auto,/.test(r))).toBe(true);
    } finally {
      expect(await node.stop()).toBe(0);
    }
  });

  it('plan and dose arriving after the CT reopen the study: same course folder, segmentation kept, DVH computed', async () => {
    const planned = await plannedPatient(tempDir(), 'LATEDOSE');
    const node = await startNode({ configYaml: 'node:\n  stable_seconds: 0.5\n' });
    try {
      await sendStudy(node, planned.files);
      const first = await node.waitFor(async () => (await jobs(node)).find((j) => j.state === 'done'), 60_000, 'CT job');
      expect(first.result.stages.map((s: any) => s.stage)).toEqual(['organize', 'segmentation', 'qc']);
      await sendStudy(node, planned.rtFiles);
      const second = await node.waitFor(async () => (await jobs(node)).find((j) => j.generation === 2 && (j.state === 'done' || j.state === 'failed')), 60_000, 'reopened job');
      expect(second.error).toBeNull();
      expect(second.result.courseDir).toBe(first.result.courseDir);
      // New objects: organize again; a planning RTSTRUCT arrived too (an input of RS_custom), so segmentation runs again.
      expect(second.result.stages.map((s: any) => `${s.stage}:${s.status}`)).toEqual(['organize:done', 'segmentation:done', 'dvh:done', 'qc:done']);
      expect(existsSync(path.join(second.result.courseDir, 'dvh_metrics.csv'))).toBe(true);
    } finally {
      expect(await node.stop()).toBe(0);
    }
  });

  it('a hung tool is killed with its whole tree at TOTALSEG_TIMEOUT; the job fails with the reason; the node goes on', async () => {
    const marker = `rtp-hang-${randomUUID()}`;
    const node = await startNode({ configYaml: config({ command: path.join(BIN, 'TotalSegmentator-hang') }), env: { TOTALSEG_TIMEOUT: '2', RTP_TEST_MARKER: marker } });
    try {
      await sendStudy(node, ct.files);
      await node.waitFor(() => (toolProcesses(marker, node).length >= 3 ? true : undefined), 20_000, 'the hung tool tree');
      const job = await node.waitFor(async () => (await jobs(node)).find((j) => j.state === 'failed'), 30_000, 'failed job');
      expect(job.error).toMatch(/^segmentation failed for PIPE\/2026-03-01: .*timed out after 2 s/);
      await sleep(300);
      expect(toolProcesses(marker, node)).toEqual([]);
      expect((await node.api('/health')).status).toBe(200);
      expect((await echoscu({ port: node.dicomPort, calledAet: 'RTPIPELINE' })).code).toBe(0);
    } finally {
      expect(await node.stop()).toBe(0);
    }
  });

  it('SIGTERM during a stage: its tools are killed, the node exits 0, and the next start resumes the job (done stages skipped)', async () => {
    const marker = `rtp-term-${randomUUID()}`;
    const dataDir = path.join(tempDir(), 'data');
    let node = await startNode({ dataDir, configYaml: config({ command: path.join(BIN, 'TotalSegmentator-hang') }), env: { RTP_TEST_MARKER: marker } });
    await sendStudy(node, ct.files);
    await node.waitFor(() => (toolProcesses(marker, node).length >= 3 ? true : undefined), 20_000, 'the running tool');
    const t0 = Date.now();
    expect(await node.stop()).toBe(0);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(toolProcesses(marker, node)).toEqual([]);
    expect(node.logs()).toMatch(/job interrupted by the stop: queued again/);

    node = await startNode({ dataDir, configYaml: config({ command: path.join(BIN, 'TotalSegmentator') }) });
    try {
      const job = await node.waitFor(async () => (await jobs(node)).find((j) => j.state === 'done' || j.state === 'failed'), 60_000, 'resumed job');
      expect(job.error).toBeNull();
      expect(job.result.stages.map((s: any) => `${s.stage}:${s.status}`)).toEqual(['organize:skipped', 'segmentation:done', 'qc:done']);
      expect(await jobs(node)).toHaveLength(1);
    } finally {
      expect(await node.stop()).toBe(0);
    }
  });

  it('kill -9 during a stage: the next start kills the tool left running and resumes the job', async () => {
    const marker = `rtp-kill-${randomUUID()}`;
    const dataDir = path.join(tempDir(), 'data');
    let node = await startNode({ dataDir, configYaml: config({ command: path.join(BIN, 'TotalSegmentator-hang') }), env: { RTP_TEST_MARKER: marker } });
    await sendStudy(node, ct.files);
    await node.waitFor(() => (toolProcesses(marker, node).length >= 3 ? true : undefined), 20_000, 'the running tool');
    await sleep(1000); // the tool's tree (its setsid'd child too) is recorded by the node's first scan
    await node.kill9();
    await sleep(200);
    expect(toolProcesses(marker, node).length).toBeGreaterThan(0); // orphans of the dead node

    node = await startNode({ dataDir, configYaml: config({ command: path.join(BIN, 'TotalSegmentator') }) });
    try {
      await node.waitFor(() => (toolProcesses(marker, node).length === 0 ? true : undefined), 10_000, 'leftover tools killed');
      expect(node.logs()).toMatch(/killed an external tool left running by the previous node process/);
      const job = await node.waitFor(async () => (await jobs(node)).find((j) => j.state === 'done' || j.state === 'failed'), 60_000, 'resumed job');
      expect(job.error).toBeNull();
      expect(job.result.stages.map((s: any) => `${s.stage}:${s.status}`)).toEqual(['organize:skipped', 'segmentation:done', 'qc:done']);
    } finally {
      expect(await node.stop()).toBe(0);
    }
  });
});
