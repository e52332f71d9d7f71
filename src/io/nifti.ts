/**
 * NIfTI-1 single-file images (.nii, .nii.gz) for volumes and masks.
 *
 * NIfTI world space is RAS while our grids are DICOM LPS, so the voxel->world affine has its x and y
 * rows negated. Both qform and sform are written (code 1, scanner anatomical) because tools differ in
 * which one they trust; on reading the sform wins, as in nifti1_io.
 */
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { availableParallelism, endianness } from 'node:os';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zlibConstants, crc32, createDeflateRaw, createGunzip, type ZlibOptions } from 'node:zlib';
import type { Grid, Vec3 } from '../geometry/types.js';

// Voxel data is written from and read into typed arrays directly, which use the host's byte order.
if (endianness() !== 'LE') throw new Error('nifti assumes a little-endian host');

const HEADER_SIZE = 348;
/** Header plus the 4-byte extension flag: where data starts in a file we write. */
const VOX_OFFSET = 352;
const XFORM_SCANNER_ANAT = 1;
const UNITS_MM = 2;

const DATATYPES = {
  uint8: { code: 2, array: Uint8Array },
  int16: { code: 4, array: Int16Array },
  int32: { code: 8, array: Int32Array },
  float32: { code: 16, array: Float32Array },
  float64: { code: 64, array: Float64Array },
  int8: { code: 256, array: Int8Array },
  uint16: { code: 512, array: Uint16Array },
  uint32: { code: 768, array: Uint32Array },
} as const;

export type NiftiDatatype = keyof typeof DATATYPES;
export type NiftiData = InstanceType<(typeof DATATYPES)[NiftiDatatype]['array']>;
/** What writeNifti accepts: a CT/dose Volume or a Mask. */
export type WritableData = Int16Array | Uint16Array | Uint8Array | Float32Array;

export interface NiftiImage {
  grid: Grid;
  /** Stored values; real value = data * sclSlope + sclInter (identity when the file sets no scaling). */
  data: NiftiData;
  datatype: NiftiDatatype;
  sclSlope: number;
  sclInter: number;
}

export interface NiftiWriteOptions {
  /** Free text stored in the header's descrip field (at most 79 bytes kept). */
  description?: string;
  /** zlib level for .nii.gz; default 6. 1 is several times faster on large CT for ~10% more bytes. */
  gzipLevel?: number;
  /** 'rle' suits masks: it only looks for runs of one value, which compresses a mask smaller than
   *  level 1 does, as fast. Default 'default'. */
  gzipStrategy?: 'default' | 'rle';
  /** Blocks of a .nii.gz compressed at once on the libuv threadpool (default: the usable CPUs). */
  gzipConcurrency?: number;
  /** For voxels that arrive slice by slice (a CT being read): resolves once slices 0 .. k-1 are in.
   *  Each block is written only when its slices are. */
  slicesReady?: (k: number) => Promise<void>;
}

/** Voxels produced slice by slice, e.g. painted from a run-length mask, so that no volume-sized
 *  array has to exist for the file to be written. */
export interface NiftiSliceSource {
  grid: Grid;
  datatype: 'uint8' | 'int16';
  /** Writes slice k's voxels (row-major, i fastest) into `out`, which holds exactly one slice and may
   *  contain anything beforehand. */
  slice(k: number, out: Uint8Array): void;
}

export class NiftiError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NiftiError';
  }
}

export type Affine = number[][];

/** Voxel (i, j, k) -> RAS mm, 4x4. */
export function gridToRasAffine(grid: Grid): Affine {
  const rows: Affine = [0, 1, 2].map((r) => [
    ...grid.direction.map((axis, c) => axis[r] * grid.spacingMm[c]),
    grid.originMm[r],
  ]);
  for (const r of [0, 1]) rows[r] = rows[r].map((v) => -v);
  return [...rows, [0, 0, 0, 1]];
}

/** The inverse of gridToRasAffine; refuses a sheared affine, which a Grid cannot represent. */
export function rasAffineToGrid(affine: Affine, dims: [number, number, number]): Grid {
  const lps = (r: number, c: number) => (r < 2 ? -affine[r][c] : affine[r][c]);
  const columns = [0, 1, 2].map((c) => [lps(0, c), lps(1, c), lps(2, c)] as Vec3);
  const spacingMm = columns.map((v) => Math.hypot(...v)) as Vec3;
  if (!spacingMm.every((s) => s > 0 && Number.isFinite(s))) throw new NiftiError(`NIfTI affine has a degenerate axis: ${JSON.stringify(affine)}`);
  const direction = columns.map((v, c) => v.map((x) => x / spacingMm[c]) as Vec3) as [Vec3, Vec3, Vec3];
  for (const [a, b] of [[0, 1], [0, 2], [1, 2]]) {
    const cos = direction[a].reduce((sum, x, r) => sum + x * direction[b][r], 0);
    if (Math.abs(cos) > 1e-4) throw new NiftiError(`NIfTI affine is sheared (axes ${a} and ${b} not orthogonal), which a grid cannot represent`);
  }
  return { dims: [...dims], spacingMm, originMm: [lps(0, 3), lps(1, 3), lps(2, 3)], direction };
}

/** Writes a .nii, or a .nii.gz (compressed block by block in parallel, see writeGzipBlocks). */
export async function writeNifti(path: string, image: { grid: Grid; data: WritableData }, opts: NiftiWriteOptions = {}): Promise<void> {
  const { grid, data } = image;
  const expected = grid.dims[0] * grid.dims[1] * grid.dims[2];
  if (data.length !== expected) throw new NiftiError(`data has ${data.length} voxels, grid ${grid.dims.join('x')} needs ${expected}`);
  checkDims(grid);
  const header = niftiHeader(grid, datatypeOf(data), opts.description ?? '');
  await writeBlocks(path, prepend(header, arrayBlocks(data, grid, opts.slicesReady)), opts);
}

/** Writes a .nii or .nii.gz from a slice source; only a few blocks of slices exist at a time. */
export async function writeNiftiSlices(path: string, source: NiftiSliceSource, opts: NiftiWriteOptions = {}): Promise<void> {
  checkDims(source.grid);
  const header = niftiHeader(source.grid, source.datatype, opts.description ?? '');
  await writeBlocks(path, prepend(header, sourceBlocks(source, gzipConcurrency(opts) + 2)), opts);
}

function gzipConcurrency(opts: NiftiWriteOptions): number {
  return Math.max(1, opts.gzipConcurrency ?? availableParallelism());
}

function checkDims(grid: Grid): void {
  if (grid.dims.some((d) => d > 32767)) throw new NiftiError(`NIfTI-1 dimensions are int16: ${grid.dims.join('x')} is too large`);
}

async function writeBlocks(path: string, blocks: AsyncIterable<Uint8Array>, opts: NiftiWriteOptions): Promise<void> {
  const file = await open(path, 'w');
  try {
    if (isGzipPath(path)) {
      const strategy = opts.gzipStrategy === 'rle' ? zlibConstants.Z_RLE : zlibConstants.Z_DEFAULT_STRATEGY;
      const zlibOptions: ZlibOptions = { level: opts.gzipLevel ?? 6, strategy };
      await writeGzipBlocks(file, blocks, zlibOptions, gzipConcurrency(opts));
    }
    else for await (const block of blocks) await file.write(block);
  } finally {
    await file.close();
  }
}

/** Reads a single-file NIfTI-1 image, gzipped or not (decided by content, not name), streaming the
 *  voxels straight into the returned array. */
export async function readNifti(path: string): Promise<NiftiImage> {
  const source = (await isGzipFile(path)) ? gunzipped(path) : createReadStream(path);
  let pending: Buffer[] = [];
  let header: ParsedHeader | undefined;
  let data: NiftiData | undefined;
  let bytes = new Uint8Array(0);
  let filled = 0;
  let position = 0; // file offset of the chunk being handled
  for await (const raw of source as AsyncIterable<Buffer>) {
    let chunk = raw;
    if (!header) {
      pending.push(chunk);
      if (pending.reduce((n, b) => n + b.length, 0) < HEADER_SIZE) continue;
      chunk = Buffer.concat(pending);
      pending = [];
      header = parseHeader(chunk);
      data = new DATATYPES[header.datatype].array(header.dims[0] * header.dims[1] * header.dims[2]);
      bytes = new Uint8Array(data.buffer);
    }
    const start = header.voxOffset + filled - position;
    if (start < chunk.length) {
      const piece = chunk.subarray(start, start + bytes.length - filled);
      bytes.set(piece, filled);
      filled += piece.length;
    }
    position += chunk.length;
    if (filled === bytes.length) break;
  }
  if (!header || !data) throw new NiftiError(`${path}: shorter than a NIfTI-1 header`);
  if (filled !== bytes.length) throw new NiftiError(`${path}: truncated, ${filled} of ${bytes.length} voxel bytes present`);
  const grid = rasAffineToGrid(header.affine, header.dims);
  return { grid, data, datatype: header.datatype, sclSlope: header.sclSlope, sclInter: header.sclInter };
}

// ---------------------------------------------------------------------------------------------
// Blocks and parallel gzip

/** Input bytes per compressed block: big enough that the per-block cost (a deflate stream, a
 *  threadpool round trip) is noise, small enough that two cores share a CT evenly. */
const BLOCK_BYTES = 2 << 20;
/** Deflate's window: the tail of one block primes the next one's dictionary, as pigz does. */
const WINDOW_BYTES = 32 << 10;

/** Whole slices per block, at least one. */
function slicesPerBlock(sliceBytes: number): number {
  return Math.max(1, Math.floor(BLOCK_BYTES / sliceBytes));
}

/** Views of the voxel array, a block of whole slices at a time (no copy), each once its slices are in. */
async function* arrayBlocks(data: WritableData, grid: Grid, slicesReady?: (k: number) => Promise<void>): AsyncGenerator<Buffer> {
  const sliceBytes = grid.dims[0] * grid.dims[1] * data.BYTES_PER_ELEMENT;
  const perBlock = slicesPerBlock(sliceBytes);
  const all = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  for (let k0 = 0; k0 < grid.dims[2]; k0 += perBlock) {
    const k1 = Math.min(grid.dims[2], k0 + perBlock);
    await slicesReady?.(k1);
    yield all.subarray(k0 * sliceBytes, k1 * sliceBytes);
  }
}

/**
 * Blocks of whole slices filled by the source. A block is still being compressed while later ones
 * are filled, so the buffers go round a ring of `ring` (see writeGzipBlocks for how many it needs).
 */
async function* sourceBlocks(source: NiftiSliceSource, ring: number): AsyncGenerator<Buffer> {
  const [nx, ny, nz] = source.grid.dims;
  const sliceBytes = nx * ny * DATATYPES[source.datatype].array.BYTES_PER_ELEMENT;
  const perBlock = slicesPerBlock(sliceBytes);
  const buffers: Buffer[] = [];
  for (let k0 = 0, n = 0; k0 < nz; k0 += perBlock, n++) {
    const count = Math.min(perBlock, nz - k0);
    if (buffers.length < ring) buffers.push(Buffer.allocUnsafe(perBlock * sliceBytes));
    const block = buffers[n % ring].subarray(0, count * sliceBytes);
    for (let m = 0; m < count; m++) source.slice(k0 + m, block.subarray(m * sliceBytes, (m + 1) * sliceBytes));
    yield block;
  }
}

async function* prepend<T>(first: T, rest: AsyncIterable<T>): AsyncGenerator<T> {
  yield first;
  yield* rest;
}

/**
 * Writes one gzip member whose deflate stream is made of independently compressed blocks, up to
 * `concurrency` at a time on the libuv threadpool, so a large CT compresses on every core while the
 * caller's thread does other work. Each block but the last ends with a sync flush (byte aligned, not
 * final) and starts with the previous block's last 32 KiB as its dictionary, so the result is one
 * ordinary deflate stream, about as small as a serial one (the pigz scheme). The CRC-32 is computed
 * here, block by block, in order.
 *
 * A finished block frees its slot at once (in the same turn of the event loop as its completion),
 * and the next block goes out then; the compressed blocks are written to the file in order on a
 * chain of their own. So a thread that is busy between short pauses still keeps every slot filled.
 *
 * A block is fetched from `blocks` one step ahead (to know which is last) and stays in use until its
 * deflate is done: at most `concurrency` + 2 blocks are alive at once, so a source may recycle its
 * buffers on a ring of that many. `blocks` holds at least one block (the NIfTI header).
 */
async function writeGzipBlocks(file: FileHandle, blocks: AsyncIterable<Uint8Array>, zlibOptions: ZlibOptions, concurrency: number): Promise<void> {
  await file.write(gzipHeader(zlibOptions.level ?? zlibConstants.Z_DEFAULT_COMPRESSION));
  let writes: Promise<unknown> = Promise.resolve();
  let active = 0;
  let failed = false;
  let slotFreed: (() => void) | undefined;
  const dispatch = (block: Uint8Array, options: ZlibOptions) => {
    active++;
    const compressed = deflateBlock(block, options).finally(() => {
      active--;
      slotFreed?.();
    });
    writes = handled(writes.then(async () => file.write(await compressed)));
    writes.catch(() => (failed = true));
  };
  let crc = 0;
  let size = 0;
  let previous: Uint8Array | undefined;
  const it = blocks[Symbol.asyncIterator]();
  try {
    let next = await it.next();
    while (!next.done && !failed) {
      const block = next.value;
      next = await it.next();
      while (active >= concurrency) await new Promise<void>((resolve) => (slotFreed = resolve));
      const options: ZlibOptions = { ...zlibOptions, finishFlush: next.done ? zlibConstants.Z_FINISH : zlibConstants.Z_SYNC_FLUSH };
      if (previous) options.dictionary = previous.subarray(Math.max(0, previous.length - WINDOW_BYTES));
      dispatch(block, options);
      crc = crc32(block, crc);
      size += block.length;
      previous = block;
    }
  } catch (e) {
    // The source failed (e.g. a slice could not be read): let the writes in flight end before the
    // caller closes the file.
    await writes.catch(() => undefined);
    throw e;
  }
  await writes; // the first failure, if any, is thrown here
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(size % 2 ** 32, 4);
  await file.write(trailer);
}

/** Marks a promise as handled (its error still reaches whoever awaits it), so that a failure while
 *  nothing awaits it yet is not an unhandled rejection. */
function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/**
 * Deflates one block in one threadpool job, so that it costs a single turn of this thread's event
 * loop (which may be busy segmenting in between): the block is written with its final flush as the
 * stream's flush mode, so that one write returns all of its output, and the stream is then closed
 * rather than ended (ending would queue one more, empty, job). The output chunk is sized for the
 * whole output: about half a CT block, a small fraction of a mask block (more output only costs
 * another job).
 */
function deflateBlock(block: Uint8Array, options: ZlibOptions): Promise<Buffer> {
  const expected = options.strategy === zlibConstants.Z_RLE ? block.length >> 4 : (block.length * 5) >> 3;
  const { finishFlush, ...rest } = options;
  const stream = createDeflateRaw({ ...rest, flush: finishFlush ?? zlibConstants.Z_FINISH, chunkSize: expected + (64 << 10) });
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('error', reject);
    // A transform completes a write only once its output has been taken (by the 'data' listener).
    stream.write(block, (e) => {
      stream.close();
      if (e) reject(e);
      else resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
    });
  });
}

/** RFC 1952 header: deflate, no name, no time, XFL 4 (fastest) or 2 (best) as zlib sets it, OS Unix. */
function gzipHeader(level: number): Buffer {
  const xfl = level === 9 ? 2 : level === 1 ? 4 : 0;
  return Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3]);
}

function datatypeOf(data: WritableData): NiftiDatatype {
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Uint16Array) return 'uint16';
  if (data instanceof Uint8Array) return 'uint8';
  return 'float32';
}

function niftiHeader(grid: Grid, datatype: NiftiDatatype, description: string): Buffer {
  const h = Buffer.alloc(VOX_OFFSET);
  h.writeInt32LE(HEADER_SIZE, 0);
  h.write('r', 38, 'latin1'); // "regular": NIfTI keeps it for Analyze 7.5 readers
  [3, ...grid.dims, 1, 1, 1, 1].forEach((d, n) => h.writeInt16LE(d, 40 + 2 * n));
  h.writeInt16LE(DATATYPES[datatype].code, 70);
  h.writeInt16LE(DATATYPES[datatype].array.BYTES_PER_ELEMENT * 8, 72);
  const affine = gridToRasAffine(grid);
  const q = affineToQuatern(affine);
  [q.qfac, ...grid.spacingMm].forEach((v, n) => h.writeFloatLE(v, 76 + 4 * n));
  h.writeFloatLE(VOX_OFFSET, 108);
  h.writeFloatLE(1, 112); // scl_slope: stored values are the real values
  h.writeUInt8(UNITS_MM, 123);
  h.write(description.slice(0, 79), 148, 79, 'latin1');
  h.writeInt16LE(XFORM_SCANNER_ANAT, 252);
  h.writeInt16LE(XFORM_SCANNER_ANAT, 254);
  [q.b, q.c, q.d, affine[0][3], affine[1][3], affine[2][3]].forEach((v, n) => h.writeFloatLE(v, 256 + 4 * n));
  for (let r = 0; r < 3; r++) affine[r].forEach((v, c) => h.writeFloatLE(v, 280 + 16 * r + 4 * c));
  h.write('n+1\0', 344, 'latin1');
  return h;
}

interface ParsedHeader {
  dims: [number, number, number];
  datatype: NiftiDatatype;
  voxOffset: number;
  sclSlope: number;
  sclInter: number;
  affine: Affine;
}

function parseHeader(h: Buffer): ParsedHeader {
  const size = h.readInt32LE(0);
  if (size !== HEADER_SIZE) {
    const why = h.readInt32BE(0) === HEADER_SIZE ? 'big-endian NIfTI is not supported' : size === 540 ? 'NIfTI-2 is not supported' : 'not a NIfTI-1 file';
    throw new NiftiError(`${why} (sizeof_hdr ${size})`);
  }
  const magic = h.toString('latin1', 344, 348);
  if (magic !== 'n+1\0') throw new NiftiError(`magic ${JSON.stringify(magic)}: only single-file NIfTI-1 ("n+1") is supported`);
  const dim = [0, 1, 2, 3, 4, 5, 6, 7].map((n) => h.readInt16LE(40 + 2 * n));
  if (dim[0] < 1 || dim[0] > 7 || dim.slice(4, dim[0] + 1).some((d) => d !== 1)) throw new NiftiError(`only 3-D images are supported (dim ${dim.join(',')})`);
  const dims = [1, 2, 3].map((n) => (n <= dim[0] ? dim[n] : 1)) as [number, number, number];
  if (!dims.every((d) => d > 0)) throw new NiftiError(`invalid dimensions ${dims.join('x')}`);
  const code = h.readInt16LE(70);
  const datatype = (Object.keys(DATATYPES) as NiftiDatatype[]).find((t) => DATATYPES[t].code === code);
  if (!datatype) throw new NiftiError(`NIfTI datatype ${code} is not supported`);
  const voxOffset = h.readFloatLE(108);
  if (!(voxOffset >= VOX_OFFSET) || !Number.isInteger(voxOffset)) throw new NiftiError(`invalid vox_offset ${voxOffset}`);
  const slope = h.readFloatLE(112);
  // Per the standard a zero (or non-finite) slope means the stored values are not scaled.
  const scaled = Number.isFinite(slope) && slope !== 0;
  return { dims, datatype, voxOffset, sclSlope: scaled ? slope : 1, sclInter: scaled ? h.readFloatLE(116) : 0, affine: headerAffine(h) };
}

function headerAffine(h: Buffer): Affine {
  const pixdim = [0, 1, 2, 3].map((n) => h.readFloatLE(76 + 4 * n));
  if (h.readInt16LE(254) > 0) {
    const rows = [0, 1, 2].map((r) => [0, 1, 2, 3].map((c) => h.readFloatLE(280 + 16 * r + 4 * c)));
    return [...rows, [0, 0, 0, 1]];
  }
  if (h.readInt16LE(252) > 0) {
    const [b, c, d, x, y, z] = [0, 1, 2, 3, 4, 5].map((n) => h.readFloatLE(256 + 4 * n));
    return quaternToAffine({ b, c, d, qfac: pixdim[0] < 0 ? -1 : 1 }, pixdim.slice(1) as Vec3, [x, y, z]);
  }
  // "Method 1" (Analyze): spacing only, orientation unknown; RAS axes is the conventional guess.
  return [[pixdim[1], 0, 0, 0], [0, pixdim[2], 0, 0], [0, 0, pixdim[3], 0], [0, 0, 0, 1]];
}

export interface Quatern {
  b: number;
  c: number;
  d: number;
  qfac: 1 | -1;
}

/** Rotation part of an orthogonal affine as a unit quaternion (nifti_mat44_to_quatern); a
 *  left-handed affine is made proper by flipping k, recorded in qfac (pixdim[0]). */
export function affineToQuatern(affine: Affine): Quatern {
  const R = [0, 1, 2].map((r) => [0, 1, 2].map((c) => affine[r][c] / Math.hypot(affine[0][c], affine[1][c], affine[2][c])));
  const det = R[0][0] * (R[1][1] * R[2][2] - R[1][2] * R[2][1]) - R[0][1] * (R[1][0] * R[2][2] - R[1][2] * R[2][0]) + R[0][2] * (R[1][0] * R[2][1] - R[1][1] * R[2][0]);
  const qfac = det < 0 ? -1 : 1;
  if (qfac < 0) for (const row of R) row[2] = -row[2];
  const [[r11, r12, r13], [r21, r22, r23], [r31, r32, r33]] = R;
  let a = r11 + r22 + r33 + 1;
  let b: number, c: number, d: number;
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a);
    b = (0.25 * (r32 - r23)) / a;
    c = (0.25 * (r13 - r31)) / a;
    d = (0.25 * (r21 - r12)) / a;
  } else {
    const xd = 1 + r11 - (r22 + r33);
    const yd = 1 + r22 - (r11 + r33);
    const zd = 1 + r33 - (r11 + r22);
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd);
      c = (0.25 * (r12 + r21)) / b;
      d = (0.25 * (r13 + r31)) / b;
      a = (0.25 * (r32 - r23)) / b;
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd);
      b = (0.25 * (r12 + r21)) / c;
      d = (0.25 * (r23 + r32)) / c;
      a = (0.25 * (r13 - r31)) / c;
    } else {
      d = 0.5 * Math.sqrt(zd);
      b = (0.25 * (r13 + r31)) / d;
      c = (0.25 * (r23 + r32)) / d;
      a = (0.25 * (r21 - r12)) / d;
    }
    // a is implied positive by the format (it is recomputed from b, c, d).
    if (a < 0) [b, c, d] = [-b, -c, -d];
  }
  return { b, c, d, qfac };
}

/** nifti_quatern_to_mat44. */
export function quaternToAffine(q: Quatern, spacing: Vec3, offset: Vec3): Affine {
  let { b, c, d } = q;
  let a = 1 - (b * b + c * c + d * d);
  if (a < 1e-7) {
    // Float rounding can leave |(b,c,d)| a hair over 1: renormalise, a 180-degree rotation.
    const n = 1 / Math.hypot(b, c, d);
    [a, b, c, d] = [0, b * n, c * n, d * n];
  } else a = Math.sqrt(a);
  const s = [spacing[0] > 0 ? spacing[0] : 1, spacing[1] > 0 ? spacing[1] : 1, (spacing[2] > 0 ? spacing[2] : 1) * q.qfac];
  const R = [
    [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
    [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
    [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
  ];
  return [...R.map((row, r) => [...row.map((v, col) => v * s[col]), offset[r]]), [0, 0, 0, 1]];
}

function isGzipPath(path: string): boolean {
  return path.toLowerCase().endsWith('.gz');
}

async function isGzipFile(path: string): Promise<boolean> {
  const file = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await file.read(Buffer.alloc(2), 0, 2, 0);
    return bytesRead === 2 && buffer[0] === 0x1f && buffer[1] === 0x8b;
  } finally {
    await file.close();
  }
}

/** A gunzip stream whose errors (including the file's) surface through iteration. */
function gunzipped(path: string): Readable {
  const gunzip = createGunzip();
  // Errors destroy `gunzip` with the error, which the for-await rethrows; nothing else to do here.
  void pipeline(createReadStream(path), gunzip).catch(() => undefined);
  return gunzip;
}
