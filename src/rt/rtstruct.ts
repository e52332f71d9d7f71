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
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, newUid, type Uid } from '../dicom/uid.js';

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
  /** Same input and seed give byte-identical output: UIDs and dates come from a hash, not the clock. */
  deterministic?: { seed: string };
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
}

// dcmjs ships no type declarations; this is the slice of its API we use (see ct-series-writer.ts).
type DicomJson = Record<string, unknown>;
// dcmjs's naturalised form is whatever the file held, so its values are checked where they are read.
type Natural = Record<string, any>;
interface DcmjsData {
  DicomDict: new (meta: DicomJson) => { dict: DicomJson; write(): ArrayBuffer };
  DicomMessage: { readFile(buffer: ArrayBuffer): { dict: DicomJson } };
  DicomMetaDictionary: {
    denaturalizeDataset(dataset: Natural): DicomJson;
    naturalizeDataset(dataset: DicomJson): Natural;
  };
}
const { DicomDict, DicomMessage, DicomMetaDictionary } = (createRequire(import.meta.url)('dcmjs') as { data: DcmjsData })
  .data;

/** RT Referenced Study Sequence names the study by this (retired) SOP class, as every TPS expects. */
const DETACHED_STUDY_MANAGEMENT_SOP_CLASS = '1.2.840.10008.3.1.2.3.1';
/** Explicit VR gives DS a 16-bit length; dcmjs would silently switch a longer value to UN. */
const MAX_SHORT_VALUE_BYTES = 0xfffe;
/** Decimal places tried for Contour Data, finest first, until a contour fits MAX_SHORT_VALUE_BYTES. */
const CONTOUR_DECIMALS = [6, 4, 3, 2];
/** How far (mm) a contour's plane may be from a slice's to be placed on it when it names no slice. */
const SLICE_MATCH_TOLERANCE_MM = 0.05;

// ---------------------------------------------------------------------------------------- writer

export function buildRtStruct(input: RtStructInput): Buffer {
  validateInput(input);
  const body = datasetWithoutUids(input);
  const uids = instanceUids(input, body);
  const dataset: Natural = { ...body, SOPInstanceUID: uids.sopInstanceUid, SeriesInstanceUID: uids.seriesInstanceUid };
  return encodePart10(dataset, uids.sopInstanceUid);
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

/** Everything but the two UIDs that are derived from it. */
function datasetWithoutUids(input: RtStructInput): Natural {
  const when = contentDateTime(input);
  return {
    ...patientAndStudy(input.ct),
    ...seriesAndEquipment(input, when),
    SpecificCharacterSet: 'ISO_IR 100',
    SOPClassUID: SOP_CLASS.RtStructureSet,
    InstanceCreationDate: when.date,
    InstanceCreationTime: when.time,
    InstanceNumber: 1,
    // Frame of Reference module: validators (dicom3tools) expect it on an RTSTRUCT; it is the CT's frame.
    FrameOfReferenceUID: input.ct.frameOfReferenceUid,
    PositionReferenceIndicator: '',
    StructureSetLabel: input.structureSetLabel ?? 'RTSTRUCT',
    ...(input.structureSetName ? { StructureSetName: input.structureSetName } : {}),
    StructureSetDate: when.date,
    StructureSetTime: when.time,
    ReferencedFrameOfReferenceSequence: [referencedFrameOfReference(input.ct)],
    StructureSetROISequence: input.rois.map((roi) => structureSetRoi(roi, input.ct.frameOfReferenceUid)),
    ROIContourSequence: input.rois.map((roi) => roiContour(roi, input.ct)),
    RTROIObservationsSequence: input.rois.map((roi, index) => roiObservation(roi, index + 1)),
  };
}

function patientAndStudy(ct: RtStructCtReference): Natural {
  return {
    PatientName: ct.patientName,
    PatientID: ct.patientId,
    PatientBirthDate: ct.patientBirthDate ?? '',
    PatientSex: ct.patientSex ?? '',
    StudyInstanceUID: ct.studyInstanceUid,
    StudyDate: ct.studyDate ?? '',
    StudyTime: ct.studyTime ?? '',
    ReferringPhysicianName: ct.referringPhysicianName ?? '',
    StudyID: ct.studyId ?? '',
    AccessionNumber: ct.accessionNumber ?? '',
  };
}

function seriesAndEquipment(input: RtStructInput, when: { date: string; time: string }): Natural {
  const optional: Natural = {
    SeriesDescription: input.seriesDescription,
    ManufacturerModelName: input.manufacturerModelName,
    InstitutionName: input.institutionName,
    StationName: input.stationName,
  };
  for (const key of Object.keys(optional)) if (optional[key] === undefined) delete optional[key];
  return {
    ...optional,
    Modality: 'RTSTRUCT',
    SeriesNumber: input.seriesNumber ?? '',
    SeriesDate: when.date,
    SeriesTime: when.time,
    OperatorsName: input.operatorsName ?? '',
    Manufacturer: input.manufacturer ?? 'rtpipeline',
    SoftwareVersions: input.softwareVersions ?? IMPLEMENTATION_VERSION_NAME,
  };
}

function referencedFrameOfReference(ct: RtStructCtReference): Natural {
  const contourImages = ct.slices.map((s) => ({ ReferencedSOPClassUID: s.sopClassUid, ReferencedSOPInstanceUID: s.sopInstanceUid }));
  const series = { SeriesInstanceUID: ct.seriesInstanceUid, ContourImageSequence: contourImages };
  const study = {
    ReferencedSOPClassUID: DETACHED_STUDY_MANAGEMENT_SOP_CLASS,
    ReferencedSOPInstanceUID: ct.studyInstanceUid,
    RTReferencedSeriesSequence: [series],
  };
  return { FrameOfReferenceUID: ct.frameOfReferenceUid, RTReferencedStudySequence: [study] };
}

function structureSetRoi(roi: RtStructRoiInput, frameOfReferenceUid: string): Natural {
  return {
    ROINumber: roi.number,
    ReferencedFrameOfReferenceUID: frameOfReferenceUid,
    ROIName: roi.name,
    ...(roi.description ? { ROIDescription: roi.description } : {}),
    ROIGenerationAlgorithm: roi.algorithm,
  };
}

function roiContour(roi: RtStructRoiInput, ct: RtStructCtReference): Natural {
  const item: Natural = { ReferencedROINumber: roi.number, ROIDisplayColor: [...roi.color] };
  // Contour Sequence is Type 3; an empty ROI (nothing found) is still a valid, listed ROI.
  if (roi.contours.length > 0) item.ContourSequence = roi.contours.map((c, i) => contourItem(c, i + 1, ct));
  return item;
}

function contourItem(contour: Contour, contourNumber: number, ct: RtStructCtReference): Natural {
  const slice = sliceOf(contour, ct);
  const item: Natural = {
    ContourNumber: contourNumber,
    ContourGeometricType: 'CLOSED_PLANAR',
    NumberOfContourPoints: contour.points.length / 3,
    ContourData: contourData(contour.points),
  };
  if (slice) item.ContourImageSequence = [{ ReferencedSOPClassUID: slice.sopClassUid, ReferencedSOPInstanceUID: slice.sopInstanceUid }];
  return item;
}

/** The slice a contour names, else the one whose plane it lies in, else none (then the contour
 *  carries no Contour Image Sequence, which is allowed). */
function sliceOf(contour: Contour, ct: RtStructCtReference): RtStructCtSlice | undefined {
  if (contour.sopInstanceUid) {
    const named = ct.slices.find((s) => s.sopInstanceUid === contour.sopInstanceUid);
    if (!named) throw new RangeError(`contour references ${contour.sopInstanceUid}, which is not a slice of the CT`);
    return named;
  }
  const [nx, ny, nz] = ct.sliceNormal ?? [0, 0, 1];
  const along = contour.points[0] * nx + contour.points[1] * ny + contour.points[2] * nz;
  let best: RtStructCtSlice | undefined;
  for (const s of ct.slices) if (!best || Math.abs(s.zMm - along) < Math.abs(best.zMm - along)) best = s;
  return best && Math.abs(best.zMm - along) <= SLICE_MATCH_TOLERANCE_MM ? best : undefined;
}

/** DS strings, each within 16 characters; fewer decimals only if the contour would not fit a short value. */
function contourData(points: Float64Array): string[] {
  for (const decimals of CONTOUR_DECIMALS) {
    const values = Array.from(points, (v) => formatDs(v, decimals));
    const bytes = values.reduce((n, v) => n + v.length + 1, -1);
    if (bytes <= MAX_SHORT_VALUE_BYTES) return values;
  }
  throw new RangeError(`contour of ${points.length / 3} points does not fit one DS value (64 KiB); simplify it`);
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

function roiObservation(roi: RtStructRoiInput, observationNumber: number): Natural {
  return {
    ObservationNumber: observationNumber,
    ReferencedROINumber: roi.number,
    ROIObservationLabel: roi.name.slice(0, 16),
    RTROIInterpretedType: roi.interpretedType,
    ROIInterpreter: '',
  };
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

function instanceUids(input: RtStructInput, body: Natural): { sopInstanceUid: Uid; seriesInstanceUid: Uid } {
  const seed = input.deterministic?.seed;
  if (seed === undefined) return { sopInstanceUid: newUid(), seriesInstanceUid: (input.seriesInstanceUid as Uid) ?? newUid() };
  // The body holds every encoded value (DS already as strings), so its JSON identifies the content.
  const content = JSON.stringify(body);
  return {
    sopInstanceUid: hashUid(seed, 'sop', content),
    seriesInstanceUid: (input.seriesInstanceUid as Uid) ?? hashUid(seed, 'series', content),
  };
}

/** 2.25.<128-bit integer> (PS3.5 B.2) from a hash, with the RFC 9562 version-8 / variant bits set so
 *  that it is a well-formed UUID like those newUid() makes. */
function hashUid(...parts: string[]): Uid {
  const bytes = sha256(parts).subarray(0, 16);
  bytes[6] = (bytes[6] & 0x0f) | 0x80;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  return `2.25.${BigInt('0x' + bytes.toString('hex')).toString(10)}` as Uid;
}

function sha256(parts: string[]): Buffer {
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

function encodePart10(dataset: Natural, sopInstanceUid: string): Buffer {
  const meta = DicomMetaDictionary.denaturalizeDataset({
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: SOP_CLASS.RtStructureSet,
    MediaStorageSOPInstanceUID: sopInstanceUid,
    TransferSyntaxUID: TS.ExplicitVRLittleEndian,
    ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
    ImplementationVersionName: IMPLEMENTATION_VERSION_NAME,
  });
  const dict = new DicomDict(meta);
  dict.dict = DicomMetaDictionary.denaturalizeDataset(dataset);
  return Buffer.from(dict.write());
}

// ---------------------------------------------------------------------------------------- reader

export function readRtStruct(buf: Buffer): RtStruct {
  // dcmjs reads from an ArrayBuffer from offset 0, so hand it one holding exactly this file.
  const bytes = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  const ds = DicomMetaDictionary.naturalizeDataset(DicomMessage.readFile(bytes).dict);
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
