/**
 * Segmentation and image perturbations for radiomics robustness: the grid of perturbations and the
 * chain that applies one, in the fixed order noise -> translation -> contour randomisation ->
 * volume adaptation ("NTCV", after Zwanenburg et al. 2019). Pure: arrays in, arrays out.
 *
 * The grid (rule of the original rtpipeline, `generate_ntcv_perturbations` and
 * `expected_ntcv_perturbation_count` in kstawiski/rtpipeline `rtpipeline/radiomics_robustness.py`):
 *
 * | intensity  | noise levels        | translations                | contour realisations | volume changes                   |
 * |------------|---------------------|-----------------------------|----------------------|----------------------------------|
 * | mild       | the first one only  | 0, ±max along z             | original + min(1, n) | the first two small changes*     |
 * | standard   | all                 | 0, ±max along z             | original + n         | small changes                    |
 * | aggressive | all                 | 0, ±max along x, y and z    | original + n         | small ∪ large changes            |
 *
 * (*all of them when there are at most two.) With the defaults (noise 0/10/20 HU, 4 mm, n = 2,
 * small -15/0/+15 %, large ±30 %) that is 1·3·2·2 = 12, 3·3·3·3 = 81 and 3·7·3·5 = 315.
 * No translation when max_translation_mm is 0. Levels are de-duplicated; an empty list of noise
 * levels or volume changes means "no such perturbation" (the identity level 0), not an empty grid.
 * Aggressive volume changes are sorted ascending (the original kept the config order).
 *
 * Ids read `n10_tz+4_c1_v-15`: noise σ in HU, translation (`t0`, or axis, sign and mm), contour
 * realisation (`c0` = the unrandomised contour), volume change in %.
 *
 * The steps:
 * - Noise: additive Gaussian noise of σ HU on every voxel, counter-based (see random.ts). The noisy
 *   image is cached per image and noise level, so iterate noise-major (as `perturbations` does).
 * - Translation: the mask moves by whole voxels, the requested mm per image axis (i, j, k) rounded
 *   to the nearest voxel (nearest-neighbour resampling). Voxels pushed out of the image are lost
 *   and reported (`translation-clipped`); rounding is reported too. The image does not move.
 * - Contour randomisation: the boundary moves along its normal by a smooth random field δ(x): the
 *   new mask is { φ(x) < δ(x) } with φ the signed distance map. δ is a Gaussian random field
 *   (random Fourier features, Gaussian covariance of length L = max(10 mm, 5 A)) with standard
 *   deviation A/2, clipped at ±A, so A is the largest displacement. A defaults by intensity:
 *   mild 1 mm, standard 2 mm, aggressive 3 mm (standard = the original's max_translation_mm / 2).
 *   The field depends on (seed, translation, realisation) only, not on noise or volume.
 * - Volume adaptation: the N = round(n (1 + τ)) voxels with the smallest signed distance (deepest
 *   first, then nearest outside), n being the voxel count entering this step. Exactly N voxels;
 *   equal distances are ordered by a seeded hash of the voxel index (deterministic, and without
 *   the directional bias an index order would give).
 *
 * Mask work runs in a box around the structure (never the whole image); distances inside the box
 * are exact, and the box grows until the selection provably equals the whole-image one.
 */
import type { Config } from '../config/schema.js';
import type { Mm, Vec3 } from '../geometry/types.js';
import { boundingBox, boxDims, expandBox, type Box, type Dims } from '../segment/mask.js';
import { signedDistanceMm } from './distance.js';
import { Random, deriveSeed, hashIndex, normalAt, normalPairAt, type Seed } from './random.js';

type SegmentationPerturbation = Config['radiomics_robustness']['segmentation_perturbation'];

/** The perturbation keys of `radiomics_robustness.segmentation_perturbation`. */
export type PerturbationSettings = Pick<
  SegmentationPerturbation,
  | 'intensity'
  | 'small_volume_changes'
  | 'large_volume_changes'
  | 'max_translation_mm'
  | 'n_random_contour_realizations'
  | 'contour_randomization_mm'
  | 'noise_levels'
>;

export type Intensity = PerturbationSettings['intensity'];

/** Default largest contour displacement per intensity, when contour_randomization_mm is unset. */
export const DEFAULT_CONTOUR_AMPLITUDE_MM: Record<Intensity, Mm> = { mild: 1, standard: 2, aggressive: 3 };

export type PerturbationId = string & { readonly __brand?: 'PerturbationId' };

/** What one perturbation does; `applyPerturbation` needs nothing else. */
export interface PerturbationStep {
  /** σ of the additive Gaussian noise, HU; 0 = none. */
  noiseHu: number;
  /** Shift of the mask along the image axes i, j, k, in mm. */
  translationMm: Vec3;
  /** 0 = the contour as it is; 1.. = that random realisation. */
  contourRealisation: number;
  /** Largest boundary displacement of a contour realisation, mm. */
  contourAmplitudeMm: Mm;
  /** Relative volume change, e.g. -0.15. */
  volumeChange: number;
}

export interface Perturbation extends PerturbationStep {
  id: PerturbationId;
  seed: Seed;
}

/** The levels of each factor of the grid; the grid is their Cartesian product. */
export interface PerturbationAxes {
  noiseHu: number[];
  translationsMm: Vec3[];
  /** Realisation indices, 0 (unrandomised) first. */
  contourRealisations: number[];
  contourAmplitudeMm: Mm;
  volumeChanges: number[];
}

export function perturbationAxes(settings: PerturbationSettings): PerturbationAxes {
  const { intensity } = settings;
  for (const hu of settings.noise_levels) {
    if (!Number.isFinite(hu) || hu < 0) throw new Error(`radiomics_robustness.segmentation_perturbation.noise_levels: ${hu} HU is not a valid noise σ; use values >= 0`);
  }
  for (const tau of [...settings.small_volume_changes, ...settings.large_volume_changes]) {
    if (!Number.isFinite(tau) || tau <= -1) throw new Error(`radiomics_robustness.segmentation_perturbation: volume change ${tau} is not possible; use fractions > -1 (e.g. -0.15 for -15 %)`);
  }
  const noise = uniqueBy(settings.noise_levels, formatNumber);
  const small = uniqueBy(settings.small_volume_changes, volumeLabel);
  let volumes: number[];
  if (intensity === 'mild') volumes = small.length > 2 ? small.slice(0, 2) : small;
  else if (intensity === 'aggressive') volumes = uniqueBy([...settings.large_volume_changes, ...small], volumeLabel).sort((a, b) => a - b);
  else volumes = small;

  const t = settings.max_translation_mm;
  const translations: Vec3[] = [[0, 0, 0]];
  if (t > 0) {
    const axes = intensity === 'aggressive' ? [0, 1, 2] : [2];
    for (const axis of axes) {
      for (const sign of [1, -1]) {
        const v: Vec3 = [0, 0, 0];
        v[axis] = sign * t;
        translations.push(v);
      }
    }
  }
  const n = settings.n_random_contour_realizations;
  const realisations = intensity === 'mild' ? Math.min(1, n) : n;
  const noiseLevels = noise.length ? noise : [0];
  return {
    noiseHu: intensity === 'mild' ? noiseLevels.slice(0, 1) : noiseLevels,
    translationsMm: translations,
    contourRealisations: Array.from({ length: realisations + 1 }, (_, i) => i),
    contourAmplitudeMm: settings.contour_randomization_mm ?? DEFAULT_CONTOUR_AMPLITUDE_MM[intensity],
    volumeChanges: volumes.length ? volumes : [0],
  };
}

/** Number of perturbations of the grid (12, 81, 315 with the defaults). */
export function perturbationCount(settings: PerturbationSettings): number {
  const a = perturbationAxes(settings);
  return a.noiseHu.length * a.translationsMm.length * a.contourRealisations.length * a.volumeChanges.length;
}

/**
 * The grid, noise-major (noise, then translation, contour, volume), so that a consumer applying
 * them in this order perturbs the image once per noise level and each contour once per noise level.
 */
export function* perturbations(settings: PerturbationSettings, seed: number = 0): Generator<Perturbation> {
  const axes = perturbationAxes(settings);
  const s = (seed >>> 0) as Seed;
  for (const noiseHu of axes.noiseHu) {
    for (const translationMm of axes.translationsMm) {
      for (const contourRealisation of axes.contourRealisations) {
        for (const volumeChange of axes.volumeChanges) {
          const step: PerturbationStep = { noiseHu, translationMm: [...translationMm], contourRealisation, contourAmplitudeMm: axes.contourAmplitudeMm, volumeChange };
          yield { id: perturbationId(step), seed: s, ...step };
        }
      }
    }
  }
}

export function perturbationId(p: PerturbationStep): PerturbationId {
  return `n${formatNumber(p.noiseHu)}_t${translationLabel(p.translationMm)}_c${p.contourRealisation}_v${volumeLabel(p.volumeChange)}`;
}

function translationLabel(t: Vec3): string {
  const nonZero = [0, 1, 2].filter((a) => t[a] !== 0);
  if (nonZero.length === 0) return '0';
  if (nonZero.length === 1) {
    const a = nonZero[0];
    return `${'xyz'[a]}${t[a] > 0 ? '+' : '-'}${formatNumber(Math.abs(t[a]))}`;
  }
  return t.map((v) => (v > 0 ? '+' : v < 0 ? '-' : '') + formatNumber(Math.abs(v))).join(',');
}

function volumeLabel(tau: number): string {
  const pct = Math.round(tau * 100 * 1000) / 1000;
  return pct === 0 ? '0' : `${pct > 0 ? '+' : '-'}${formatNumber(Math.abs(pct))}`;
}

function formatNumber(x: number): string {
  const r = Math.round(x * 1000) / 1000;
  return String(r === 0 ? 0 : r);
}

function uniqueBy(values: number[], key: (v: number) => string): number[] {
  const seen = new Set<string>();
  const out: number[] = [];
  for (const v of values) {
    if (seen.has(key(v))) continue;
    seen.add(key(v));
    out.push(v);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Applying one perturbation

export type IntensityData = Int16Array | Uint16Array | Float32Array | Float64Array;

/** An image on a voxel grid, index i + nx*(j + ny*k). */
export interface VoxelImage<T extends IntensityData = IntensityData> {
  dims: Vec3;
  data: T;
}

/** A binary mask (0/1) on the same grid. */
export interface VoxelMask {
  dims: Vec3;
  data: Uint8Array;
}

export type PerturbationNote =
  | { code: 'translation-rounded'; requestedMm: Vec3; appliedMm: Vec3; message: string }
  | { code: 'translation-clipped'; lostVoxels: number; message: string }
  | { code: 'contour-empty'; message: string }
  | { code: 'contour-unchanged'; message: string }
  | { code: 'volume-clamped'; requestedVoxels: number; appliedVoxels: number; message: string }
  | { code: 'volume-unchanged'; message: string };

export interface PerturbedRoi<T extends IntensityData = IntensityData> {
  /** The noisy image (Float32Array), or the input's own array when noiseHu is 0. Shared: do not modify. */
  image: Float32Array | T;
  /** A new full-size mask. */
  mask: Uint8Array;
  /** Set voxels of `mask`. */
  voxels: number;
  /** A box that holds every set voxel of `mask` (not necessarily tight). */
  box: Box;
  /** The translation actually applied, whole voxels, mm. */
  appliedTranslationMm: Vec3;
  notes: PerturbationNote[];
}

/**
 * Applies one perturbation. `seed` defaults to the one the grid put in `p`. Inputs are treated as
 * immutable (results are cached by array identity): do not modify them between calls.
 */
export function applyPerturbation<T extends IntensityData>(
  image: VoxelImage<T>,
  mask: VoxelMask,
  spacingMm: Vec3,
  p: PerturbationStep & { seed?: number },
  seed: number | undefined = p.seed,
): PerturbedRoi<T> {
  if (seed === undefined) throw new Error('applyPerturbation: no seed given; pass one, or a perturbation from perturbations(settings, seed)');
  const dims = checkGrid(image, mask, spacingMm);
  checkStep(p);
  const record = maskRecord(mask.data, dims, spacingMm);
  const state = geometryState(record, mask.data, dims, spacingMm, p, seed >>> 0);
  const notes: PerturbationNote[] = [...state.notes];
  const adapted = adaptVolume(record, state, dims, spacingMm, p.volumeChange, deriveSeed(seed, 'volume-ties'), notes);
  return {
    image: noisyImage(image, p.noiseHu, seed),
    mask: paste(adapted.data, adapted.box, dims),
    voxels: adapted.count,
    box: adapted.box,
    appliedTranslationMm: state.appliedMm,
    notes,
  };
}

function checkGrid(image: VoxelImage, mask: VoxelMask, spacingMm: Vec3): Dims {
  const dims = mask.dims.slice() as Dims;
  const n = dims[0] * dims[1] * dims[2];
  if (!dims.every((d) => Number.isInteger(d) && d > 0)) throw new Error(`applyPerturbation: mask dims ${dims.join('x')} are not positive integers`);
  if (mask.data.length !== n) throw new Error(`applyPerturbation: mask has ${mask.data.length} voxels but dims ${dims.join('x')} need ${n}`);
  if (image.dims.some((d, a) => d !== dims[a]) || image.data.length !== n) {
    throw new Error(`applyPerturbation: image (${image.dims.join('x')}, ${image.data.length} voxels) and mask (${dims.join('x')}) are not on the same grid; resample the mask onto the image first`);
  }
  if (!spacingMm.every((s) => Number.isFinite(s) && s > 0)) throw new Error(`applyPerturbation: spacing ${spacingMm.join(', ')} mm must be positive`);
  return dims;
}

function checkStep(p: PerturbationStep): void {
  if (!Number.isFinite(p.noiseHu) || p.noiseHu < 0) throw new Error(`applyPerturbation: noise σ ${p.noiseHu} HU must be >= 0`);
  if (!p.translationMm.every(Number.isFinite)) throw new Error(`applyPerturbation: translation ${p.translationMm.join(', ')} mm is not finite`);
  if (!Number.isInteger(p.contourRealisation) || p.contourRealisation < 0) throw new Error(`applyPerturbation: contour realisation ${p.contourRealisation} must be an integer >= 0`);
  if (p.contourRealisation > 0 && !(p.contourAmplitudeMm > 0)) throw new Error(`applyPerturbation: contour realisation ${p.contourRealisation} needs a contour amplitude > 0 mm (got ${p.contourAmplitudeMm})`);
  if (!Number.isFinite(p.volumeChange) || p.volumeChange <= -1) throw new Error(`applyPerturbation: volume change ${p.volumeChange} must be a fraction > -1`);
}

// --- noise ---------------------------------------------------------------------------------------

const noiseCache = new WeakMap<object, { key: string; data: Float32Array }>();

/**
 * The image plus N(0, σ²) noise per voxel, σ = noiseHu; the input array itself when σ is 0.
 * The last noisy image of each input image is cached (one per image keeps memory bounded).
 */
export function noisyImage<T extends IntensityData>(image: VoxelImage<T>, noiseHu: number, seed: number): Float32Array | T {
  if (noiseHu === 0) return image.data;
  const key = `${seed >>> 0}|${noiseHu}`;
  const hit = noiseCache.get(image.data);
  if (hit && hit.key === key) return hit.data;
  const src = image.data;
  const out = new Float32Array(src.length);
  const stream = deriveSeed(seed, 'noise', noiseHu);
  const pair = new Float64Array(2);
  const even = src.length & ~1;
  for (let v = 0; v < even; v += 2) {
    normalPairAt(stream, v >>> 1, pair);
    out[v] = src[v] + noiseHu * pair[0];
    out[v + 1] = src[v + 1] + noiseHu * pair[1];
  }
  if (even < src.length) out[even] = src[even] + noiseHu * normalAt(stream, even);
  noiseCache.set(image.data, { key, data: out });
  return out;
}

// --- mask geometry (translation + contour), cached per mask ---------------------------------------

/** A mask cropped to `box` (box-local index), with its voxel count. */
interface Cropped {
  box: Box;
  data: Uint8Array;
  count: number;
}

interface GeometryState extends Cropped {
  key: string;
  appliedMm: Vec3;
  notes: PerturbationNote[];
}

interface MaskRecord {
  gridKey: string;
  bbox: Box;
  count: number;
  states: Map<string, GeometryState>;
  /** The signed distance map of the most recently adapted state (one at a time bounds memory). */
  distance: { stateKey: string; box: Box; sdf: Float64Array } | null;
}

const maskRecords = new WeakMap<Uint8Array, MaskRecord>();

function maskRecord(data: Uint8Array, dims: Dims, spacingMm: Vec3): MaskRecord {
  const gridKey = `${dims.join('x')}|${spacingMm.join(',')}`;
  const known = maskRecords.get(data);
  if (known && known.gridKey === gridKey) return known;
  const bbox = boundingBox(data, dims);
  if (!bbox) throw new Error('applyPerturbation: the mask is empty; there is no structure to perturb');
  let count = 0;
  for (let v = 0; v < data.length; v++) count += data[v];
  const record: MaskRecord = { gridKey, bbox, count, states: new Map(), distance: null };
  maskRecords.set(data, record);
  return record;
}

function geometryState(record: MaskRecord, data: Uint8Array, dims: Dims, spacingMm: Vec3, p: PerturbationStep, seed: number): GeometryState {
  const key = `${seed}|${p.translationMm.join(',')}|${p.contourRealisation}|${p.contourRealisation ? p.contourAmplitudeMm : 0}`;
  const known = record.states.get(key);
  if (known) return known;
  const notes: PerturbationNote[] = [];
  const shift = p.translationMm.map((t, a) => Math.sign(t) * Math.round(Math.abs(t) / spacingMm[a])) as Dims;
  const appliedMm = shift.map((s, a) => s * spacingMm[a]) as Vec3;
  if (appliedMm.some((m, a) => Math.abs(m - p.translationMm[a]) > 1e-6)) {
    notes.push({
      code: 'translation-rounded',
      requestedMm: p.translationMm,
      appliedMm,
      message: `translation ${p.translationMm.join(', ')} mm applied as ${appliedMm.map((m) => +m.toFixed(3)).join(', ')} mm (whole voxels of ${spacingMm.join(' x ')} mm)`,
    });
  }
  let state: Cropped = translate(data, dims, record.bbox, shift);
  const lost = record.count - state.count;
  if (lost > 0) {
    notes.push({
      code: 'translation-clipped',
      lostVoxels: lost,
      message: `translation by ${appliedMm.join(', ')} mm pushes ${lost} of ${record.count} voxels out of the image; this perturbation measures a clipped structure`,
    });
  }
  if (p.contourRealisation > 0 && state.count > 0) {
    const field = new ContourField(deriveSeed(seed, 'contour', ...p.translationMm, p.contourRealisation), p.contourAmplitudeMm);
    const randomised = randomiseContour(state, dims, spacingMm, field);
    if (randomised.count === 0) {
      notes.push({ code: 'contour-empty', message: `contour realisation ${p.contourRealisation} (±${p.contourAmplitudeMm} mm) left no voxel; the unrandomised contour is used` });
    } else {
      if (sameMask(randomised, state)) notes.push({ code: 'contour-unchanged', message: `contour realisation ${p.contourRealisation} (±${p.contourAmplitudeMm} mm) moved no voxel: the amplitude is below the voxel size` });
      state = randomised;
    }
  }
  const result: GeometryState = { ...state, key, appliedMm, notes };
  record.states.set(key, result);
  return result;
}

/** Moves the mask by whole voxels; voxels leaving the image are dropped. */
function translate(data: Uint8Array, dims: Dims, bbox: Box, shift: Dims): Cropped {
  const lo = [0, 1, 2].map((a) => clamp(bbox.lo[a] + shift[a], 0, dims[a])) as Dims;
  const hi = [0, 1, 2].map((a) => clamp(bbox.hi[a] + shift[a], 0, dims[a])) as Dims;
  const box: Box = { lo, hi: hi.map((h, a) => Math.max(h, lo[a])) as Dims };
  const [bx, by, bz] = boxDims(box);
  const out = new Uint8Array(bx * by * bz);
  let count = 0;
  for (let k = box.lo[2]; k < box.hi[2]; k++) {
    for (let j = box.lo[1]; j < box.hi[1]; j++) {
      const src = ((k - shift[2]) * dims[1] + (j - shift[1])) * dims[0] - shift[0];
      const dst = ((k - box.lo[2]) * by + (j - box.lo[1])) * bx - box.lo[0];
      for (let i = box.lo[0]; i < box.hi[0]; i++) {
        const x = data[src + i];
        out[dst + i] = x;
        count += x;
      }
    }
  }
  return { box, data: out, count };
}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

/** The cropped mask copied into another box (zeros where it has none; set voxels must fit). */
function recrop(src: Cropped, box: Box): Uint8Array {
  const [bx, by, bz] = boxDims(box);
  const [sx, sy] = boxDims(src.box);
  const out = new Uint8Array(bx * by * bz);
  const lo = [0, 1, 2].map((a) => Math.max(box.lo[a], src.box.lo[a]));
  const hi = [0, 1, 2].map((a) => Math.min(box.hi[a], src.box.hi[a]));
  if (hi[0] <= lo[0]) return out;
  for (let k = lo[2]; k < hi[2]; k++) {
    for (let j = lo[1]; j < hi[1]; j++) {
      const from = ((k - src.box.lo[2]) * sy + (j - src.box.lo[1])) * sx + (lo[0] - src.box.lo[0]);
      const to = ((k - box.lo[2]) * by + (j - box.lo[1])) * bx + (lo[0] - box.lo[0]);
      out.set(src.data.subarray(from, from + hi[0] - lo[0]), to);
    }
  }
  return out;
}

function paste(data: Uint8Array, box: Box, dims: Dims): Uint8Array {
  const out = new Uint8Array(dims[0] * dims[1] * dims[2]);
  const [bx, by] = boxDims(box);
  for (let k = box.lo[2]; k < box.hi[2]; k++) {
    for (let j = box.lo[1]; j < box.hi[1]; j++) {
      const from = ((k - box.lo[2]) * by + (j - box.lo[1])) * bx;
      out.set(data.subarray(from, from + bx), (k * dims[1] + j) * dims[0] + box.lo[0]);
    }
  }
  return out;
}

function sameMask(a: Cropped, b: Cropped): boolean {
  if (a.count !== b.count) return false;
  const box: Box = { lo: a.box.lo.map((l, x) => Math.min(l, b.box.lo[x])) as Dims, hi: a.box.hi.map((h, x) => Math.max(h, b.box.hi[x])) as Dims };
  const x = recrop(a, box);
  const y = recrop(b, box);
  for (let v = 0; v < x.length; v++) if (x[v] !== y[v]) return false;
  return true;
}

// --- contour randomisation ---------------------------------------------------------------------

const FIELD_MODES = 64;
const MIN_FIELD_LENGTH_MM = 10;

/**
 * A smooth Gaussian random field of unit variance: √(2/K) Σ cos(k·x + φ) with k ~ N(0, I/L²) and
 * φ ~ U(0, 2π) (random Fourier features of the covariance exp(-|r|²/2L²)). The displacement is
 * A·clamp(field/2, -1, 1). Positions are image-axis mm of whole-image voxel indices, so the field
 * does not depend on the crop.
 */
class ContourField {
  readonly amplitudeMm: Mm;
  readonly k: Float64Array; // [kx, ky, kz] per mode, rad/mm
  readonly cosPhase: Float64Array;
  readonly sinPhase: Float64Array;
  constructor(seed: number, amplitudeMm: Mm) {
    this.amplitudeMm = amplitudeMm;
    const length = Math.max(MIN_FIELD_LENGTH_MM, 5 * amplitudeMm);
    const rng = new Random(seed);
    this.k = new Float64Array(3 * FIELD_MODES);
    this.cosPhase = new Float64Array(FIELD_MODES);
    this.sinPhase = new Float64Array(FIELD_MODES);
    for (let m = 0; m < FIELD_MODES; m++) {
      for (let a = 0; a < 3; a++) this.k[3 * m + a] = rng.normal() / length;
      const phase = 2 * Math.PI * rng.uniform();
      this.cosPhase[m] = Math.cos(phase);
      this.sinPhase[m] = Math.sin(phase);
    }
  }
}

/** Per-axis tables cos(k_a x), sin(k_a x) for every mode over the indices [lo, hi) of one axis. */
function axisTables(field: ContourField, axis: number, lo: number, hi: number, spacing: number): { cos: Float64Array; sin: Float64Array } {
  const n = hi - lo;
  const cos = new Float64Array(n * FIELD_MODES);
  const sin = new Float64Array(n * FIELD_MODES);
  for (let i = 0; i < n; i++) {
    const x = (lo + i) * spacing;
    for (let m = 0; m < FIELD_MODES; m++) {
      const angle = field.k[3 * m + axis] * x;
      cos[i * FIELD_MODES + m] = Math.cos(angle);
      sin[i * FIELD_MODES + m] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

function randomiseContour(src: Cropped, dims: Dims, spacingMm: Vec3, field: ContourField): Cropped {
  const A = field.amplitudeMm;
  const half = Math.min(...spacingMm) / 2;
  // Every voxel the displacement can reach lies within A + half of the surface: pad by that.
  const margin = spacingMm.map((s) => Math.ceil((A + half) / s) + 1) as Dims;
  const box = expandBox(src.box, margin, dims);
  const input = recrop(src, box);
  const [bx, by, bz] = boxDims(box);
  const sdf = signedDistanceMm(input, [bx, by, bz], spacingMm);
  const tx = axisTables(field, 0, box.lo[0], box.hi[0], spacingMm[0]);
  const ty = axisTables(field, 1, box.lo[1], box.hi[1], spacingMm[1]);
  const tz = axisTables(field, 2, box.lo[2], box.hi[2], spacingMm[2]);
  const rowRe = new Float64Array(FIELD_MODES);
  const rowIm = new Float64Array(FIELD_MODES);
  const norm = Math.sqrt(2 / FIELD_MODES);
  const out = new Uint8Array(input.length);
  let count = 0;
  for (let k = 0; k < bz; k++) {
    for (let j = 0; j < by; j++) {
      const base = (k * by + j) * bx;
      let rowReady = false;
      for (let i = 0; i < bx; i++) {
        const d = sdf[base + i];
        // φ: distance of the voxel centre to the surface half-way between inside and outside voxels.
        const phi = d > 0 ? d - half : d + half;
        let inside: boolean;
        if (phi <= -A) inside = true;
        else if (phi >= A) inside = false;
        else {
          if (!rowReady) {
            // e^{i(ky y + kz z + φ)} per mode, once per row.
            for (let m = 0; m < FIELD_MODES; m++) {
              const cy = ty.cos[j * FIELD_MODES + m], sy = ty.sin[j * FIELD_MODES + m];
              const cz = tz.cos[k * FIELD_MODES + m], sz = tz.sin[k * FIELD_MODES + m];
              const cp = field.cosPhase[m], sp = field.sinPhase[m];
              const re = cy * cz - sy * sz;
              const im = cy * sz + sy * cz;
              rowRe[m] = re * cp - im * sp;
              rowIm[m] = re * sp + im * cp;
            }
            rowReady = true;
          }
          let sum = 0;
          const off = i * FIELD_MODES;
          for (let m = 0; m < FIELD_MODES; m++) sum += rowRe[m] * tx.cos[off + m] - rowIm[m] * tx.sin[off + m];
          const r = (norm * sum) / 2;
          const delta = A * (r > 1 ? 1 : r < -1 ? -1 : r);
          inside = phi < delta;
        }
        if (inside) {
          out[base + i] = 1;
          count++;
        }
      }
    }
  }
  return { box, data: out, count };
}

// --- volume adaptation -------------------------------------------------------------------------

function adaptVolume(record: MaskRecord, state: GeometryState, dims: Dims, spacingMm: Vec3, tau: number, tieKey: number, notes: PerturbationNote[]): Cropped {
  const n = state.count;
  if (tau === 0 || n === 0) return state;
  const total = dims[0] * dims[1] * dims[2];
  const requested = Math.round(n * (1 + tau));
  const target = clamp(requested, 1, total);
  if (target !== requested) {
    notes.push({ code: 'volume-clamped', requestedVoxels: requested, appliedVoxels: target, message: `volume change ${tau * 100} % of ${n} voxels asks for ${requested} voxels; ${target} used (the image holds ${total})` });
  }
  if (target === n) {
    notes.push({ code: 'volume-unchanged', message: `volume change ${tau * 100} % of ${n} voxels rounds to the same voxel count` });
    return state;
  }
  const tight = boundingBox(state.data, boxDims(state.box));
  const maskBox: Box = tight
    ? { lo: tight.lo.map((l, a) => l + state.box.lo[a]) as Dims, hi: tight.hi.map((h, a) => h + state.box.lo[a]) as Dims }
    : state.box;
  // First guess of the shell width: that of a sphere of the same volume, with room to spare.
  // Sized by |τ| so that shrinking and growing by the same fraction share one distance map.
  const voxelMm3 = spacingMm[0] * spacingMm[1] * spacingMm[2];
  const radius = Math.cbrt((3 * n * voxelMm3) / (4 * Math.PI));
  const widthMm = 1.5 * radius * (Math.cbrt(1 + Math.abs(tau)) - 1);
  let margin = spacingMm.map((s) => Math.ceil(widthMm / s) + 1) as Dims;
  for (;;) {
    const { box, sdf } = distanceFor(record, state, expandBox(maskBox, margin, dims), spacingMm);
    const selected = selectSmallest(sdf, target, box, dims, tieKey);
    if (selected) {
      const gap = boxGapMm(maskBox, box, dims, spacingMm);
      // Every voxel outside the box is at least `gap` from the mask: strictly farther than the
      // last one taken, so the whole-image selection would be the same.
      if (selected.threshold < gap) return { box, data: selected.data, count: target };
    }
    if (box.lo.every((l) => l === 0) && box.hi.every((h, a) => h === dims[a])) {
      throw new Error(`volume adaptation: could not select ${target} voxels in the whole image`); // unreachable: target <= total
    }
    margin = margin.map((m) => m * 2) as Dims;
  }
}

/** The signed distance map of the state over `box`, or over the cached larger box that contains it. */
function distanceFor(record: MaskRecord, state: GeometryState, box: Box, spacingMm: Vec3): { box: Box; sdf: Float64Array } {
  const d = record.distance;
  if (d && d.stateKey === state.key && d.box.lo.every((l, a) => l <= box.lo[a]) && d.box.hi.every((h, a) => h >= box.hi[a])) return d;
  const sdf = signedDistanceMm(recrop(state, box), boxDims(box), spacingMm);
  record.distance = { stateKey: state.key, box, sdf };
  return record.distance;
}

/** Distance (mm) from the mask's box to the nearest voxel outside `box` (Infinity at image faces). */
function boxGapMm(maskBox: Box, box: Box, dims: Dims, spacingMm: Vec3): number {
  let gap = Infinity;
  for (let a = 0; a < 3; a++) {
    if (box.lo[a] > 0) gap = Math.min(gap, (maskBox.lo[a] - box.lo[a] + 1) * spacingMm[a]);
    if (box.hi[a] < dims[a]) gap = Math.min(gap, (box.hi[a] - maskBox.hi[a] + 1) * spacingMm[a]);
  }
  return gap;
}

/**
 * The `count` voxels of the box with the smallest signed distance, ties by (hash of the
 * whole-image index, index). Null when the box has fewer voxels than that.
 */
function selectSmallest(sdf: Float64Array, count: number, box: Box, dims: Dims, tieKey: number): { data: Uint8Array; threshold: number } | null {
  if (count > sdf.length) return null;
  const threshold = kthSmallest(Float64Array.from(sdf), count - 1);
  const data = new Uint8Array(sdf.length);
  const ties: number[] = [];
  let taken = 0;
  for (let v = 0; v < sdf.length; v++) {
    const d = sdf[v];
    if (d < threshold) {
      data[v] = 1;
      taken++;
    } else if (d === threshold) ties.push(v);
  }
  const [bx, by] = boxDims(box);
  const globalIndex = (v: number): number => {
    const i = v % bx;
    const j = Math.floor(v / bx) % by;
    const k = Math.floor(v / (bx * by));
    return ((box.lo[2] + k) * dims[1] + box.lo[1] + j) * dims[0] + box.lo[0] + i;
  };
  const keyed = ties.map((v) => ({ v, h: hashIndex(tieKey, globalIndex(v)) }));
  keyed.sort((a, b) => a.h - b.h || a.v - b.v);
  for (let t = 0; taken < count; t++, taken++) data[keyed[t].v] = 1;
  return { data, threshold };
}

/** The k-th smallest value (0-based) by quickselect; reorders `a`. */
function kthSmallest(a: Float64Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const x = a[lo], y = a[mid], z = a[hi];
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}
