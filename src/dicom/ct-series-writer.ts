/**
 * Writes the synthetic thorax phantom as a DICOM CT Image Storage series (PS3.3 A.3), one Part-10
 * file per slice, generating and encoding one slice at a time.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { gridOriginMm, thoraxSlices, type PhantomSlice, type PhantomSpec } from '../phantom/thorax.js';
import { SOP_CLASS } from './sop-classes.js';
import { TS } from './transfer-syntax.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, newUid, type Uid } from './uid.js';

const TRANSFER_SYNTAX_UID = { explicit: TS.ExplicitVRLittleEndian, implicit: TS.ImplicitVRLittleEndian } as const;

export type PatientPosition = 'HFS' | 'FFS' | 'HFP' | 'FFP';

export interface CtSeriesOptions {
  patientId: string;
  /** DICOM PN form, e.g. "PHANTOM^THORAX". */
  patientName: string;
  studyInstanceUid?: Uid;
  seriesInstanceUid?: Uid;
  frameOfReferenceUid?: Uid;
  /** YYYYMMDD; defaults to today. */
  studyDate?: string;
  /** Default 'explicit'. */
  transferSyntax?: 'explicit' | 'implicit';
  /** Default 'HFS'. */
  patientPosition?: PatientPosition;
  /** Default -1024. HU outside what 12 stored bits can represent with it are clamped. */
  rescaleIntercept?: number;
  phantom: PhantomSpec;
}

export interface CtInstance {
  sopInstanceUid: Uid;
  fileName: string;
  bytes: Buffer;
}

export interface CtSeriesResult {
  studyInstanceUid: Uid;
  seriesInstanceUid: Uid;
  frameOfReferenceUid: Uid;
  /** `join(dir, fileName)` for each instance, in InstanceNumber order. */
  files: string[];
}

// dcmjs ships no type declarations; this is the slice of its API we use. Loaded through require
// because an ESM import of an untyped module is a compile error under strict.
type DicomJson = Record<string, unknown>;
interface DcmjsData {
  DicomDict: new (meta: DicomJson) => { dict: DicomJson; write(): ArrayBuffer };
  DicomMetaDictionary: { denaturalizeDataset(dataset: Record<string, unknown>): DicomJson };
}
const { DicomDict, DicomMetaDictionary } = (createRequire(import.meta.url)('dcmjs') as { data: DcmjsData }).data;

// Pixel bytes are copied straight from a Uint16Array, whose byte order is the host's.
if (endianness() !== 'LE') throw new Error('ct-series-writer assumes a little-endian host');

const BITS_STORED = 12;
const MAX_STORED = (1 << BITS_STORED) - 1;

/** Image row/column direction signs along patient x/y (PS3.3 C.7.6.2.1.1): the scanner's image axes are
 *  fixed to the gantry, so a feet-first patient is mirrored left-right and a prone one is upside down. */
const AXIS_SIGNS: Record<PatientPosition, { row: 1 | -1; column: 1 | -1 }> = {
  HFS: { row: 1, column: 1 },
  FFS: { row: -1, column: 1 },
  HFP: { row: -1, column: -1 },
  FFP: { row: 1, column: -1 },
};

type ResolvedOptions = Required<CtSeriesOptions> & { studyTime: string };

/** Fills in defaults and UIDs once, so every instance of a series agrees on them. */
function resolveOptions(opts: CtSeriesOptions): ResolvedOptions {
  const now = new Date();
  return {
    ...opts,
    studyInstanceUid: opts.studyInstanceUid ?? newUid(),
    seriesInstanceUid: opts.seriesInstanceUid ?? newUid(),
    frameOfReferenceUid: opts.frameOfReferenceUid ?? newUid(),
    studyDate: opts.studyDate ?? dicomDate(now),
    studyTime: dicomTime(now),
    transferSyntax: opts.transferSyntax ?? 'explicit',
    patientPosition: opts.patientPosition ?? 'HFS',
    rescaleIntercept: opts.rescaleIntercept ?? -1024,
  };
}

export function* ctSeriesInstances(opts: CtSeriesOptions): Generator<CtInstance> {
  const series = resolveOptions(opts);
  const shared = seriesAttributes(series);
  for (const slice of thoraxSlices(series.phantom)) {
    const sopInstanceUid = newUid();
    const dataset = { ...shared, ...sliceAttributes(series, slice, sopInstanceUid) };
    yield {
      sopInstanceUid,
      fileName: `CT.${sopInstanceUid}.dcm`,
      bytes: encodePart10(dataset, sopInstanceUid, TRANSFER_SYNTAX_UID[series.transferSyntax]),
    };
  }
}

/** Writes each file as soon as it is encoded, so memory stays at one slice. Creates `dir` if needed. */
export async function writeCtSeries(dir: string, opts: CtSeriesOptions): Promise<CtSeriesResult> {
  // Fixed here rather than in the generator so that they can be returned.
  const uids = {
    studyInstanceUid: opts.studyInstanceUid ?? newUid(),
    seriesInstanceUid: opts.seriesInstanceUid ?? newUid(),
    frameOfReferenceUid: opts.frameOfReferenceUid ?? newUid(),
  };
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  for (const instance of ctSeriesInstances({ ...opts, ...uids })) {
    const path = join(dir, instance.fileName);
    await writeFile(path, instance.bytes);
    files.push(path);
  }
  return { ...uids, files };
}

/** Attributes identical on every slice: Patient, General Study, General Series, Frame of Reference,
 *  General Equipment, and the constant parts of Image Plane, Image Pixel, CT Image and VOI LUT. */
function seriesAttributes(s: ResolvedOptions): Record<string, unknown> {
  const { row, column } = AXIS_SIGNS[s.patientPosition];
  return {
    SpecificCharacterSet: 'ISO_IR 100',
    ImageType: ['ORIGINAL', 'PRIMARY', 'AXIAL'],
    SOPClassUID: SOP_CLASS.CtImage,
    StudyDate: s.studyDate,
    SeriesDate: s.studyDate,
    AcquisitionDate: s.studyDate,
    ContentDate: s.studyDate,
    StudyTime: s.studyTime,
    SeriesTime: s.studyTime,
    AcquisitionTime: s.studyTime,
    ContentTime: s.studyTime,
    AccessionNumber: '',
    Modality: 'CT',
    Manufacturer: 'rtpipeline',
    ReferringPhysicianName: '',
    StudyDescription: 'Synthetic thorax phantom',
    SeriesDescription: 'Synthetic thorax CT',
    ManufacturerModelName: 'thorax phantom',
    PatientName: s.patientName,
    PatientID: s.patientId,
    PatientBirthDate: '',
    PatientSex: 'O',
    // Lets validators see the body part is unpaired, so Laterality (Type 2C) is not required.
    BodyPartExamined: 'CHEST',
    SliceThickness: s.phantom.sliceThicknessMm,
    KVP: 120,
    SoftwareVersions: IMPLEMENTATION_VERSION_NAME,
    ConvolutionKernel: 'STANDARD',
    PatientPosition: s.patientPosition,
    StudyInstanceUID: s.studyInstanceUid,
    SeriesInstanceUID: s.seriesInstanceUid,
    StudyID: '1',
    SeriesNumber: 1,
    AcquisitionNumber: 1,
    ImageOrientationPatient: [row, 0, 0, 0, column, 0],
    FrameOfReferenceUID: s.frameOfReferenceUid,
    PositionReferenceIndicator: '',
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: s.phantom.rows,
    Columns: s.phantom.columns,
    PixelSpacing: s.phantom.pixelSpacingMm,
    BitsAllocated: 16,
    BitsStored: BITS_STORED,
    HighBit: BITS_STORED - 1,
    PixelRepresentation: 0,
    WindowCenter: 40,
    WindowWidth: 400,
    RescaleIntercept: s.rescaleIntercept,
    RescaleSlope: 1,
    RescaleType: 'HU',
  };
}

function sliceAttributes(s: ResolvedOptions, slice: PhantomSlice, sopInstanceUid: Uid): Record<string, unknown> {
  const signs = AXIS_SIGNS[s.patientPosition];
  const [x0, y0] = gridOriginMm(s.phantom);
  return {
    SOPInstanceUID: sopInstanceUid,
    InstanceNumber: slice.index + 1,
    // The grid is symmetric about 0, so a flipped axis starts at the mirrored first pixel.
    ImagePositionPatient: [ds(signs.row * x0), ds(signs.column * y0), ds(slice.zMm)],
    SliceLocation: ds(slice.zMm),
    PixelData: storedPixels(slice.hu, s.phantom, signs, s.rescaleIntercept),
    // PixelData is "OB or OW" in the dictionary; dcmjs needs the VR spelled out to encode it.
    _vrMap: { PixelData: 'OW' },
  };
}

/** HU (patient-aligned) -> unsigned stored values in image order. Returns a buffer the array owns
 *  exactly: dcmjs writes `view.buffer` whole, so a view into a larger buffer would leak other bytes. */
function storedPixels(
  hu: Int16Array,
  spec: PhantomSpec,
  signs: { row: 1 | -1; column: 1 | -1 },
  rescaleIntercept: number,
): ArrayBuffer {
  const { rows, columns } = spec;
  const out = new Uint16Array(rows * columns);
  for (let r = 0; r < rows; r++) {
    const srcRow = (signs.column === 1 ? r : rows - 1 - r) * columns;
    for (let c = 0; c < columns; c++) {
      const value = hu[srcRow + (signs.row === 1 ? c : columns - 1 - c)] - rescaleIntercept;
      out[r * columns + c] = value < 0 ? 0 : value > MAX_STORED ? MAX_STORED : value;
    }
  }
  return out.buffer;
}

/** dcmjs always writes the meta header as explicit VR little endian and encodes the data set in
 *  whatever TransferSyntaxUID the meta header names, so that alone selects implicit or explicit. */
function encodePart10(dataset: Record<string, unknown>, sopInstanceUid: Uid, transferSyntaxUid: string): Buffer {
  const meta = DicomMetaDictionary.denaturalizeDataset({
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: SOP_CLASS.CtImage,
    MediaStorageSOPInstanceUID: sopInstanceUid,
    TransferSyntaxUID: transferSyntaxUid,
    ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
    ImplementationVersionName: IMPLEMENTATION_VERSION_NAME,
  });
  const dict = new DicomDict(meta);
  dict.dict = DicomMetaDictionary.denaturalizeDataset(dataset);
  return Buffer.from(dict.write());
}

function dicomDate(d: Date): string {
  return `${d.getFullYear()}${pad2(d.getMonth() + 1)}${pad2(d.getDate())}`;
}

function dicomTime(d: Date): string {
  return `${pad2(d.getHours())}${pad2(d.getMinutes())}${pad2(d.getSeconds())}`;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** Decimal strings hold at most 16 characters (PS3.5 §6.2): round to micrometres, which is exact
 *  enough for positions and never needs truncating. */
function ds(n: number): number {
  return Math.round(n * 1000) / 1000;
}
