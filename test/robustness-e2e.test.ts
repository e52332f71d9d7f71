// Robustness end to end through the batch command: five synthetic subjects of different sizes,
// built-in segmentation, the mild perturbation grid on LUNG_L, and the cohort ICC / CoV summary:
// shape features come out robust, a noise-sensitive first-order feature (Minimum) poor.
import { describe, it, expect, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CLI, tempDir } from './helpers/node.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';
import { ROBUSTNESS_SUMMARY_COLUMNS } from '../src/robustness/summary.js';

function csv(file: string): Record<string, string>[] {
  const [head, ...lines] = readFileSync(file, 'utf8').replace(/^\uFEFF/, '').trim().split('\r\n');
  const cols = head.split(',');
  return lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [cols[i], v])));
}

describe('radiomics robustness (batch command)', () => {
  let work: string;
  beforeAll(async () => {
    work = tempDir('rtp-robust-');
    const sizes: [number, number][] = [[5.5, 9], [6, 10], [6.5, 11], [7, 12], [7.5, 10]];
    for (const [i, [px, st]] of sizes.entries()) {
      await writeCtSeries(path.join(work, 'in', `S${i}`), { patientId: `ROB${i}`, patientName: `ROB^${i}`, studyDate: '20250501', phantom: { rows: 64, columns: 64, slices: 20, pixelSpacingMm: [px, px], sliceThicknessMm: st, seed: 11 + i } });
    }
    writeFileSync(path.join(work, 'light.yaml'), 'imageType:\n  Original: {}\nfeatureClass:\n  shape:\n  firstorder:\nsetting:\n  binWidth: 25\n');
  });

  const run = (patterns: string, out: string) => {
    const cfg = path.join(work, `cfg-${out}.yaml`);
    writeFileSync(cfg, `radiomics:\n  enabled: false\nradiomics_robustness:\n  enabled: true\n  segmentation_perturbation:\n    apply_to_structures: ${patterns}\n    intensity: mild\n`);
    return spawnSync(process.execPath, [CLI, '--dicom-root', path.join(work, 'in'), '--outdir', path.join(work, out), '--logs', path.join(work, 'logs'), '--config', cfg, '--radiomics-params', path.join(work, 'light.yaml'), '--stage', 'organize,segmentation,robustness'], {
      encoding: 'utf8',
      timeout: 240_000,
      env: { ...process.env, RTPIPELINE_LOG_FORMAT: 'json' },
    });
  };

  it('labels stable shape features robust and a noise-sensitive feature poor, with ICC(3,1) and its CI', () => {
    const r = run('["lung_l"]', 'out');
    expect(r.status, r.stderr + r.stdout.slice(-2000)).toBe(0);
    const long = csv(path.join(work, 'out', 'ROB0', '2025-05-01', 'radiomics_robustness_ct.csv'));
    const ids = new Set(long.map((x) => x.perturbation_id));
    expect(ids.size).toBe(12); // mild grid
    expect([...ids].sort()).toEqual(['n0_t0_c0_v-15', 'n0_t0_c0_v0', 'n0_t0_c1_v-15', 'n0_t0_c1_v0', 'n0_tz+4_c0_v-15', 'n0_tz+4_c0_v0', 'n0_tz+4_c1_v-15', 'n0_tz+4_c1_v0', 'n0_tz-4_c0_v-15', 'n0_tz-4_c0_v0', 'n0_tz-4_c1_v-15', 'n0_tz-4_c1_v0']);
    const summaryFile = path.join(work, 'out', '_RESULTS', 'radiomics_robustness_summary.csv');
    const summary = csv(summaryFile);
    expect(Object.keys(summary[0]).slice(0, ROBUSTNESS_SUMMARY_COLUMNS.length)).toEqual([...ROBUSTNESS_SUMMARY_COLUMNS]);
    const row = (f: string) => summary.find((x) => x.feature_name === f && x.structure === 'LUNG_L')!;
    expect(row('original_shape_VoxelVolume')).toMatchObject({ n_subjects: '5', n_perturbations: '12', robustness_label: 'robust' });
    expect(Number(row('original_shape_VoxelVolume').icc_ci95_low)).toBeGreaterThanOrEqual(0.9);
    expect(row('original_firstorder_Minimum').robustness_label).toBe('poor');
    expect(Number(row('original_firstorder_Minimum').icc)).toBeLessThan(0.75);
  });

  it('no ROI matching the patterns is reported, not a failure', () => {
    const r = run('["NO_SUCH_ROI*"]', 'out2');
    expect(r.status, r.stderr).toBe(0);
    const meta = JSON.parse(readFileSync(path.join(work, 'out2', 'ROB0', '2025-05-01', 'case_metadata.json'), 'utf8'));
    expect(meta.robustness).toMatchObject({ skipped: true });
    expect(meta.robustness.reason).toMatch(/no ROI matches .*NO_SUCH_ROI\*/);
  });
});
