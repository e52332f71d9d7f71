/**
 * RT Plan (PS3.3 A.20): a minimal, valid, deterministic writer for tests and benchmarks, and a reader
 * of the summary the organize and DVH stages need (links, date, prescription, fractions).
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Vec3 } from '../geometry/types.js';
import { formatDs } from '../rt/rtstruct.js';
import { encodePart10, list, str } from './rt-dose.js';
import { SOP_CLASS } from './sop-classes.js';
import { contentUid, IMPLEMENTATION_VERSION_NAME } from './uid.js';

export interface RtPlanSummary {
  sopInstanceUid: string;
  seriesInstanceUid: string;
  studyInstanceUid: string;
  patientId: string;
  /** RTPlanLabel (300A,0002). */
  label: string;
  /** RTPlanName (300A,0003), '' when absent. */
  name: string;
  /** RTPlanDate (300A,0006), YYYYMMDD or '' (Type 2). */
  date: string;
  time: string;
  referencedStructureSetUid?: string;
  /** Total prescribed dose (Gy), see prescriptionSource. */
  prescriptionGy?: number;
  /** Where prescriptionGy came from: the largest TargetPrescriptionDose of a target dose reference,
   *  or (no such item) the sum of BeamDose x NumberOfFractionsPlanned of the first fraction group. */
  prescriptionSource?: 'TargetPrescriptionDose' | 'BeamDose';
  /** NumberOfFractionsPlanned of the first fraction group. */
  fractions?: number;
  frameOfReferenceUid?: string;
  /** BeamNumber of each beam in the Beam Sequence. */
  beamNumbers: number[];
}

export interface RtPlanBeamInput {
  number: number;
  name: string;
  /** Default 0. */
  gantryAngleDeg?: number;
  /** Default 100 MU. */
  metersetMu?: number;
  /** Dose at the beam dose point per fraction (Gy); written as BeamDose when given. */
  beamDoseGy?: number;
}

export interface RtPlanInput {
  patientId: string;
  patientName: string;
  studyInstanceUid: string;
  /** Written when given (Frame of Reference module is optional on a plan). */
  frameOfReferenceUid?: string;
  seriesInstanceUid?: string;
  sopInstanceUid?: string;
  studyDate?: string;
  studyTime?: string;
  studyId?: string;
  seriesNumber?: number;
  label: string;
  name?: string;
  /** YYYYMMDD. */
  date: string;
  /** HHMMSS; default 120000. */
  time?: string;
  /** The RTSTRUCT the plan was made on; required for the PATIENT geometry the writer declares. */
  referencedStructureSetUid: string;
  /** Total target prescription (Gy), written as DoseReferenceSequence TargetPrescriptionDose. */
  prescriptionGy?: number;
  /** Default 1. */
  fractions?: number;
  /** Default: none (Number of Beams 0, no RT Beams module). */
  beams?: RtPlanBeamInput[];
  /** Isocentre for the beams (LPS mm); default [0, 0, 0]. */
  isocenterMm?: Vec3;
}

type Natural = Record<string, any>;
interface DcmjsData {
  DicomMessage: { readFile(buffer: ArrayBuffer): { dict: Record<string, unknown> } };
  DicomMetaDictionary: { naturalizeDataset(dataset: Record<string, unknown>): Natural };
}
let dcmjs: DcmjsData | undefined;
const dcmjsData = (): DcmjsData => (dcmjs ??= (createRequire(import.meta.url)('dcmjs') as { data: DcmjsData }).data);

// ---------------------------------------------------------------------------------------- writer

export function buildRtPlan(input: RtPlanInput): Buffer {
  if (!/^\d{8}$/.test(input.date)) throw new RangeError(`RT plan date must be YYYYMMDD, got "${input.date}"`);
  if (input.label.length === 0 || input.label.length > 16) throw new RangeError(`RT plan label must be 1..16 characters (SH), got "${input.label}"`);
  const fractions = input.fractions ?? 1;
  if (!Number.isInteger(fractions) || fractions < 1) throw new RangeError(`fractions must be a positive integer, got ${fractions}`);
  const beams = input.beams ?? [];
  const seed = JSON.stringify(input);
  const sop = input.sopInstanceUid ?? contentUid('rtplan-sop', seed);
  const series = input.seriesInstanceUid ?? contentUid('rtplan-series', seed);
  const ds = (v: number) => formatDs(v, 6);

  const dataset: Record<string, unknown> = {
    SpecificCharacterSet: 'ISO_IR 100',
    InstanceCreationDate: input.date,
    InstanceCreationTime: input.time ?? '120000',
    SOPClassUID: SOP_CLASS.RtPlan,
    SOPInstanceUID: sop,
    StudyDate: input.studyDate ?? input.date,
    StudyTime: input.studyTime ?? '120000',
    AccessionNumber: '',
    Modality: 'RTPLAN',
    Manufacturer: 'rtpipeline',
    ReferringPhysicianName: '',
    OperatorsName: '',
    PatientName: input.patientName,
    PatientID: input.patientId,
    PatientBirthDate: '',
    PatientSex: '',
    SoftwareVersions: IMPLEMENTATION_VERSION_NAME,
    StudyInstanceUID: input.studyInstanceUid,
    SeriesInstanceUID: series,
    StudyID: input.studyId ?? '1',
    SeriesNumber: input.seriesNumber ?? 1,
    InstanceNumber: 1,
    ...(input.frameOfReferenceUid ? { FrameOfReferenceUID: input.frameOfReferenceUid, PositionReferenceIndicator: '' } : {}),
    RTPlanLabel: input.label,
    ...(input.name ? { RTPlanName: input.name } : {}),
    RTPlanDate: input.date,
    RTPlanTime: input.time ?? '120000',
    RTPlanGeometry: 'PATIENT',
    ...(input.prescriptionGy !== undefined
      ? {
          DoseReferenceSequence: [
            {
              DoseReferenceNumber: 1,
              DoseReferenceUID: contentUid('rtplan-doseref', seed),
              DoseReferenceStructureType: 'SITE',
              DoseReferenceDescription: 'PTV',
              DoseReferenceType: 'TARGET',
              TargetPrescriptionDose: ds(input.prescriptionGy),
            },
          ],
        }
      : {}),
    FractionGroupSequence: [
      {
        FractionGroupNumber: 1,
        NumberOfFractionsPlanned: fractions,
        NumberOfBeams: beams.length,
        NumberOfBrachyApplicationSetups: 0,
        ...(beams.length > 0 ? { ReferencedBeamSequence: beams.map(referencedBeam) } : {}),
      },
    ],
    ...(beams.length > 0 ? { BeamSequence: beams.map((b) => beamItem(b, input.isocenterMm ?? [0, 0, 0])) } : {}),
    ReferencedStructureSetSequence: [{ ReferencedSOPClassUID: SOP_CLASS.RtStructureSet, ReferencedSOPInstanceUID: input.referencedStructureSetUid }],
    ApprovalStatus: 'UNAPPROVED',
  };
  return encodePart10(dataset, SOP_CLASS.RtPlan, sop);
}

function referencedBeam(b: RtPlanBeamInput): Record<string, unknown> {
  return {
    ...(b.beamDoseGy !== undefined ? { BeamDose: formatDs(b.beamDoseGy, 6) } : {}),
    BeamMeterset: formatDs(b.metersetMu ?? 100, 6),
    ReferencedBeamNumber: b.number,
  };
}

/** A static photon beam with two control points and a 10x10 cm field (jaws only). */
function beamItem(b: RtPlanBeamInput, iso: Vec3): Record<string, unknown> {
  const gantry = formatDs(b.gantryAngleDeg ?? 0, 6);
  return {
    Manufacturer: 'rtpipeline',
    TreatmentMachineName: 'SYNTHETIC',
    PrimaryDosimeterUnit: 'MU',
    SourceAxisDistance: 1000,
    BeamLimitingDeviceSequence: [
      { RTBeamLimitingDeviceType: 'ASYMX', NumberOfLeafJawPairs: 1 },
      { RTBeamLimitingDeviceType: 'ASYMY', NumberOfLeafJawPairs: 1 },
    ],
    BeamNumber: b.number,
    BeamName: b.name,
    BeamType: 'STATIC',
    RadiationType: 'PHOTON',
    TreatmentDeliveryType: 'TREATMENT',
    NumberOfWedges: 0,
    NumberOfCompensators: 0,
    NumberOfBoli: 0,
    NumberOfBlocks: 0,
    FinalCumulativeMetersetWeight: 1,
    NumberOfControlPoints: 2,
    ControlPointSequence: [
      {
        ControlPointIndex: 0,
        NominalBeamEnergy: 6,
        BeamLimitingDevicePositionSequence: [
          { RTBeamLimitingDeviceType: 'ASYMX', LeafJawPositions: [-50, 50] },
          { RTBeamLimitingDeviceType: 'ASYMY', LeafJawPositions: [-50, 50] },
        ],
        GantryAngle: gantry,
        GantryRotationDirection: 'NONE',
        BeamLimitingDeviceAngle: 0,
        BeamLimitingDeviceRotationDirection: 'NONE',
        PatientSupportAngle: 0,
        PatientSupportRotationDirection: 'NONE',
        TableTopEccentricAngle: 0,
        TableTopEccentricRotationDirection: 'NONE',
        TableTopVerticalPosition: '',
        TableTopLongitudinalPosition: '',
        TableTopLateralPosition: '',
        IsocenterPosition: iso.map((v) => formatDs(v, 6)),
        CumulativeMetersetWeight: 0,
      },
      { ControlPointIndex: 1, CumulativeMetersetWeight: 1 },
    ],
  };
}

// ---------------------------------------------------------------------------------------- reader

export async function readRtPlanSummary(file: string): Promise<RtPlanSummary> {
  const buf = await readFile(file);
  try {
    return parseRtPlanSummary(buf);
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`, { cause: e });
  }
}

export function parseRtPlanSummary(buf: Buffer): RtPlanSummary {
  const bytes = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  const ds = dcmjsData().DicomMetaDictionary.naturalizeDataset(dcmjsData().DicomMessage.readFile(bytes).dict);
  const sopClass = str(ds.SOPClassUID);
  // An RT Ion Plan carries the same general-plan, prescription and fraction attributes.
  if (sopClass !== SOP_CLASS.RtPlan && sopClass !== '1.2.840.10008.5.1.4.1.1.481.8') throw new Error(`not an RT Plan: SOP class ${sopClass || '(none)'}`);
  const fractionGroup = items(ds.FractionGroupSequence)[0];
  const fractionsRaw = fractionGroup ? Number(str(fractionGroup.NumberOfFractionsPlanned)) : NaN;
  const summary: RtPlanSummary = {
    sopInstanceUid: str(ds.SOPInstanceUID),
    seriesInstanceUid: str(ds.SeriesInstanceUID),
    studyInstanceUid: str(ds.StudyInstanceUID),
    patientId: str(ds.PatientID),
    label: str(ds.RTPlanLabel),
    name: str(ds.RTPlanName),
    date: str(ds.RTPlanDate),
    time: str(ds.RTPlanTime),
    beamNumbers: items(ds.BeamSequence ?? ds.IonBeamSequence).map((b) => Number(str(b.BeamNumber))),
  };
  const structureSet = str(items(ds.ReferencedStructureSetSequence)[0]?.ReferencedSOPInstanceUID);
  if (structureSet) summary.referencedStructureSetUid = structureSet;
  const frame = str(ds.FrameOfReferenceUID);
  if (frame) summary.frameOfReferenceUid = frame;
  if (Number.isInteger(fractionsRaw) && fractionsRaw > 0) summary.fractions = fractionsRaw;
  Object.assign(summary, prescription(ds, fractionGroup, summary.fractions));
  return summary;
}

/** The largest target prescription, else the first fraction group's beam doses times its fractions. */
function prescription(ds: Natural, fractionGroup: Natural | undefined, fractions: number | undefined): Pick<RtPlanSummary, 'prescriptionGy' | 'prescriptionSource'> {
  let best: number | undefined;
  for (const ref of items(ds.DoseReferenceSequence)) {
    const type = str(ref.DoseReferenceType);
    const dose = Number(str(ref.TargetPrescriptionDose));
    if ((type === 'TARGET' || type === '') && Number.isFinite(dose) && dose > 0 && (best === undefined || dose > best)) best = dose;
  }
  if (best !== undefined) return { prescriptionGy: best, prescriptionSource: 'TargetPrescriptionDose' };
  const beamDoses = items(fractionGroup?.ReferencedBeamSequence).map((b) => Number(str(b.BeamDose))).filter((d) => Number.isFinite(d) && d > 0);
  if (beamDoses.length > 0 && fractions !== undefined) {
    return { prescriptionGy: beamDoses.reduce((a, b) => a + b, 0) * fractions, prescriptionSource: 'BeamDose' };
  }
  return {};
}

function items(value: unknown): Natural[] {
  return list(value) as Natural[];
}
