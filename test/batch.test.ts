// The batch command end to end on a generated cohort: organize, built-in segmentation, DVH, cohort
// tables; a broken course fails alone (exit 1); markers make a re-run skip; --force-redo redoes.
import { describe, it, expect, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CLI, tempDir } from './helpers/node.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';
import { plannedPatient, PLAN_PHANTOM as phantom } from './helpers/planned-patient.js';

function csv(file: string): Record<string, string>[] {
  const [head, ...lines] = readFileSync(file, 'utf8').replace(/^\uFEFF/, '').trim().split('\r\n');
  const cols = head.split(',');
  return lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [cols[i], v])));
}

/** Original-image features only (the default adds 1 mm resampling, LoG and wavelet: minutes, not seconds). */
const LIGHT_RADIOMICS = path.join(tempDir('rtp-radparams-'), 'light.yaml');
writeFileSync(LIGHT_RADIOMICS, 'imageType:\n  Original: {}\nfeatureClass:\n  shape:\n  firstorder:\n  glcm:\nsetting:\n  binWidth: 25\n');

describe('batch command: rtpipeline --dicom-root IN --outdir OUT --logs LOGS', () => {
  let root: string;
  let out: string;
  let logs: string;
  const runCli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 240_000, env: { ...process.env, RTPIPELINE_LOG_FORMAT: 'json' } });

  beforeAll(async () => {
    const work = tempDir('rtp-batch-');
    root = path.join(work, 'in');
    out = path.join(work, 'out');
    logs = path.join(work, 'logs');
    await plannedPatient(root, 'BATCH1');
    // A CT-only patient (no plan): segmented, DVH skipped with the reason.
    await writeCtSeries(path.join(root, 'BATCH2'), { patientId: 'BATCH2', patientName: 'CT^ONLY', studyDate: '20250401', phantom });
    // A broken CT (a slice missing in the middle): its course fails, the others go on.
    const broken = await writeCtSeries(path.join(root, 'BATCH3'), { patientId: 'BATCH3', patientName: 'BROKEN^CT', studyDate: '20250402', phantom });
    rmSync(broken.files[10]);
    writeFileSync(path.join(root, 'notes.txt'), 'not DICOM');
  });

  it('organizes, segments and computes DVHs; one broken course fails alone (exit 1); cohort tables and a log file', () => {
    const r = runCli('--dicom-root', root, '--outdir', out, '--logs', logs, '--radiomics-params', LIGHT_RADIOMICS);
    expect(r.status, r.stderr + r.stdout.slice(-3000)).toBe(1);
    expect(r.stderr).toMatch(/failed: BATCH3\/2025-04-02: segmentation failed for BATCH3\/2025-04-02: .*missing/i);
    expect(r.stdout).toMatch(/2\/3 course\(s\) done/);

    const c1 = path.join(out, 'BATCH1', '2025-03');
    for (const f of ['RS_auto.dcm', 'dvh_metrics.csv', 'dvh_metrics.xlsx', 'dvh_curves.json', 'case_metadata.json']) expect(existsSync(path.join(c1, f)), f).toBe(true);
    const rows = csv(path.join(c1, 'dvh_metrics.csv'));
    const ptv = rows.find((x) => x.ROI_Name === 'PTV' && x.Segmentation_Source === 'Manual')!;
    expect(Number(ptv['Volume (cm³)'])).toBeCloseTo(360, -1); // 60 x 60 x 100 mm
    expect(Number(ptv.DmeanGy)).toBeGreaterThan(38);
    expect(Number(ptv.DmeanGy)).toBeLessThan(42); // half at 60, half at 20
    expect(Number(ptv.DmaxGy)).toBeCloseTo(60, 0);
    expect(Number(ptv['V100%Rx (%)'])).toBeGreaterThan(40);
    expect(Number(ptv['V100%Rx (%)'])).toBeLessThan(60);
    expect(rows.filter((x) => x.Segmentation_Source === 'RS_auto').map((x) => x.ROI_Name.replace('__partial', '')).sort()).toEqual(['BODY', 'BONES', 'LUNG_L', 'LUNG_R']);

    const c2 = path.join(out, 'BATCH2', '2025-04-01');
    expect(existsSync(path.join(c2, 'RS_auto.dcm'))).toBe(true);
    expect(JSON.parse(readFileSync(path.join(c2, 'case_metadata.json'), 'utf8')).dvh).toMatchObject({ skipped: true, reason: 'no RTDOSE in the course' });

    // Radiomics: every ROI of every source, pyradiomics names, the cohort table.
    const rad = csv(path.join(c1, 'radiomics_ct.csv'));
    expect(rad.map((x) => `${x.Segmentation_Source}:${x.ROI_Name}`).sort()).toEqual(['Manual:PTV', 'RS_auto:BODY', 'RS_auto:BONES', 'RS_auto:LUNG_L', 'RS_auto:LUNG_R']);
    expect(rad.every((x) => x.error === '' && Number(x.original_shape_VoxelVolume) > 0)).toBe(true);
    expect(csv(path.join(out, '_RESULTS', 'radiomics_ct.csv')).filter((x) => x.PatientID === 'BATCH2')).toHaveLength(4);

    const cohort = csv(path.join(out, '_RESULTS', 'dvh_metrics.csv'));
    expect(new Set(cohort.map((x) => x.PatientID))).toEqual(new Set(['BATCH1']));
    const meta = csv(path.join(out, '_RESULTS', 'case_metadata.csv'));
    expect(meta.map((m) => `${m.PatientID}:${m.status}`).sort()).toEqual(['BATCH1:ok', 'BATCH2:ok', 'BATCH3:failed']);
    expect(existsSync(path.join(out, '_RESULTS', 'dvh_metrics.xlsx'))).toBe(true);
    const logFiles = readdirSync(logs).filter((f) => f.endsWith('.log'));
    expect(logFiles).toHaveLength(1);
    expect(readFileSync(path.join(logs, logFiles[0]), 'utf8')).toMatch(/"msg":"DVH written for BATCH1\/2025-03"/);
  });

  it('a re-run skips finished stages; --stage dvh --force-redo redoes only the DVH', () => {
    const again = runCli('--dicom-root', root, '--outdir', out, '--logs', logs, '--radiomics-params', LIGHT_RADIOMICS);
    expect(again.status).toBe(1);
    expect(again.stdout).toMatch(/segmentation already done for BATCH1\/2025-03: skipped/);
    expect(again.stdout).toMatch(/dvh already done for BATCH1\/2025-03: skipped/);
    const forced = runCli('run', '--outdir', out, '--logs', logs, '--stage', 'dvh', '--force-redo');
    expect(forced.stdout).toMatch(/dvh started for BATCH1\/2025-03/);
    expect(forced.stdout).not.toMatch(/segmentation started/);
    // A radiomics ROI over its time limit is recorded with the reason; the table and the run go on.
    const slow = spawnSync(process.execPath, [CLI, 'run', '--outdir', out, '--logs', logs, '--stage', 'radiomics', '--force-redo', '--sequential-radiomics', '--radiomics-params', LIGHT_RADIOMICS], {
      encoding: 'utf8',
      timeout: 240_000,
      env: { ...process.env, RTPIPELINE_LOG_FORMAT: 'json', RTPIPELINE_RADIOMICS_TASK_TIMEOUT: '0.001' },
    });
    expect(slow.stdout).toMatch(/radiomics started for BATCH1\/2025-03/);
    const timedOut = csv(path.join(out, 'BATCH1', '2025-03', 'radiomics_ct.csv'));
    expect(timedOut.length).toBe(5);
    expect(timedOut.every((x) => x.error === 'timed out after 0.001 s (RTPIPELINE_RADIOMICS_TASK_TIMEOUT)')).toBe(true);
    const bad = runCli('run', '--dicom-root', root, '--stage', 'dvhh');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/unknown stage "dvhh"/);
  });
});
