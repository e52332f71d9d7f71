/**
 * Reads a CT Image Storage series (one Part 10 file per slice) into a HU volume.
 *
 * Two passes: the headers of all files (their first bytes) give the geometry and the slice order,
 * then each slice's pixels are read straight into their place in the volume and rescaled there. Peak
 * memory is the volume plus one file (a compressed one), and the first slices can be used (written
 * to the CT's NIfTI) while the rest are read.
 *
 * Compressed slices (JPEG Lossless, JPEG-LS, JPEG 2000, HTJ2K, RLE) are decoded one at a time by the
 * WebAssembly codecs of dcmjs-codecs, through dcmjs-dimse's Transcoding. The codecs are loaded the
 * first time a compressed file is met, so an uncompressed series never pays for them.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import { CtSeriesError, planCtVolume, rescaleInto, type CtSliceHeader, type CtSliceInput } from '../geometry/ct-volume.js';
import type { Vec3, Volume } from '../geometry/types.js';
import { readPart10Meta } from './header.js';
import { SOP_CLASS } from './sop-classes.js';
import { TS } from './transfer-syntax.js';

// dcmjs ships no type declarations; this is the slice of its API we use.
type DicomJson = Record<string, unknown>;
interface DcmjsData {
  DicomMessage: { readFile(buffer: ArrayBuffer): { dict: DicomJson } };
  DicomMetaDictionary: { naturalizeDataset(dict: DicomJson): Record<string, unknown> };
}
// dcmjs and dcmjs-dimse are loaded on first use: only compressed slices need them, and loading them
// costs a node process ~0.1 s.
let dcmjs: DcmjsData | undefined;
const dcmjsData = (): DcmjsData => (dcmjs ??= (createRequire(import.meta.url)('dcmjs') as { data: DcmjsData }).data);
let dimse: typeof import('dcmjs-dimse') | undefined;
const dimseLib = (): typeof import('dcmjs-dimse') => {
  if (!dimse) {
    dimse = createRequire(import.meta.url)('dcmjs-dimse') as typeof import('dcmjs-dimse');
    // As in scp.ts/scu.ts: dcmjs-dimse would otherwise log every transcode at info level to stdout.
    dimse.log.setLevel('silent');
  }
  return dimse;
};

// Pixel values are viewed in place as 16-bit arrays, which use the host's byte order.
if (endianness() !== 'LE') throw new Error('ct-series-reader assumes a little-endian host');

/** Native little-endian pixel data, which dcmjs hands back as raw bytes. Big endian (retired) and
 *  deflated are not accepted by the node, so they are not handled here either. */
const NATIVE_SYNTAXES = new Set<string>([TS.ImplicitVRLittleEndian, TS.ExplicitVRLittleEndian]);
const NATIVE_UNSUPPORTED = new Set<string>([TS.ExplicitVRBigEndian, TS.DeflatedExplicitVRLittleEndian]);

/** Encapsulated syntaxes decoded here, mapped to the syntax the codec is asked to decode them as.
 *  dcmjs-codecs only names Process 14 SV1 (.70); its lossless JPEG decoder reads the predictor from
 *  the bitstream, so Process 14 with any selection value (.57) decodes through it too. JPEG baseline
 *  and extended (.50/.51, lossy, 8/12-bit) stay refused: the codecs' baseline decoder is 8-bit only
 *  and returns garbage for 12-bit extended data, and baseline cannot hold 16-bit-allocated CT. */
const DECODE_AS = new Map<string, string>([
  [TS.Rle, TS.Rle],
  [TS.JpegLossless, TS.JpegLosslessSV1],
  [TS.JpegLosslessSV1, TS.JpegLosslessSV1],
  [TS.JpegLsLossless, TS.JpegLsLossless],
  [TS.JpegLsNearLossless, TS.JpegLsNearLossless],
  [TS.Jpeg2000Lossless, TS.Jpeg2000Lossless],
  [TS.Jpeg2000, TS.Jpeg2000],
  [TS.HtJpeg2000Lossless, TS.HtJpeg2000Lossless],
  [TS.HtJpeg2000LosslessRpcl, TS.HtJpeg2000LosslessRpcl],
  [TS.HtJpeg2000, TS.HtJpeg2000],
]);

/** A CT volume plus the SOP Instance UID of each slice k (what an RTSTRUCT's contours reference). */
export interface CtSeries extends Volume<Int16Array> {
  sliceSopInstanceUids: string[];
}

export async function readCtSeries(files: string[]): Promise<CtSeries> {
  return (await openCtSeries(files)).done;
}

/** A CT series whose geometry is known and whose voxels are being read, slice after slice. */
export interface CtSeriesReading {
  /** The series; `data` fills in slice order (k = 0, 1, ...) until `done` resolves. */
  series: CtSeries;
  /** Resolves once slices 0 .. k-1 hold their HU; rejects if the reading fails. */
  slicesReady(k: number): Promise<void>;
  /** Resolves with the series once every slice is in. */
  done: Promise<CtSeries>;
}

/** Slices read between two turns of the event loop. */
const SLICES_PER_TURN = 4;

/**
 * Reads every file's header (from its first bytes), checks the series and plans the volume, then
 * reads the pixels in slice order straight into the volume, letting the event loop run every few
 * slices: a consumer such as the CT's NIfTI can start on the first slices while the rest are read.
 * Peak memory is the volume plus one file's bytes (a compressed one).
 */
export async function openCtSeries(files: string[]): Promise<CtSeriesReading> {
  if (files.length === 0) throw new CtSeriesError('CT series has no files');
  const reader = new SliceReader();
  const slices: SliceFile[] = [];
  for (const file of files) {
    const slice = reader.header(file);
    const first = slices[0] ?? slice;
    if (slice.seriesInstanceUid !== first.seriesInstanceUid) {
      throw new CtSeriesError(`${file} (${slice.header.sopInstanceUid}) belongs to series ${slice.seriesInstanceUid}, not ${first.seriesInstanceUid}`);
    }
    if (slice.header.rows !== first.header.rows || slice.header.columns !== first.header.columns) {
      const [a, b] = [slice.header, first.header];
      throw new CtSeriesError(`slice ${a.sopInstanceUid} is ${a.rows}x${a.columns}, slice ${b.sopInstanceUid} is ${b.rows}x${b.columns}`);
    }
    slices.push(slice);
  }
  const { grid, order } = planCtVolume(slices.map((s) => withoutRescale(s.header)));
  const sliceLength = grid.dims[0] * grid.dims[1];
  const series: CtSeries = { grid, data: new Int16Array(sliceLength * order.length), sliceSopInstanceUids: order.map((i) => slices[i].header.sopInstanceUid) };
  const progress = new SliceProgress();
  const done = (async () => {
    for (const [k, i] of order.entries()) {
      await reader.pixels(slices[i], series.data, k * sliceLength);
      progress.advance(k + 1);
      if ((k + 1) % SLICES_PER_TURN === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return series;
  })();
  done.catch((e: unknown) => progress.fail(e));
  return { series, slicesReady: (k) => progress.reached(k), done };
}

/** The geometry of each CT slice file from its first bytes, without its pixels (checks that need
 *  positions, not voxels: the RTSTRUCT validation before a result leaves). */
export function readCtSliceHeaders(files: readonly string[]): CtSliceHeader[] {
  const reader = new SliceReader();
  return files.map((file) => reader.header(file).header);
}

/** How many slices are in, and who waits for more. */
class SliceProgress {
  private filled = 0;
  private failure: { error: unknown } | undefined;
  private waiters: { k: number; resolve: () => void; reject: (e: unknown) => void }[] = [];

  reached(k: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure.error);
    if (k <= this.filled) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ k, resolve, reject }));
  }

  advance(filled: number): void {
    this.filled = filled;
    this.waiters = this.waiters.filter((w) => (w.k <= filled ? (w.resolve(), false) : true));
  }

  fail(error: unknown): void {
    this.failure = { error };
    for (const w of this.waiters) w.reject(error);
    this.waiters = [];
  }
}

/** One slice file after its header was read: where its pixels are and how they are encoded. */
interface SliceFile {
  file: string;
  header: RescaleHeader;
  seriesInstanceUid: string;
  transferSyntaxUid: string;
  /** The syntax to decode compressed pixels as; undefined for native pixels. */
  decodeAs: string | undefined;
  /** File offset and length of native pixel data. */
  pixelOffset: number;
  pixelLength: number;
}

/** The first bytes of a file read to find its header; more are read when the header is longer. */
const HEAD_BYTES = 16 << 10;

/**
 * Reads CT slice files through one reused buffer: first the header of each (its first bytes), then
 * its pixels, straight from the file into their place in the volume, so a series costs no
 * allocation per file and no copy beyond the read itself. The reads are synchronous: a few hundred
 * small reads from the page cache cost less than as many threadpool round trips, and the job runs in
 * a worker thread of its own. Compressed pixels are decoded by the codecs through dcmjs.
 */
class SliceReader {
  private head = Buffer.allocUnsafe(HEAD_BYTES);

  header(file: string): SliceFile {
    const fd = openFile(file);
    try {
      let bytesRead = readSync(fd, this.head, 0, this.head.length, 0);
      const meta = parse(file, () => readPart10Meta(this.head.subarray(0, bytesRead)));
      const decodeAs = checkTransferSyntax(file, meta.transferSyntaxUid);
      // Encapsulated (compressed) syntaxes encode the dataset itself in explicit VR little endian.
      const explicit = meta.transferSyntaxUid !== TS.ImplicitVRLittleEndian;
      for (;;) {
        try {
          const complete = bytesRead < this.head.length;
          const scan = parse(file, () => scanNative(this.head.subarray(0, bytesRead), meta.datasetOffset, explicit, complete));
          const { header, seriesInstanceUid, fail } = sliceHeader(file, scan.dataset);
          if (!decodeAs) {
            const bytes = header.rows * header.columns * 2;
            if (scan.pixelOffset < 0) throw fail('PixelData is missing or not native');
            if (scan.pixelLength < bytes) throw fail(`PixelData has ${scan.pixelLength} bytes, expected ${bytes}`);
          }
          const { pixelOffset, pixelLength } = scan;
          return { file, header, seriesInstanceUid, transferSyntaxUid: meta.transferSyntaxUid, decodeAs, pixelOffset, pixelLength };
        } catch (e) {
          if (!(e instanceof NeedMoreBytes)) throw e;
          this.head = Buffer.allocUnsafe(this.head.length * 2);
          bytesRead = readSync(fd, this.head, 0, this.head.length, 0);
        }
      }
    } finally {
      closeSync(fd);
    }
  }

  /** Reads the slice's pixels into `volume` from `offset` on, as HU. */
  async pixels(slice: SliceFile, volume: Int16Array, offset: number): Promise<void> {
    const { header } = slice;
    const count = header.rows * header.columns;
    if (slice.decodeAs) {
      const pixels = await decodeFile(slice.file, slice.transferSyntaxUid, slice.decodeAs, count);
      rescaleInto(volume, offset, { ...header, pixels });
      return;
    }
    const target = new Uint8Array(volume.buffer, volume.byteOffset + offset * 2, count * 2);
    const fd = openFile(slice.file);
    try {
      for (let filled = 0; filled < target.length; ) {
        const n = readSync(fd, target, filled, target.length - filled, slice.pixelOffset + filled);
        if (n === 0) throw new CtSeriesError(`${slice.file} (${header.sopInstanceUid}): truncated: PixelData has ${filled} of ${target.length} bytes`);
        filled += n;
      }
    } finally {
      closeSync(fd);
    }
    // Rescaled in place: each stored value is read before its HU is written over it.
    const pixels = header.pixelRepresentation === 1 ? new Int16Array(target.buffer, target.byteOffset, count) : new Uint16Array(target.buffer, target.byteOffset, count);
    rescaleInto(volume, offset, { ...header, pixels });
  }
}

function openFile(file: string): number {
  try {
    return openSync(file, 'r');
  } catch (e) {
    throw new CtSeriesError(`${file}: cannot open: ${(e as Error).message}`);
  }
}

/** A slice's header with what rescaling needs. */
type RescaleHeader = Omit<CtSliceInput, 'pixels'>;

function withoutRescale(h: RescaleHeader): CtSliceHeader {
  const { rescaleSlope: _s, rescaleIntercept: _i, pixelRepresentation: _p, ...header } = h;
  return header;
}

/** Decodes a compressed slice file's pixel data to native stored values. */
async function decodeFile(file: string, uid: string, decodeAs: string, count: number): Promise<Uint16Array> {
  const bytes = await readFile(file);
  await loadCodecs(file, uid);
  const { DicomMessage, DicomMetaDictionary } = dcmjsData();
  const ds = parse(file, () => DicomMetaDictionary.naturalizeDataset(DicomMessage.readFile(ownedArrayBuffer(bytes)).dict));
  const sopInstanceUid = text(ds, 'SOPInstanceUID') || file;
  return decodePixelData(ds, uid, decodeAs, count, (what) => new CtSeriesError(`${file} (${sopInstanceUid}): ${what}`));
}

/** Validates the attributes of one CT slice, from dcmjs's naturalised dataset or scanNative's. */
function sliceHeader(file: string, ds: Record<string, unknown>): { header: RescaleHeader; seriesInstanceUid: string; fail: (what: string) => Error } {
  const sopInstanceUid = text(ds, 'SOPInstanceUID') || file;
  const fail = (what: string) => new CtSeriesError(`${file} (${sopInstanceUid}): ${what}`);
  if (text(ds, 'SOPClassUID') !== SOP_CLASS.CtImage) throw fail(`not a CT Image Storage instance (SOP class ${text(ds, 'SOPClassUID') || 'missing'})`);
  if ((numbers(ds, 'NumberOfFrames')[0] ?? 1) !== 1) throw fail('multi-frame CT is not supported');
  if ((numbers(ds, 'SamplesPerPixel')[0] ?? 1) !== 1) throw fail('CT must have one sample per pixel');
  const bitsAllocated = numbers(ds, 'BitsAllocated')[0];
  if (bitsAllocated !== 16) throw fail(`BitsAllocated ${bitsAllocated ?? 'missing'} is not supported (only 16)`);
  const header: RescaleHeader = {
    sopInstanceUid,
    imagePositionPatient: required(ds, 'ImagePositionPatient', 3, fail) as Vec3,
    imageOrientationPatient: required(ds, 'ImageOrientationPatient', 6, fail),
    pixelSpacing: required(ds, 'PixelSpacing', 2, fail) as [number, number],
    rows: required(ds, 'Rows', 1, fail)[0],
    columns: required(ds, 'Columns', 1, fail)[0],
    sliceThickness: numbers(ds, 'SliceThickness')[0],
    // Both are Type 1 in the CT Image module; the defaults only rescue non-conformant files harmlessly.
    rescaleSlope: numbers(ds, 'RescaleSlope')[0] ?? 1,
    rescaleIntercept: numbers(ds, 'RescaleIntercept')[0] ?? 0,
    pixelRepresentation: numbers(ds, 'PixelRepresentation')[0] === 1 ? 1 : 0,
  };
  return { header, seriesInstanceUid: text(ds, 'SeriesInstanceUID'), fail };
}

// ---------------------------------------------------------------------------------------------
// Native (uncompressed little endian) datasets

/** The top-level attributes a CT slice needs, by tag, with the keyword sliceHeader reads them by. */
const NATIVE_ATTRIBUTES = new Map<number, string>([
  [0x00080016, 'SOPClassUID'],
  [0x00080018, 'SOPInstanceUID'],
  [0x00180050, 'SliceThickness'],
  [0x0020000e, 'SeriesInstanceUID'],
  [0x00200032, 'ImagePositionPatient'],
  [0x00200037, 'ImageOrientationPatient'],
  [0x00280002, 'SamplesPerPixel'],
  [0x00280008, 'NumberOfFrames'],
  [0x00280010, 'Rows'],
  [0x00280011, 'Columns'],
  [0x00280030, 'PixelSpacing'],
  [0x00280100, 'BitsAllocated'],
  [0x00280103, 'PixelRepresentation'],
  [0x00281052, 'RescaleIntercept'],
  [0x00281053, 'RescaleSlope'],
]);
/** Binary 16-bit attributes among them: their VR in an implicit VR dataset. */
const US_ATTRIBUTES = new Set([0x00280002, 0x00280010, 0x00280011, 0x00280100, 0x00280103]);
const PIXEL_DATA = 0x7fe00010;
const ITEM = 0xfffee000;
const ITEM_DELIMITATION = 0xfffee00d;
const SEQUENCE_DELIMITATION = 0xfffee0dd;
const UNDEFINED_LENGTH = 0xffffffff;
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/** Thrown when the bytes end before the pixel data starts: the caller reads more. */
class NeedMoreBytes extends Error {}

interface NativeScan {
  /** The wanted attributes: strings (several values as an array) or numbers for US. */
  dataset: Record<string, unknown>;
  /** File offset and length of the native PixelData value; offset -1 when there is none. */
  pixelOffset: number;
  pixelLength: number;
}

/**
 * Walks the top-level elements of a little endian dataset from `start` up to PixelData, keeping
 * the attributes in NATIVE_ATTRIBUTES. `complete` says `buf` is the whole file, so running out of
 * bytes means there is no pixel data rather than NeedMoreBytes.
 */
function scanNative(buf: Buffer, start: number, explicit: boolean, complete: boolean): NativeScan {
  const dataset: Record<string, unknown> = {};
  let pos = start;
  const need = (n: number) => {
    if (pos + n > buf.length) {
      if (complete) throw new Error(`dataset ends inside an element at byte ${pos}`);
      throw new NeedMoreBytes();
    }
  };
  while (pos < buf.length || !complete) {
    need(8);
    const tag = ((buf.readUInt16LE(pos) << 16) | buf.readUInt16LE(pos + 2)) >>> 0;
    let vr: string | null = null;
    let length: number;
    if (explicit) {
      vr = buf.toString('latin1', pos + 4, pos + 6);
      if (LONG_VRS.has(vr)) {
        need(12);
        length = buf.readUInt32LE(pos + 8);
        pos += 12;
      } else {
        if (!/^[A-Z]{2}$/.test(vr)) throw new Error(`invalid VR bytes at offset ${pos + 4} for tag ${hex(tag)}`);
        length = buf.readUInt16LE(pos + 6);
        pos += 8;
      }
    } else {
      length = buf.readUInt32LE(pos + 4);
      pos += 8;
    }
    if (tag === PIXEL_DATA) {
      // Encapsulated pixel data in a native syntax is not native.
      return length === UNDEFINED_LENGTH ? { dataset, pixelOffset: -1, pixelLength: 0 } : { dataset, pixelOffset: pos, pixelLength: length };
    }
    if (length === UNDEFINED_LENGTH) {
      pos = skipItems(buf, pos, explicit && vr !== 'UN', complete, 0);
      continue;
    }
    const keyword = NATIVE_ATTRIBUTES.get(tag);
    if (keyword) {
      need(length);
      const binary = vr === null ? US_ATTRIBUTES.has(tag) : vr === 'US' || vr === 'SS';
      dataset[keyword] = binary ? readShort(buf, pos, length, vr === 'SS') : textValue(buf, pos, length);
    }
    pos += length;
  }
  return { dataset, pixelOffset: -1, pixelLength: 0 };
}

/** Skips the items of an undefined-length value (a sequence, or UN holding one) up to its delimiter. */
function skipItems(buf: Buffer, pos: number, explicit: boolean, complete: boolean, depth: number): number {
  if (depth > 32) throw new Error('sequences nested deeper than 32 levels');
  for (;;) {
    if (pos + 8 > buf.length) {
      if (complete) throw new Error('dataset ends inside a sequence');
      throw new NeedMoreBytes();
    }
    const tag = ((buf.readUInt16LE(pos) << 16) | buf.readUInt16LE(pos + 2)) >>> 0;
    const length = buf.readUInt32LE(pos + 4);
    pos += 8;
    if (tag === SEQUENCE_DELIMITATION) return pos;
    if (tag !== ITEM) throw new Error(`expected an item in a sequence at byte ${pos - 8}, found ${hex(tag)}`);
    pos = length === UNDEFINED_LENGTH ? skipItemDataset(buf, pos, explicit, complete, depth + 1) : pos + length;
  }
}

/** Skips the elements of an undefined-length item up to its item delimiter. */
function skipItemDataset(buf: Buffer, pos: number, explicit: boolean, complete: boolean, depth: number): number {
  for (;;) {
    if (pos + 8 > buf.length) {
      if (complete) throw new Error('dataset ends inside a sequence item');
      throw new NeedMoreBytes();
    }
    const tag = ((buf.readUInt16LE(pos) << 16) | buf.readUInt16LE(pos + 2)) >>> 0;
    if (tag === ITEM_DELIMITATION) return pos + 8;
    let vr: string | null = null;
    let length: number;
    if (explicit) {
      vr = buf.toString('latin1', pos + 4, pos + 6);
      if (LONG_VRS.has(vr)) {
        if (pos + 12 > buf.length) throw complete ? new Error('dataset ends inside an element') : new NeedMoreBytes();
        length = buf.readUInt32LE(pos + 8);
        pos += 12;
      } else {
        length = buf.readUInt16LE(pos + 6);
        pos += 8;
      }
    } else {
      length = buf.readUInt32LE(pos + 4);
      pos += 8;
    }
    pos = length === UNDEFINED_LENGTH ? skipItems(buf, pos, explicit && vr !== 'UN', complete, depth + 1) : pos + length;
  }
}

function readShort(buf: Buffer, pos: number, length: number, signed: boolean): number | number[] {
  const values: number[] = [];
  for (let at = pos; at + 2 <= pos + length; at += 2) values.push(signed ? buf.readInt16LE(at) : buf.readUInt16LE(at));
  return values.length === 1 ? values[0] : values;
}

/** A string value without its padding; several values as an array, as dcmjs gives them. */
function textValue(buf: Buffer, pos: number, length: number): string | string[] {
  const raw = buf.toString('latin1', pos, pos + length).replace(/[\0 ]+$/, '');
  return raw.includes('\\') ? raw.split('\\') : raw;
}

function hex(tag: number): string {
  return `(${(tag >>> 16).toString(16).padStart(4, '0')},${(tag & 0xffff).toString(16).padStart(4, '0')})`.toUpperCase();
}

/** Names the file when a parser fails, which otherwise says nothing about which slice was bad. */
function parse<T>(file: string, read: () => T): T {
  try {
    return read();
  } catch (e) {
    if (e instanceof NeedMoreBytes) throw e; // not an error: the caller reads more of the file
    throw new CtSeriesError(`${file}: not a readable DICOM Part 10 file: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Returns the syntax to decode a compressed file as, or undefined for native pixel data. */
function checkTransferSyntax(file: string, uid: string): string | undefined {
  if (NATIVE_SYNTAXES.has(uid)) return undefined;
  const decodeAs = DECODE_AS.get(uid);
  if (decodeAs) return decodeAs;
  const label = syntaxLabel(uid);
  if (NATIVE_UNSUPPORTED.has(uid)) throw new CtSeriesError(`${file}: transfer syntax ${label} is not supported for CT; send it as explicit or implicit VR little endian`);
  throw new CtSeriesError(`${file}: compressed CT is not supported yet (transfer syntax ${label}); send it uncompressed`);
}

function syntaxLabel(uid: string): string {
  const name = Object.entries(TS).find(([, v]) => v === uid)?.[0];
  return name ? `${name} (${uid})` : uid;
}

let codecsLoading: Promise<void> | undefined;

/** Instantiates the codecs' WebAssembly once per process (and again after a failed decode, see
 *  decodePixelData). Concurrent readers share one instantiation. */
async function loadCodecs(file: string, uid: string): Promise<void> {
  const { Transcoding } = dimseLib();
  if (Transcoding.isInitialized()) return;
  codecsLoading ??= Transcoding.initializeAsync().finally(() => {
    codecsLoading = undefined;
  });
  try {
    await codecsLoading;
  } catch (e) {
    throw new CtSeriesError(`${file}: cannot load the codecs to decode transfer syntax ${syntaxLabel(uid)}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Decodes one encapsulated frame into native little endian. Runs synchronously right after
 *  loadCodecs, so nothing can release the codecs in between. */
function decodePixelData(ds: Record<string, unknown>, uid: string, decodeAs: string, count: number, fail: (what: string) => Error): Uint16Array {
  const { Dataset, Transcoding } = dimseLib();
  let decoded: Record<string, unknown>;
  try {
    decoded = Transcoding.transcodeDataset(new Dataset(ds, decodeAs), TS.ExplicitVRLittleEndian).getElements();
  } catch (e) {
    // A corrupt bitstream can trap inside the WebAssembly ("unreachable") and leave its heap in an
    // unknown state, with the buffers of this call never freed: drop the instance, and the next
    // compressed file instantiates a fresh one.
    Transcoding.release();
    throw fail(`cannot decode ${syntaxLabel(uid)} pixel data: ${e instanceof Error ? e.message : String(e)}`);
  }
  return pixelData(decoded, count, fail);
}

/** dcmjs reads from offset 0 of the ArrayBuffer it is given, so a Buffer that is a view into a
 *  larger (pooled) one must be copied out. */
function ownedArrayBuffer(b: Buffer): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) return b.buffer as ArrayBuffer;
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/** Native (or decoded) pixel data arrives as one fragment holding the raw bytes; trailing padding
 *  is ignored. Viewed unsigned: rescaleInto reinterprets it by PixelRepresentation. */
function pixelData(ds: Record<string, unknown>, count: number, fail: (what: string) => Error): Uint16Array {
  const value = ds.PixelData;
  const buffers = Array.isArray(value) ? value : [];
  if (buffers.length !== 1 || !(buffers[0] instanceof ArrayBuffer)) throw fail('PixelData is missing or not native');
  if (buffers[0].byteLength < count * 2) throw fail(`PixelData has ${buffers[0].byteLength} bytes, expected ${count * 2}`);
  return new Uint16Array(buffers[0], 0, count);
}

function text(ds: Record<string, unknown>, key: string): string {
  const v = ds[key];
  return typeof v === 'string' ? v.trim() : Array.isArray(v) && typeof v[0] === 'string' ? v[0].trim() : '';
}

/** dcmjs gives one value as a scalar and several as an array, numbers or (for odd files) strings. */
function numbers(ds: Record<string, unknown>, key: string): number[] {
  const v = ds[key];
  const list = Array.isArray(v) ? v : v === undefined || v === null || v === '' ? [] : [v];
  return list.map((x) => (typeof x === 'number' ? x : Number.parseFloat(String(x))));
}

function required(ds: Record<string, unknown>, key: string, count: number, fail: (what: string) => Error): number[] {
  const values = numbers(ds, key);
  if (values.length !== count || !values.every(Number.isFinite)) throw fail(`${key} must hold ${count} number(s), got ${JSON.stringify(ds[key] ?? null)}`);
  return values;
}
