import { parseUid, type Uid } from './uid.js';

/** The attributes that identify and group an instance. Read from the first bytes of a dataset,
 *  so an RTSTRUCT's megabytes of contours or a CT's pixels are never parsed to file it. */
export interface InstanceHeader {
  sopClassUid: Uid;
  sopInstanceUid: Uid;
  studyInstanceUid: Uid;
  seriesInstanceUid: Uid;
  patientId: string;
  patientName: string;
  studyDate: string;
  studyTime: string;
  studyDescription: string;
  seriesDescription: string;
  accessionNumber: string;
  modality: string;
  seriesNumber: number | null;
  instanceNumber: number | null;
  frameOfReferenceUid: Uid | null;
  /** BodyPartExamined (0018,0015), '' when absent: routing input constraints. */
  bodyPartExamined?: string;
  /** SliceThickness (0018,0050) in mm, null when absent or not a number: routing input constraints. */
  sliceThicknessMm?: number | null;
  /** Image plane and count hints for study completion (geometry continuity, expected counts); read
   *  best-effort after the identifying tags, so a dataset that has none of them is filed all the same. */
  geometry?: HeaderGeometry;
}

export interface HeaderGeometry {
  imagePositionPatient: number[] | null;
  imageOrientationPatient: number[] | null;
  rows: number | null;
  columns: number | null;
  pixelSpacing: number[] | null;
  /** (0020,1002) Images in Acquisition. */
  imagesInAcquisition: number | null;
  /** (0054,0081) Number of Slices (PET/NM). */
  numberOfSlices: number | null;
}

export class HeaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HeaderError';
  }
}

/** Thrown when the buffer ends before the header could be read: the caller reads more bytes. */
export class NeedMoreBytes extends Error {
  constructor() {
    super('need more bytes');
  }
}

const T = {
  SpecificCharacterSet: 0x00080005,
  StudyDate: 0x00080020,
  StudyTime: 0x00080030,
  AccessionNumber: 0x00080050,
  SopClassUid: 0x00080016,
  SopInstanceUid: 0x00080018,
  Modality: 0x00080060,
  StudyDescription: 0x00081030,
  SeriesDescription: 0x0008103e,
  PatientName: 0x00100010,
  PatientId: 0x00100020,
  StudyInstanceUid: 0x0020000d,
  SeriesInstanceUid: 0x0020000e,
  SeriesNumber: 0x00200011,
  InstanceNumber: 0x00200013,
  ImagePositionPatient: 0x00200032,
  ImageOrientationPatient: 0x00200037,
  FrameOfReferenceUid: 0x00200052,
  BodyPartExamined: 0x00180015,
  SliceThickness: 0x00180050,
} as const;
const WANTED = new Set<number>(Object.values(T));
const LAST_WANTED = T.FrameOfReferenceUid;
/** Read after the identifying tags, best-effort (a failure there never refuses the instance). */
const G = {
  ImagesInAcquisition: 0x00201002,
  Rows: 0x00280010,
  Columns: 0x00280011,
  PixelSpacing: 0x00280030,
  NumberOfSlices: 0x00540081,
} as const;
const GEOMETRY_WANTED = new Set<number>(Object.values(G));
const LAST_GEOMETRY = G.NumberOfSlices;

const ITEM = 0xfffee000;
const ITEM_DELIM = 0xfffee00d;
const SEQ_DELIM = 0xfffee0dd;
const UNDEFINED = 0xffffffff;
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

interface Cursor {
  buf: Buffer;
  pos: number;
}

function need(c: Cursor, n: number): void {
  if (c.pos + n > c.buf.length) throw new NeedMoreBytes();
}

function readTag(c: Cursor): number {
  need(c, 4);
  const group = c.buf.readUInt16LE(c.pos);
  const element = c.buf.readUInt16LE(c.pos + 2);
  c.pos += 4;
  return ((group << 16) | element) >>> 0;
}

/** Reads one element header after its tag: VR (explicit only) and value length. */
function readVrLength(c: Cursor, explicit: boolean, tag: number): { vr: string | null; length: number } {
  // Item and delimitation tags have no VR, in either encoding (PS3.5 §7.5).
  if (!explicit || tag === ITEM || tag === ITEM_DELIM || tag === SEQ_DELIM) {
    need(c, 4);
    const length = c.buf.readUInt32LE(c.pos);
    c.pos += 4;
    return { vr: null, length };
  }
  need(c, 4);
  const vr = c.buf.toString('latin1', c.pos, c.pos + 2);
  if (!/^[A-Z]{2}$/.test(vr)) throw new HeaderError(`invalid VR bytes at offset ${c.pos} for tag ${hex(tag)}: not an explicit VR little endian dataset`);
  if (LONG_VRS.has(vr)) {
    need(c, 8);
    const length = c.buf.readUInt32LE(c.pos + 4);
    c.pos += 8;
    return { vr, length };
  }
  const length = c.buf.readUInt16LE(c.pos + 2);
  c.pos += 4;
  return { vr, length };
}

/** Skips an undefined-length value: a sequence of items, or encapsulated pixel data fragments. */
function skipUndefined(c: Cursor, explicit: boolean, depth: number): void {
  if (depth > 32) throw new HeaderError('sequences nested deeper than 32 levels');
  for (;;) {
    const tag = readTag(c);
    const { length } = readVrLength(c, explicit, tag);
    if (tag === SEQ_DELIM) return;
    if (tag !== ITEM) throw new HeaderError(`expected an item tag in a sequence at offset ${c.pos - 8}, found ${hex(tag)}`);
    if (length === UNDEFINED) skipDataset(c, explicit, depth + 1);
    else skip(c, length);
  }
}

/** Skips a nested dataset up to its item delimiter. */
function skipDataset(c: Cursor, explicit: boolean, depth: number): void {
  for (;;) {
    const tag = readTag(c);
    const { vr, length } = readVrLength(c, explicit, tag);
    if (tag === ITEM_DELIM) return;
    if (length === UNDEFINED) skipUndefined(c, explicit && vr !== 'UN', depth + 1);
    else skip(c, length);
  }
}

function skip(c: Cursor, n: number): void {
  need(c, n);
  c.pos += n;
}

function hex(tag: number): string {
  return `(${(tag >>> 16).toString(16).padStart(4, '0')},${(tag & 0xffff).toString(16).padStart(4, '0')})`.toUpperCase();
}

/**
 * Reads the identifying attributes from the start of a dataset (no preamble, no group 0002).
 * `complete` says the buffer holds the whole dataset, so running out of bytes before the last
 * wanted tag just means the dataset ends early; otherwise NeedMoreBytes asks for more.
 */
export function readHeader(buf: Buffer, explicit: boolean, complete: boolean): InstanceHeader {
  const c: Cursor = { buf, pos: 0 };
  const raw = new Map<number, Buffer>();
  try {
    while (c.pos < buf.length) {
      const tag = readTag(c);
      if (tag > LAST_WANTED) {
        c.pos -= 4;
        break;
      }
      const { vr, length } = readVrLength(c, explicit, tag);
      if (length === UNDEFINED) {
        skipUndefined(c, explicit && vr !== 'UN', 0);
        continue;
      }
      need(c, length);
      if (WANTED.has(tag)) raw.set(tag, buf.subarray(c.pos, c.pos + length));
      c.pos += length;
    }
  } catch (e) {
    if (!(e instanceof NeedMoreBytes) || !complete) throw e;
    // A complete dataset that ends mid-element is truncated; what we have may still identify it.
  }
  readGeometryTags(c, explicit, raw);
  return toHeader(raw);
}

/** The image plane tags after the identifying ones (up to group 0054, well before pixel data), in
 *  the bytes already read; an odd element or the end of the buffer just ends the search. */
function readGeometryTags(c: Cursor, explicit: boolean, raw: Map<number, Buffer>): void {
  try {
    while (c.pos < c.buf.length) {
      const tag = readTag(c);
      if (tag > LAST_GEOMETRY) return;
      const { vr, length } = readVrLength(c, explicit, tag);
      if (length === UNDEFINED) {
        skipUndefined(c, explicit && vr !== 'UN', 0);
        continue;
      }
      need(c, length);
      if (GEOMETRY_WANTED.has(tag)) raw.set(tag, c.buf.subarray(c.pos, c.pos + length));
      c.pos += length;
    }
  } catch {
    // best-effort: the identifying attributes are what files the instance
  }
}

function toHeader(raw: Map<number, Buffer>): InstanceHeader {
  const charset = raw.get(T.SpecificCharacterSet)?.toString('latin1') ?? '';
  const utf8 = /ISO_IR 192/.test(charset);
  const text = (tag: number): string => {
    const b = raw.get(tag);
    if (!b) return '';
    return b.toString(utf8 ? 'utf8' : 'latin1').replace(/[\0 ]+$/g, '').trim();
  };
  const int = (tag: number): number | null => {
    const n = Number.parseInt(text(tag), 10);
    return Number.isFinite(n) ? n : null;
  };
  const numbers = (tag: number, n: number): number[] | null => {
    const parts = text(tag).split('\\').map((v) => Number(v.trim()));
    return parts.length === n && parts.every((v) => Number.isFinite(v)) ? parts : null;
  };
  // US (Rows, Columns): two bytes in both explicit and implicit little endian.
  const us = (tag: number): number | null => {
    const b = raw.get(tag);
    return b && b.length === 2 ? b.readUInt16LE(0) : null;
  };
  const uid = (tag: number, name: string): Uid => {
    const value = parseUid(raw.get(tag)?.toString('latin1'));
    if (!value) {
      const got = raw.get(tag)?.toString('latin1');
      throw new HeaderError(got === undefined ? `${name} ${hex(tag)} is missing` : `${name} ${hex(tag)} is not a valid UID: "${got.slice(0, 80)}"`);
    }
    return value;
  };
  return {
    sopClassUid: uid(T.SopClassUid, 'SOPClassUID'),
    sopInstanceUid: uid(T.SopInstanceUid, 'SOPInstanceUID'),
    studyInstanceUid: uid(T.StudyInstanceUid, 'StudyInstanceUID'),
    seriesInstanceUid: uid(T.SeriesInstanceUid, 'SeriesInstanceUID'),
    patientId: text(T.PatientId),
    patientName: text(T.PatientName),
    studyDate: text(T.StudyDate),
    studyTime: text(T.StudyTime),
    studyDescription: text(T.StudyDescription),
    seriesDescription: text(T.SeriesDescription),
    accessionNumber: text(T.AccessionNumber),
    modality: text(T.Modality),
    seriesNumber: int(T.SeriesNumber),
    instanceNumber: int(T.InstanceNumber),
    frameOfReferenceUid: parseUid(raw.get(T.FrameOfReferenceUid)?.toString('latin1')) ?? null,
    bodyPartExamined: text(T.BodyPartExamined),
    sliceThicknessMm: decimal(text(T.SliceThickness)),
    geometry: {
      imagePositionPatient: numbers(T.ImagePositionPatient, 3),
      imageOrientationPatient: numbers(T.ImageOrientationPatient, 6),
      rows: us(G.Rows),
      columns: us(G.Columns),
      pixelSpacing: numbers(G.PixelSpacing, 2),
      imagesInAcquisition: int(G.ImagesInAcquisition),
      numberOfSlices: us(G.NumberOfSlices),
    },
  };
}

/** A DS value as a number; null when empty or not a finite number. */
function decimal(s: string): number | null {
  if (s === '') return null;
  const n = Number(s.split('\\')[0]);
  return Number.isFinite(n) ? n : null;
}

/** Group 0002 of a Part 10 file: where the dataset starts and how it is encoded. */
export interface Part10Meta {
  transferSyntaxUid: string;
  mediaStorageSopClassUid: string | undefined;
  mediaStorageSopInstanceUid: string | undefined;
  datasetOffset: number;
}

/** Reads the preamble and file meta information of a Part 10 file (always explicit VR LE). */
export function readPart10Meta(buf: Buffer): Part10Meta {
  if (buf.length < 132) throw new NeedMoreBytes();
  if (buf.toString('latin1', 128, 132) !== 'DICM') throw new HeaderError('not a DICOM Part 10 file: no "DICM" marker at byte 128');
  const c: Cursor = { buf, pos: 132 };
  const meta = new Map<number, string>();
  let groupEnd: number | undefined;
  for (;;) {
    // The group length, when present, says where group 0002 ends without peeking past it.
    if (groupEnd !== undefined && c.pos >= groupEnd) break;
    if (c.pos + 2 > buf.length) throw new NeedMoreBytes();
    if (buf.readUInt16LE(c.pos) !== 0x0002) break;
    const tag = readTag(c);
    const { length } = readVrLength(c, true, tag);
    if (length === UNDEFINED) throw new HeaderError(`undefined length in file meta element ${hex(tag)}`);
    need(c, length);
    if (tag === 0x00020000 && length === 4) groupEnd = c.pos + 4 + buf.readUInt32LE(c.pos);
    meta.set(tag, buf.toString('latin1', c.pos, c.pos + length).replace(/[\0 ]+$/g, ''));
    c.pos += length;
  }
  const ts = meta.get(0x00020010);
  if (!ts) throw new HeaderError('file meta information has no TransferSyntaxUID (0002,0010)');
  return {
    transferSyntaxUid: ts,
    mediaStorageSopClassUid: meta.get(0x00020002),
    mediaStorageSopInstanceUid: meta.get(0x00020003),
    datasetOffset: c.pos,
  };
}
