/**
 * Groups scanned instances into treatment courses per patient. Pure: records in, plans out.
 *
 * What a course is. Within one PatientID, objects are linked when
 *   - an RTDOSE references an RTPLAN (Referenced RT Plan Sequence),
 *   - an RTPLAN references an RTSTRUCT (Referenced Structure Set Sequence) or another RTPLAN
 *     (Referenced RT Plan Sequence, e.g. a boost naming its primary),
 *   - an RTSTRUCT references an image series (RT Referenced Series Sequence),
 *   - any two objects share a Frame of Reference UID (0020,0052; for an RTSTRUCT also those of its
 *     Referenced Frame of Reference Sequence).
 * A course is a connected group that holds an RTPLAN or a CT series. So a primary and a boost
 * planned on the same CT (one frame of reference, one or two structure sets) are one course; a
 * re-plan on a new CT is a new course unless one plan references the other. Groups with neither a
 * plan nor a CT (an MR alone, a dose whose plan and CT are missing) are reported, not organised.
 *
 * The course's CT is the series its plans' structure set was drawn on; without that reference the
 * series an RTSTRUCT names, else the largest CT series of the group. Other series of the group are
 * kept as `otherSeries`.
 *
 * CourseID (contract): `YYYY-MM` of the earliest plan date (RTPlanDate, else the plan's series,
 * content or study date), else the CT's study date `YYYY-MM-DD`; `_2`, `_3` on a clash, numbered
 * in order of date and then of UID so that the same tree always gives the same IDs.
 */
import { sanitizeId } from '../pipeline/course.js';
import type { Uid } from '../dicom/uid.js';
import type { InstanceRecord, RtDoseRefs, RtPlanRefs, RtStructRefs } from './rt-refs.js';
import { decideDoseRecipe, type DoseRecipe } from './dose-recipe.js';

/** What the grouping needs of a scanned file. */
export type CourseInstance = InstanceRecord & { path: string };

export interface SeriesFiles {
  modality: string;
  seriesInstanceUid: Uid;
  studyInstanceUid: Uid;
  frameOfReferenceUid: Uid | null;
  studyDate: string;
  /** In InstanceNumber order (then path). */
  files: string[];
  sopInstanceUids: Uid[];
}

export interface StructureSetEntry {
  sopInstanceUid: Uid;
  file: string;
  label: string;
  frameOfReferenceUid: Uid | null;
  referencedSeriesUids: Uid[];
  /** Referenced by one of the course's plans. */
  usedByPlan: boolean;
}

export interface PlanEntry {
  sopInstanceUid: Uid;
  file: string;
  label: string;
  /** YYYYMMDD used for the CourseID (see the module comment). */
  date: string;
  frameOfReferenceUid: Uid | null;
  referencedStructureSetUids: Uid[];
  referencedPlanUids: Uid[];
  beamNumbers: number[];
  fractionsPlanned: number | null;
  prescriptionGy: number | null;
  approvalStatus: string;
}

export interface DoseEntry {
  sopInstanceUid: Uid;
  file: string;
  summationType: string;
  doseType: string;
  frameOfReferenceUid: Uid | null;
  referencedPlanUids: Uid[];
  referencedFractionGroupNumber: number | null;
  referencedBeamNumbers: number[];
}

export interface CoursePlan {
  patientId: string;
  patientName: string;
  /** The patient's folder name (sanitised PatientID; `_2` if two IDs sanitise alike). */
  patientDir: string;
  courseId: string;
  ct: SeriesFiles | null;
  rtstructs: StructureSetEntry[];
  plans: PlanEntry[];
  doses: DoseEntry[];
  otherSeries: SeriesFiles[];
  doseRecipe: DoseRecipe;
  /** Sum of the summed plans' prescriptions (Gy) when each gives one; the plan's own for one plan. */
  prescriptionGy: number | null;
  warnings: string[];
}

export interface CourseGrouping {
  courses: CoursePlan[];
  /** Objects in no course, with why. */
  unassigned: { path: string; reason: string }[];
  warnings: string[];
}

export function groupCourses(instances: readonly CourseInstance[]): CourseGrouping {
  const warnings: string[] = [];
  const unique = dedupe(instances, warnings);
  const byPatient = new Map<string, CourseInstance[]>();
  for (const inst of unique) {
    const list = byPatient.get(inst.patientId);
    if (list) list.push(inst);
    else byPatient.set(inst.patientId, [inst]);
  }
  const courses: CoursePlan[] = [];
  const unassigned: CourseGrouping['unassigned'] = [];
  const dirs = new Map<string, string>();
  for (const patientId of [...byPatient.keys()].sort()) {
    const patientDir = uniquePatientDir(patientId, dirs, warnings);
    const grouped = groupPatient(patientId, patientDir, byPatient.get(patientId)!);
    courses.push(...grouped.courses);
    unassigned.push(...grouped.unassigned);
  }
  return { courses, unassigned, warnings };
}

/** Same SOP Instance UID twice (a copy of a file elsewhere in the tree): the first path wins. */
function dedupe(instances: readonly CourseInstance[], warnings: string[]): CourseInstance[] {
  const seen = new Map<string, CourseInstance>();
  const duplicates: string[] = [];
  for (const inst of [...instances].sort((a, b) => cmp(a.path, b.path))) {
    const first = seen.get(inst.sopInstanceUid);
    if (first) duplicates.push(`${inst.path} (same SOPInstanceUID as ${first.path})`);
    else seen.set(inst.sopInstanceUid, inst);
  }
  if (duplicates.length > 0) {
    warnings.push(`${duplicates.length} duplicate instance(s) ignored, e.g. ${duplicates.slice(0, 3).join('; ')}`);
  }
  return [...seen.values()];
}

function uniquePatientDir(patientId: string, dirs: Map<string, string>, warnings: string[]): string {
  const base = sanitizeId(patientId);
  for (let n = 1; ; n++) {
    const dir = n === 1 ? base : `${base}_${n}`;
    if (!dirs.has(dir)) {
      dirs.set(dir, patientId);
      if (n > 1) warnings.push(`PatientID "${patientId}" and "${dirs.get(base)}" give the same folder name; "${patientId}" is written to ${dir}`);
      return dir;
    }
  }
}

// ------------------------------------------------------------------------------ one patient

interface PlanNode { inst: CourseInstance; refs: RtPlanRefs }
interface StructNode { inst: CourseInstance; refs: RtStructRefs }
interface DoseNode { inst: CourseInstance; refs: RtDoseRefs }

interface PatientObjects {
  series: Map<string, SeriesFiles>;
  plans: Map<string, PlanNode>;
  structs: Map<string, StructNode>;
  doses: Map<string, DoseNode>;
}

function sortObjects(instances: CourseInstance[]): PatientObjects {
  const o: PatientObjects = { series: new Map(), plans: new Map(), structs: new Map(), doses: new Map() };
  const images = new Map<string, CourseInstance[]>();
  for (const inst of instances) {
    const rt = inst.rt;
    if (rt?.kind === 'plan') o.plans.set(inst.sopInstanceUid, { inst, refs: rt });
    else if (rt?.kind === 'struct') o.structs.set(inst.sopInstanceUid, { inst, refs: rt });
    else if (rt?.kind === 'dose') o.doses.set(inst.sopInstanceUid, { inst, refs: rt });
    else {
      const list = images.get(inst.seriesInstanceUid);
      if (list) list.push(inst);
      else images.set(inst.seriesInstanceUid, [inst]);
    }
  }
  for (const [uid, list] of images) {
    list.sort((a, b) => (a.instanceNumber ?? 0) - (b.instanceNumber ?? 0) || cmp(a.path, b.path));
    const first = list[0];
    o.series.set(uid, {
      modality: first.modality || 'OT',
      seriesInstanceUid: first.seriesInstanceUid,
      studyInstanceUid: first.studyInstanceUid,
      frameOfReferenceUid: first.frameOfReferenceUid,
      studyDate: first.studyDate,
      files: list.map((i) => i.path),
      sopInstanceUids: list.map((i) => i.sopInstanceUid),
    });
  }
  return o;
}

function groupPatient(patientId: string, patientDir: string, instances: CourseInstance[]): { courses: CoursePlan[]; unassigned: CourseGrouping['unassigned'] } {
  const o = sortObjects(instances);
  const patientName = instances.find((i) => i.patientName)?.patientName ?? '';
  const uf = new UnionFind();
  const key = { series: (u: string) => `S:${u}`, plan: (u: string) => `P:${u}`, struct: (u: string) => `R:${u}`, dose: (u: string) => `D:${u}`, frame: (u: string) => `F:${u}` };
  for (const [uid, s] of o.series) {
    uf.add(key.series(uid));
    if (s.frameOfReferenceUid) uf.union(key.series(uid), key.frame(s.frameOfReferenceUid));
  }
  for (const [uid, { inst, refs }] of o.structs) {
    uf.add(key.struct(uid));
    for (const f of new Set([inst.frameOfReferenceUid, ...refs.referencedFrameOfReferenceUids])) if (f) uf.union(key.struct(uid), key.frame(f));
    for (const s of refs.referencedSeriesUids) if (o.series.has(s)) uf.union(key.struct(uid), key.series(s));
  }
  for (const [uid, { inst, refs }] of o.plans) {
    uf.add(key.plan(uid));
    if (inst.frameOfReferenceUid) uf.union(key.plan(uid), key.frame(inst.frameOfReferenceUid));
    for (const r of refs.referencedStructureSetUids) if (o.structs.has(r)) uf.union(key.plan(uid), key.struct(r));
    for (const r of refs.referencedPlanUids) if (o.plans.has(r)) uf.union(key.plan(uid), key.plan(r));
  }
  for (const [uid, { inst, refs }] of o.doses) {
    uf.add(key.dose(uid));
    if (inst.frameOfReferenceUid) uf.union(key.dose(uid), key.frame(inst.frameOfReferenceUid));
    for (const r of refs.referencedPlanUids) if (o.plans.has(r)) uf.union(key.dose(uid), key.plan(r));
  }

  const components = new Map<string, string[]>();
  for (const k of uf.keys()) {
    const root = uf.find(k);
    const list = components.get(root);
    if (list) list.push(k);
    else components.set(root, [k]);
  }

  const drafts: CourseDraft[] = [];
  const unassigned: CourseGrouping['unassigned'] = [];
  for (const members of components.values()) {
    const pick = <T>(prefix: string, map: Map<string, T>) => members.filter((m) => m.startsWith(prefix)).map((m) => map.get(m.slice(2))!).filter(Boolean);
    const group = {
      series: pick('S:', o.series),
      plans: pick('P:', o.plans),
      structs: pick('R:', o.structs),
      doses: pick('D:', o.doses),
    };
    const hasCt = group.series.some((s) => s.modality === 'CT');
    if (group.plans.length === 0 && !hasCt) {
      const why = 'not linked to any RTPLAN or CT series of the patient (no shared frame of reference or reference)';
      for (const s of group.series) for (const f of s.files) unassigned.push({ path: f, reason: `${s.modality} series ${s.seriesInstanceUid}: ${why}` });
      for (const r of group.structs) unassigned.push({ path: r.inst.path, reason: `RTSTRUCT ${r.inst.sopInstanceUid}: ${why}` });
      for (const d of group.doses) unassigned.push({ path: d.inst.path, reason: `RTDOSE ${d.inst.sopInstanceUid}: ${why}` + (d.refs.referencedPlanUids.length ? `; its RTPLAN ${d.refs.referencedPlanUids.join(', ')} is not in the input` : '') });
      continue;
    }
    drafts.push(draftCourse(patientId, patientName, patientDir, group, o));
  }
  return { courses: assignCourseIds(drafts), unassigned };
}

interface CourseDraft {
  plan: Omit<CoursePlan, 'courseId'>;
  /** Date base of the CourseID and the sort keys for numbering clashes. */
  base: string;
  sortDate: string;
  sortUid: string;
}

function draftCourse(
  patientId: string,
  patientName: string,
  patientDir: string,
  group: { series: SeriesFiles[]; plans: PlanNode[]; structs: StructNode[]; doses: DoseNode[] },
  o: PatientObjects,
): CourseDraft {
  const warnings: string[] = [];
  const plans = group.plans.map((p) => planEntry(p, o, warnings)).sort((a, b) => cmp(a.date, b.date) || cmp(a.sopInstanceUid, b.sopInstanceUid));
  const usedStructs = new Set(plans.flatMap((p) => p.referencedStructureSetUids));
  for (const p of plans) {
    for (const r of p.referencedStructureSetUids) if (!o.structs.has(r)) warnings.push(`RTPLAN ${planLabel(p)} references RTSTRUCT ${r}, which is not in the input`);
  }
  const rtstructs: StructureSetEntry[] = group.structs
    .map(({ inst, refs }) => ({
      sopInstanceUid: inst.sopInstanceUid,
      file: inst.path,
      label: refs.label,
      frameOfReferenceUid: refs.referencedFrameOfReferenceUids[0] ?? inst.frameOfReferenceUid,
      referencedSeriesUids: refs.referencedSeriesUids,
      usedByPlan: usedStructs.has(inst.sopInstanceUid),
    }))
    .sort((a, b) => Number(b.usedByPlan) - Number(a.usedByPlan) || cmp(a.sopInstanceUid, b.sopInstanceUid));
  for (const s of rtstructs) {
    for (const r of s.referencedSeriesUids) if (!o.series.has(r)) warnings.push(`RTSTRUCT ${s.sopInstanceUid} was drawn on series ${r}, which is not in the input`);
  }

  const ct = chooseCt(group.series, rtstructs, warnings);
  const otherSeries = group.series.filter((s) => s !== ct).sort((a, b) => cmp(a.modality, b.modality) || cmp(a.seriesInstanceUid, b.seriesInstanceUid));
  const doses: DoseEntry[] = group.doses
    .map(({ inst, refs }) => ({
      sopInstanceUid: inst.sopInstanceUid,
      file: inst.path,
      summationType: refs.summationType,
      doseType: refs.doseType,
      frameOfReferenceUid: inst.frameOfReferenceUid,
      referencedPlanUids: refs.referencedPlanUids,
      referencedFractionGroupNumber: refs.referencedFractionGroupNumber,
      referencedBeamNumbers: refs.referencedBeamNumbers,
    }))
    .sort((a, b) => cmp(a.sopInstanceUid, b.sopInstanceUid));

  const primaryStruct = rtstructs[0]?.frameOfReferenceUid ?? ct?.frameOfReferenceUid ?? null;
  const { recipe, notes } = decideDoseRecipe(
    plans.map((p) => ({ sopInstanceUid: p.sopInstanceUid, frameOfReferenceUid: p.frameOfReferenceUid, refs: o.plans.get(p.sopInstanceUid)!.refs })),
    group.doses.map(({ inst, refs }) => ({ sopInstanceUid: inst.sopInstanceUid, file: inst.path, frameOfReferenceUid: inst.frameOfReferenceUid, refs })).sort((a, b) => cmp(a.sopInstanceUid, b.sopInstanceUid)),
    primaryStruct,
  );
  warnings.push(...notes);
  if (!ct) warnings.push('no CT series in the course: segmentation and CT-based stages cannot run');
  if (rtstructs.length === 0) warnings.push('no RTSTRUCT in the course');

  const planDates = plans.map((p) => p.date).filter(isDicomDate);
  let base: string;
  let sortDate: string;
  if (plans.length > 0 && planDates.length > 0) {
    sortDate = planDates.sort()[0];
    base = `${sortDate.slice(0, 4)}-${sortDate.slice(4, 6)}`;
  } else {
    if (plans.length > 0) warnings.push('no plan has a date (RTPlanDate, SeriesDate, ContentDate, StudyDate): the CourseID falls back to the CT study date');
    const study = ct?.studyDate ?? group.series[0]?.studyDate ?? '';
    sortDate = isDicomDate(study) ? study : '99999999';
    const studyUid = ct?.studyInstanceUid ?? group.series[0]?.studyInstanceUid ?? group.plans[0]?.inst.studyInstanceUid ?? 'UNKNOWN';
    base = isDicomDate(study) ? `${study.slice(0, 4)}-${study.slice(4, 6)}-${study.slice(6, 8)}` : sanitizeId(studyUid);
    if (!isDicomDate(study)) warnings.push(`no usable date: the CourseID is the study UID ${studyUid}`);
  }
  const prescriptionGy = coursePrescription(plans, recipe);
  return {
    plan: {
      patientId,
      patientName,
      patientDir,
      ct,
      rtstructs,
      plans,
      doses,
      otherSeries,
      doseRecipe: recipe,
      prescriptionGy,
      warnings,
    },
    base,
    sortDate,
    sortUid: plans[0]?.sopInstanceUid ?? ct?.seriesInstanceUid ?? group.series[0]?.seriesInstanceUid ?? '',
  };
}

function planEntry({ inst, refs }: PlanNode, o: PatientObjects, warnings: string[]): PlanEntry {
  const date = [refs.date, inst.seriesDate, inst.contentDate, inst.studyDate].find(isDicomDate) ?? '';
  if (!isDicomDate(refs.date) && date) warnings.push(`RTPLAN ${inst.sopInstanceUid} has no RTPlanDate; its date ${date} comes from the series/content/study date`);
  const viaStruct = refs.referencedStructureSetUids.map((r) => o.structs.get(r)).find(Boolean);
  const group = refs.fractionGroups[0];
  return {
    sopInstanceUid: inst.sopInstanceUid,
    file: inst.path,
    label: refs.label,
    date,
    frameOfReferenceUid: inst.frameOfReferenceUid ?? viaStruct?.refs.referencedFrameOfReferenceUids[0] ?? viaStruct?.inst.frameOfReferenceUid ?? null,
    referencedStructureSetUids: refs.referencedStructureSetUids,
    referencedPlanUids: refs.referencedPlanUids,
    beamNumbers: refs.beams.map((b) => b.number),
    fractionsPlanned: group?.fractionsPlanned ?? null,
    prescriptionGy: refs.prescriptionGy,
    approvalStatus: refs.approvalStatus,
  };
}

/** The planning CT: see the module comment. */
function chooseCt(series: SeriesFiles[], rtstructs: StructureSetEntry[], warnings: string[]): SeriesFiles | null {
  const cts = series.filter((s) => s.modality === 'CT');
  if (cts.length === 0) return null;
  const byUid = new Map(cts.map((s) => [s.seriesInstanceUid as string, s]));
  for (const preferPlan of [true, false]) {
    const named = [...new Set(rtstructs.filter((r) => r.usedByPlan === preferPlan).flatMap((r) => r.referencedSeriesUids))].filter((u) => byUid.has(u));
    if (named.length > 0) {
      if (named.length > 1) warnings.push(`structure sets reference ${named.length} CT series (${named.join(', ')}); ${named[0]} is used`);
      return byUid.get(named[0])!;
    }
  }
  const sorted = [...cts].sort((a, b) => b.files.length - a.files.length || cmp(a.seriesInstanceUid, b.seriesInstanceUid));
  if (sorted.length > 1) warnings.push(`${sorted.length} CT series and no structure set naming one: the largest (${sorted[0].seriesInstanceUid}, ${sorted[0].files.length} slices) is used`);
  return sorted[0];
}

function coursePrescription(plans: PlanEntry[], recipe: DoseRecipe): number | null {
  if (recipe.kind === 'skipped') return plans.length === 1 ? plans[0].prescriptionGy : null;
  const summed = plans.filter((p) => recipe.planSopInstanceUids.includes(p.sopInstanceUid));
  if (summed.length === 0 || summed.some((p) => p.prescriptionGy === null)) return null;
  return summed.reduce((s, p) => s + p.prescriptionGy!, 0);
}

function assignCourseIds(drafts: CourseDraft[]): CoursePlan[] {
  drafts.sort((a, b) => cmp(a.base, b.base) || cmp(a.sortDate, b.sortDate) || cmp(a.sortUid, b.sortUid));
  const used = new Map<string, number>();
  return drafts.map((d) => {
    const n = (used.get(d.base) ?? 0) + 1;
    used.set(d.base, n);
    return { ...d.plan, courseId: n === 1 ? d.base : `${d.base}_${n}` };
  });
}

// ---------------------------------------------------------------------------------- small helpers

function isDicomDate(s: string): boolean {
  return /^\d{8}$/.test(s);
}

function planLabel(p: PlanEntry): string {
  return p.label ? `"${p.label}" (${p.sopInstanceUid})` : p.sopInstanceUid;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

class UnionFind {
  private readonly parent = new Map<string, string>();

  add(k: string): void {
    if (!this.parent.has(k)) this.parent.set(k, k);
  }

  find(k: string): string {
    this.add(k);
    let root = k;
    while (this.parent.get(root) !== root) root = this.parent.get(root)!;
    let cur = k;
    while (cur !== root) {
      const next = this.parent.get(cur)!;
      this.parent.set(cur, root);
      cur = next;
    }
    return root;
  }

  union(a: string, b: string): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra !== rb) this.parent.set(rb, ra);
  }

  keys(): string[] {
    return [...this.parent.keys()];
  }
}
