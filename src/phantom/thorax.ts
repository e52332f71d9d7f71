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
  for (let index = 0; index < spec.slices; index++) {
    const zMm = sliceZMm(spec, index);
    const hu = new Int16Array(spec.rows * spec.columns);
    hu.fill(AIR_HU);
    for (const structure of anatomy) paintSection(hu, spec, structure, zMm);
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
