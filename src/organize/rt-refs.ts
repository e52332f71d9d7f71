/**
 * What the organize stage needs to know about one instance: who and what it is, and for the RT
 * objects the references that sit inside sequences (RTDOSE -> RTPLAN -> RTSTRUCT -> CT series).
 *
 * src/dicom/header.ts skips every sequence and stops at the Frame of Reference UID, which is right
 * for filing a CT slice but misses the RT links. This reader walks a dataset element by element,
 * descends only into the sequences it is told about and stops after the last tag wanted for the
 * instance's SOP class, so it never reaches an RTDOSE's pixels or an RTSTRUCT's contours. Pure: it
 * reads a buffer and throws NeedMoreBytes when the buffer ends too early (the caller reads more).
 *
 * Little endian only (implicit or explicit VR); the caller refuses big endian and deflated syntaxes.
 */
import { HeaderError, NeedMoreBytes } from '../dicom/header.js';
import { SOP_CLASS } from '../dicom/sop-classes.js';
import { parseUid, type Uid } from '../dicom/uid.js';

// ------------------------------------------------------------------------------------ the record

export interface RtDoseRefs {
  kind: 'dose';
  /** Dose Summation Type (3004,000A): PLAN, MULTI_PLAN, PLAN_SUM, FRACTION, BEAM, BRACHY, ... */
  summationType: string;
  /** PHYSICAL, EFFECTIVE, ERROR. */
  doseType: string;
  /** GY or RELATIVE. */
  doseUnits: string;
  /** Referenced RT Plan Sequence (300C,0002): one plan, several for MULTI_PLAN / PLAN_SUM. */
  referencedPlanUids: Uid[];
  /** Referenced Fraction Group Number (300C,0022), when the dose is for one fraction group. */
  referencedFractionGroupNumber: number | null;
  /** Referenced Beam Numbers (300C,0006): the beam(s) of a BEAM dose. */
  referencedBeamNumbers: number[];
}

export interface PlanBeam {
  number: number;
  name: string;
  /** TREATMENT (also when absent), OPEN_PORTFILM, TRMT_PORTFILM, CONTINUATION, SETUP. */
  deliveryType: string;
}

export interface PlanFractionGroup {
  number: number | null;
  fractionsPlanned: number | null;
  /** Referenced Beam Sequence of the group, with each beam's meterset when given. */
  beams: { number: number; meterset: number | null }[];
}

export interface RtPlanRefs {
  kind: 'plan';
  label: string;
  name: string;
  /** RT Plan Date (300A,0006), YYYYMMDD or ''. */
  date: string;
  geometry: string;
  approvalStatus: string;
  referencedStructureSetUids: Uid[];
  /** Referenced RT Plan Sequence of a plan (300C,0002), e.g. a boost naming its primary. */
  referencedPlanUids: Uid[];
  beams: PlanBeam[];
  fractionGroups: PlanFractionGroup[];
  /** The largest Target Prescription Dose (300A,0026) of the Dose Reference Sequence, Gy. */
  prescriptionGy: number | null;
}

export interface RtStructRefs {
  kind: 'struct';
  label: string;
  /** Structure Set Date (3006,0008). */
  date: string;
  referencedFrameOfReferenceUids: Uid[];
  referencedStudyUids: Uid[];
  /** RT Referenced Series (3006,0014): the image series the contours were drawn on. */
  referencedSeriesUids: Uid[];
}

export type RtRefs = RtDoseRefs | RtPlanRefs | RtStructRefs;

/** One instance as the organize stage files it. */
export interface InstanceRecord {
  sopClassUid: Uid;
  sopInstanceUid: Uid;
  modality: string;
  patientId: string;
  patientName: string;
  studyInstanceUid: Uid;
  seriesInstanceUid: Uid;
  frameOfReferenceUid: Uid | null;
  studyDate: string;
  seriesDate: string;
  contentDate: string;
  instanceCreationDate: string;
  studyDescription: string;
  seriesDescription: string;
  seriesNumber: number | null;
  instanceNumber: number | null;
  rt: RtRefs | null;
}

// ------------------------------------------------------------------------------------- the tags

const T = {
  SpecificCharacterSet: 0x00080005,
  InstanceCreationDate: 0x00080012,
  SopClassUid: 0x00080016,
  SopInstanceUid: 0x00080018,
  StudyDate: 0x00080020,
  SeriesDate: 0x00080021,
  ContentDate: 0x00080023,
  Modality: 0x00080060,
  StudyDescription: 0x00081030,
  SeriesDescription: 0x0008103e,
  ReferencedSopInstanceUid: 0x00081155,
  PatientName: 0x00100010,
  PatientId: 0x00100020,
  StudyInstanceUid: 0x0020000d,
  SeriesInstanceUid: 0x0020000e,
  SeriesNumber: 0x00200011,
  InstanceNumber: 0x00200013,
  FrameOfReferenceUid: 0x00200052,
  DoseUnits: 0x30040002,
  DoseType: 0x30040004,
  DoseSummationType: 0x3004000a,
  StructureSetLabel: 0x30060002,
  StructureSetDate: 0x30060008,
  ReferencedFrameOfReferenceSequence: 0x30060010,
  RtReferencedStudySequence: 0x30060012,
  RtReferencedSeriesSequence: 0x30060014,
  RtPlanLabel: 0x300a0002,
  RtPlanName: 0x300a0003,
  RtPlanDate: 0x300a0006,
  RtPlanGeometry: 0x300a000c,
  DoseReferenceSequence: 0x300a0010,
  DoseReferenceType: 0x300a0020,
  TargetPrescriptionDose: 0x300a0026,
  FractionGroupSequence: 0x300a0070,
  FractionGroupNumber: 0x300a0071,
  NumberOfFractionsPlanned: 0x300a0078,
  BeamMeterset: 0x300a0086,
  BeamSequence: 0x300a00b0,
  BeamNumber: 0x300a00c0,
  BeamName: 0x300a00c2,
  TreatmentDeliveryType: 0x300a00ce,
  IonBeamSequence: 0x300a03a2,
  ReferencedRtPlanSequence: 0x300c0002,
  ReferencedBeamSequence: 0x300c0004,
  ReferencedBeamNumber: 0x300c0006,
  ReferencedFractionGroupSequence: 0x300c0020,
  ReferencedFractionGroupNumber: 0x300c0022,
  ReferencedStructureSetSequence: 0x300c0060,
  ApprovalStatus: 0x300e0002,
} as const;

/** Which elements to keep at one level: leaves by tag, sequences with the spec of their items. */
interface Spec {
  leaves: ReadonlySet<number>;
  sequences: ReadonlyMap<number, Spec>;
  /** The walk of this level stops at the first tag above this one (top level only). */
  last: number;
}

const spec = (leaves: number[], sequences: [number, Spec][] = []): Spec => {
  const all = [...leaves, ...sequences.map(([t]) => t)];
  return { leaves: new Set(leaves), sequences: new Map(sequences), last: Math.max(...all) };
};

const COMMON_LEAVES = [
  T.SpecificCharacterSet, T.InstanceCreationDate, T.SopClassUid, T.SopInstanceUid, T.StudyDate, T.SeriesDate, T.ContentDate,
  T.Modality, T.StudyDescription, T.SeriesDescription, T.PatientName, T.PatientId, T.StudyInstanceUid, T.SeriesInstanceUid,
  T.SeriesNumber, T.InstanceNumber, T.FrameOfReferenceUid,
];

/** Images and anything else: the identifying attributes only. */
const COMMON = spec(COMMON_LEAVES);

const REFERENCED_BEAMS = spec([T.ReferencedBeamNumber, T.BeamMeterset]);

const DOSE = spec([...COMMON_LEAVES, T.DoseUnits, T.DoseType, T.DoseSummationType], [
  [T.ReferencedRtPlanSequence, spec([T.ReferencedSopInstanceUid], [
    [T.ReferencedFractionGroupSequence, spec([T.ReferencedFractionGroupNumber], [[T.ReferencedBeamSequence, REFERENCED_BEAMS]])],
  ])],
]);

const BEAMS = spec([T.BeamNumber, T.BeamName, T.TreatmentDeliveryType]);
const PLAN = spec([...COMMON_LEAVES, T.RtPlanLabel, T.RtPlanName, T.RtPlanDate, T.RtPlanGeometry, T.ApprovalStatus], [
  [T.DoseReferenceSequence, spec([T.DoseReferenceType, T.TargetPrescriptionDose])],
  [T.FractionGroupSequence, spec([T.FractionGroupNumber, T.NumberOfFractionsPlanned], [[T.ReferencedBeamSequence, REFERENCED_BEAMS]])],
  [T.BeamSequence, BEAMS],
  [T.IonBeamSequence, BEAMS],
  [T.ReferencedRtPlanSequence, spec([T.ReferencedSopInstanceUid])],
  [T.ReferencedStructureSetSequence, spec([T.ReferencedSopInstanceUid])],
]);

const STRUCT = spec([...COMMON_LEAVES, T.StructureSetLabel, T.StructureSetDate], [
  [T.ReferencedFrameOfReferenceSequence, spec([T.FrameOfReferenceUid], [
    [T.RtReferencedStudySequence, spec([T.ReferencedSopInstanceUid], [[T.RtReferencedSeriesSequence, spec([T.SeriesInstanceUid])]])],
  ])],
]);

const ION_PLAN = '1.2.840.10008.5.1.4.1.1.481.8';

function specFor(sopClassUid: string): Spec {
  switch (sopClassUid) {
    case SOP_CLASS.RtDose: return DOSE;
    case SOP_CLASS.RtPlan:
    case ION_PLAN: return PLAN;
    case SOP_CLASS.RtStructureSet: return STRUCT;
    default: return COMMON;
  }
}

// ------------------------------------------------------------------------------------ the walker

/** A dataset as read: wanted leaves as their raw bytes, wanted sequences as their items. */
type Node = Map<number, Buffer | Node[]>;

const ITEM = 0xfffee000;
const ITEM_DELIM = 0xfffee00d;
const SEQ_DELIM = 0xfffee0dd;
const UNDEFINED = 0xffffffff;
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const MAX_DEPTH = 16;

class Walker {
  pos = 0;
  constructor(
    readonly buf: Buffer,
    /** The buffer holds the whole dataset: its end ends the top level. */
    readonly complete: boolean,
  ) {}

  need(n: number): void {
    if (this.pos + n > this.buf.length) throw new NeedMoreBytes();
  }

  tag(): number {
    this.need(4);
    const t = ((this.buf.readUInt16LE(this.pos) << 16) | this.buf.readUInt16LE(this.pos + 2)) >>> 0;
    this.pos += 4;
    return t;
  }

  /** VR (explicit, and not an item or delimiter) and value length of the element whose tag was read. */
  vrLength(explicit: boolean, tag: number): { vr: string | null; length: number } {
    if (!explicit || tag === ITEM || tag === ITEM_DELIM || tag === SEQ_DELIM) {
      this.need(4);
      const length = this.buf.readUInt32LE(this.pos);
      this.pos += 4;
      return { vr: null, length };
    }
    this.need(4);
    const vr = this.buf.toString('latin1', this.pos, this.pos + 2);
    if (!/^[A-Z]{2}$/.test(vr)) throw new HeaderError(`invalid VR bytes at offset ${this.pos} for tag ${hex(tag)}`);
    if (LONG_VRS.has(vr)) {
      this.need(8);
      const length = this.buf.readUInt32LE(this.pos + 4);
      this.pos += 8;
      return { vr, length };
    }
    const length = this.buf.readUInt16LE(this.pos + 2);
    this.pos += 4;
    return { vr, length };
  }

  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }

  /**
   * One dataset level. `end` is the end offset of a defined-length item (or of the top level when the
   * buffer is the whole dataset); undefined means it ends at an item delimiter. At the top level
   * `onLeaf` may swap the spec (the SOP class decides what else to read).
   */
  dataset(explicit: boolean, initial: Spec, end: number | undefined, depth: number, top: boolean, onLeaf?: (tag: number, value: Buffer) => Spec | undefined): Node {
    if (depth > MAX_DEPTH) throw new HeaderError(`sequences nested deeper than ${MAX_DEPTH} levels`);
    let current = initial;
    const node: Node = new Map();
    for (;;) {
      if (end !== undefined && this.pos >= end) return node;
      if (top && this.pos >= this.buf.length) {
        if (this.complete) return node;
        throw new NeedMoreBytes();
      }
      const start = this.pos;
      const tag = this.tag();
      if (tag === ITEM_DELIM) {
        this.vrLength(explicit, tag);
        return node;
      }
      if (top && tag > current.last) {
        this.pos = start;
        return node;
      }
      const { vr, length } = this.vrLength(explicit, tag);
      const itemSpec = current.sequences.get(tag);
      if (itemSpec) {
        // UN-encoded content is implicit VR (PS3.5 §6.2.2).
        node.set(tag, this.items(explicit && vr !== 'UN', itemSpec, length, depth + 1));
      } else if (length === UNDEFINED) {
        this.items(explicit && vr !== 'UN', null, length, depth + 1);
      } else {
        this.need(length);
        if (current.leaves.has(tag)) {
          const value = this.buf.subarray(this.pos, this.pos + length);
          node.set(tag, value);
          const next = onLeaf?.(tag, value);
          if (next) current = next;
        }
        this.pos += length;
      }
    }
  }

  /** The items of a sequence (spec null: skipped). */
  items(explicit: boolean, itemSpec: Spec | null, length: number, depth: number): Node[] {
    const end = length === UNDEFINED ? undefined : this.pos + length;
    if (end !== undefined && itemSpec === null) {
      this.skip(length);
      return [];
    }
    const out: Node[] = [];
    for (;;) {
      if (end !== undefined && this.pos >= end) return out;
      const tag = this.tag();
      const { length: itemLength } = this.vrLength(explicit, tag);
      if (tag === SEQ_DELIM) return out;
      if (tag !== ITEM) throw new HeaderError(`expected an item in a sequence at offset ${this.pos - 8}, found ${hex(tag)}`);
      if (itemSpec === null) {
        if (itemLength === UNDEFINED) this.dataset(explicit, COMMON_NONE, undefined, depth, false);
        else this.skip(itemLength);
        continue;
      }
      const itemEnd = itemLength === UNDEFINED ? undefined : this.pos + itemLength;
      if (itemEnd !== undefined) this.need(itemLength);
      out.push(this.dataset(explicit, itemSpec, itemEnd, depth, false));
    }
  }
}

/** Keeps nothing: used to walk past an undefined-length item of an unwanted sequence. */
const COMMON_NONE: Spec = { leaves: new Set(), sequences: new Map(), last: 0 };

function hex(tag: number): string {
  return `(${(tag >>> 16).toString(16).padStart(4, '0')},${(tag & 0xffff).toString(16).padStart(4, '0')})`.toUpperCase();
}

// ------------------------------------------------------------------------------- interpretation

/**
 * Reads the record from the start of a dataset (no preamble, no group 0002). `complete` says the
 * buffer holds the whole dataset; otherwise running out of bytes throws NeedMoreBytes.
 */
export function readInstanceRecord(buf: Buffer, explicit: boolean, complete: boolean): InstanceRecord {
  const w = new Walker(buf, complete);
  let root: Node;
  try {
    root = w.dataset(explicit, COMMON, undefined, 0, true, (tag, value) =>
      tag === T.SopClassUid ? specFor(value.toString('latin1').replace(/[\0 ]+$/g, '')) : undefined,
    );
  } catch (e) {
    if (!(e instanceof NeedMoreBytes) || !complete) throw e;
    throw new HeaderError('the dataset ends in the middle of an element (truncated file)');
  }
  return toRecord(root);
}

function toRecord(root: Node): InstanceRecord {
  const charset = leaf(root, T.SpecificCharacterSet)?.toString('latin1') ?? '';
  const text = textReader(/ISO_IR 192/.test(charset));
  const uid = (tag: number, name: string): Uid => {
    const raw = leaf(root, tag)?.toString('latin1');
    const value = parseUid(raw);
    if (!value) throw new HeaderError(raw === undefined ? `${name} ${hex(tag)} is missing` : `${name} ${hex(tag)} is not a valid UID: "${raw.slice(0, 80)}"`);
    return value;
  };
  const sopClassUid = uid(T.SopClassUid, 'SOPClassUID');
  const record: InstanceRecord = {
    sopClassUid,
    sopInstanceUid: uid(T.SopInstanceUid, 'SOPInstanceUID'),
    modality: text(root, T.Modality),
    patientId: text(root, T.PatientId),
    patientName: text(root, T.PatientName),
    studyInstanceUid: uid(T.StudyInstanceUid, 'StudyInstanceUID'),
    seriesInstanceUid: uid(T.SeriesInstanceUid, 'SeriesInstanceUID'),
    frameOfReferenceUid: uidOf(root, T.FrameOfReferenceUid) ?? null,
    studyDate: text(root, T.StudyDate),
    seriesDate: text(root, T.SeriesDate),
    contentDate: text(root, T.ContentDate),
    instanceCreationDate: text(root, T.InstanceCreationDate),
    studyDescription: text(root, T.StudyDescription),
    seriesDescription: text(root, T.SeriesDescription),
    seriesNumber: int(text(root, T.SeriesNumber)),
    instanceNumber: int(text(root, T.InstanceNumber)),
    rt: null,
  };
  const spec = specFor(sopClassUid);
  if (spec === DOSE) record.rt = doseRefs(root, text);
  else if (spec === PLAN) record.rt = planRefs(root, text);
  else if (spec === STRUCT) record.rt = structRefs(root, text);
  return record;
}

type Text = (node: Node, tag: number) => string;

function doseRefs(root: Node, text: Text): RtDoseRefs {
  const plans = items(root, T.ReferencedRtPlanSequence);
  const groups = plans.flatMap((p) => items(p, T.ReferencedFractionGroupSequence));
  return {
    kind: 'dose',
    summationType: text(root, T.DoseSummationType).toUpperCase(),
    doseType: text(root, T.DoseType).toUpperCase(),
    doseUnits: text(root, T.DoseUnits).toUpperCase(),
    referencedPlanUids: uidsOf(plans, T.ReferencedSopInstanceUid),
    referencedFractionGroupNumber: groups.map((g) => int(text(g, T.ReferencedFractionGroupNumber))).find((n) => n !== null) ?? null,
    referencedBeamNumbers: groups
      .flatMap((g) => items(g, T.ReferencedBeamSequence))
      .map((b) => int(text(b, T.ReferencedBeamNumber)))
      .filter((n): n is number => n !== null),
  };
}

function planRefs(root: Node, text: Text): RtPlanRefs {
  const prescriptions = items(root, T.DoseReferenceSequence)
    .map((d) => float(text(d, T.TargetPrescriptionDose)))
    .filter((x): x is number => x !== null && x > 0);
  const beams = [...items(root, T.BeamSequence), ...items(root, T.IonBeamSequence)].flatMap((b): PlanBeam[] => {
    const number = int(text(b, T.BeamNumber));
    return number === null ? [] : [{ number, name: text(b, T.BeamName), deliveryType: text(b, T.TreatmentDeliveryType).toUpperCase() || 'TREATMENT' }];
  });
  return {
    kind: 'plan',
    label: text(root, T.RtPlanLabel),
    name: text(root, T.RtPlanName),
    date: text(root, T.RtPlanDate),
    geometry: text(root, T.RtPlanGeometry),
    approvalStatus: text(root, T.ApprovalStatus),
    referencedStructureSetUids: uidsOf(items(root, T.ReferencedStructureSetSequence), T.ReferencedSopInstanceUid),
    referencedPlanUids: uidsOf(items(root, T.ReferencedRtPlanSequence), T.ReferencedSopInstanceUid),
    beams,
    fractionGroups: items(root, T.FractionGroupSequence).map((g) => ({
      number: int(text(g, T.FractionGroupNumber)),
      fractionsPlanned: int(text(g, T.NumberOfFractionsPlanned)),
      beams: items(g, T.ReferencedBeamSequence).flatMap((b) => {
        const number = int(text(b, T.ReferencedBeamNumber));
        return number === null ? [] : [{ number, meterset: float(text(b, T.BeamMeterset)) }];
      }),
    })),
    prescriptionGy: prescriptions.length > 0 ? Math.max(...prescriptions) : null,
  };
}

function structRefs(root: Node, text: Text): RtStructRefs {
  const frames = items(root, T.ReferencedFrameOfReferenceSequence);
  const studies = frames.flatMap((f) => items(f, T.RtReferencedStudySequence));
  return {
    kind: 'struct',
    label: text(root, T.StructureSetLabel),
    date: text(root, T.StructureSetDate),
    referencedFrameOfReferenceUids: uidsOf(frames, T.FrameOfReferenceUid),
    referencedStudyUids: uidsOf(studies, T.ReferencedSopInstanceUid),
    referencedSeriesUids: uidsOf(studies.flatMap((s) => items(s, T.RtReferencedSeriesSequence)), T.SeriesInstanceUid),
  };
}

// ---------------------------------------------------------------------------------- value helpers

function leaf(node: Node, tag: number): Buffer | undefined {
  const v = node.get(tag);
  return Buffer.isBuffer(v) ? v : undefined;
}

function items(node: Node, tag: number): Node[] {
  const v = node.get(tag);
  return Array.isArray(v) ? v : [];
}

function textReader(utf8: boolean): Text {
  return (node, tag) => {
    const b = leaf(node, tag);
    return b ? b.toString(utf8 ? 'utf8' : 'latin1').replace(/[\0 ]+$/g, '').trim() : '';
  };
}

function uidOf(node: Node, tag: number): Uid | undefined {
  return parseUid(leaf(node, tag)?.toString('latin1'));
}

/** The valid UIDs of `tag` across items, in order, without repeats. */
function uidsOf(nodes: Node[], tag: number): Uid[] {
  const out = new Set<Uid>();
  for (const n of nodes) {
    const u = uidOf(n, tag);
    if (u) out.add(u);
  }
  return [...out];
}

function int(s: string): number | null {
  const n = Number.parseInt(s, 10);
  return Number.isFinite(n) ? n : null;
}

function float(s: string): number | null {
  if (s === '') return null;
  const n = Number(s.split('\\')[0]);
  return Number.isFinite(n) ? n : null;
}
