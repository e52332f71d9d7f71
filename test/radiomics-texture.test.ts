// IBSI texture families (GLCM, GLRLM, GLSZM, GLDZM, NGTDM, NGLDM) against the IBSI 1 reference values:
// the digital phantom as it is (its grey levels are already 1..6), and the CT phantom configurations
// A-E through the shared preprocessing. Pass rule: round to 3 significant digits, |x - ref| <= tolerance.
import { beforeAll, describe, expect, it } from 'vitest';
import { prepareRoi } from '../src/radiomics/extract.js';
import { CT_CONFIGS, type CtConfigName } from '../src/radiomics/settings.js';
import { chebyshevNeighbourhood, glcmFeatures } from '../src/radiomics/texture/glcm.js';
import { gldzmFeatures } from '../src/radiomics/texture/gldzm.js';
import { glrlmFeatures } from '../src/radiomics/texture/glrlm.js';
import { glszmFeatures } from '../src/radiomics/texture/glszm.js';
import { ngldmFeatures } from '../src/radiomics/texture/ngldm.js';
import { ngtdmFeatures } from '../src/radiomics/texture/ngtdm.js';
import type { Discretised, Features, RoiVolume, Vec3 } from '../src/radiomics/types.js';
import { loadCtPhantom, loadDigitalPhantom, loadReferenceValues, type ReferenceRow, score } from './helpers/ibsi.js';

const TEXTURE_FAMILIES = [
  'Grey level co-occurrence based features',
  'Grey level run length based features',
  'Grey level size zone based features',
  'Grey level distance zone based features',
  'Neighbourhood grey tone difference based features',
  'Neighbouring grey level dependence based features',
];

/** All six families with the IBSI 1 texture parameters (Chebyshev distance 1, NGLDM alpha 0). */
function textureFeatures(vol: RoiVolume, disc: Discretised): Features {
  return new Map([
    ...glcmFeatures(vol, disc, { distance: 1 }),
    ...glrlmFeatures(vol, disc),
    ...glszmFeatures(vol, disc),
    ...gldzmFeatures(vol, disc),
    ...ngtdmFeatures(vol, disc, { distance: 1 }),
    ...ngldmFeatures(vol, disc, { distance: 1, alpha: 0 }),
  ]);
}

/** Score the texture rows of one data set, print a pass table, and list failures. */
function report(dataSet: string, rows: ReferenceRow[], features: Features): Map<string, { passed: number; total: number }> {
  const scores = score(rows.filter((r) => r.dataSet === dataSet && TEXTURE_FAMILIES.includes(r.family)), features);
  const lines = [...scores.values()].map((s) => {
    const fails = s.failures.map((f) => `${f.tag}=${f.value} (ref ${f.ref} ± ${f.tolerance})`).join('; ');
    return `  ${s.family.padEnd(52)} ${String(s.passed).padStart(4)} / ${s.total}${fails ? `  FAIL ${fails}` : ''}`;
  });
  console.log(`${dataSet} texture:\n${lines.join('\n')}`);
  return scores;
}

let reference: ReferenceRow[];
beforeAll(() => {
  reference = loadReferenceValues();
});

async function phantomRoi(): Promise<{ vol: RoiVolume; disc: Discretised }> {
  const { image, mask } = await loadDigitalPhantom();
  const inRoi = Uint8Array.from(mask.data, (v) => (v > 0 ? 1 : 0));
  const vol: RoiVolume = { dims: image.dims, spacingMm: image.spacingMm, intensity: Float64Array.from(image.data), morphMask: inRoi, intensityMask: inRoi };
  // IBSI: the phantom is used without discretisation; N_g = 6 although only 1, 3, 4, 6 occur.
  return { vol, disc: { levels: Int32Array.from(image.data, (v, i) => (inRoi[i] ? v : 0)), nLevels: 6 } };
}

describe('texture features on the IBSI digital phantom', () => {
  it('match every reference value of the six texture families', async () => {
    const { vol, disc } = await phantomRoi();
    const scores = report('digital_phantom', reference, textureFeatures(vol, disc));
    const totals = Object.fromEntries([...scores].map(([family, s]) => [family, s.total]));
    expect(totals).toEqual({
      'Grey level co-occurrence based features': 150,
      'Grey level run length based features': 96,
      'Grey level size zone based features': 48,
      'Grey level distance zone based features': 48,
      'Neighbourhood grey tone difference based features': 15,
      'Neighbouring grey level dependence based features': 51,
    });
    for (const [family, s] of scores) expect({ family, passed: s.passed }).toEqual({ family, passed: s.total });
  });

  it('do not depend on where the ROI sits in the grid nor on swapping x and y', async () => {
    const { vol, disc } = await phantomRoi();
    const base = textureFeatures(vol, disc);
    const moved = embed(vol, disc, [9, 7, 6], [3, 2, 1]);
    const swapped = swapXY(vol, disc);
    for (const other of [textureFeatures(moved.vol, moved.disc), textureFeatures(swapped.vol, swapped.disc)]) {
      expect([...other.keys()]).toEqual([...base.keys()]);
      for (const [tag, value] of base) expect(other.get(tag), tag).toBeCloseTo(value, 10);
    }
  });
});

describe('texture features on the IBSI CT phantom, configurations A-E', () => {
  let ct: Awaited<ReturnType<typeof loadCtPhantom>>;
  beforeAll(async () => {
    ct = await loadCtPhantom();
  });
  // Configurations A/B have 2D and 2.5D reference values (272 texture rows), C/D/E 3D ones (136).
  const expected: Record<CtConfigName, number> = { A: 272, B: 272, C: 136, D: 136, E: 136 };
  for (const name of Object.keys(expected) as CtConfigName[]) {
    it(`config ${name}: every texture reference value passes`, () => {
      const { roi, levels } = prepareRoi(ct.image, ct.mask, CT_CONFIGS[name]);
      const scores = report(`config_${name}`, reference, textureFeatures(roi, levels));
      const passed = [...scores.values()].reduce((n, s) => n + s.passed, 0);
      const total = [...scores.values()].reduce((n, s) => n + s.total, 0);
      expect(total).toBe(expected[name]);
      expect(passed).toBe(total);
    });
  }
});

describe('texture edge cases', () => {
  it('GLDZM measures distances on the morphological mask, not the re-segmented intensity mask', () => {
    // 5x5x5 cube: shell of level 1 around a 3x3x3 core of level 2 whose centre was re-segmented away.
    const dims: Vec3 = [5, 5, 5];
    const n = 125;
    const levels = new Int32Array(n);
    const intensityMask = new Uint8Array(n);
    for (let k = 0, v = 0; k < 5; k++) {
      for (let j = 0; j < 5; j++) {
        for (let i = 0; i < 5; i++, v++) {
          const core = [i, j, k].every((c) => c >= 1 && c <= 3);
          levels[v] = core ? 2 : 1;
          intensityMask[v] = 1;
        }
      }
    }
    const centre = 2 + 5 * (2 + 5 * 2);
    intensityMask[centre] = 0;
    levels[centre] = 0;
    const vol = (morphMask: Uint8Array): RoiVolume => ({ dims, spacingMm: [1, 1, 1], intensity: new Float64Array(n), morphMask, intensityMask });
    const disc = { levels, nLevels: 2 };
    // Full morphological mask: shell at distance 1, core at distance 2 -> SDE = (1 + 1/4) / 2.
    expect(gldzmFeatures(vol(new Uint8Array(n).fill(1)), disc).get('dzm_sde_3D')).toBeCloseTo(0.625, 12);
    // Had the hole been an edge, the core would touch it (distance 1) -> SDE = 1.
    expect(gldzmFeatures(vol(intensityMask), disc).get('dzm_sde_3D')).toBe(1);
  });

  it('NGTDM of a flat ROI: coarseness capped at 1e6, contrast, busyness and strength 0', () => {
    const dims: Vec3 = [3, 3, 2];
    const mask = new Uint8Array(18).fill(1);
    const f = ngtdmFeatures({ dims, spacingMm: [1, 1, 1], intensity: new Float64Array(18), morphMask: mask, intensityMask: mask }, { levels: new Int32Array(18).fill(1), nLevels: 1 }, { distance: 1 });
    for (const suffix of ['_2D', '_2_5D', '_3D']) {
      expect(f.get(`ngt_coarseness${suffix}`)).toBe(1e6);
      expect(f.get(`ngt_contrast${suffix}`)).toBe(0);
      expect(f.get(`ngt_busyness${suffix}`)).toBe(0);
      expect(f.get(`ngt_strength${suffix}`)).toBe(0);
    }
  });

  it('neighbourhoods of Chebyshev distance 2 have 124 voxels in 3-D and 24 in-plane', () => {
    expect(chebyshevNeighbourhood(2, false)).toHaveLength(124);
    expect(chebyshevNeighbourhood(2, true)).toHaveLength(24);
  });

  it('rejects grey levels outside 1..nLevels inside the intensity mask, naming the voxel', async () => {
    const { vol, disc } = await phantomRoi();
    const bad = { levels: disc.levels, nLevels: 4 };
    expect(() => glcmFeatures(vol, bad, { distance: 1 })).toThrow(/voxel \(2, 1, 0\) .* grey level 6, outside 1\.\.4/);
  });
});

/** The ROI placed at `offset` inside a larger empty grid of `dims`. */
function embed(vol: RoiVolume, disc: Discretised, dims: Vec3, offset: Vec3): { vol: RoiVolume; disc: Discretised } {
  const n = dims[0] * dims[1] * dims[2];
  const out = { intensity: new Float64Array(n), morph: new Uint8Array(n), mask: new Uint8Array(n), levels: new Int32Array(n) };
  const [nx, ny, nz] = vol.dims;
  for (let k = 0, v = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, v++) {
        const w = i + offset[0] + dims[0] * (j + offset[1] + dims[1] * (k + offset[2]));
        out.intensity[w] = vol.intensity[v];
        out.morph[w] = vol.morphMask[v];
        out.mask[w] = vol.intensityMask[v];
        out.levels[w] = disc.levels[v];
      }
    }
  }
  return {
    vol: { dims, spacingMm: vol.spacingMm, intensity: out.intensity, morphMask: out.morph, intensityMask: out.mask },
    disc: { levels: out.levels, nLevels: disc.nLevels },
  };
}

/** The ROI with its x and y axes exchanged. */
function swapXY(vol: RoiVolume, disc: Discretised): { vol: RoiVolume; disc: Discretised } {
  const [nx, ny, nz] = vol.dims;
  const dims: Vec3 = [ny, nx, nz];
  const n = nx * ny * nz;
  const out = { intensity: new Float64Array(n), morph: new Uint8Array(n), mask: new Uint8Array(n), levels: new Int32Array(n) };
  for (let k = 0, v = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, v++) {
        const w = j + ny * (i + nx * k);
        out.intensity[w] = vol.intensity[v];
        out.morph[w] = vol.morphMask[v];
        out.mask[w] = vol.intensityMask[v];
        out.levels[w] = disc.levels[v];
      }
    }
  }
  return {
    vol: { dims, spacingMm: [vol.spacingMm[1], vol.spacingMm[0], vol.spacingMm[2]], intensity: out.intensity, morphMask: out.morph, intensityMask: out.mask },
    disc: { levels: out.levels, nLevels: disc.nLevels },
  };
}
