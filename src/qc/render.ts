/**
 * CT snapshots for the QC report: an axial, coronal or sagittal plane of the CT, windowed to grey,
 * resampled to square pixels (so a 3 mm slice looks 3 mm tall next to 1 mm pixels), with the
 * outline of each ROI drawn in its colour. Pure computation on voxel arrays.
 *
 * Display orientation (for the usual axial acquisition, direction = identity): axial as stored
 * (patient right on the left, anterior up), coronal with patient right on the left and superior up,
 * sagittal with anterior on the left and superior up.
 */
import type { Grid, Vec3 } from '../geometry/types.js';
import type { RasterImage } from './png.js';

export type PlaneName = 'axial' | 'coronal' | 'sagittal';
export const PLANES: readonly PlaneName[] = ['axial', 'coronal', 'sagittal'];

export type Rgb = [number, number, number];

/** A 2-D plane in display order (row 0 at the top); pixel size in mm across and down. */
export interface Plane2D<T extends Int16Array | Uint8Array> {
  width: number;
  height: number;
  pixelMm: [number, number];
  data: T;
}

/** HU mapped to black (lowHu) .. white (highHu). */
export interface HuWindow {
  lowHu: number;
  highHu: number;
}
export const DEFAULT_WINDOW: HuWindow = { lowHu: -1000, highHu: 400 };

export interface Overlay {
  color: Rgb;
  plane: Plane2D<Uint8Array>;
}

/** Snapshot sides in pixels: small CTs are enlarged to at least MIN_SIDE, large ones capped at MAX_SIDE. */
const MIN_SIDE = 256;
const MAX_SIDE = 768;

/** Voxel index ranges of a plane: which grid axes run across and down, and the fixed one. */
function planeAxes(grid: Grid, plane: PlaneName): { across: 0 | 1 | 2; down: 0 | 1 | 2; fixed: 0 | 1 | 2; flipDown: boolean } {
  // Superior up: k runs upwards when the slice normal points to +z (superior in LPS).
  const kUp = grid.direction[2][2] >= 0;
  if (plane === 'axial') return { across: 0, down: 1, fixed: 2, flipDown: false };
  if (plane === 'coronal') return { across: 0, down: 2, fixed: 1, flipDown: kUp };
  return { across: 1, down: 2, fixed: 0, flipDown: kUp };
}

/** The plane through voxel index `index` along the plane's fixed axis, in display order. */
export function extractPlane<T extends Int16Array | Uint8Array>(vol: { grid: Grid; data: T }, plane: PlaneName, index: number): Plane2D<T> {
  const { dims, spacingMm } = vol.grid;
  const { across, down, fixed, flipDown } = planeAxes(vol.grid, plane);
  if (!Number.isInteger(index) || index < 0 || index >= dims[fixed]) throw new RangeError(`${plane} plane index ${index} is outside 0..${dims[fixed] - 1}`);
  const stride: Vec3 = [1, dims[0], dims[0] * dims[1]];
  const width = dims[across];
  const height = dims[down];
  const data = new (vol.data.constructor as { new (n: number): T })(width * height);
  const base = index * stride[fixed];
  for (let y = 0; y < height; y++) {
    const d = flipDown ? height - 1 - y : y;
    const row = base + d * stride[down];
    for (let x = 0; x < width; x++) data[y * width + x] = vol.data[row + x * stride[across]];
  }
  return { width, height, pixelMm: [spacingMm[across], spacingMm[down]], data };
}

/** Square display pixel size (mm) for a plane: its finer spacing, within the side limits. */
export function displayPixelMm(p: Pick<Plane2D<Uint8Array>, 'width' | 'height' | 'pixelMm'>): number {
  const extent = Math.max(p.width * p.pixelMm[0], p.height * p.pixelMm[1]);
  const finest = Math.min(p.pixelMm[0], p.pixelMm[1]);
  return Math.max(Math.min(finest, extent / MIN_SIDE), extent / MAX_SIDE);
}

/** Nearest-neighbour resampling of a plane to square pixels of `pxMm` (extent kept). */
export function resampleSquare<T extends Int16Array | Uint8Array>(p: Plane2D<T>, pxMm: number): Plane2D<T> {
  const width = Math.max(1, Math.round((p.width * p.pixelMm[0]) / pxMm));
  const height = Math.max(1, Math.round((p.height * p.pixelMm[1]) / pxMm));
  const srcX = sourceIndex(width, p.width);
  const srcY = sourceIndex(height, p.height);
  const data = new (p.data.constructor as { new (n: number): T })(width * height);
  for (let y = 0; y < height; y++) {
    const row = srcY[y] * p.width;
    for (let x = 0; x < width; x++) data[y * width + x] = p.data[row + srcX[x]];
  }
  return { width, height, pixelMm: [pxMm, pxMm], data };
}

/** For each of n output pixels, the source pixel (of m) whose extent holds the output pixel's centre. */
function sourceIndex(n: number, m: number): Int32Array {
  const out = new Int32Array(n);
  for (let x = 0; x < n; x++) out[x] = Math.min(m - 1, Math.floor(((x + 0.5) * m) / n));
  return out;
}

/** The snapshot: windowed CT in grey, each overlay's outline (1 px, 4-neighbour boundary) in its colour. */
export function renderSnapshot(ct: Plane2D<Int16Array>, overlays: readonly Overlay[], window: HuWindow = DEFAULT_WINDOW): RasterImage {
  if (!(window.highHu > window.lowHu)) throw new RangeError(`HU window [${window.lowHu}, ${window.highHu}] is empty`);
  const pxMm = displayPixelMm(ct);
  const grey = resampleSquare(ct, pxMm);
  const { width, height } = grey;
  const rgb = new Uint8Array(width * height * 3);
  const scale = 255 / (window.highHu - window.lowHu);
  for (let p = 0; p < width * height; p++) {
    const v = Math.round((grey.data[p] - window.lowHu) * scale);
    rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  for (const o of overlays) {
    if (o.plane.width !== ct.width || o.plane.height !== ct.height) throw new RangeError(`overlay is ${o.plane.width}x${o.plane.height}, the CT plane ${ct.width}x${ct.height}`);
    const m = resampleSquare(o.plane, pxMm).data;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const p = y * width + x;
        if (!m[p]) continue;
        const edge = x === 0 || y === 0 || x === width - 1 || y === height - 1 || !m[p - 1] || !m[p + 1] || !m[p - width] || !m[p + width];
        if (edge) rgb.set(o.color, 3 * p);
      }
    }
  }
  return { width, height, channels: 3, data: rgb };
}

/** What the snapshot centre is chosen from: an ROI's kind, size and centroid (voxel indices). */
export interface RoiPlacement {
  name: string;
  interpretedType: string;
  voxels: number;
  centroidVoxel: Vec3 | null;
}

const TARGET = /^(PTV|CTV|GTV|ITV)/i;
const BODY = /^(BODY|EXTERNAL|SKIN|OUTLINE)$/i;

/**
 * The voxel the three planes go through: the centroid of the largest target ROI (by interpreted
 * type or name), else of the largest body outline, else of the largest ROI, else the grid centre.
 */
export function snapshotCentre(grid: Grid, rois: readonly RoiPlacement[]): [number, number, number] {
  const present = rois.filter((r) => r.voxels > 0 && r.centroidVoxel);
  const isTarget = (r: RoiPlacement) => TARGET.test(r.interpretedType) || TARGET.test(r.name);
  const isBody = (r: RoiPlacement) => /^EXTERNAL$/i.test(r.interpretedType) || BODY.test(r.name);
  const pool = [present.filter(isTarget), present.filter(isBody), present].find((l) => l.length > 0);
  const c = pool ? pool.reduce((a, b) => (b.voxels > a.voxels ? b : a)).centroidVoxel! : grid.dims.map((n) => (n - 1) / 2);
  return [0, 1, 2].map((a) => Math.min(grid.dims[a] - 1, Math.max(0, Math.round(c[a])))) as [number, number, number];
}

/** The index along each plane's fixed axis for a centre voxel. */
export function planeIndex(plane: PlaneName, centre: readonly [number, number, number]): number {
  return plane === 'axial' ? centre[2] : plane === 'coronal' ? centre[1] : centre[0];
}
