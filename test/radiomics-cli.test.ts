// `rtpipeline radiomics` through the compiled CLI: IBSI mode on the IBSI CT phantom (configuration A,
// every reference value), pyradiomics mode names, an RTSTRUCT ROI on a DICOM series, and bad input.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI, tempDir } from './helpers/node.js';
import { IBSI_DIR, loadReferenceValues, readCsv, score } from './helpers/ibsi.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const PHANTOM = path.join(IBSI_DIR, 'ibsi_1_ct_radiomics_phantom');
const image = path.join(PHANTOM, 'nifti/image/phantom.nii.gz');
const mask = path.join(PHANTOM, 'nifti/mask/mask.nii.gz');
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, 'radiomics', ...args], { encoding: 'utf8', timeout: 120_000 });

describe('rtpipeline radiomics', () => {
  it('--ibsi with config A gives every IBSI reference value of configuration A (ibsi_tag,value)', () => {
    const out = path.join(tempDir(), 'a.csv');
    const r = cli(image, mask, '--ibsi', '--param', path.join(REPO, 'config/radiomics/ibsi-A.yaml'), '--out', out);
    expect(r.status, r.stderr).toBe(0);
    const rows = readCsv(out);
    expect(Object.keys(rows[0])).toEqual(['ibsi_tag', 'value']);
    const features = new Map(rows.map((x) => [x.ibsi_tag, Number(x.value)]));
    const scores = [...score(loadReferenceValues().filter((x) => x.dataSet === 'config_A'), features).values()];
    const passed = scores.reduce((a, s) => a + s.passed, 0);
    const total = scores.reduce((a, s) => a + s.total, 0);
    console.log(`rtpipeline radiomics --ibsi config A: ${passed}/${total}`);
    expect(passed).toBe(total);
  });

  it('pyradiomics mode: pyradiomics names; an RTSTRUCT ROI on the DICOM series gives the same ROI volume', () => {
    const out = path.join(tempDir(), 'p.csv');
    const params = path.join(REPO, 'config/radiomics/ibsi-A.yaml');
    const r = cli(image, mask, '--param', params, '--out', out);
    expect(r.status, r.stderr).toBe(0);
    const fromNifti = new Map(readCsv(out).map((x) => [x.feature, Number(x.value)]));
    expect(fromNifti.has('original_firstorder_Mean')).toBe(true);
    expect(fromNifti.has('original_glcm_Contrast')).toBe(true);
    expect(fromNifti.get('original_shape_VoxelVolume')).toBeGreaterThan(300_000);
    const out2 = path.join(tempDir(), 'p2.csv');
    const r2 = cli(path.join(PHANTOM, 'dicom/image'), path.join(PHANTOM, 'dicom/mask/DCM_RS_00060.dcm'), '--roi', 'GTV-1', '--param', params, '--out', out2);
    expect(r2.status, r2.stderr).toBe(0);
    const fromRs = new Map(readCsv(out2).map((x) => [x.feature, Number(x.value)]));
    const v1 = fromNifti.get('original_shape_VoxelVolume')!;
    const v2 = fromRs.get('original_shape_VoxelVolume')!;
    expect(Math.abs(v2 - v1) / v1).toBeLessThan(0.03);
  });

  it('refuses bad input with a clear message (exit 2)', () => {
    const missing = cli('/no/such.nii.gz', mask);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/image \/no\/such.nii.gz does not exist/);
    const noRoi = cli(path.join(PHANTOM, 'dicom/image'), path.join(PHANTOM, 'dicom/mask/DCM_RS_00060.dcm'));
    expect(noRoi.status).toBe(2);
    expect(noRoi.stderr).toMatch(/name the ROI with --roi \(ROIs: .*GTV-1/);
    const badConfig = cli(image, mask, '--ibsi', '--param', 'F');
    expect(badConfig.status).toBe(2);
    expect(badConfig.stderr).toMatch(/--ibsi takes an IBSI configuration/);
  });
});
