/**
 * Nearest-neighbour resampling of masks and label images between grids, through their patient-space
 * geometry: each target voxel takes the value of the source voxel that contains its centre (0 when
 * the centre lies outside the source). Used to bring a tool's output (TotalSegmentator, nnU-Net; read
 * from NIfTI with whatever axis order and flips the tool wrote) onto our CT grid. Pure computation.
 *
 * The source index is an affine function of the target index, s = s0 + C·(i, j, k), so it is computed
 * incrementally. When every target axis maps onto one source axis (flips, permutations and spacing
 * changes: the usual case), each axis gets a lookup table of source offsets instead.
 */
import { voxelCount, type Grid, type Mask, type Vec3 } from './types.js';

export type LabelData = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array;

/** A target axis counts as parallel to a source axis when the other components are below this. */
const PARALLEL_EPS = 1e-6;

/** Source voxel containing a continuous index: voxel n spans [n - 0.5, n + 0.5). */
const containing = (x: number) => Math.floor(x + 0.5);

/** `mask` on `target`: for each target voxel centre, the mask voxel containing it. */
export function resampleMaskToGrid(mask: Mask, target: Grid): Mask {
  return { grid: target, data: resampleNearest(mask, target) };
}

/** Label (or mask) values on `target`, nearest neighbour; the output has the source's array type. */
export function resampleNearest<T extends LabelData>(source: { grid: Grid; data: T }, target: Grid): T {
  const expected = voxelCount(source.grid);
  if (source.data.length !== expected) throw new RangeError(`resample: source has ${source.data.length} voxels, its grid ${source.grid.dims.join('x')} needs ${expected}`);
  const out = new (source.data.constructor as new (n: number) => T)(voxelCount(target));
  const { offset, coef } = indexTransform(source.grid, target);
  const axes = separableAxes(coef);
  if (axes) resampleSeparable(source, target, offset, coef, axes, out);
  else resampleGeneral(source, target, offset, coef, out);
  return out;
}

/** s = offset + coef[a][b] * t_b: continuous source index a of target index t. */
function indexTransform(source: Grid, target: Grid): { offset: Vec3; coef: [Vec3, Vec3, Vec3] } {
  // Row a of the patient->source-index map is direction[a] / spacing[a] (direction is orthonormal).
  const toSource = (a: number, v: Vec3) => (v[0] * source.direction[a][0] + v[1] * source.direction[a][1] + v[2] * source.direction[a][2]) / source.spacingMm[a];
  const originDelta: Vec3 = [0, 1, 2].map((r) => target.originMm[r] - source.originMm[r]) as Vec3;
  const step = (b: number): Vec3 => target.direction[b].map((x) => x * target.spacingMm[b]) as Vec3;
  const offset = [0, 1, 2].map((a) => toSource(a, originDelta)) as Vec3;
  const coef = [0, 1, 2].map((a) => [0, 1, 2].map((b) => toSource(a, step(b))) as Vec3) as [Vec3, Vec3, Vec3];
  return { offset, coef };
}

/** For each target axis, the one source axis it moves along; null unless that is a one-to-one pairing. */
function separableAxes(coef: [Vec3, Vec3, Vec3]): Vec3 | null {
  const axes: number[] = [];
  for (let b = 0; b < 3; b++) {
    const column = [coef[0][b], coef[1][b], coef[2][b]].map(Math.abs);
    const largest = Math.max(...column);
    const along = column.flatMap((c, a) => (c > PARALLEL_EPS * largest ? [a] : []));
    if (along.length !== 1) return null;
    axes.push(along[0]);
  }
  return new Set(axes).size === 3 ? (axes as Vec3) : null;
}

function resampleSeparable<T extends LabelData>(source: { grid: Grid; data: T }, target: Grid, offset: Vec3, coef: [Vec3, Vec3, Vec3], axes: Vec3, out: T): void {
  const [sx, sy] = source.grid.dims;
  const strides = [1, sx, sx * sy];
  // offsets[b][t]: linear source offset contributed by target index t along axis b, or -1 if outside.
  const offsets = [0, 1, 2].map((b) => {
    const a = axes[b];
    const table = new Int32Array(target.dims[b]);
    for (let t = 0; t < table.length; t++) {
      const n = containing(offset[a] + t * coef[a][b]);
      table[t] = n >= 0 && n < source.grid.dims[a] ? n * strides[a] : -1;
    }
    return table;
  });
  const [tx, ty, tz] = target.dims;
  const [offI, offJ, offK] = offsets;
  const src = source.data;
  for (let k = 0; k < tz; k++) {
    if (offK[k] < 0) continue;
    for (let j = 0; j < ty; j++) {
      if (offJ[j] < 0) continue;
      const base = offK[k] + offJ[j];
      const row = (k * ty + j) * tx;
      for (let i = 0; i < tx; i++) {
        const o = offI[i];
        if (o >= 0) out[row + i] = src[base + o];
      }
    }
  }
}

function resampleGeneral<T extends LabelData>(source: { grid: Grid; data: T }, target: Grid, offset: Vec3, coef: [Vec3, Vec3, Vec3], out: T): void {
  const [sx, sy, sz] = source.grid.dims;
  const [tx, ty, tz] = target.dims;
  const [[c00, c01, c02], [c10, c11, c12], [c20, c21, c22]] = coef;
  const src = source.data;
  for (let k = 0; k < tz; k++) {
    for (let j = 0; j < ty; j++) {
      // Start of the row in source index space; stepping i adds column 0 of coef.
      const a0 = offset[0] + j * c01 + k * c02;
      const b0 = offset[1] + j * c11 + k * c12;
      const d0 = offset[2] + j * c21 + k * c22;
      const row = (k * ty + j) * tx;
      for (let i = 0; i < tx; i++) {
        const a = containing(a0 + i * c00);
        const b = containing(b0 + i * c10);
        const d = containing(d0 + i * c20);
        if (a >= 0 && a < sx && b >= 0 && b < sy && d >= 0 && d < sz) out[row + i] = src[a + sx * (b + sy * d)];
      }
    }
  }
}
