// IBSI 1 compliance: the digital phantom and CT phantom configurations A–E against the published
// reference values (round to 3 significant digits, |x − ref| <= tolerance), plus the processing chain's
// intermediate diagnostics and the pyradiomics parameter-file reader.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeIbsiFeatures, prepareRoi } from '../src/radiomics/extract.js';
import { parsePyradiomicsParams } from '../src/radiomics/params.js';
import { alignedAxis, discretise, processImage, resampleVolume, resegment, type RawVolume } from '../src/radiomics/preprocess.js';
import { CT_CONFIGS, DIGITAL_PHANTOM_SETTINGS, type CtConfigName, type IbsiSettings } from '../src/radiomics/settings.js';
import type { Features, RoiVolume } from '../src/radiomics/types.js';
import { IBSI_DIR, loadCtPhantom, loadDigitalPhantom, loadReferenceValues, readCsv, round3, score, type ReferenceRow, type Score } from './helpers/ibsi.js';

const FAMILIES: [string, string][] = [
  ['Morphological features', 'morph'],
  ['Local intensity features', 'loc'],
  ['Intensity-based statistical features', 'stat'],
  ['Intensity histogram features', 'ih'],
  ['Intensity-volume histogram features', 'ivh'],
  ['Grey level co-occurrence based features', 'glcm'],
  ['Grey level run length based features', 'glrlm'],
  ['Grey level size zone based features', 'glszm'],
  ['Grey level distance zone based features', 'gldzm'],
  ['Neighbourhood grey tone difference based features', 'ngtdm'],
  ['Neighbouring grey level dependence based features', 'ngldm'],
];

/** Passes reached (the floor for regressions): data set -> family -> count. Every reference value passes:
 *  phantom 482, A/B 346 each (2D and 2.5D texture), C 209 (compactness 1 has no reference), D/E 210 (3D texture). */
const MIN_PASSES: Record<string, Record<string, number>> = {
  digital_phantom: { morph: 25, loc: 2, stat: 18, ih: 23, ivh: 6, glcm: 150, glrlm: 96, glszm: 48, gldzm: 48, ngtdm: 15, ngldm: 51 },
  config_A: { morph: 25, loc: 2, stat: 18, ih: 23, ivh: 6, glcm: 100, glrlm: 64, glszm: 32, gldzm: 32, ngtdm: 10, ngldm: 34 },
  config_B: { morph: 25, loc: 2, stat: 18, ih: 23, ivh: 6, glcm: 100, glrlm: 64, glszm: 32, gldzm: 32, ngtdm: 10, ngldm: 34 },
  config_C: { morph: 24, loc: 2, stat: 18, ih: 23, ivh: 6, glcm: 50, glrlm: 32, glszm: 16, gldzm: 16, ngtdm: 5, ngldm: 17 },
  config_D: { morph: 25, loc: 2, stat: 18, ih: 23, ivh: 6, glcm: 50, glrlm: 32, glszm: 16, gldzm: 16, ngtdm: 5, ngldm: 17 },
  config_E: { morph: 25, loc: 2, stat: 18, ih: 23, ivh: 6, glcm: 50, glrlm: 32, glszm: 16, gldzm: 16, ngtdm: 5, ngldm: 17 },
};

const refs: ReferenceRow[] = loadReferenceValues();
let phantom: { image: RawVolume; mask: RawVolume };
let ct: { image: RawVolume; mask: RawVolume };
const results = new Map<string, Map<string, Score>>();

beforeAll(async () => {
  phantom = await loadDigitalPhantom();
  ct = await loadCtPhantom();
});

afterAll(() => {
  if (results.size === 0) return;
  const sets = [...results.keys()];
  const lines = [['family', ...sets].join(' | ')];
  const totals = sets.map(() => [0, 0]);
  for (const [family, short] of FAMILIES) {
    const cells = sets.map((s, i) => {
      const sc = results.get(s)?.get(family);
      if (!sc) return '-';
      totals[i][0] += sc.passed;
      totals[i][1] += sc.total;
      return `${sc.passed}/${sc.total}`;
    });
    lines.push([short, ...cells].join(' | '));
  }
  lines.push(['TOTAL', ...totals.map(([p, t]) => `${p}/${t}`)].join(' | '));
  console.log(`IBSI 1 reference values passed (round to 3 significant digits, |x - ref| <= tol):\n${lines.join('\n')}`);
});

function check(dataSet: string, features: Features): void {
  const rows = refs.filter((r) => r.dataSet === dataSet);
  expect(rows.length).toBeGreaterThan(200);
  const scores = score(rows, features);
  results.set(dataSet, scores);
  const below: string[] = [];
  for (const [family, short] of FAMILIES) {
    const sc = scores.get(family);
    if (!sc) throw new Error(`${dataSet}: no reference rows for ${family}`);
    const floor = MIN_PASSES[dataSet][short];
    if (sc.passed < floor) below.push(`${short}: ${sc.passed}/${sc.total} < ${floor}; failing ${sc.failures.map((f) => `${f.tag}=${f.value} (ref ${f.ref} ± ${f.tolerance})`).join(', ')}`);
  }
  expect(below, `${dataSet} regressed`).toEqual([]);
}

describe('IBSI 1 reference values', () => {
  it('digital phantom (no processing, grey levels as given)', () => {
    check('digital_phantom', computeIbsiFeatures(phantom.image, phantom.mask, DIGITAL_PHANTOM_SETTINGS));
  });
  for (const name of ['A', 'B', 'C', 'D', 'E'] as CtConfigName[]) {
    it(`CT phantom configuration ${name}`, () => {
      check(`config_${name}`, computeIbsiFeatures(ct.image, ct.mask, CT_CONFIGS[name]));
    });
  }
});

// ------------------------------------------------------------------------------------------------
// The processing chain, step by step, against the IBSI teams' diagnostic values.

function count(mask: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) n += mask[i];
  return n;
}

function maskedMean(vol: RoiVolume, mask: Uint8Array): number {
  let n = 0;
  let s = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) (n++, (s += vol.intensity[i]));
  return s / n;
}

function bboxSize(mask: Uint8Array, dims: [number, number, number]): number[] {
  const lo = [Infinity, Infinity, Infinity];
  const hi = [-1, -1, -1];
  for (let k = 0, p = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++)
      for (let i = 0; i < dims[0]; i++, p++)
        if (mask[p])
          [i, j, k].forEach((v, a) => {
            lo[a] = Math.min(lo[a], v);
            hi[a] = Math.max(hi[a], v);
          });
  return hi.map((h, a) => h - lo[a] + 1);
}

describe('IBSI processing diagnostics (CT phantom)', () => {
  const diag = readCsv(join(IBSI_DIR, 'reference_values/ibsi1_ct_phantom_diagnostic_features.csv'));
  const value = (set: string, tag: string) => Number(diag.find((r) => r.data_set === set && r.ibsi_tag === tag)?.team_mode);
  for (const name of ['A', 'B', 'C', 'D', 'E'] as CtConfigName[]) {
    it(`configuration ${name}: grid, ROI sizes, voxel counts and means`, () => {
      const set = `config_${name}`;
      const roi = processImage(ct.image, ct.mask, CT_CONFIGS[name].processing);
      expect(roi.gridDims).toEqual(['x', 'y', 'z'].map((a) => value(set, `img_dim_${a}_interp_img`)));
      expect(roi.spacingMm.map(round3)).toEqual(['x', 'y', 'z'].map((a) => value(set, `vox_dim_${a}_interp_img`)));
      expect(bboxSize(roi.morphMask, roi.dims)).toEqual(['x', 'y', 'z'].map((a) => value(set, `morph_mask_bb_dim_${a}_interp_roi`)));
      expect(count(roi.morphMask)).toBe(value(set, 'morph_mask_vox_count_interp_roi'));
      expect(round3(maskedMean(roi, roi.morphMask))).toBe(value(set, 'int_mask_mean_int_interp_roi'));
      expect(count(roi.intensityMask)).toBe(value(set, 'int_mask_vox_count_reseg_roi'));
      expect(round3(maskedMean(roi, roi.intensityMask))).toBe(value(set, 'int_mask_mean_int_reseg_roi'));
    });
  }

  it('settings A-E match the published configuration table', () => {
    const table = readCsv(join(IBSI_DIR, 'reference_values/ibsi1_ct_phantom_configurations.csv'));
    expect(table.map((r) => r.config)).toEqual(['A', 'B', 'C', 'D', 'E']);
    for (const row of table) {
      const s: IbsiSettings = CT_CONFIGS[row.config as CtConfigName];
      const p = s.processing;
      expect(s.textureDimension).toBe(row.dimension);
      expect(p.resegmentRange ? `[${p.resegmentRange.join(', ')}]` : 'none').toBe(row.resegmentation_range_HU);
      expect(p.outlierSigma ? `${p.outlierSigma} sigma` : 'no').toBe(row.outlier_filtering.split(' (')[0]);
      const d = s.discretisation;
      expect(d.method === 'FBS' ? `FBS bin width ${d.binWidth} HU` : d.method === 'FBN' ? `FBN ${d.bins} bins` : 'none').toBe(row.texture_and_ih_discretisation);
      const ivh = s.ivh;
      expect(row.ivh_discretisation.startsWith(ivh.method === 'FBS' ? `FBS bin width ${ivh.binWidth} HU` : ivh.method === 'FBN' ? `FBN ${ivh.bins} bins` : 'none')).toBe(true);
      const interp = { nearest: 'nearest', linear: p.resampling?.spacingMm[2] === null ? 'bilinear' : 'trilinear', cubic: 'tricubic spline' };
      expect(p.resampling ? interp[p.resampling.image] : 'none').toBe(row.image_interpolator);
      expect(p.resampling ? interp[p.resampling.mask] : 'none').toBe(row.roi_interpolator);
      expect(p.resampling ? String(p.resampling.partialVolume) : 'none').toBe(row.roi_partial_volume_threshold);
      expect(p.roundIntensities && p.resampling ? 'nearest integer' : 'none').toBe(row.intensity_rounding);
      expect(s.texture.glcmDistance).toBe(Number(row.glcm_ngtdm_ngldm_distance_chebyshev));
      expect(s.texture.ngldmAlpha).toBe(Number(row.ngldm_coarseness_alpha));
    }
  });
});

describe('interpolation and discretisation', () => {
  it('aligns grid centres: n = ceil(n s / s_new), centred offset', () => {
    expect(alignedAxis(204, 0.977, 2)).toMatchObject({ n: 100 });
    expect(alignedAxis(60, 3, 2)).toMatchObject({ n: 90, start: 0.5 * (59 - (2 / 3) * 89) });
    expect(alignedAxis(5, 2, null)).toEqual({ n: 5, start: 0, step: 1, spacingMm: 2 });
    const g = alignedAxis(10, 1, 3); // 4 points, centre 4.5 in both grids
    expect(g.n).toBe(4);
    expect(g.start + (1.5 * g.step)).toBeCloseTo(4.5, 12);
  });

  // A 1-D line along x of a 3-D volume (ny = nz = 1).
  const line = (values: number[]): RawVolume => ({ dims: [values.length, 1, 1], spacingMm: [1, 1, 1], data: Float64Array.from(values) });
  const axes = (g: ReturnType<typeof alignedAxis>) => [g, alignedAxis(1, 1, null), alignedAxis(1, 1, null)] as [typeof g, typeof g, typeof g];

  it('linear and cubic B-spline reproduce a linear ramp away from the edges; cubic interpolates the samples', () => {
    // The B-spline's mirror boundary bends a ramp near the ends; its influence decays as 0.27^distance.
    const ramp = line(Array.from({ length: 60 }, (_, i) => 3 * i - 7));
    const g = { n: 30, start: 20, step: 0.5, spacingMm: 0.5 }; // positions 20 .. 34.5
    for (const method of ['linear', 'cubic'] as const) {
      const out = resampleVolume(ramp, axes(g), { first: [0, 0, 0], count: [30, 1, 1] }, method);
      out.forEach((v, i) => expect(v).toBeCloseTo(3 * (20 + 0.5 * i) - 7, 8));
    }
    const bumpy = line([0, 5, -2, 8, 1, 1, 9, -4, 3, 0]);
    const same = resampleVolume(bumpy, axes(alignedAxis(10, 1, null)), { first: [0, 0, 0], count: [10, 1, 1] }, 'cubic');
    same.forEach((v, i) => expect(v).toBeCloseTo(bumpy.data[i], 9));
    const nearest = resampleVolume(bumpy, axes({ n: 3, start: 0.4, step: 3.3, spacingMm: 3.3 }), { first: [0, 0, 0], count: [3, 1, 1] }, 'nearest');
    expect([...nearest]).toEqual([0, 1, -4]); // positions 0.4, 3.7, 7.0 -> voxels 0, 4, 7
  });

  it('extrapolates with the nearest boundary value', () => {
    const out = resampleVolume(line([4, 6]), axes({ n: 3, start: -1, step: 2, spacingMm: 2 }), { first: [0, 0, 0], count: [3, 1, 1] }, 'linear');
    expect([...out]).toEqual([4, 6, 6]);
  });

  it('discretises with fixed bin size from the range minimum and fixed bin number with the maximum in the top bin', () => {
    const roi: RoiVolume = {
      dims: [5, 1, 1],
      spacingMm: [1, 1, 1],
      intensity: Float64Array.from([-500, -476, -475, 399, 12]),
      morphMask: Uint8Array.from([1, 1, 1, 1, 0]),
      intensityMask: Uint8Array.from([1, 1, 1, 1, 0]),
    };
    expect([...discretise(roi, { method: 'FBS', binWidth: 25 }, [-500, 400]).levels]).toEqual([1, 1, 2, 36, 0]);
    const fbn = discretise(roi, { method: 'FBN', bins: 4 }, null);
    expect([...fbn.levels]).toEqual([1, 1, 1, 4, 0]);
    expect(fbn.nLevels).toBe(4);
  });

  it('combines range and outlier re-segmentation as an intersection (config E)', () => {
    const { roi } = prepareRoi(ct.image, ct.mask, CT_CONFIGS.E);
    const rangeOnly = resegment(roi.intensity, roi.morphMask, [-1000, 400], null);
    const sigmaOnly = resegment(roi.intensity, roi.morphMask, null, 3);
    let both = 0;
    let mismatches = 0;
    for (let i = 0; i < roi.intensityMask.length; i++) {
      if (roi.intensityMask[i] !== (rangeOnly[i] & sigmaOnly[i])) mismatches++;
      both += roi.intensityMask[i];
    }
    expect(mismatches).toBe(0);
    expect(both).toBeLessThan(Math.min(count(rangeOnly), count(sigmaOnly)));
  });
});

// ------------------------------------------------------------------------------------------------
// pyradiomics parameter files

describe('pyradiomics parameter files', () => {
  it('reads a file verbatim: empty values are None, Original: {}, image-type overrides, deprecated features by name', () => {
    const text = [
      'imageType:',
      '  Original: {}',
      '  LoG:',
      '    sigma: [1.0, 2.0, 3.0, 5.0]',
      '  Wavelet:',
      '    binWidth: 10',
      'featureClass:',
      '  shape:',
      '  firstorder: []',
      '  glcm: [Contrast, JointEntropy, SumVariance]',
      'setting:',
      '  binWidth: 25',
      '  label: 2',
      '  resampledPixelSpacing: [1, 1, 1]',
      '  interpolator: 3',
      '  resegmentRange: [-1000, 400]',
      '  removeOutliers:',
      '  weightingNorm:',
      '  padDistance: 10',
    ].join('\n');
    const p = parsePyradiomicsParams(text, 'ct.yaml');
    expect([...p.imageTypes.keys()]).toEqual(['Original', 'LoG', 'Wavelet']);
    expect(p.imageTypes.get('LoG')?.sigma).toEqual([1, 2, 3, 5]);
    expect(p.imageTypes.get('Wavelet')?.binWidth).toBe(10);
    expect(p.imageTypes.get('Original')?.binWidth).toBe(25);
    expect(p.setting).toMatchObject({ label: 2, resampledPixelSpacing: [1, 1, 1], interpolator: 'sitkBSpline', resegmentRange: [-1000, 400], removeOutliers: null, weightingNorm: null, padDistance: 10, symmetricalGLCM: true });
    expect(p.featureClasses.get('shape')).not.toContain('Compactness1');
    expect(p.featureClasses.get('shape')).toContain('MeshVolume');
    expect(p.featureClasses.get('firstorder')).toHaveLength(18);
    expect(p.featureClasses.get('glcm')).toEqual(['Contrast', 'JointEntropy', 'SumVariance']);
    expect(p.featureClasses.has('glrlm')).toBe(false);
  });

  it('defaults: Original only, every class but shape2D, binWidth 25', () => {
    const p = parsePyradiomicsParams('setting:\n  binCount: 32\n', 'p.yaml');
    expect([...p.imageTypes.keys()]).toEqual(['Original']);
    expect([...p.featureClasses.keys()].sort()).toEqual(['firstorder', 'glcm', 'gldm', 'glrlm', 'glszm', 'ngtdm', 'shape']);
    expect(p.setting).toMatchObject({ binWidth: 25, binCount: 32, interpolator: 'sitkBSpline', label: 1 });
    expect(parsePyradiomicsParams('', 'empty.yaml').imageTypes.has('Original')).toBe(true);
  });

  it('errors name the file, the line and what is wrong', () => {
    expect(() => parsePyradiomicsParams('setting:\n  binWidth: 25\n  binwidht: 5\n', 'a.yaml')).toThrow(/a\.yaml: line 3 .*unknown key "binwidht"/);
    expect(() => parsePyradiomicsParams('featureClass:\n  glcm:\n    - Contrast\n    - Contrats\n', 'b.yaml')).toThrow(/b\.yaml: line 4 .*"Contrats" is not a glcm feature/);
    expect(() => parsePyradiomicsParams('featureClass:\n  texture:\n', 'c.yaml')).toThrow(/c\.yaml: line 2 .*unknown key "texture".*classes are/);
    expect(() => parsePyradiomicsParams('setting:\n  interpolator: sitkCubic\n', 'd.yaml')).toThrow(/d\.yaml: line 2 .*interpolator must be one of/);
    expect(() => parsePyradiomicsParams('imageType:\n  LoG: {}\n', 'e.yaml')).toThrow(/e\.yaml: line 2 .*LoG needs `sigma/);
    expect(() => parsePyradiomicsParams('setting:\n  binWidth: -1\n', 'f.yaml')).toThrow(/f\.yaml: line 2 \(setting\.binWidth\)/);
  });
});
