/**
 * A direct reader for RT Structure Sets (PS3.3 A.19): walks the Part 10 dataset itself and keeps
 * only the elements an RtStruct needs, as byte ranges; Contour Data is then parsed from its bytes
 * straight into Float64Arrays. This replaces dcmjs's generic read + naturalize, which builds a
 * JavaScript string and a number object per coordinate and dominated the DVH step.
 *
 * Results match the dcmjs reader in rtstruct.ts value for value (that reader is the reference and
 * the fallback). One deliberate difference: with Specific Character Set ISO_IR 192, names inside
 * sequences (ROI Name) are decoded as UTF-8 here; dcmjs decodes every nested item as latin1.
 *
 * Handles Explicit and Implicit VR Little Endian (and the encapsulated syntaxes, whose datasets are
 * explicit VR little endian), defined and undefined lengths. Deflate, big endian, other character
 * sets and unexpected VRs on the elements read throw RtStructUnsupported so that the caller can use
 * the general reader instead.
 */
import { HeaderError, NeedMoreBytes, readPart10Meta } from '../dicom/header.js';
import { SOP_CLASS } from '../dicom/sop-classes.js';
import { TS } from '../dicom/transfer-syntax.js';
import type { RtStruct, RtStructContour, RtStructRoi } from './rtstruct.js';
import { RTSTRUCT_TAG } from './rtstruct-tags.js';

/** The file is valid DICOM but encoded in a way this reader leaves to the general (dcmjs) reader. */
export class RtStructUnsupported extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RtStructUnsupported';
  }
}

/** The file's structure is broken: lengths run past the end, items are missing, and so on. */
export class RtStructFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RtStructFormatError';
  }
}

export function parseRtStruct(buf: Buffer): RtStruct {
  let meta;
  try {
    meta = readPart10Meta(buf);
  } catch (e) {
    if (e instanceof NeedMoreBytes) throw new RtStructFormatError(`RTSTRUCT: file of ${buf.length} bytes ends inside its Part 10 header`);
    if (e instanceof HeaderError) throw new RtStructFormatError(`RTSTRUCT: ${e.message}`);
    throw e;
  }
  const ts = meta.transferSyntaxUid;
  if (ts === TS.DeflatedExplicitVRLittleEndian || ts === TS.ExplicitVRBigEndian) {
    throw new RtStructUnsupported(`transfer syntax ${ts} is read by the general reader`);
  }
  // Like dcmjs: every other syntax (the encapsulated ones included) encodes the dataset explicit VR LE.
  const explicit = ts !== TS.ImplicitVRLittleEndian;
  const walker = new DatasetWalker(buf, explicit);
  const ds = walker.dataset(meta.datasetOffset, buf.length, SCHEMA, 0);
  return assemble(ds, new ValueDecoder(buf, characterSet(ds, buf)));
}

// ------------------------------------------------------------------------------ what is read

const T = RTSTRUCT_TAG;

/** The value VRs this reader decodes; also the dictionary VR of each element for implicit VR. */
type ValueVr = 'UI' | 'CS' | 'LO' | 'SH' | 'IS' | 'DS';
const VALUE_VRS = new Set<string>(['UI', 'CS', 'LO', 'SH', 'IS', 'DS']);

/** For each dataset: the elements kept, with their VR, or the schema of a sequence's items. */
interface Schema extends ReadonlyMap<number, ValueVr | Schema> {}
const schema = (entries: [number, ValueVr | Schema][]): Schema => new Map(entries);

const IMAGE_REFERENCE = schema([
  [T.ReferencedSOPClassUID, 'UI'],
  [T.ReferencedSOPInstanceUID, 'UI'],
]);
const SCHEMA = schema([
  [T.SpecificCharacterSet, 'CS'],
  [T.SOPClassUID, 'UI'],
  [T.SOPInstanceUID, 'UI'],
  [T.PatientID, 'LO'],
  [T.StudyInstanceUID, 'UI'],
  [T.SeriesInstanceUID, 'UI'],
  [T.StructureSetLabel, 'SH'],
  [T.ReferencedFrameOfReferenceSequence, schema([
    [T.FrameOfReferenceUID, 'UI'],
    [T.RTReferencedStudySequence, schema([
      [T.ReferencedSOPInstanceUID, 'UI'],
      [T.RTReferencedSeriesSequence, schema([
        [T.SeriesInstanceUID, 'UI'],
        [T.ContourImageSequence, IMAGE_REFERENCE],
      ])],
    ])],
  ])],
  [T.StructureSetROISequence, schema([
    [T.ROINumber, 'IS'],
    [T.ReferencedFrameOfReferenceUID, 'UI'],
    [T.ROIName, 'LO'],
    [T.ROIGenerationAlgorithm, 'CS'],
  ])],
  [T.ROIContourSequence, schema([
    [T.ROIDisplayColor, 'IS'],
    [T.ContourSequence, schema([
      [T.ContourImageSequence, IMAGE_REFERENCE],
      [T.ContourGeometricType, 'CS'],
      [T.ContourData, 'DS'],
    ])],
    [T.ReferencedROINumber, 'IS'],
  ])],
  [T.RTROIObservationsSequence, schema([
    [T.ReferencedROINumber, 'IS'],
    [T.RTROIInterpretedType, 'CS'],
  ])],
]);

// ----------------------------------------------------------------------------- the dataset walk

/** A kept value: its VR and where its bytes are. */
interface ValueRef {
  vr: ValueVr;
  start: number;
  end: number;
}
/** The kept elements of one dataset; a sequence is the list of its items. */
type Item = Map<number, ValueRef | Item[]>;

const ITEM = 0xfffee000;
const ITEM_DELIMITATION = 0xfffee00d;
const SEQUENCE_DELIMITATION = 0xfffee0dd;
const UNDEFINED_LENGTH = 0xffffffff;
const MAX_DEPTH = 32;
/** Explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 Table 7.1-1). */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

class DatasetWalker {
  private pos = 0;

  constructor(
    private readonly buf: Buffer,
    private readonly explicit: boolean,
  ) {}

  /** Reads elements from `start` up to `end`, or up to an item delimiter when `end` is undefined. */
  dataset(start: number, end: number | undefined, wanted: Schema, depth: number): Item {
    if (depth > MAX_DEPTH) throw this.error(`sequences nested deeper than ${MAX_DEPTH} levels`);
    this.pos = start;
    const item: Item = new Map();
    while (end === undefined || this.pos < end) {
      if (end === undefined && this.pos >= this.buf.length) throw this.error('the file ends inside an item of undefined length');
      const at = this.pos;
      const tag = this.tag();
      if (tag === ITEM_DELIMITATION) {
        this.u32();
        if (end === undefined) return item;
        continue; // a stray delimiter in a defined-length item carries nothing
      }
      const { vr, length } = this.elementHeader(tag, this.explicit);
      // An item's own character set would apply to its names; rare enough to leave to dcmjs.
      if (tag === T.SpecificCharacterSet && depth > 0) throw new RtStructUnsupported(`Specific Character Set inside a sequence item (offset ${at})`);
      const want = wanted.get(tag);
      if (want === undefined) {
        if (length === UNDEFINED_LENGTH) this.skipSequence(this.explicit && vr !== 'UN', depth + 1);
        else this.skip(length, tag);
      } else if (typeof want === 'string') {
        const valueVr = vr ?? want;
        if (!VALUE_VRS.has(valueVr)) throw new RtStructUnsupported(`${tagName(tag)} at offset ${at} has VR ${valueVr}, not ${want}`);
        if (length === UNDEFINED_LENGTH) throw this.error(`${tagName(tag)} at offset ${at} has an undefined length`);
        this.skip(length, tag);
        item.set(tag, { vr: valueVr as ValueVr, start: this.pos - length, end: this.pos });
      } else {
        if (vr !== null && vr !== 'SQ') throw new RtStructUnsupported(`${tagName(tag)} at offset ${at} has VR ${vr}, not SQ`);
        item.set(tag, this.sequence(length, want, depth + 1));
      }
    }
    if (this.pos !== end) throw this.error(`an element runs ${this.pos - end} bytes past the end of its item`);
    return item;
  }

  /** The items of a kept sequence, after its header. */
  private sequence(length: number, wanted: Schema, depth: number): Item[] {
    const items: Item[] = [];
    const end = length === UNDEFINED_LENGTH ? undefined : this.pos + length;
    if (end !== undefined && end > this.buf.length) throw this.error(`a sequence of ${length} bytes runs past the end of the file`);
    while (end === undefined || this.pos < end) {
      const at = this.pos;
      const tag = this.tag();
      const itemLength = this.u32();
      if (tag === SEQUENCE_DELIMITATION) {
        if (end === undefined) return items;
        continue;
      }
      if (tag !== ITEM) throw this.error(`expected an item in a sequence at offset ${at}, found ${tagName(tag)}`);
      if (itemLength === UNDEFINED_LENGTH) {
        const item = this.dataset(this.pos, undefined, wanted, depth);
        // dcmjs drops an item with no content at all; so do we, to give the same lists.
        if (this.pos - at > 16) items.push(item);
      } else {
        const itemEnd = this.pos + itemLength;
        if (itemEnd > this.buf.length) throw this.error(`an item of ${itemLength} bytes at offset ${at} runs past the end of the file`);
        const item = this.dataset(this.pos, itemEnd, wanted, depth);
        if (itemLength > 0) items.push(item);
      }
    }
    if (this.pos !== end) throw this.error(`an item runs ${this.pos - end} bytes past the end of its sequence`);
    return items;
  }

  /** VR (explicit, else null) and value length of an element whose tag was just read. */
  private elementHeader(tag: number, explicit: boolean): { vr: string | null; length: number } {
    // Item and delimitation tags have no VR in either encoding (PS3.5 7.5).
    if (!explicit || tag === ITEM || tag === SEQUENCE_DELIMITATION) return { vr: null, length: this.u32() };
    this.need(4);
    const b = this.buf;
    const c0 = b[this.pos];
    const c1 = b[this.pos + 1];
    if (c0 < 0x41 || c0 > 0x5a || c1 < 0x41 || c1 > 0x5a) {
      throw this.error(`invalid VR bytes at offset ${this.pos} for ${tagName(tag)}: not explicit VR little endian, or the file is damaged`);
    }
    const vr = String.fromCharCode(c0, c1);
    if (LONG_VRS.has(vr)) {
      this.pos += 4;
      return { vr, length: this.u32() };
    }
    const length = b[this.pos + 2] | (b[this.pos + 3] << 8);
    this.pos += 4;
    return { vr, length };
  }

  /** Skips a sequence of undefined length that is not kept (or encapsulated fragments). */
  private skipSequence(explicit: boolean, depth: number): void {
    if (depth > MAX_DEPTH) throw this.error(`sequences nested deeper than ${MAX_DEPTH} levels`);
    for (;;) {
      const at = this.pos;
      const tag = this.tag();
      const length = this.u32();
      if (tag === SEQUENCE_DELIMITATION) return;
      if (tag !== ITEM) throw this.error(`expected an item in a sequence at offset ${at}, found ${tagName(tag)}`);
      if (length === UNDEFINED_LENGTH) this.skipItem(explicit, depth + 1);
      else this.skip(length, tag);
    }
  }

  private skipItem(explicit: boolean, depth: number): void {
    for (;;) {
      const tag = this.tag();
      if (tag === ITEM_DELIMITATION) {
        this.u32();
        return;
      }
      const { vr, length } = this.elementHeader(tag, explicit);
      // The content of an undefined-length UN element is implicit VR (PS3.5 6.2.2).
      if (length === UNDEFINED_LENGTH) this.skipSequence(explicit && vr !== 'UN', depth + 1);
      else this.skip(length, tag);
    }
  }

  /** A tag: group and element, each a little endian 16-bit word, as (group << 16 | element). */
  private tag(): number {
    this.need(4);
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 4;
    return ((b[p + 1] << 24) | (b[p] << 16) | (b[p + 3] << 8) | b[p + 2]) >>> 0;
  }

  private u32(): number {
    this.need(4);
    const value = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return value;
  }

  private skip(length: number, tag: number): void {
    if (this.pos + length > this.buf.length) throw this.error(`${tagName(tag)} at offset ${this.pos} has a length of ${length} bytes, past the end of the file`);
    this.pos += length;
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw this.error(`the file ends at offset ${this.buf.length}, inside an element header`);
  }

  private error(what: string): RtStructFormatError {
    return new RtStructFormatError(`RTSTRUCT is malformed: ${what} (file of ${this.buf.length} bytes)`);
  }
}

function tagName(tag: number): string {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
  return `(${hex(tag >>> 16)},${hex(tag & 0xffff)})`;
}

// ------------------------------------------------------------------------------ character sets

/** dcmjs's default and its decoder for ISO_IR 100 (the WHATWG "latin1" label). */
const LATIN1 = new TextDecoder('latin1');
const UTF8 = new TextDecoder('utf-8');

/** The decoder for LO/SH values, from Specific Character Set (0008,0005) read as dcmjs reads it. */
function characterSet(ds: Item, buf: Buffer): TextDecoder {
  const ref = ds.get(T.SpecificCharacterSet);
  if (ref === undefined || Array.isArray(ref)) return LATIN1;
  const values = buf.toString('latin1', ref.start, ref.end).split('\\');
  if (values.length > 1) throw new RtStructUnsupported(`several Specific Character Sets (code extensions): ${values.join('\\')}`);
  const code = values[0].trim().replace(/[_ ]/g, '-').toLowerCase();
  if (code === '' || code === 'iso-ir-6' || code === 'iso-ir-100' || code === 'iso-2022-ir-6' || code === 'iso-2022-ir-100') return LATIN1;
  if (code === 'iso-ir-192') return UTF8;
  throw new RtStructUnsupported(`Specific Character Set ${values[0].trim()}`);
}

// ----------------------------------------------------------------------------------- values

/** A value as dcmjs's naturalised dataset holds it: one value as a scalar, several as an array,
 *  strings formatted per VR, IS/DS as numbers with null for an empty value. */
type Natural = undefined | null | string | number | (string | number | null)[];

class ValueDecoder {
  private readonly scan: Scan = { next: 0, empty: false };

  constructor(
    private readonly buf: Buffer,
    private readonly text: TextDecoder,
  ) {}

  items(item: Item, tag: number): Item[] {
    const v = item.get(tag);
    return Array.isArray(v) ? v : [];
  }

  /** The value printed and trimmed, as readRtStruct's str() does; '' when absent. */
  string(item: Item, tag: number): string {
    const v = this.natural(item, tag);
    return v === undefined || v === null ? '' : String(v).trim();
  }

  /** Number(value): NaN when absent or multi-valued, 0 when empty. */
  number(item: Item, tag: number): number {
    return Number(this.natural(item, tag));
  }

  /** The values as numbers; none when absent or one empty value. */
  numbers(item: Item, tag: number): number[] {
    const v = this.natural(item, tag);
    if (v === undefined || v === null) return [];
    return Array.isArray(v) ? v.map(Number) : [Number(v)];
  }

  /** Contour Data: the hot path, parsed from the bytes without making strings. */
  points(item: Item, tag: number): Float64Array {
    const ref = this.ref(item, tag);
    if (ref?.vr !== 'DS' && ref?.vr !== 'IS') return Float64Array.from(this.numbers(item, tag));
    return parseDecimalStrings(this.buf, ref.start, ref.end, this.scan);
  }

  private ref(item: Item, tag: number): ValueRef | undefined {
    const v = item.get(tag);
    return v === undefined || Array.isArray(v) ? undefined : v;
  }

  private natural(item: Item, tag: number): Natural {
    const ref = this.ref(item, tag);
    if (ref === undefined) return undefined;
    const { buf, scan } = this;
    let values: (string | number | null)[];
    switch (ref.vr) {
      case 'UI': // dcmjs keeps only digits and dots
        values = buf.toString('latin1', ref.start, ref.end).split('\\').map((s) => s.replace(/[^0-9.]/g, ''));
        break;
      case 'CS':
        values = buf.toString('latin1', ref.start, ref.end).split('\\').map((s) => s.trim());
        break;
      case 'LO':
      case 'SH': // dcmjs trims the whole value, then splits it
        values = this.text.decode(buf.subarray(ref.start, ref.end)).trim().split('\\');
        break;
      case 'IS':
      case 'DS': {
        values = [];
        for (let p = ref.start; p <= ref.end; p = scan.next) {
          const x = parseDecimal(buf, p, ref.end, scan);
          values.push(scan.empty ? null : x);
        }
        break;
      }
    }
    return values.length === 1 ? values[0] : values;
  }
}

// --------------------------------------------------------------------------- decimal strings

/** Where the next value starts, and whether the value just parsed held no number characters. */
interface Scan {
  next: number;
  empty: boolean;
}

const SPACE = 0x20;
const BACKSLASH = 0x5c;
const PLUS = 0x2b;
const MINUS = 0x2d;
const DOT = 0x2e;
/** 10^0 .. 10^22, all exact doubles. */
const POW10 = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];
/** Up to 15 decimal digits the mantissa is an exact integer double (10^15 < 2^53). */
const MAX_EXACT_DIGITS = 15;
/** What dcmjs keeps of a DS/IS value before Number(): digits, '.', '+', '-', 'e', 'E'. */
const NUMBER_CHAR = new Uint8Array(256);
for (const c of '0123456789.+-eE') NUMBER_CHAR[c.charCodeAt(0)] = 1;

/**
 * Parses the backslash-separated DS (or IS) values in bytes [start, end) into a Float64Array.
 * Each value is what Number() makes of it, bit for bit, after dropping the characters dcmjs drops;
 * an empty value is 0, and a lone empty value gives no values at all (as the dcmjs reader does).
 */
export function parseDecimalStrings(bytes: Uint8Array, start: number, end: number, scan: Scan = { next: 0, empty: false }): Float64Array {
  // Every value but the last ends at a backslash, so there are at most (bytes + 1) values: parse into
  // a scratch array that large rather than counting the backslashes in a pass of their own. Values
  // too long for the kept scratch (only implicit VR allows them) get an array of their own.
  const bound = end - start + 1;
  if (scratch.length < bound && bound <= MAX_SCRATCH) scratch = new Float64Array(Math.min(MAX_SCRATCH, Math.max(bound, 2 * scratch.length)));
  const values = bound <= scratch.length ? scratch : new Float64Array(bound);
  let count = 0;
  for (let p = start; p <= end; p = scan.next) values[count++] = parseDecimal(bytes, p, end, scan);
  return count === 1 && scan.empty ? new Float64Array(0) : values.slice(0, count);
}
/** 64 KiB of text, the most an explicit VR value holds: 0.5 MB of scratch at most. */
const MAX_SCRATCH = 0x10000;
let scratch = new Float64Array(4096);

/**
 * One value from `p` up to the next backslash or `end`. The fast path reads the usual form
 * ` [+-]digits[.digits][(e|E)[+-]digits] ` and, with at most 15 significant digits and a scale within
 * 10^±22, computes mantissa × or ÷ 10^k: both operands are exact doubles, so the one rounding is
 * IEEE-correct and equals Number()'s result. Anything else goes to Number() on the filtered text.
 */
function parseDecimal(b: Uint8Array, p: number, end: number, scan: Scan): number {
  const start = p;
  while (p < end && b[p] === SPACE) p++;
  if (p === end || b[p] === BACKSLASH) {
    scan.next = p + 1;
    scan.empty = true;
    return 0;
  }
  let negative = false;
  if (b[p] === MINUS) {
    negative = true;
    p++;
  } else if (b[p] === PLUS) p++;
  let mantissa = 0;
  let significant = 0;
  let fraction = 0;
  let digitsSeen = false;
  let d: number;
  for (; p < end && (d = b[p] - 0x30) >= 0 && d <= 9; p++) {
    digitsSeen = true;
    if (mantissa !== 0 || d !== 0) {
      mantissa = mantissa * 10 + d;
      significant++;
    }
  }
  if (p < end && b[p] === DOT) {
    for (p++; p < end && (d = b[p] - 0x30) >= 0 && d <= 9; p++) {
      digitsSeen = true;
      fraction++;
      if (mantissa !== 0 || d !== 0) {
        mantissa = mantissa * 10 + d;
        significant++;
      }
    }
  }
  if (!digitsSeen) return parseFiltered(b, start, end, scan);
  let exponent = 0;
  if (p < end && (b[p] | 0x20) === 0x65) {
    p++;
    let exponentNegative = false;
    if (p < end && b[p] === MINUS) {
      exponentNegative = true;
      p++;
    } else if (p < end && b[p] === PLUS) p++;
    const first = p;
    for (; p < end && (d = b[p] - 0x30) >= 0 && d <= 9; p++) exponent = exponent * 10 + d;
    if (p === first || p - first > 4) return parseFiltered(b, start, end, scan);
    if (exponentNegative) exponent = -exponent;
  }
  while (p < end && b[p] === SPACE) p++;
  if (p < end && b[p] !== BACKSLASH) return parseFiltered(b, start, end, scan);
  if (significant > MAX_EXACT_DIGITS) return parseFiltered(b, start, end, scan);
  const scale = exponent - fraction;
  if (mantissa !== 0 && (scale < -22 || scale > 22)) return parseFiltered(b, start, end, scan);
  scan.next = p + 1;
  scan.empty = false;
  const magnitude = mantissa === 0 ? 0 : scale < 0 ? mantissa / POW10[-scale] : mantissa * POW10[scale];
  return negative ? -magnitude : magnitude;
}

/** The general case, exactly as dcmjs: drop every character but [0-9.+-eE], then Number(). */
function parseFiltered(b: Uint8Array, start: number, end: number, scan: Scan): number {
  let text = '';
  let p = start;
  for (; p < end && b[p] !== BACKSLASH; p++) if (NUMBER_CHAR[b[p]]) text += String.fromCharCode(b[p]);
  scan.next = p + 1;
  scan.empty = text === '';
  return text === '' ? 0 : Number(text);
}

// ---------------------------------------------------------------------------------- assembly

const NO_ITEM: Item = new Map();

/** The RtStruct from the kept elements, joined exactly as the dcmjs reader joins them. */
function assemble(ds: Item, v: ValueDecoder): RtStruct {
  const sopClass = v.string(ds, T.SOPClassUID);
  if (sopClass !== SOP_CLASS.RtStructureSet) throw new Error(`not an RT Structure Set: SOP class ${sopClass || '(none)'}`);
  const frame = v.items(ds, T.ReferencedFrameOfReferenceSequence)[0] ?? NO_ITEM;
  const study = v.items(frame, T.RTReferencedStudySequence)[0] ?? NO_ITEM;
  const series = v.items(study, T.RTReferencedSeriesSequence)[0] ?? NO_ITEM;
  return {
    sopInstanceUid: v.string(ds, T.SOPInstanceUID),
    seriesInstanceUid: v.string(ds, T.SeriesInstanceUID),
    studyInstanceUid: v.string(ds, T.StudyInstanceUID),
    patientId: v.string(ds, T.PatientID),
    structureSetLabel: v.string(ds, T.StructureSetLabel),
    referencedFrameOfReferenceUid: v.string(frame, T.FrameOfReferenceUID),
    referencedStudyInstanceUid: v.string(study, T.ReferencedSOPInstanceUID),
    referencedSeriesInstanceUid: v.string(series, T.SeriesInstanceUID),
    referencedSopInstanceUids: v.items(series, T.ContourImageSequence).map((i) => v.string(i, T.ReferencedSOPInstanceUID)),
    rois: assembleRois(ds, v),
    roiContourReferences: v.items(ds, T.ROIContourSequence).map((i) => v.number(i, T.ReferencedROINumber)),
  };
}

/** An ROI is defined by its Structure Set ROI item; contours and observations join on ROI number. */
function assembleRois(ds: Item, v: ValueDecoder): RtStructRoi[] {
  const contours = new Map(v.items(ds, T.ROIContourSequence).map((i) => [v.number(i, T.ReferencedROINumber), i]));
  const observations = new Map(v.items(ds, T.RTROIObservationsSequence).map((i) => [v.number(i, T.ReferencedROINumber), i]));
  return v.items(ds, T.StructureSetROISequence).map((roi) => {
    const number = v.number(roi, T.ROINumber);
    const contourItem = contours.get(number) ?? NO_ITEM;
    const color = v.numbers(contourItem, T.ROIDisplayColor);
    const observation = observations.get(number);
    return {
      number,
      name: v.string(roi, T.ROIName),
      color: color.length === 3 ? (color as [number, number, number]) : null,
      interpretedType: observation ? v.string(observation, T.RTROIInterpretedType) : '',
      algorithm: v.string(roi, T.ROIGenerationAlgorithm),
      frameOfReferenceUid: v.string(roi, T.ReferencedFrameOfReferenceUID),
      contours: v.items(contourItem, T.ContourSequence).map((item) => assembleContour(item, v)),
    };
  });
}

function assembleContour(item: Item, v: ValueDecoder): RtStructContour {
  const image = v.items(item, T.ContourImageSequence)[0];
  const contour: RtStructContour = { points: v.points(item, T.ContourData), geometricType: v.string(item, T.ContourGeometricType) };
  if (image) {
    contour.sopInstanceUid = v.string(image, T.ReferencedSOPInstanceUID);
    contour.sopClassUid = v.string(image, T.ReferencedSOPClassUID);
  }
  return contour;
}
