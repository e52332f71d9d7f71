/**
 * RT Structure Set (PS3.3 A.19) writer and reader.
 *
 * The writer makes a new RTSTRUCT series that references a CT series: every CT slice is listed in
 * the Contour Image Sequence and every contour names the slice it lies on, which is what treatment
 * planning systems use to attach contours to images. Output is Explicit VR Little Endian Part 10.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Contour, Vec3 } from '../geometry/types.js';
import { SOP_CLASS } from '../dicom/sop-classes.js';
import { TS } from '../dicom/transfer-syntax.js';
import { contentUid, IMPLEMENTATION_VERSION_NAME, newUid, type Uid } from '../dicom/uid.js';
import { part10Header } from '../dicom/part10.js';
import { DatasetWriter, MAX_SHORT_VALUE_BYTES, type TextVr } from '../dicom/dataset-writer.js';
import { parseRtStruct, RtStructUnsupported } from './rtstruct-reader.js';
import { RTSTRUCT_TAG } from './rtstruct-tags.js';
import { applyBranding, type RtStructBranding } from './branding.js';

export type RoiInterpretedType =
  | 'EXTERNAL' | 'PTV' | 'CTV' | 'GTV' | 'TREATED_VOLUME' | 'IRRAD_VOLUME' | 'BOLUS' | 'AVOIDANCE'
  | 'ORGAN' | 'MARKER' | 'REGISTRATION' | 'ISOCENTER' | 'CONTRAST_AGENT' | 'CAVITY' | 'BRACHY_CHANNEL'
  | 'BRACHY_ACCESSORY' | 'BRACHY_SRC_APP' | 'BRACHY_CHNL_SHLD' | 'SUPPORT' | 'FIXATION' | 'DOSE_REGION'
  | 'CONTROL' | 'DOSE_MEASUREMENT'
  /** Type 2: unknown. */
  | '';

export type RoiGenerationAlgorithm = 'AUTOMATIC' | 'SEMIAUTOMATIC' | 'MANUAL';

export interface RtStructCtSlice {
  sopInstanceUid: string;
  sopClassUid: string;
  /** Position of the slice plane along the slice normal (patient z for axial images). */
  zMm: number;
}

export interface RtStructCtReference {
  studyInstanceUid: string;
  seriesInstanceUid: string;
  frameOfReferenceUid: string;
  patientId: string;
  patientName: string;
  patientBirthDate?: string;
  patientSex?: string;
  studyDate?: string;
  studyTime?: string;
  studyId?: string;
  accessionNumber?: string;
  referringPhysicianName?: string;
  /** Unit slice normal (row x column direction); default [0, 0, 1]. Used to place contours that
   *  carry no sopInstanceUid on a slice. */
  sliceNormal?: Vec3;
  slices: RtStructCtSlice[];
}

export interface RtStructRoiInput {
  number: number;
  name: string;
  color: [number, number, number];
  interpretedType: RoiInterpretedType;
  algorithm: RoiGenerationAlgorithm;
  /** Closed planar polygons in patient mm (not repeating the first point at the end). */
  contours: Contour[];
  description?: string;
}

export interface RtStructInput {
  ct: RtStructCtReference;
  rois: RtStructRoiInput[];
  seriesDescription?: string;
  seriesNumber?: number;
  /** Default 'RTSTRUCT'. */
  structureSetLabel?: string;
  structureSetName?: string;
  /** YYYYMMDD / HHMMSS of the structure set; see `contentDateTime` for defaults. */
  structureSetDate?: string;
  structureSetTime?: string;
  manufacturer?: string;
  manufacturerModelName?: string;
  softwareVersions?: string;
  institutionName?: string;
  stationName?: string;
  operatorsName?: string;
  /** Overrides the generated Series Instance UID, e.g. to add a revision to an existing series. */
  seriesInstanceUid?: string;
  /** Instance Number (0020,0013); default 1. A new version in an existing series gets a higher one. */
  instanceNumber?: number;
  /** Same input and seed give byte-identical output: UIDs and dates come from a hash, not the clock. */
  deterministic?: { seed: string };
  /** Result branding (label, name, series description, ROI name prefix), applied over the above. */
  branding?: RtStructBranding;
}

export interface RtStructContour extends Contour {
  geometricType: string;
  /** Referenced SOP Class UID of the slice, when the contour names one. */
  sopClassUid?: string;
}

export interface RtStructRoi {
  number: number;
  name: string;
  /** null when ROI Display Color (Type 3) is absent. */
  color: [number, number, number] | null;
  interpretedType: string;
  algorithm: string;
  frameOfReferenceUid: string;
  contours: RtStructContour[];
}

export interface RtStruct {
  sopInstanceUid: string;
  seriesInstanceUid: string;
  studyInstanceUid: string;
  patientId: string;
  structureSetLabel: string;
  /** From the first Referenced Frame of Reference / RT Referenced Study / Series items. */
  referencedFrameOfReferenceUid: string;
  referencedStudyInstanceUid: string;
  referencedSeriesInstanceUid: string;
  /** Contour Image Sequence of that series: the CT slices the structure set was drawn on. */
  referencedSopInstanceUids: string[];
  rois: RtStructRoi[];
  /** Referenced ROI Number of every ROI Contour item, in file order (the validator checks each
   *  names a Structure Set ROI; `rois` keeps only the contours that do). */
  roiContourReferences?: number[];
}

// dcmjs ships no type declarations; this is the slice of its API the reader uses. It is loaded on
// first use: the writer does not need it, and loading it costs a node process ~0.1 s.
type DicomJson = Record<string, unknown>;
// dcmjs's naturalised form is whatever the file held, so its values are checked where they are read.
type Natural = Record<string, any>;
interface DcmjsData {
  DicomMessage: { readFile(buffer: ArrayBuffer): { dict: DicomJson } };
  DicomMetaDictionary: { naturalizeDataset(dataset: DicomJson): Natural };
}
let dcmjs: DcmjsData | undefined;
const dcmjsData = (): DcmjsData => (dcmjs ??= (createRequire(import.meta.url)('dcmjs') as { data: DcmjsData }).data);

/** RT Referenced Study Sequence names the study by this (retired) SOP class, as every TPS expects. */
const DETACHED_STUDY_MANAGEMENT_SOP_CLASS = '1.2.840.10008.3.1.2.3.1';
/** Decimal places tried for Contour Data, finest first, until a contour fits a 16-bit value length. */
const CONTOUR_DECIMALS = [6, 4, 3, 2];
/** How far (mm) a contour's plane may be from a slice's to be placed on it when it names no slice. */
const SLICE_MATCH_TOLERANCE_MM = 0.05;

/** The tags the writer uses, in the order they are written within each dataset. */
const TAG = RTSTRUCT_TAG;

// ---------------------------------------------------------------------------------------- writer

/** The encoded file and the two UIDs it was given. */
export interface EncodedRtStruct {
  bytes: Buffer;
  sopInstanceUid: Uid;
  seriesInstanceUid: Uid;
}

export function buildRtStruct(input: RtStructInput): Buffer {
  return encodeRtStruct(input).bytes;
}

/**
 * Encodes the structure set as Explicit VR Little Endian Part 10. The dataset is written in three
 * parts around the SOP Instance UID and the Series Instance UID; with a seed both UIDs are derived
 * from a hash of those parts, i.e. of everything else the file says.
 */
export function encodeRtStruct(unbranded: RtStructInput): EncodedRtStruct {
  const input = applyBranding(unbranded);
  validateInput(input);
  const when = contentDateTime(input);
  const w = new DatasetWriter(1 << 20);
  w.text(TAG.SpecificCharacterSet, 'CS', 'ISO_IR 100')
    .text(TAG.InstanceCreationDate, 'DA', when.date)
    .text(TAG.InstanceCreationTime, 'TM', when.time)
    .text(TAG.SOPClassUID, 'UI', SOP_CLASS.RtStructureSet);
  const beforeSop = w.take();
  writeStudyAndSeries(w, input, when);
  const beforeSeries = w.take();
  writeStructureSet(w, input, when);
  const rest = w.take();

  const uids = instanceUids(input, [beforeSop, beforeSeries, rest]);
  const uid = (tag: number, value: Uid) => new DatasetWriter(64).text(tag, 'UI', value).take();
  const meta = part10Header({ sopClassUid: SOP_CLASS.RtStructureSet, sopInstanceUid: uids.sopInstanceUid, transferSyntaxUid: TS.ExplicitVRLittleEndian });
  const bytes = Buffer.concat([meta, beforeSop, uid(TAG.SOPInstanceUID, uids.sopInstanceUid), beforeSeries, uid(TAG.SeriesInstanceUID, uids.seriesInstanceUid), rest]);
  return { bytes, ...uids };
}

function validateInput(input: RtStructInput): void {
  const numbers = new Set<number>();
  for (const roi of input.rois) {
    if (!Number.isInteger(roi.number) || numbers.has(roi.number)) throw new RangeError(`ROI number ${roi.number} is not a unique integer`);
    numbers.add(roi.number);
    if (roi.name.length > 64) throw new RangeError(`ROI name ${roi.name} is longer than 64 characters (LO)`);
    if (!roi.color.every((c) => Number.isInteger(c) && c >= 0 && c <= 255)) throw new RangeError(`ROI ${roi.name}: colour must be 0..255 integers`);
    for (const c of roi.contours) {
      if (c.points.length < 3 || c.points.length % 3 !== 0) throw new RangeError(`ROI ${roi.name}: contour points must be x,y,z triplets`);
    }
  }
  if (input.ct.slices.length === 0) throw new RangeError('the referenced CT has no slices');
}

/** From Study Date (0008,0020) up to, not including, Series Instance UID (0020,000E). */
function writeStudyAndSeries(w: DatasetWriter, input: RtStructInput, when: { date: string; time: string }): void {
  const ct = input.ct;
  const optional = (tag: number, vr: TextVr, value: string | undefined) => {
    if (value !== undefined) w.text(tag, vr, value);
  };
  w.text(TAG.StudyDate, 'DA', ct.studyDate ?? '')
    .text(TAG.SeriesDate, 'DA', when.date)
    .text(TAG.StudyTime, 'TM', ct.studyTime ?? '')
    .text(TAG.SeriesTime, 'TM', when.time)
    .text(TAG.AccessionNumber, 'SH', ct.accessionNumber ?? '')
    .text(TAG.Modality, 'CS', 'RTSTRUCT')
    .text(TAG.Manufacturer, 'LO', input.manufacturer ?? 'rtpipeline');
  optional(TAG.InstitutionName, 'LO', input.institutionName);
  w.text(TAG.ReferringPhysicianName, 'PN', ct.referringPhysicianName ?? '');
  optional(TAG.StationName, 'SH', input.stationName);
  optional(TAG.SeriesDescription, 'LO', input.seriesDescription);
  w.text(TAG.OperatorsName, 'PN', input.operatorsName ?? '');
  optional(TAG.ManufacturerModelName, 'LO', input.manufacturerModelName);
  w.text(TAG.PatientName, 'PN', ct.patientName)
    .text(TAG.PatientID, 'LO', ct.patientId)
    .text(TAG.PatientBirthDate, 'DA', ct.patientBirthDate ?? '')
    .text(TAG.PatientSex, 'CS', ct.patientSex ?? '')
    .text(TAG.SoftwareVersions, 'LO', input.softwareVersions ?? IMPLEMENTATION_VERSION_NAME)
    .text(TAG.StudyInstanceUID, 'UI', ct.studyInstanceUid);
}

/** Everything after the Series Instance UID: the rest of the series and the structure set modules. */
function writeStructureSet(w: DatasetWriter, input: RtStructInput, when: { date: string; time: string }): void {
  const ct = input.ct;
  w.text(TAG.StudyID, 'SH', ct.studyId ?? '')
    .text(TAG.SeriesNumber, 'IS', input.seriesNumber === undefined ? '' : String(input.seriesNumber))
    .text(TAG.InstanceNumber, 'IS', String(input.instanceNumber ?? 1))
    // Frame of Reference module: validators (dicom3tools) expect it on an RTSTRUCT; it is the CT's frame.
    .text(TAG.FrameOfReferenceUID, 'UI', ct.frameOfReferenceUid)
    .text(TAG.PositionReferenceIndicator, 'LO', '')
    .text(TAG.StructureSetLabel, 'SH', input.structureSetLabel ?? 'RTSTRUCT');
  if (input.structureSetName) w.text(TAG.StructureSetName, 'LO', input.structureSetName);
  w.text(TAG.StructureSetDate, 'DA', when.date)
    .text(TAG.StructureSetTime, 'TM', when.time)
    .sequence(TAG.ReferencedFrameOfReferenceSequence, [ct], writeReferencedFrameOfReference)
    .sequence(TAG.StructureSetROISequence, input.rois, (item, roi) => writeStructureSetRoi(item, roi, ct.frameOfReferenceUid));
  const slices = new SliceIndex(ct);
  const ds = new DsFormatter();
  w.sequence(TAG.ROIContourSequence, input.rois, (item, roi) => writeRoiContour(item, roi, slices, ds))
    .sequence(TAG.RTROIObservationsSequence, input.rois, writeRoiObservation);
}

function writeReferencedFrameOfReference(w: DatasetWriter, ct: RtStructCtReference): void {
  w.text(TAG.FrameOfReferenceUID, 'UI', ct.frameOfReferenceUid).sequence(TAG.RTReferencedStudySequence, [ct], (study) =>
    study
      .text(TAG.ReferencedSOPClassUID, 'UI', DETACHED_STUDY_MANAGEMENT_SOP_CLASS)
      .text(TAG.ReferencedSOPInstanceUID, 'UI', ct.studyInstanceUid)
      .sequence(TAG.RTReferencedSeriesSequence, [ct], (series) =>
        series.text(TAG.SeriesInstanceUID, 'UI', ct.seriesInstanceUid).sequence(TAG.ContourImageSequence, ct.slices, writeImageReference),
      ),
  );
}

function writeImageReference(w: DatasetWriter, slice: RtStructCtSlice): void {
  w.text(TAG.ReferencedSOPClassUID, 'UI', slice.sopClassUid).text(TAG.ReferencedSOPInstanceUID, 'UI', slice.sopInstanceUid);
}

function writeStructureSetRoi(w: DatasetWriter, roi: RtStructRoiInput, frameOfReferenceUid: string): void {
  w.text(TAG.ROINumber, 'IS', String(roi.number)).text(TAG.ReferencedFrameOfReferenceUID, 'UI', frameOfReferenceUid).text(TAG.ROIName, 'LO', roi.name);
  if (roi.description) w.text(TAG.ROIDescription, 'ST', roi.description);
  w.text(TAG.ROIGenerationAlgorithm, 'CS', roi.algorithm);
}

function writeRoiContour(w: DatasetWriter, roi: RtStructRoiInput, slices: SliceIndex, ds: DsFormatter): void {
  w.text(TAG.ROIDisplayColor, 'IS', roi.color.map(String));
  // Contour Sequence is Type 3; an empty ROI (nothing found) is still a valid, listed ROI.
  if (roi.contours.length > 0) {
    w.sequence(TAG.ContourSequence, roi.contours, (item, contour, index) => {
      const slice = slices.of(contour);
      if (slice) item.sequence(TAG.ContourImageSequence, [slice], writeImageReference);
      item
        .text(TAG.ContourGeometricType, 'CS', 'CLOSED_PLANAR')
        .text(TAG.NumberOfContourPoints, 'IS', String(contour.points.length / 3))
        .text(TAG.ContourNumber, 'IS', String(index + 1))
        .text(TAG.ContourData, 'DS', contourData(contour.points, ds));
    });
  }
  w.text(TAG.ReferencedROINumber, 'IS', String(roi.number));
}

function writeRoiObservation(w: DatasetWriter, roi: RtStructRoiInput, index: number): void {
  w.text(TAG.ObservationNumber, 'IS', String(index + 1))
    .text(TAG.ReferencedROINumber, 'IS', String(roi.number))
    .text(TAG.ROIObservationLabel, 'SH', roi.name.slice(0, 16))
    .text(TAG.RTROIInterpretedType, 'CS', roi.interpretedType)
    .text(TAG.ROIInterpreter, 'PN', '');
}

/** Finds the slice a contour lies on: the one it names, else the one whose plane it lies in (within
 *  SLICE_MATCH_TOLERANCE_MM), else none (then the contour carries no Contour Image Sequence, which is
 *  allowed). */
class SliceIndex {
  private readonly byUid: Map<string, RtStructCtSlice>;
  private readonly normal: Vec3;

  constructor(private readonly ct: RtStructCtReference) {
    this.byUid = new Map(ct.slices.map((s) => [s.sopInstanceUid, s]));
    this.normal = ct.sliceNormal ?? [0, 0, 1];
  }

  of(contour: Contour): RtStructCtSlice | undefined {
    if (contour.sopInstanceUid) {
      const named = this.byUid.get(contour.sopInstanceUid);
      if (!named) throw new RangeError(`contour references ${contour.sopInstanceUid}, which is not a slice of the CT`);
      return named;
    }
    const [nx, ny, nz] = this.normal;
    const along = contour.points[0] * nx + contour.points[1] * ny + contour.points[2] * nz;
    let best: RtStructCtSlice | undefined;
    for (const s of this.ct.slices) if (!best || Math.abs(s.zMm - along) < Math.abs(best.zMm - along)) best = s;
    return best && Math.abs(best.zMm - along) <= SLICE_MATCH_TOLERANCE_MM ? best : undefined;
  }
}

/** Contour Data as one backslash-joined DS string; fewer decimals only if the contour would not fit a
 *  16-bit value length. */
function contourData(points: Float64Array, ds: DsFormatter): string {
  for (const decimals of CONTOUR_DECIMALS) {
    const text = ds.join(points, decimals);
    if (text.length + (text.length & 1) <= MAX_SHORT_VALUE_BYTES) return text;
  }
  throw new RangeError(`contour of ${points.length / 3} points does not fit one DS value (64 KiB); simplify it`);
}

/** formatDs with a memo: contour points sit on the voxel-corner lattice, so the same coordinate comes
 *  back thousands of times (for an axial CT, x depends on the column only, y on the row, z on the
 *  slice), and along a staircase outline each point repeats one coordinate of the one before. */
class DsFormatter {
  private readonly memo = new Map<number, string>();
  private parts: string[] = [];

  join(values: Float64Array, decimals: number): string {
    const parts = this.parts;
    parts.length = values.length;
    if (decimals !== CONTOUR_DECIMALS[0]) {
      for (let n = 0; n < values.length; n++) parts[n] = formatDs(values[n], decimals);
      return parts.join('\\');
    }
    for (let n = 0; n < values.length; n++) {
      const v = values[n];
      if (n >= 3 && v === values[n - 3]) {
        parts[n] = parts[n - 3];
        continue;
      }
      let s = this.memo.get(v);
      if (s === undefined) this.memo.set(v, (s = formatDs(v, decimals)));
      parts[n] = s;
    }
    return parts.join('\\');
  }
}

/** Shortest decimal of `value` rounded to `decimals` places that fits DS's 16 characters. */
export function formatDs(value: number, decimals = 6): string {
  if (!Number.isFinite(value)) throw new RangeError(`DS cannot hold ${value}`);
  for (let d = decimals; d >= 0; d--) {
    const s = String(Number(value.toFixed(d)) + 0); // "+ 0" turns -0 into 0
    if (s.length <= 16) return s;
  }
  for (let p = 10; p > 0; p--) {
    const s = value.toExponential(p);
    if (s.length <= 16) return s;
  }
  throw new RangeError(`DS cannot hold ${value}`);
}

// ------------------------------------------------------------------------------- UIDs and dates

/** Structure set date/time: given, else (deterministic) the CT study's or one derived from the seed, else now. */
function contentDateTime(input: RtStructInput): { date: string; time: string } {
  const seed = input.deterministic?.seed;
  const fallback = seed === undefined ? clockDateTime(new Date()) : seedDateTime(seed);
  const fromCt = seed === undefined ? {} : { date: input.ct.studyDate || undefined, time: input.ct.studyTime || undefined };
  return {
    date: input.structureSetDate ?? fromCt.date ?? fallback.date,
    time: input.structureSetTime ?? fromCt.time ?? fallback.time,
  };
}

/** With a seed, both UIDs come from a hash of the seed and of the encoded dataset without them. */
function instanceUids(input: RtStructInput, content: Buffer[]): { sopInstanceUid: Uid; seriesInstanceUid: Uid } {
  const seed = input.deterministic?.seed;
  if (seed === undefined) return { sopInstanceUid: newUid(), seriesInstanceUid: (input.seriesInstanceUid as Uid) ?? newUid() };
  return {
    sopInstanceUid: contentUid(seed, 'sop', ...content),
    seriesInstanceUid: (input.seriesInstanceUid as Uid) ?? contentUid(seed, 'series', ...content),
  };
}

/** 2.25.<128-bit integer> (PS3.5 B.2) from a hash, with the RFC 9562 version-8 / variant bits set so
 *  that it is a well-formed UUID like those newUid() makes. */

function sha256(parts: (string | Buffer)[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest();
}

/** A plausible date in 2000-2029 and a time of day, both fixed by the seed. */
function seedDateTime(seed: string): { date: string; time: string } {
  const h = sha256([seed, 'datetime']);
  const day = h.readUInt32BE(0) % (30 * 365);
  const second = h.readUInt32BE(4) % 86400;
  const d = new Date(Date.UTC(2000, 0, 1) + day * 86400_000 + second * 1000);
  return {
    date: `${d.getUTCFullYear()}${pad2(d.getUTCMonth() + 1)}${pad2(d.getUTCDate())}`,
    time: `${pad2(d.getUTCHours())}${pad2(d.getUTCMinutes())}${pad2(d.getUTCSeconds())}`,
  };
}

function clockDateTime(d: Date): { date: string; time: string } {
  return {
    date: `${d.getFullYear()}${pad2(d.getMonth() + 1)}${pad2(d.getDate())}`,
    time: `${pad2(d.getHours())}${pad2(d.getMinutes())}${pad2(d.getSeconds())}`,
  };
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

// ---------------------------------------------------------------------------------------- reader

/** Reads an RT Structure Set: the direct reader (rtstruct-reader.ts), or for encodings it leaves
 *  to dcmjs (deflate, big endian, other character sets), the dcmjs reader below. */
export function readRtStruct(buf: Buffer): RtStruct {
  try {
    return parseRtStruct(buf);
  } catch (e) {
    if (e instanceof RtStructUnsupported) return readRtStructWithDcmjs(buf);
    throw e;
  }
}

/** The general reader through dcmjs's naturalised dataset: slower (it makes a string and a number
 *  per coordinate), and the reference the direct reader is tested against. */
export function readRtStructWithDcmjs(buf: Buffer): RtStruct {
  // dcmjs reads from an ArrayBuffer from offset 0, so hand it one holding exactly this file.
  const bytes = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  const ds = dcmjsData().DicomMetaDictionary.naturalizeDataset(dcmjsData().DicomMessage.readFile(bytes).dict);
  if (ds.SOPClassUID !== SOP_CLASS.RtStructureSet) throw new Error(`not an RT Structure Set: SOP class ${ds.SOPClassUID}`);
  const frame = items(ds.ReferencedFrameOfReferenceSequence)[0] ?? {};
  const study = items(frame.RTReferencedStudySequence)[0] ?? {};
  const series = items(study.RTReferencedSeriesSequence)[0] ?? {};
  return {
    sopInstanceUid: str(ds.SOPInstanceUID),
    seriesInstanceUid: str(ds.SeriesInstanceUID),
    studyInstanceUid: str(ds.StudyInstanceUID),
    patientId: str(ds.PatientID),
    structureSetLabel: str(ds.StructureSetLabel),
    referencedFrameOfReferenceUid: str(frame.FrameOfReferenceUID),
    referencedStudyInstanceUid: str(study.ReferencedSOPInstanceUID),
    referencedSeriesInstanceUid: str(series.SeriesInstanceUID),
    referencedSopInstanceUids: items(series.ContourImageSequence).map((i) => str(i.ReferencedSOPInstanceUID)),
    rois: readRois(ds),
    roiContourReferences: items(ds.ROIContourSequence).map((i) => Number(i.ReferencedROINumber)),
  };
}

/** Joins the three per-ROI sequences on ROI number; an ROI is defined by its Structure Set ROI item. */
function readRois(ds: Natural): RtStructRoi[] {
  const contours = new Map(items(ds.ROIContourSequence).map((i) => [Number(i.ReferencedROINumber), i]));
  const observations = new Map(items(ds.RTROIObservationsSequence).map((i) => [Number(i.ReferencedROINumber), i]));
  return items(ds.StructureSetROISequence).map((roi) => {
    const number = Number(roi.ROINumber);
    const contourItem = contours.get(number) ?? {};
    const color = list(contourItem.ROIDisplayColor).map(Number);
    return {
      number,
      name: str(roi.ROIName),
      color: color.length === 3 ? (color as [number, number, number]) : null,
      interpretedType: str(observations.get(number)?.RTROIInterpretedType),
      algorithm: str(roi.ROIGenerationAlgorithm),
      frameOfReferenceUid: str(roi.ReferencedFrameOfReferenceUID),
      contours: items(contourItem.ContourSequence).map(readContour),
    };
  });
}

function readContour(item: Natural): RtStructContour {
  const image = items(item.ContourImageSequence)[0];
  const contour: RtStructContour = {
    points: Float64Array.from(list(item.ContourData), Number),
    geometricType: str(item.ContourGeometricType),
  };
  if (image) {
    contour.sopInstanceUid = str(image.ReferencedSOPInstanceUID);
    contour.sopClassUid = str(image.ReferencedSOPClassUID);
  }
  return contour;
}

/** dcmjs naturalises a one-valued element to a scalar and an absent one to undefined. */
function list(value: unknown): unknown[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

function items(value: unknown): Natural[] {
  return list(value) as Natural[];
}

function str(value: unknown): string {
  return value === undefined || value === null ? '' : String(value).trim();
}
