/**
 * Synthetic thorax CT phantom: ellipsoidal anatomy painted slice by slice, plus seeded noise.
 *
 * Pure computation (no I/O). Slices are produced one at a time so a 512x512x200 series never
 * needs the whole volume in memory.
 *
 * Geometry is in the DICOM patient coordinate system (LPS: +x patient left, +y posterior,
 * +z superior), centred on the volume centre, and laid out "patient-aligned": column index
 * grows with +x, row index grows with +y (the HFS display orientation). The anatomy is scaled
 * to the scanned volume so that any grid, however small, shows a whole thorax; a ~500 mm field
 * of view and ~300 mm scan length give adult proportions.
 *
 * Besides the ellipsoids there are airways (trachea from the top of the volume splitting at the
 * carina into two main bronchi that run into the lungs) and a couch under the supine patient (a
 * carbon-fibre/foam sandwich across the whole scan length, a small air gap below the body), so that
 * segmentation must tell the body from the couch and the lungs from the airways.
 */

export interface PhantomSpec {
  rows: number;
  columns: number;
  slices: number;
  /** [row spacing (between rows, along y), column spacing (between columns, along x)], as DICOM PixelSpacing. */
  pixelSpacingMm: [number, number];
  /** Also the slice-to-slice distance: slices are contiguous. */
  sliceThicknessMm: number;
  /** Noise seed; the same spec and seed always give identical pixels. */
  seed?: number;
  /** Paint the trachea and main bronchi (default true). */
  airways?: boolean;
  /** Paint the couch under the patient (default true). */
  couch?: boolean;
}

export interface PhantomSlice {
  /** 0-based, in increasing z order. */
  index: number;
  /** Patient z of the slice centre plane. */
  zMm: number;
  /** rows*columns values in HU, row-major, patient-aligned (see module comment). */
  hu: Int16Array;
}

type Vec3 = [number, number, number];

/** An axis-aligned ellipsoid of uniform density, in patient mm. */
export interface Ellipsoid {
  name: string;
  hu: number;
  centreMm: Vec3;
  radiiMm: Vec3;
}

/** All points within `radiusMm` of the segment from `fromMm` to `toMm` (a capsule), in patient mm. */
export interface Tube {
  name: string;
  hu: number;
  fromMm: Vec3;
  toMm: Vec3;
  radiusMm: number;
}

/** A box spanning the whole scan length: x and y ranges in patient mm (inclusive). */
export interface Slab {
  name: string;
  hu: number;
  xMm: [number, number];
  yMm: [number, number];
}

export const AIR_HU = -1000;

/** Noise is triangular in [-NOISE_AMPLITUDE_HU, +NOISE_AMPLITUDE_HU] (sd ~8 HU, like a low-dose scan). */
export const NOISE_AMPLITUDE_HU = 20;

const DEFAULT_SEED = 0x7f4a7c15;

/** Anatomy in units of the volume's half-extents (so -1..1 spans the grid), in painting order
 *  (later wins). Very long z radii make near-cylinders (body, spine) that still taper slightly. */
const NORMALISED_ANATOMY: readonly { name: string; hu: number; centre: Vec3; radii: Vec3 }[] = [
  { name: 'body', hu: -100, centre: [0, 0.05, 0], radii: [0.78, 0.55, 3] }, // subcutaneous fat
  { name: 'soft_tissue', hu: 40, centre: [0, 0.05, 0], radii: [0.72, 0.49, 3] },
  { name: 'lung_right', hu: -850, centre: [-0.34, 0, 0.05], radii: [0.26, 0.36, 0.85] },
  { name: 'lung_left', hu: -850, centre: [0.34, 0, 0.05], radii: [0.24, 0.34, 0.8] },
  { name: 'heart', hu: 50, centre: [0.08, -0.12, -0.25], radii: [0.2, 0.2, 0.5] },
  { name: 'spine', hu: 700, centre: [0, 0.38, 0], radii: [0.07, 0.08, 10] },
];

/** Airway centrelines in units of the half-extents; radius in units of the smaller in-plane half-extent.
 *  The carina lies in the mediastinum between the lungs, above the heart; the right main bronchus is
 *  wider and steeper than the left, as in adults. */
const NORMALISED_AIRWAYS: readonly { name: string; from: Vec3; to: Vec3; radius: number }[] = [
  { name: 'trachea', from: [0, 0.08, 1.2], to: [0, 0.08, 0.4], radius: 0.04 },
  { name: 'bronchus_right', from: [0, 0.08, 0.4], to: [-0.2, 0.06, 0.22], radius: 0.03 },
  { name: 'bronchus_left', from: [0, 0.08, 0.4], to: [0.22, 0.06, 0.26], radius: 0.027 },
];

const COUCH_SHELL_HU = 500;
const COUCH_FOAM_HU = -900;

/** The trachea and main bronchi in patient mm (empty if `spec.airways === false`). They are painted over
 *  the soft tissue and under the lungs, so each bronchus stops at the lung surface. */
export function thoraxAirways(spec: PhantomSpec): Tube[] {
  if (spec.airways === false) return [];
  const half = halfExtentsMm(spec);
  const scale = Math.min(half[0], half[1]);
  const mm = (v: Vec3): Vec3 => [v[0] * half[0], v[1] * half[1], v[2] * half[2]];
  return NORMALISED_AIRWAYS.map((a) => ({ name: a.name, hu: AIR_HU, fromMm: mm(a.from), toMm: mm(a.to), radiusMm: a.radius * scale }));
}

/** The couch in patient mm (empty if `spec.couch === false`): shell, foam core, shell, starting a small air
 *  gap posterior to the body. Thicknesses are at least one row so that every grid shows each layer. */
export function thoraxCouch(spec: PhantomSpec): Slab[] {
  if (spec.couch === false) return [];
  const half = halfExtentsMm(spec);
  const body = NORMALISED_ANATOMY[0];
  const rowSpacing = spec.pixelSpacingMm[0];
  const xMm: [number, number] = [-0.92 * half[0], 0.92 * half[0]];
  const gap = Math.max(0.03 * half[1], 1.5 * rowSpacing);
  const shell = Math.max(0.02 * half[1], 1.1 * rowSpacing);
  const foam = Math.max(0.1 * half[1], 2 * rowSpacing);
  const top = (body.centre[1] + body.radii[1]) * half[1] + gap;
  return [
    { name: 'couch_top', hu: COUCH_SHELL_HU, xMm, yMm: [top, top + shell] },
    { name: 'couch_foam', hu: COUCH_FOAM_HU, xMm, yMm: [top + shell, top + shell + foam] },
    { name: 'couch_bottom', hu: COUCH_SHELL_HU, xMm, yMm: [top + shell + foam, top + 2 * shell + foam] },
  ];
}

/** The phantom's structures in patient mm for this spec, in painting order; tests use it as ground truth. */
export function thoraxAnatomy(spec: PhantomSpec): Ellipsoid[] {
  const half = halfExtentsMm(spec);
  return NORMALISED_ANATOMY.map((s) => ({
    name: s.name,
    hu: s.hu,
    centreMm: [s.centre[0] * half[0], s.centre[1] * half[1], s.centre[2] * half[2]],
    radiiMm: [s.radii[0] * half[0], s.radii[1] * half[1], s.radii[2] * half[2]],
  }));
}

/** Patient (x, y) of the centre of pixel (row 0, column 0); the grid is symmetric about 0. */
export function gridOriginMm(spec: PhantomSpec): [number, number] {
  const [rowSpacing, colSpacing] = spec.pixelSpacingMm;
  return [(-(spec.columns - 1) / 2) * colSpacing, (-(spec.rows - 1) / 2) * rowSpacing];
}

/** Patient z of slice `index`. */
function sliceZMm(spec: PhantomSpec, index: number): number {
  return (index - (spec.slices - 1) / 2) * spec.sliceThicknessMm;
}

export function* thoraxSlices(spec: PhantomSpec): Generator<PhantomSlice> {
  validate(spec);
  const anatomy = thoraxAnatomy(spec);
  const airways = thoraxAirways(spec);
  const couch = thoraxCouch(spec);
  for (let index = 0; index < spec.slices; index++) {
    const zMm = sliceZMm(spec, index);
    const hu = new Int16Array(spec.rows * spec.columns);
    hu.fill(AIR_HU);
    for (const slab of couch) paintSlab(hu, spec, slab);
    for (const structure of anatomy) {
      paintSection(hu, spec, structure, zMm);
      if (structure.name === AIRWAYS_PAINTED_AFTER) for (const tube of airways) paintTubeSection(hu, spec, tube, zMm);
    }
    addNoise(hu, sliceSeed(spec.seed ?? DEFAULT_SEED, index));
    yield { index, zMm, hu };
  }
}

function validate(spec: PhantomSpec): void {
  const counts = [spec.rows, spec.columns, spec.slices];
  if (!counts.every((n) => Number.isInteger(n) && n > 0)) {
    throw new RangeError(`phantom rows/columns/slices must be positive integers: ${counts.join('x')}`);
  }
  const spacings = [...spec.pixelSpacingMm, spec.sliceThicknessMm];
  if (!spacings.every((s) => Number.isFinite(s) && s > 0)) {
    throw new RangeError(`phantom spacings must be positive: ${spacings.join(', ')}`);
  }
}

function halfExtentsMm(spec: PhantomSpec): Vec3 {
  const [rowSpacing, colSpacing] = spec.pixelSpacingMm;
  return [
    (spec.columns * colSpacing) / 2,
    (spec.rows * rowSpacing) / 2,
    (spec.slices * spec.sliceThicknessMm) / 2,
  ];
}

/** Airways go over the chest wall tissue and under everything after it (lungs, heart, spine). */
const AIRWAYS_PAINTED_AFTER = 'soft_tissue';

/** Pixel range [first, last] whose centres lie in [lo, hi] along an axis with `count` samples from `start`. */
function pixelRange(lo: number, hi: number, start: number, spacing: number, count: number): [number, number] {
  return [Math.max(0, Math.ceil((lo - start) / spacing)), Math.min(count - 1, Math.floor((hi - start) / spacing))];
}

function paintSlab(hu: Int16Array, spec: PhantomSpec, slab: Slab): void {
  const [rowSpacing, colSpacing] = spec.pixelSpacingMm;
  const [x0, y0] = gridOriginMm(spec);
  const [firstCol, lastCol] = pixelRange(slab.xMm[0], slab.xMm[1], x0, colSpacing, spec.columns);
  const [firstRow, lastRow] = pixelRange(slab.yMm[0], slab.yMm[1], y0, rowSpacing, spec.rows);
  if (firstCol > lastCol) return;
  for (let row = firstRow; row <= lastRow; row++) hu.fill(slab.hu, row * spec.columns + firstCol, row * spec.columns + lastCol + 1);
}

/** Paints the pixels of plane z within the tube's radius of its segment; only the tube's bounding box is visited. */
function paintTubeSection(hu: Int16Array, spec: PhantomSpec, t: Tube, zMm: number): void {
  const r = t.radiusMm;
  if (zMm < Math.min(t.fromMm[2], t.toMm[2]) - r || zMm > Math.max(t.fromMm[2], t.toMm[2]) + r) return;
  const [rowSpacing, colSpacing] = spec.pixelSpacingMm;
  const [x0, y0] = gridOriginMm(spec);
  const [firstCol, lastCol] = pixelRange(Math.min(t.fromMm[0], t.toMm[0]) - r, Math.max(t.fromMm[0], t.toMm[0]) + r, x0, colSpacing, spec.columns);
  const [firstRow, lastRow] = pixelRange(Math.min(t.fromMm[1], t.toMm[1]) - r, Math.max(t.fromMm[1], t.toMm[1]) + r, y0, rowSpacing, spec.rows);
  for (let row = firstRow; row <= lastRow; row++) {
    const y = y0 + row * rowSpacing;
    for (let col = firstCol; col <= lastCol; col++) {
      if (distanceToSegmentSq([x0 + col * colSpacing, y, zMm], t.fromMm, t.toMm) <= r * r) hu[row * spec.columns + col] = t.hu;
    }
  }
}

/** Squared distance from p to the segment a-b. */
export function distanceToSegmentSq(p: Vec3, a: Vec3, b: Vec3): number {
  const ab: Vec3 = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
  const ap: Vec3 = [p[0] - a[0], p[1] - a[1], p[2] - a[2]];
  const len2 = ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2];
  const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, (ap[0] * ab[0] + ap[1] * ab[1] + ap[2] * ab[2]) / len2));
  const d: Vec3 = [ap[0] - t * ab[0], ap[1] - t * ab[1], ap[2] - t * ab[2]];
  return d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
}

/** Fills the ellipse where `e` cuts plane z, one horizontal span per row: this keeps the per-pixel
 *  work to a typed-array fill, which is what makes 512x512x200 take well under a second. */
function paintSection(hu: Int16Array, spec: PhantomSpec, e: Ellipsoid, zMm: number): void {
  const [cx, cy, cz] = e.centreMm;
  const [rx, ry, rz] = e.radiiMm;
  const inPlane = 1 - ((zMm - cz) / rz) ** 2;
  if (inPlane <= 0) return;
  const [rowSpacing, colSpacing] = spec.pixelSpacingMm;
  const [x0, y0] = gridOriginMm(spec);
  for (let row = 0; row < spec.rows; row++) {
    const y = y0 + row * rowSpacing;
    const remaining = inPlane - ((y - cy) / ry) ** 2;
    if (remaining <= 0) continue;
    const halfWidth = rx * Math.sqrt(remaining);
    const first = Math.max(0, Math.ceil((cx - halfWidth - x0) / colSpacing));
    const last = Math.min(spec.columns - 1, Math.floor((cx + halfWidth - x0) / colSpacing));
    if (first <= last) hu.fill(e.hu, row * spec.columns + first, row * spec.columns + last + 1);
  }
}

/** Triangular noise: the sum of two random bytes (0..510) mapped to HU through a table. Cheaper than
 *  Gaussian sampling or per-pixel Math.round (several times faster), and looks the same at this level. */
const NOISE_TABLE = Int8Array.from({ length: 511 }, (_, sum) => Math.round(((sum - 255) / 255) * NOISE_AMPLITUDE_HU));

function addNoise(hu: Int16Array, seed: number): void {
  const next = mulberry32(seed);
  for (let i = 0; i < hu.length; i++) {
    const r = next();
    hu[i] += NOISE_TABLE[(r & 0xff) + (r >>> 24)];
  }
}

/** Seeds each slice independently so a slice's pixels do not depend on which slices came before. */
function sliceSeed(seed: number, index: number): number {
  return (seed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0;
}

/** mulberry32: tiny, fast, well-distributed 32-bit PRNG; returns unsigned 32-bit integers. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}
