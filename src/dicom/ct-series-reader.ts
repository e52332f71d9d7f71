/**
 * Reads a CT Image Storage series (one Part 10 file per slice) into a HU volume.
 *
 * Files are parsed one at a time and each slice is rescaled straight into the output volume in file
 * order, then slices are reordered in place: peak memory is the volume plus one parsed file, not a
 * second copy of the series.
 *
 * Compressed slices (JPEG Lossless, JPEG-LS, JPEG 2000, HTJ2K, RLE) are decoded one at a time by the
 * WebAssembly codecs of dcmjs-codecs, through dcmjs-dimse's Transcoding. The codecs are loaded the
 * first time a compressed file is met, so an uncompressed series never pays for them.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import dimse from 'dcmjs-dimse';
import { CtSeriesError, permuteSlices, planCtVolume, rescaleInto, type CtSliceHeader, type CtSliceInput } from '../geometry/ct-volume.js';
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
const { DicomMessage, DicomMetaDictionary } = (createRequire(import.meta.url)('dcmjs') as { data: DcmjsData }).data;

const { Dataset, Transcoding } = dimse;
// As in scp.ts/scu.ts: dcmjs-dimse would otherwise log every transcode at info level to stdout.
dimse.log.setLevel('silent');

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
  if (files.length === 0) throw new CtSeriesError('CT series has no files');
  const headers: CtSliceHeader[] = [];
  let data: Int16Array | undefined;
  let seriesUid: string | undefined;
  for (const [index, file] of files.entries()) {
    const { slice, seriesInstanceUid } = await readSlice(file);
    seriesUid ??= seriesInstanceUid;
    if (seriesInstanceUid !== seriesUid) {
      throw new CtSeriesError(`${file} (${slice.sopInstanceUid}) belongs to series ${seriesInstanceUid}, not ${seriesUid}`);
    }
    const first = headers[0] ?? slice;
    if (slice.rows !== first.rows || slice.columns !== first.columns) {
      throw new CtSeriesError(`slice ${slice.sopInstanceUid} is ${slice.rows}x${slice.columns}, slice ${first.sopInstanceUid} is ${first.rows}x${first.columns}`);
    }
    data ??= new Int16Array(first.rows * first.columns * files.length);
    rescaleInto(data, index * first.rows * first.columns, slice);
    const { pixels: _pixels, ...header } = slice;
    headers.push(header);
  }
  const { grid, order } = planCtVolume(headers);
  permuteSlices(data!, grid.dims[0] * grid.dims[1], order);
  return { grid, data: data!, sliceSopInstanceUids: order.map((i) => headers[i].sopInstanceUid) };
}

async function readSlice(file: string): Promise<{ slice: CtSliceInput; seriesInstanceUid: string }> {
  const bytes = await readFile(file);
  const transferSyntaxUid = parse(file, () => readPart10Meta(bytes)).transferSyntaxUid;
  const decodeAs = checkTransferSyntax(file, transferSyntaxUid);
  if (decodeAs) await loadCodecs(file, transferSyntaxUid);
  const ds = parse(file, () => DicomMetaDictionary.naturalizeDataset(DicomMessage.readFile(ownedArrayBuffer(bytes)).dict));
  const sopInstanceUid = text(ds, 'SOPInstanceUID') || file;
  const fail = (what: string) => new CtSeriesError(`${file} (${sopInstanceUid}): ${what}`);
  if (text(ds, 'SOPClassUID') !== SOP_CLASS.CtImage) throw fail(`not a CT Image Storage instance (SOP class ${text(ds, 'SOPClassUID') || 'missing'})`);
  if ((numbers(ds, 'NumberOfFrames')[0] ?? 1) !== 1) throw fail('multi-frame CT is not supported');
  if ((numbers(ds, 'SamplesPerPixel')[0] ?? 1) !== 1) throw fail('CT must have one sample per pixel');
  const bitsAllocated = numbers(ds, 'BitsAllocated')[0];
  if (bitsAllocated !== 16) throw fail(`BitsAllocated ${bitsAllocated ?? 'missing'} is not supported (only 16)`);
  const rows = required(ds, 'Rows', 1, fail)[0];
  const columns = required(ds, 'Columns', 1, fail)[0];
  const pixels = decodeAs ? decodePixelData(ds, transferSyntaxUid, decodeAs, rows * columns, fail) : pixelData(ds, rows * columns, fail);
  const pixelRepresentation = numbers(ds, 'PixelRepresentation')[0] === 1 ? 1 : 0;
  const slice: CtSliceInput = {
    sopInstanceUid,
    imagePositionPatient: required(ds, 'ImagePositionPatient', 3, fail) as Vec3,
    imageOrientationPatient: required(ds, 'ImageOrientationPatient', 6, fail),
    pixelSpacing: required(ds, 'PixelSpacing', 2, fail) as [number, number],
    rows,
    columns,
    sliceThickness: numbers(ds, 'SliceThickness')[0],
    // Both are Type 1 in the CT Image module; the defaults only rescue non-conformant files harmlessly.
    rescaleSlope: numbers(ds, 'RescaleSlope')[0] ?? 1,
    rescaleIntercept: numbers(ds, 'RescaleIntercept')[0] ?? 0,
    pixels,
    pixelRepresentation,
  };
  return { slice, seriesInstanceUid: text(ds, 'SeriesInstanceUID') };
}

/** Names the file when a parser fails, which otherwise says nothing about which slice was bad. */
function parse<T>(file: string, read: () => T): T {
  try {
    return read();
  } catch (e) {
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
