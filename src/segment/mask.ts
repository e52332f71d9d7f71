/**
 * Small mask utilities shared by the segmentation modules. Pure computation on typed arrays.
 */
import { voxelCount, voxelToPatient, type Grid, type Mask, type Vec3, type Volume } from '../geometry/types.js';

export type Dims = [number, number, number];

/** Half-open voxel box: lo inclusive, hi exclusive, per axis. */
export interface Box {
  lo: Dims;
  hi: Dims;
}

export function emptyMask(grid: Grid): Mask {
  return { grid, data: new Uint8Array(voxelCount(grid)) };
}

/** Voxels with HU strictly above `hu`. */
export function huAbove(ct: Volume<Int16Array>, hu: number): Mask {
  const src = ct.data;
  const out = new Uint8Array(src.length);
  for (let v = 0; v < src.length; v++) out[v] = src[v] > hu ? 1 : 0;
  return { grid: ct.grid, data: out };
}

/** Voxels with HU strictly below `hu`. */
export function huBelow(ct: Volume<Int16Array>, hu: number): Mask {
  const src = ct.data;
  const out = new Uint8Array(src.length);
  for (let v = 0; v < src.length; v++) out[v] = src[v] < hu ? 1 : 0;
  return { grid: ct.grid, data: out };
}

export function intersect(a: Mask, b: Mask): Mask {
  const out = new Uint8Array(a.data.length);
  const x = a.data;
  const y = b.data;
  for (let v = 0; v < out.length; v++) out[v] = x[v] & y[v];
  return { grid: a.grid, data: out };
}

export function voxelVolumeMm3(grid: Grid): number {
  return grid.spacingMm[0] * grid.spacingMm[1] * grid.spacingMm[2];
}

/** A 32-bit view for skipping four bytes at a time, when the array is 4-byte aligned. */
export function wordView(data: Uint8Array): Uint32Array | null {
  return data.byteOffset % 4 === 0 ? new Uint32Array(data.buffer, data.byteOffset, data.length >> 2) : null;
}

/** First i in [i, n) with data[base + i] !== 0, or n. */
export function skipZeros(data: Uint8Array, words: Uint32Array | null, base: number, i: number, n: number): number {
  if (words) {
    while (i < n && (base + i) & 3 && data[base + i] === 0) i++;
    while (i + 4 <= n && words[(base + i) >> 2] === 0) i += 4;
  }
  while (i < n && data[base + i] === 0) i++;
  return i;
}

/** First i in [i, n) with data[base + i] === 0, or n (a word of four 1s is skipped whole). */
export function skipOnes(data: Uint8Array, words: Uint32Array | null, base: number, i: number, n: number): number {
  if (words) {
    while (i < n && (base + i) & 3 && data[base + i] !== 0) i++;
    while (i + 4 <= n && words[(base + i) >> 2] === 0x01010101) i += 4;
  }
  while (i < n && data[base + i] !== 0) i++;
  return i;
}

/** Smallest box holding every non-zero voxel, or null for an empty mask. Scans row by row. */
export function boundingBox(data: Uint8Array, dims: Dims): Box | null {
  const [nx, ny, nz] = dims;
  const lo: Dims = [nx, ny, nz];
  const hi: Dims = [0, 0, 0];
  const words = wordView(data);
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      const base = (k * ny + j) * nx;
      const first = skipZeros(data, words, base, 0, nx);
      if (first === nx) continue;
      let last = nx - 1;
      while (data[base + last] === 0) last--;
      if (first < lo[0]) lo[0] = first;
      if (last + 1 > hi[0]) hi[0] = last + 1;
      if (j < lo[1]) lo[1] = j;
      if (j + 1 > hi[1]) hi[1] = j + 1;
      if (k < lo[2]) lo[2] = k;
      hi[2] = k + 1;
    }
  }
  return hi[2] === 0 ? null : { lo, hi };
}

/** The box grown by `margin` voxels per axis, clipped to the volume. */
export function expandBox(box: Box, margin: Dims, dims: Dims): Box {
  return {
    lo: [0, 1, 2].map((a) => Math.max(0, box.lo[a] - margin[a])) as Dims,
    hi: [0, 1, 2].map((a) => Math.min(dims[a], box.hi[a] + margin[a])) as Dims,
  };
}

export function boxDims(box: Box): Dims {
  return [box.hi[0] - box.lo[0], box.hi[1] - box.lo[1], box.hi[2] - box.lo[2]];
}

/** Copies the box out of a volume-sized array into a compact one, row by row. */
export function cropData<T extends Uint8Array | Int16Array>(data: T, dims: Dims, box: Box): T {
  const [cx, cy, cz] = boxDims(box);
  const out = new (data.constructor as new (n: number) => T)(cx * cy * cz);
  for (let k = 0; k < cz; k++) {
    for (let j = 0; j < cy; j++) {
      const from = ((box.lo[2] + k) * dims[1] + box.lo[1] + j) * dims[0] + box.lo[0];
      out.set(data.subarray(from, from + cx), (k * cy + j) * cx);
    }
  }
  return out;
}

/** Writes a compact box array back into a volume-sized array. */
export function pasteData(crop: Uint8Array, box: Box, dims: Dims, into: Uint8Array): Uint8Array {
  const [cx, cy, cz] = boxDims(box);
  for (let k = 0; k < cz; k++) {
    for (let j = 0; j < cy; j++) {
      const to = ((box.lo[2] + k) * dims[1] + box.lo[1] + j) * dims[0] + box.lo[0];
      into.set(crop.subarray((k * cy + j) * cx, (k * cy + j + 1) * cx), to);
    }
  }
  return into;
}

/** The grid of a box of `grid`: same spacing and orientation, origin at the box's first voxel. */
export function cropGrid(grid: Grid, box: Box): Grid {
  return { ...grid, dims: boxDims(box), originMm: voxelToPatient(grid, box.lo[0], box.lo[1], box.lo[2]) };
}

export interface LabelStats {
  /** Voxel count per label 1..count (index 0 unused). */
  voxels: number[];
  /** Centroid per label in patient mm (the grid is affine, so the voxel-index centroid maps through it);
   *  null for an empty label. */
  centroidMm: (Vec3 | null)[];
}

/** Sizes and centroids of the labels 1..count in a label array, skipping unlabelled stretches a word at a time. */
export function labelStats(labels: Uint8Array, grid: Grid, count: number): LabelStats {
  const [nx, ny, nz] = grid.dims;
  const n = new Array<number>(count + 1).fill(0);
  const sum = Array.from({ length: count + 1 }, () => [0, 0, 0]);
  const words = wordView(labels);
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      const base = (k * ny + j) * nx;
      for (let i = skipZeros(labels, words, base, 0, nx); i < nx; i = skipZeros(labels, words, base, i + 1, nx)) {
        const l = labels[base + i];
        if (l > count) continue;
        n[l]++;
        sum[l][0] += i;
        sum[l][1] += j;
        sum[l][2] += k;
      }
    }
  }
  return {
    voxels: n,
    centroidMm: n.map((c, l) => (c === 0 || l === 0 ? null : voxelToPatient(grid, sum[l][0] / c, sum[l][1] / c, sum[l][2] / c))),
  };
}

export function centroidMm(mask: Mask): Vec3 | null {
  return labelStats(mask.data, mask.grid, 1).centroidMm[1];
}
