import { IBSI_DIR } from './helpers/ibsi.js';
/**
 * pyradiomics mode against pyradiomics' own regression baseline (reference/ibsi/pyradiomics_baseline):
 * brain1, brain2, breast1 and their variants, every feature of every class within 3 % (absolute
 * 1e-6 when the baseline is ~0). The settings of each case come from its diagnostics rows.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readNrrd } from '../src/io/nrrd.js';
import { loadPyradiomicsParams, parsePyradiomicsParams } from '../src/radiomics/params.js';
import { extractPyradiomics } from '../src/radiomics/pyradiomics.js';
import { laplacianOfGaussian, logImageName } from '../src/radiomics/filters/log.js';
import { waveletImages } from '../src/radiomics/filters/wavelet.js';

const BASE = `${IBSI_DIR}/pyradiomics_baseline`;
const CLASSES = ['firstorder', 'shape', 'glcm', 'glrlm', 'glszm', 'gldm', 'ngtdm'] as const;

/** baseline[class][case][featureName] = value (strings for diagnostics). */
function readBaselines(): Map<string, Map<string, Map<string, string>>> {
  const out = new Map<string, Map<string, Map<string, string>>>();
  for (const cls of CLASSES) {
    const lines = readFileSync(join(BASE, 'baseline', `baseline_${cls}.csv`), 'utf8').trim().split('\n');
    const split = (l: string) => l.match(/("[^"]*"|[^,]*)(,|$)/g)?.map((c) => c.replace(/,$/, '').replace(/^"|"$/g, '')) ?? [];
    const header = split(lines[0]);
    const cases = new Map<string, Map<string, string>>();
    header.slice(1).forEach((c) => c && cases.set(c, new Map()));
    for (const line of lines.slice(1)) {
      const cells = split(line);
      header.slice(1).forEach((c, i) => c && cases.get(c)?.set(cells[0], cells[i + 1]));
    }
    out.set(cls, cases);
  }
  return out;
}

/** Python dict repr of the diagnostics settings → JSON. */
function pythonDictToJson(text: string): Record<string, unknown> {
  return JSON.parse(text.replace(/'/g, '"').replace(/\bTrue\b/g, 'true').replace(/\bFalse\b/g, 'false').replace(/\bNone\b/g, 'null'));
}

const SUBJECTS = ['brain1', 'brain2', 'breast1'];
const VARIANTS = ['', '_2d', '_FBN', '_combined', '_flatRegion', '_normalization', '_resampling', '_resegmentation'];

function within(value: number, ref: number): boolean {
  if (Math.abs(ref) < 1e-6) return Math.abs(value - ref) <= 1e-6 + 0.03 * Math.abs(ref);
  return Math.abs(1 - value / ref) < 0.03;
}

describe('pyradiomics baseline (brain1, brain2, breast1)', () => {
  const baselines = readBaselines();
  const results = new Map<string, { pass: number; total: number; failures: string[]; worst: number }>(); // key case/class
  beforeAll(() => {
    for (const subject of SUBJECTS) {
      const image = readNrrd(join(BASE, `${subject}_image.nrrd`));
      const mask = readNrrd(join(BASE, `${subject}_label.nrrd`));
      for (const variant of VARIANTS) {
        const name = subject + variant;
        const classes = CLASSES.filter((c) => baselines.get(c)?.has(name));
        if (!classes.length) continue;
        const diag = baselines.get(classes[0])!.get(name)!;
        const setting = pythonDictToJson(diag.get('diagnostics_Configuration_Settings') as string);
        const types = pythonDictToJson(diag.get('diagnostics_Configuration_EnabledImageTypes') as string);
        const params = parsePyradiomicsParams(JSON.stringify({ imageType: types, featureClass: Object.fromEntries(classes.map((c) => [c, null])), setting }), `${name} settings`);
        const features = extractPyradiomics({ dims: image.grid.dims, spacingMm: image.grid.spacingMm, data: image.data, grid: image.grid }, { dims: mask.grid.dims, spacingMm: mask.grid.spacingMm, data: mask.data }, params);
        for (const cls of classes) {
          const ref = baselines.get(cls)!.get(name)!;
          const r = { pass: 0, total: 0, failures: [] as string[], worst: 0 };
          for (const [key, text] of ref) {
            if (!key.startsWith('original_') || text === '') continue;
            const expected = Number(text);
            const got = features.get(key);
            r.total++;
            if (got !== undefined && Math.abs(expected) >= 1e-6) r.worst = Math.max(r.worst, Math.abs(1 - got / expected));
            if (got !== undefined && within(got, expected)) r.pass++;
            else r.failures.push(`${key}: got ${got}, baseline ${expected}`);
          }
          results.set(`${name}/${cls}`, r);
        }
      }
    }
    const lines = [...results].map(([k, r]) => `${k.padEnd(34)} ${`${r.pass}/${r.total}`.padEnd(6)} worst ${(100 * r.worst).toFixed(3)} %${r.failures.length ? `  fails: ${r.failures.slice(0, 3).join('; ')}` : ''}`);
    console.log(`pyradiomics baseline pass counts (3 %):\n${lines.join('\n')}`);
  }, 120_000);

  it('every baseline feature of every case and class is within 3 %', () => {
    // Per subject: plain 7 classes, _2d 5, _FBN 5, _combined 2, _flatRegion 5, _normalization 6,
    // _resampling 7, _resegmentation 6 = 43 (case, class) pairs.
    expect(results.size).toBe(3 * 43);
    let total = 0;
    for (const [key, r] of results) {
      total += r.total;
      expect(r.failures, key).toEqual([]);
      expect(r.pass, key).toBe(r.total);
    }
    expect(total).toBeGreaterThanOrEqual(1500);
  });
});

describe('filters', () => {
  it('LoG of a Gaussian blob matches the analytic sigma^2 * Laplacian of the smoothed blob', () => {
    // f = exp(-r^2 / (2 s^2)); G_sigma * f is a Gaussian of variance v = s^2 + sigma^2 scaled by (s^2/v)^(3/2);
    // its Laplacian at r is A (r^2 - 3v)/v^2 * exp(-r^2/(2v)).
    const n = 41, h = 0.5, s = 2, c = (n - 1) / 2;
    const data = new Float64Array(n * n * n);
    for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) {
      const r2 = ((i - c) ** 2 + (j - c) ** 2 + (k - c) ** 2) * h * h;
      data[i + n * (j + n * k)] = Math.exp(-r2 / (2 * s * s));
    }
    for (const sigma of [1, 1.5]) {
      const log = laplacianOfGaussian(data, [n, n, n], [h, h, h], sigma);
      const v = s * s + sigma * sigma;
      const amp = (s * s / v) ** 1.5;
      for (const off of [0, 2, 4, 6]) {
        const r2 = (off * h) ** 2;
        const expected = sigma * sigma * amp * ((r2 - 3 * v) / (v * v)) * Math.exp(-r2 / (2 * v));
        const got = log[c + off + n * (c + n * c)];
        expect(Math.abs(got - expected)).toBeLessThan(2e-4 * ((amp * 3) / v) * sigma * sigma);
      }
    }
    expect(logImageName(1)).toBe('log-sigma-1-0-mm-3D');
    expect(logImageName(2.5)).toBe('log-sigma-2-5-mm-3D');
  });

  it('coif1 stationary wavelet: constants go to LLL only (gain 2*sqrt 2); a linear ramp has no high-pass detail', () => {
    const dims: [number, number, number] = [8, 6, 4];
    const flat = waveletImages(new Float64Array(8 * 6 * 4).fill(3), dims, { wavelet: 'coif1', level: 1, startLevel: 0 });
    expect([...flat.keys()].sort()).toEqual(['wavelet-HHH', 'wavelet-HHL', 'wavelet-HLH', 'wavelet-HLL', 'wavelet-LHH', 'wavelet-LHL', 'wavelet-LLH', 'wavelet-LLL']);
    for (const [name, band] of flat) {
      const expected = name === 'wavelet-LLL' ? 3 * 2 * Math.SQRT2 : 0;
      for (const v of band) expect(v).toBeCloseTo(expected, 10);
    }
    // Ramp along z (periodic wrap only touches the ends): interior of every z-high-pass band vanishes
    // (coif1 has two vanishing moments), while the z-low-pass keeps the ramp.
    const n = 16;
    const ramp = new Float64Array(2 * 2 * n);
    for (let k = 0; k < n; k++) for (let p = 0; p < 4; p++) ramp[p + 4 * k] = k;
    const bands = waveletImages(ramp, [2, 2, n], { wavelet: 'coif1', level: 1, startLevel: 0 });
    const llh = bands.get('wavelet-LLH') as Float64Array;
    const lll = bands.get('wavelet-LLL') as Float64Array;
    for (let k = 4; k < n - 4; k++) {
      expect(Math.abs(llh[4 * k])).toBeLessThan(1e-9);
      expect(lll[4 * (k + 1)] - lll[4 * k]).toBeCloseTo(2 * Math.SQRT2, 6);
    }
  });

  it('LoG and wavelet image types give pyradiomics names and finite values on breast1', () => {
    const image = readNrrd(join(BASE, 'breast1_image.nrrd'));
    const mask = readNrrd(join(BASE, 'breast1_label.nrrd'));
    const params = parsePyradiomicsParams(
      'imageType:\n  LoG:\n    sigma: [1.0, 2.0]\n  Wavelet: {}\nfeatureClass:\n  firstorder: [Mean, Variance]\n  glcm: [Contrast]\nsetting:\n  binWidth: 10\n',
      'inline',
    );
    const f = extractPyradiomics({ dims: image.grid.dims, spacingMm: image.grid.spacingMm, data: image.data }, { dims: mask.grid.dims, spacingMm: mask.grid.spacingMm, data: mask.data }, params);
    const names = [...f.keys()];
    expect(names).toContain('log-sigma-1-0-mm-3D_firstorder_Mean');
    expect(names).toContain('log-sigma-2-0-mm-3D_glcm_Contrast');
    expect(names).toContain('wavelet-LLH_firstorder_Variance');
    expect(names).toContain('wavelet-LLL_glcm_Contrast');
    expect(names.filter((n) => n.startsWith('original_'))).toEqual([]);
    expect(names.length).toBe((2 + 8) * 3);
    for (const [k, v] of f) expect(Number.isFinite(v), k).toBe(true);
    // The LoG removes the mean level: its ROI mean is far below the image's (~131).
    expect(Math.abs(f.get('log-sigma-2-0-mm-3D_firstorder_Mean') as number)).toBeLessThan(60);
  });
});

describe('shipped parameter files', () => {
  const dir = join(__dirname, '..', 'config', 'radiomics');
  it('ibsi-phantom, ibsi-A..E and ct-default load with loadPyradiomicsParams', () => {
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();
    expect(files).toEqual(['ct-default.yaml', 'ibsi-A.yaml', 'ibsi-B.yaml', 'ibsi-C.yaml', 'ibsi-D.yaml', 'ibsi-E.yaml', 'ibsi-phantom.yaml']);
    for (const f of files) {
      const p = loadPyradiomicsParams(join(dir, f));
      expect([...p.featureClasses.keys()].sort(), f).toEqual(['firstorder', 'glcm', 'gldm', 'glrlm', 'glszm', 'ngtdm', 'shape']);
    }
    const ct = loadPyradiomicsParams(join(dir, 'ct-default.yaml'));
    expect([...ct.imageTypes.keys()]).toEqual(['Original', 'LoG', 'Wavelet']);
    expect(ct.imageTypes.get('LoG')?.sigma).toEqual([1, 2, 3, 5]);
    expect(ct.setting).toMatchObject({ binWidth: 25, resampledPixelSpacing: [1, 1, 1], interpolator: 'sitkBSpline' });
    const b = loadPyradiomicsParams(join(dir, 'ibsi-B.yaml')).setting;
    expect(b).toMatchObject({ binCount: 32, interpolator: 'sitkLinear', resampledPixelSpacing: [2, 2, 0], resegmentRange: [-500, 400], force2D: true });
    const d = loadPyradiomicsParams(join(dir, 'ibsi-D.yaml')).setting;
    expect(d).toMatchObject({ resegmentMode: 'sigma', resegmentRange: [-3, 3] });
  });
});
