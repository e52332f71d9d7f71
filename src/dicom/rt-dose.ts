/**
 * RT Dose (PS3.3 A.18): a reader that turns a multi-frame dose grid into a Grid (patient LPS mm)
 * with dose in Gy, and a deterministic writer for tests and benchmarks.
 *
 * Frame positions. GridFrameOffsetVector (3004,000C) gives each frame's offset along the normal of
 * the image plane (row x column). Its first value is 0 in the relative form (offsets from
 * ImagePositionPatient); in the absolute form (PS3.3 C.8.8.3.2, allowed for axial grids) the values
 * are patient z coordinates and the first equals ImagePositionPatient z. Both are read. Frames are
 * kept in file order; when the offsets decrease, the grid's k axis points against the normal so that
 * spacing stays positive.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import type { Grid, Vec3 } from '../geometry/types.js';
import { formatDs } from '../rt/rtstruct.js';
import { SOP_CLASS } from './sop-classes.js';
import { TS } from './transfer-syntax.js';
import { contentUid, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './uid.js';

/** Dose Summation Type (3004,000A) defined terms. */
export type DoseSummationType =
  | 'PLAN' | 'MULTI_PLAN' | 'PLAN_OVERVIEW' | 'FRACTION' | 'BEAM' | 'BRACHY' | 'FRACTION_SESSION'
  | 'BEAM_SESSION' | 'BRACHY_SESSION' | 'CONTROL_POINT' | 'RECORD';

export interface RtDose {
  sopInstanceUid: string;
  seriesInstanceUid: string;
  studyInstanceUid: string;
  patientId: string;
  frameOfReferenceUid: string;
  /** Dose Summation Type as written (PLAN, BEAM, ...). */
  summationType: string;
  /** PHYSICAL, EFFECTIVE or ERROR. */
  doseType: string;
  /** GY or RELATIVE; doseGy holds the scaled values either way. */
  doseUnits: string;
  referencedPlanSopInstanceUid?: string;
  referencedFractionGroupNumber?: number;
  referencedBeamNumber?: number;
  /** Dose grid in patient LPS. With non-uniform frames spacingMm[2] is the mean step: use frameOffsetsMm. */
  grid: Grid;
  /** Position of each frame along grid.direction[2], in mm from grid.originMm: first 0, increasing. */
  frameOffsetsMm: Float64Array;
  /** True when consecutive frames are equally spaced (within FRAME_SPACING_TOLERANCE_MM). */
  uniformFrames: boolean;
  /** Dose in Gy (stored value x DoseGridScaling), index i + j*nx + k*nx*ny. */
  doseGy: Float32Array;
}

export interface ReadRtDoseOptions {
  /** Read doses whose frames are unequally spaced (the caller then uses frameOffsetsMm). Default false:
   *  such a dose is refused, because a consumer that only looks at `grid` would misplace its frames. */
  allowNonUniformFrames?: boolean;
}

/** Frame steps closer than this (mm) count as equal. */
export const FRAME_SPACING_TOLERANCE_MM = 0.01;
/** How far (mm) the first absolute offset may be from ImagePositionPatient z. */
const ABSOLUTE_OFFSET_TOLERANCE_MM = 0.01;

// dcmjs ships no type declarations; this is the slice of its API used here.
type DicomJson = Record<string, { vr?: string; Value?: unknown[] }>;
type Natural = Record<string, any>;
interface DcmjsData {
  DicomMessage: { readFile(buffer: ArrayBuffer): { dict: DicomJson; meta: DicomJson } };
  DicomMetaDictionary: { naturalizeDataset(dataset: DicomJson): Natural; denaturalizeDataset(dataset: Record<string, unknown>): DicomJson };
  DicomDict: new (meta: DicomJson) => { dict: DicomJson; write(): ArrayBuffer };
}
let dcmjs: DcmjsData | undefined;
const dcmjsData = (): DcmjsData => (dcmjs ??= (createRequire(import.meta.url)('dcmjs') as { data: DcmjsData }).data);

// Pixel bytes are viewed as typed arrays, whose byte order is the host's.
if (endianness() !== 'LE') throw new Error('rt-dose assumes a little-endian host');

// ---------------------------------------------------------------------------------------- reader

export async function readRtDose(file: string, opts: ReadRtDoseOptions = {}): Promise<RtDose> {
  const buf = await readFile(file);
  try {
    return parseRtDose(buf, opts);
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`, { cause: e });
  }
}

/** Parses an RT Dose Part 10 file held in memory. Errors name the attribute at fault. */
export function parseRtDose(buf: Buffer, opts: ReadRtDoseOptions = {}): RtDose {
  const bytes = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  const message = dcmjsData().DicomMessage.readFile(bytes);
  const meta = dcmjsData().DicomMetaDictionary.naturalizeDataset(message.meta);
  const ts = str(meta.TransferSyntaxUID);
  if (ts !== TS.ExplicitVRLittleEndian && ts !== TS.ImplicitVRLittleEndian && ts !== TS.DeflatedExplicitVRLittleEndian) {
    throw new Error(`RT Dose in transfer syntax ${ts} is not supported (native little endian only); convert it with e.g. dcmconv +te`);
  }
  const ds = dcmjsData().DicomMetaDictionary.naturalizeDataset(message.dict);
  if (str(ds.SOPClassUID) !== SOP_CLASS.RtDose) throw new Error(`not an RT Dose: SOP class ${str(ds.SOPClassUID) || '(none)'}`);

  const rows = num(ds.Rows, 'Rows (0028,0010)');
  const columns = num(ds.Columns, 'Columns (0028,0011)');
  const frames = ds.NumberOfFrames === undefined ? 1 : num(ds.NumberOfFrames, 'NumberOfFrames (0028,0008)');
  const placement = framePlacement(ds, frames, opts);
  const rawFrames = storedValues(message.dict, ds, rows * columns * frames);
  const scaling = ds.DoseGridScaling === undefined ? 1 : num(ds.DoseGridScaling, 'DoseGridScaling (3004,000E)');
  const doseGy = new Float32Array(rawFrames.length);
  for (let n = 0; n < rawFrames.length; n++) doseGy[n] = rawFrames[n] * scaling;

  const plan = list(ds.ReferencedRTPlanSequence)[0] as Natural | undefined;
  const fractionGroup = list(plan?.ReferencedFractionGroupSequence)[0] as Natural | undefined;
  const beam = list(fractionGroup?.ReferencedBeamSequence)[0] as Natural | undefined;
  const dose: RtDose = {
    sopInstanceUid: str(ds.SOPInstanceUID),
    seriesInstanceUid: str(ds.SeriesInstanceUID),
    studyInstanceUid: str(ds.StudyInstanceUID),
    patientId: str(ds.PatientID),
    frameOfReferenceUid: str(ds.FrameOfReferenceUID),
    summationType: str(ds.DoseSummationType),
    doseType: str(ds.DoseType),
    doseUnits: str(ds.DoseUnits),
    grid: {
      dims: [columns, rows, frames],
      spacingMm: [placement.pixelSpacing[0], placement.pixelSpacing[1], placement.sliceSpacing],
      originMm: placement.origin,
      direction: placement.direction,
    },
    frameOffsetsMm: placement.offsets,
    uniformFrames: placement.uniform,
    doseGy,
  };
  if (plan?.ReferencedSOPInstanceUID) dose.referencedPlanSopInstanceUid = str(plan.ReferencedSOPInstanceUID);
  if (fractionGroup?.ReferencedFractionGroupNumber !== undefined) dose.referencedFractionGroupNumber = Number(fractionGroup.ReferencedFractionGroupNumber);
  if (beam?.ReferencedBeamNumber !== undefined) dose.referencedBeamNumber = Number(beam.ReferencedBeamNumber);
  return dose;
}

interface FramePlacement {
  origin: Vec3;
  direction: [Vec3, Vec3, Vec3];
  /** mm along i (columns) and j (rows). */
  pixelSpacing: [number, number];
  sliceSpacing: number;
  offsets: Float64Array;
  uniform: boolean;
}

/** Grid geometry from Image Plane attributes and GridFrameOffsetVector (see the file comment). */
function framePlacement(ds: Natural, frames: number, opts: ReadRtDoseOptions): FramePlacement {
  const iop = list(ds.ImageOrientationPatient).map(Number);
  const ipp = list(ds.ImagePositionPatient).map(Number);
  const ps = list(ds.PixelSpacing).map(Number);
  if (iop.length !== 6 || !iop.every(Number.isFinite)) throw new Error('ImageOrientationPatient (0020,0037) must hold 6 numbers');
  if (ipp.length !== 3 || !ipp.every(Number.isFinite)) throw new Error('ImagePositionPatient (0020,0032) must hold 3 numbers');
  if (ps.length !== 2 || !ps.every((v) => v > 0)) throw new Error('PixelSpacing (0028,0030) must hold 2 positive numbers');
  const row = unit(iop.slice(0, 3) as Vec3, 'ImageOrientationPatient row');
  const col = unit(iop.slice(3, 6) as Vec3, 'ImageOrientationPatient column');
  if (Math.abs(dot(row, col)) > 1e-3) throw new Error(`ImageOrientationPatient (0020,0037) row and column are not orthogonal: ${iop.join('\\')}`);
  const normal = cross(row, col);

  const raw = ds.GridFrameOffsetVector === undefined ? (frames === 1 ? [0] : []) : list(ds.GridFrameOffsetVector).map(Number);
  if (raw.length !== frames || !raw.every(Number.isFinite)) {
    throw new Error(`GridFrameOffsetVector (3004,000C) has ${raw.length} numeric values for ${frames} frames`);
  }
  let t = Float64Array.from(raw);
  if (raw[0] !== 0) {
    // Absolute form: the values are patient z coordinates of the frames.
    if (Math.abs(normal[2]) < 1e-3) throw new Error(`GridFrameOffsetVector (3004,000C) starts at ${raw[0]}, not 0, so it is absolute (patient z), which a non-axial grid cannot use`);
    if (Math.abs(raw[0] - ipp[2]) > ABSOLUTE_OFFSET_TOLERANCE_MM) {
      throw new Error(`GridFrameOffsetVector (3004,000C) starts at ${raw[0]}: neither 0 (relative) nor ImagePositionPatient z ${ipp[2]} (absolute)`);
    }
    t = Float64Array.from(raw, (z) => (z - ipp[2]) / normal[2]);
  }
  let kAxis = normal;
  if (frames > 1 && t[1] < t[0]) {
    kAxis = [0 - normal[0], 0 - normal[1], 0 - normal[2]]; // 0 - v: no -0 in the result
    t = t.map((v) => -v);
  }
  const base = t[0];
  t = t.map((v) => v - base);
  for (let k = 1; k < frames; k++) {
    if (!(t[k] > t[k - 1])) throw new Error(`GridFrameOffsetVector (3004,000C) is not strictly monotonic at frame ${k + 1}: ${raw.slice(Math.max(0, k - 2), k + 2).join('\\')}`);
  }
  const step = frames > 1 ? t[1] - t[0] : Number(ds.SliceThickness) > 0 ? Number(ds.SliceThickness) : 1;
  let uniform = true;
  for (let k = 2; k < frames; k++) if (Math.abs(t[k] - t[k - 1] - step) > FRAME_SPACING_TOLERANCE_MM) uniform = false;
  if (!uniform && !opts.allowNonUniformFrames) {
    const steps = Array.from(t.subarray(1), (v, k) => +(v - t[k]).toFixed(3));
    throw new Error(`frames are unequally spaced (GridFrameOffsetVector steps ${[...new Set(steps)].slice(0, 6).join(', ')} mm); resample the dose to a uniform grid, or read it with allowNonUniformFrames`);
  }
  return {
    origin: ipp as Vec3,
    direction: [row, col, kAxis],
    pixelSpacing: [ps[1], ps[0]], // PixelSpacing is row spacing (along j) \ column spacing (along i)
    sliceSpacing: uniform || frames < 2 ? step : t[frames - 1] / (frames - 1),
    offsets: t,
    uniform,
  };
}

/** Stored pixel values as a typed array of the right width and sign. */
function storedValues(dict: DicomJson, ds: Natural, count: number): Uint16Array | Uint32Array | Int16Array | Int32Array {
  const bits = num(ds.BitsAllocated, 'BitsAllocated (0028,0100)');
  const signed = Number(ds.PixelRepresentation ?? 0) === 1;
  if (Number(ds.SamplesPerPixel ?? 1) !== 1) throw new Error(`SamplesPerPixel (0028,0002) is ${ds.SamplesPerPixel}; dose has 1`);
  if (bits !== 16 && bits !== 32) throw new Error(`BitsAllocated (0028,0100) ${bits} is not supported for dose (16 or 32)`);
  const fragments = (dict['7FE00010']?.Value ?? []) as ArrayBuffer[];
  if (fragments.length === 0) throw new Error('no PixelData (7FE0,0010)');
  const bytes = fragments.length === 1 ? new Uint8Array(fragments[0]) : new Uint8Array(Buffer.concat(fragments.map((f) => new Uint8Array(f))));
  const need = count * (bits / 8);
  if (bytes.byteLength < need) throw new Error(`PixelData (7FE0,0010) holds ${bytes.byteLength} bytes; Rows x Columns x NumberOfFrames needs ${need}`);
  // Copy into a fresh, aligned buffer: the view's offset inside dcmjs's buffer need not be aligned.
  const aligned = bytes.slice(0, need).buffer;
  if (bits === 16) return signed ? new Int16Array(aligned) : new Uint16Array(aligned);
  return signed ? new Int32Array(aligned) : new Uint32Array(aligned);
}

// ---------------------------------------------------------------------------------------- writer

export interface RtDoseInput {
  patientId: string;
  patientName: string;
  studyInstanceUid: string;
  frameOfReferenceUid: string;
  /** Default: derived from a hash of the content, so the same input gives the same file. */
  seriesInstanceUid?: string;
  sopInstanceUid?: string;
  /** YYYYMMDD / HHMMSS; defaults are fixed (no clock) so output is deterministic. */
  studyDate?: string;
  studyTime?: string;
  studyId?: string;
  seriesNumber?: number;
  /** direction[2] must be ± direction[0] x direction[1]. */
  grid: Grid;
  /** Gy, index i + j*nx + k*nx*ny. Negative values are written as 0. */
  doseGy: Float32Array;
  /** Frame positions along grid.direction[2] in mm from the origin (first 0, increasing). Default k x spacing. */
  frameOffsetsMm?: ArrayLike<number>;
  /** Default 'relative'. 'absolute' writes patient z (axial grids only). */
  frameOffsetForm?: 'relative' | 'absolute';
  summationType: DoseSummationType;
  /** Required for every summation type but MULTI_PLAN-less ones (PS3.3 C.8.8.3: all but PLAN_OVERVIEW, RECORD). */
  referencedPlan?: { sopInstanceUid: string; fractionGroupNumber?: number; beamNumber?: number };
  /** Default 16 (a step of max/65535: about 1 mGy at 70 Gy). 32-bit files are valid DICOM, but
   *  dciodvfy (dicom3tools 1.00) aborts on 32-bit OW pixel data, so they cannot be validated here. */
  bitsAllocated?: 16 | 32;
  /** Default PHYSICAL. */
  doseType?: 'PHYSICAL' | 'EFFECTIVE';
  doseComment?: string;
}

const DEFAULT_DATE = '20000101';
const DEFAULT_TIME = '120000';
/** Summation types whose Referenced RT Plan Sequence is required (PS3.3 C.8.8.3). */
const NEEDS_PLAN = new Set<DoseSummationType>(['PLAN', 'MULTI_PLAN', 'FRACTION', 'BEAM', 'BRACHY', 'FRACTION_SESSION', 'BEAM_SESSION', 'BRACHY_SESSION', 'CONTROL_POINT']);
/** ... and whose Referenced Fraction Group Sequence is required. */
const NEEDS_FRACTION_GROUP = new Set<DoseSummationType>(['FRACTION', 'BEAM', 'BRACHY', 'FRACTION_SESSION', 'BEAM_SESSION', 'BRACHY_SESSION', 'CONTROL_POINT']);
const NEEDS_BEAM = new Set<DoseSummationType>(['BEAM', 'BEAM_SESSION', 'CONTROL_POINT']);
const GRID_FRAME_OFFSET_VECTOR_TAG = 0x3004000c;

/** Encodes an RT Dose as Explicit VR Little Endian Part 10. */
export function buildRtDose(input: RtDoseInput): Buffer {
  const { grid } = input;
  const [nx, ny, nz] = grid.dims;
  if (input.doseGy.length !== nx * ny * nz) throw new RangeError(`doseGy has ${input.doseGy.length} values; grid ${nx}x${ny}x${nz} needs ${nx * ny * nz}`);
  const offsets = relativeOffsets(input);
  const bits = input.bitsAllocated ?? 16;
  const { stored, scaling } = quantise(input.doseGy, bits);
  const fractionGroupNumber = input.referencedPlan?.fractionGroupNumber ?? 1;
  if (NEEDS_PLAN.has(input.summationType) && !input.referencedPlan) throw new RangeError(`DoseSummationType ${input.summationType} needs referencedPlan`);
  if (NEEDS_BEAM.has(input.summationType) && input.referencedPlan?.beamNumber === undefined) throw new RangeError(`DoseSummationType ${input.summationType} needs referencedPlan.beamNumber`);

  const uids = doseUids(input, stored);
  const ds = (v: number) => formatDs(v, 6);
  const dataset: Record<string, unknown> = {
    SpecificCharacterSet: 'ISO_IR 100',
    InstanceCreationDate: input.studyDate ?? DEFAULT_DATE,
    InstanceCreationTime: input.studyTime ?? DEFAULT_TIME,
    SOPClassUID: SOP_CLASS.RtDose,
    SOPInstanceUID: uids.sop,
    StudyDate: input.studyDate ?? DEFAULT_DATE,
    ContentDate: input.studyDate ?? DEFAULT_DATE,
    StudyTime: input.studyTime ?? DEFAULT_TIME,
    ContentTime: input.studyTime ?? DEFAULT_TIME,
    AccessionNumber: '',
    Modality: 'RTDOSE',
    Manufacturer: 'rtpipeline',
    ReferringPhysicianName: '',
    OperatorsName: '',
    PatientName: input.patientName,
    PatientID: input.patientId,
    PatientBirthDate: '',
    PatientSex: '',
    SliceThickness: ds(grid.spacingMm[2]),
    SoftwareVersions: IMPLEMENTATION_VERSION_NAME,
    StudyInstanceUID: input.studyInstanceUid,
    SeriesInstanceUID: uids.series,
    StudyID: input.studyId ?? '1',
    SeriesNumber: input.seriesNumber ?? 1,
    InstanceNumber: 1,
    ImagePositionPatient: grid.originMm.map(ds),
    ImageOrientationPatient: [...grid.direction[0], ...grid.direction[1]].map(ds),
    FrameOfReferenceUID: input.frameOfReferenceUid,
    PositionReferenceIndicator: '',
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    NumberOfFrames: nz,
    FrameIncrementPointer: GRID_FRAME_OFFSET_VECTOR_TAG,
    Rows: ny,
    Columns: nx,
    PixelSpacing: [ds(grid.spacingMm[1]), ds(grid.spacingMm[0])],
    BitsAllocated: bits,
    BitsStored: bits,
    HighBit: bits - 1,
    PixelRepresentation: 0,
    DoseUnits: 'GY',
    DoseType: input.doseType ?? 'PHYSICAL',
    ...(input.doseComment ? { DoseComment: input.doseComment } : {}),
    DoseSummationType: input.summationType,
    GridFrameOffsetVector: gridFrameOffsetVector(input, offsets).map(ds),
    DoseGridScaling: String(scaling),
    ...(input.referencedPlan ? { ReferencedRTPlanSequence: [referencedPlanItem(input, fractionGroupNumber)] } : {}),
    PixelData: stored.buffer,
    _vrMap: { PixelData: 'OW' },
  };
  return encodePart10(dataset, SOP_CLASS.RtDose, uids.sop);
}

function referencedPlanItem(input: RtDoseInput, fractionGroupNumber: number): Record<string, unknown> {
  const plan = input.referencedPlan!;
  const item: Record<string, unknown> = { ReferencedSOPClassUID: SOP_CLASS.RtPlan, ReferencedSOPInstanceUID: plan.sopInstanceUid };
  if (NEEDS_FRACTION_GROUP.has(input.summationType)) {
    const group: Record<string, unknown> = { ReferencedFractionGroupNumber: fractionGroupNumber };
    if (plan.beamNumber !== undefined) group.ReferencedBeamSequence = [{ ReferencedBeamNumber: plan.beamNumber }];
    item.ReferencedFractionGroupSequence = [group];
  }
  return item;
}

/** Offsets along grid.direction[2], checked: first 0, strictly increasing, one per frame. */
function relativeOffsets(input: RtDoseInput): Float64Array {
  const nz = input.grid.dims[2];
  const offsets = input.frameOffsetsMm ? Float64Array.from(input.frameOffsetsMm) : Float64Array.from({ length: nz }, (_, k) => k * input.grid.spacingMm[2]);
  if (offsets.length !== nz) throw new RangeError(`frameOffsetsMm has ${offsets.length} values for ${nz} frames`);
  if (offsets[0] !== 0) throw new RangeError('frameOffsetsMm must start at 0');
  for (let k = 1; k < nz; k++) if (!(offsets[k] > offsets[k - 1])) throw new RangeError(`frameOffsetsMm must increase (frame ${k})`);
  return offsets;
}

/** GridFrameOffsetVector values: along row x column (relative) or patient z (absolute). */
function gridFrameOffsetVector(input: RtDoseInput, offsets: Float64Array): number[] {
  const [row, col, k] = input.grid.direction;
  const normal = cross(row, col);
  const sign = dot(normal, k);
  if (Math.abs(Math.abs(sign) - 1) > 1e-6) throw new RangeError('grid.direction[2] must be ± direction[0] x direction[1] for an RT Dose');
  if ((input.frameOffsetForm ?? 'relative') === 'relative') return Array.from(offsets, (t) => t * sign + 0);
  if (Math.abs(k[2]) < 1e-3) throw new RangeError('absolute GridFrameOffsetVector needs an axial grid');
  return Array.from(offsets, (t) => input.grid.originMm[2] + t * k[2]);
}

/** Stored unsigned integers and the DoseGridScaling (as it will be read back from its DS text)
 *  that maps them to Gy. */
function quantise(doseGy: Float32Array, bits: 16 | 32): { stored: Uint16Array | Uint32Array; scaling: number } {
  let max = 0;
  for (let n = 0; n < doseGy.length; n++) if (doseGy[n] > max) max = doseGy[n];
  const top = bits === 16 ? 0xffff : 0xffffffff;
  // Eight significant digits fit a DS (16 characters, exponent allowed); the margin keeps the largest
  // dose inside the stored range after that rounding.
  const exact = max > 0 ? Number(((max / top) * (1 + 1e-6)).toPrecision(8)) : 1;
  const stored = bits === 16 ? new Uint16Array(doseGy.length) : new Uint32Array(doseGy.length);
  for (let n = 0; n < doseGy.length; n++) {
    const v = Math.round(doseGy[n] / exact);
    stored[n] = v < 0 ? 0 : v > top ? top : v;
  }
  return { stored, scaling: exact };
}

function doseUids(input: RtDoseInput, stored: Uint16Array | Uint32Array): { sop: string; series: string } {
  if (input.sopInstanceUid && input.seriesInstanceUid) return { sop: input.sopInstanceUid, series: input.seriesInstanceUid };
  const { doseGy: _dose, ...rest } = input;
  const content = [JSON.stringify(rest), Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength)];
  return {
    sop: input.sopInstanceUid ?? contentUid('rtdose-sop', ...content),
    series: input.seriesInstanceUid ?? contentUid('rtdose-series', ...content),
  };
}


/** Part 10 with an Explicit VR Little Endian data set (dcmjs encodes the data set in the meta's syntax). */
export function encodePart10(dataset: Record<string, unknown>, sopClassUid: string, sopInstanceUid: string): Buffer {
  const { DicomDict, DicomMetaDictionary } = dcmjsData();
  const meta = DicomMetaDictionary.denaturalizeDataset({
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: sopClassUid,
    MediaStorageSOPInstanceUID: sopInstanceUid,
    TransferSyntaxUID: TS.ExplicitVRLittleEndian,
    ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
    ImplementationVersionName: IMPLEMENTATION_VERSION_NAME,
  });
  const dict = new DicomDict(meta);
  dict.dict = DicomMetaDictionary.denaturalizeDataset(dataset);
  return Buffer.from(dict.write());
}

// ---------------------------------------------------------------------------------------- helpers

function unit(v: Vec3, what: string): Vec3 {
  const n = Math.hypot(v[0], v[1], v[2]);
  if (Math.abs(n - 1) > 1e-3) throw new Error(`${what} is not a unit vector: ${v.join('\\')}`);
  return [v[0] / n, v[1] / n, v[2] / n];
}

function cross(a: Vec3, b: Vec3): Vec3 {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

function dot(a: Vec3, b: Vec3): number {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

function num(value: unknown, what: string): number {
  const v = Number(Array.isArray(value) ? value[0] : value);
  if (value === undefined || value === null || value === '' || !Number.isFinite(v)) throw new Error(`${what} is missing or not a number`);
  return v;
}

/** dcmjs naturalises a one-valued element to a scalar and an absent one to undefined. */
export function list(value: unknown): unknown[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

export function str(value: unknown): string {
  const v = Array.isArray(value) ? value[0] : value;
  return v === undefined || v === null ? '' : String(v).trim();
}
