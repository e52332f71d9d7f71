/**
 * Which RTDOSE files make a course's dose, and how they combine. Pure: it sees the references the
 * scan found, never a voxel.
 *
 * The rules, in order:
 * 1. A dose that is not in Gy, names a plan that is not in the tree, or names no plan is a problem.
 * 2. A PLAN_SUM / MULTI_PLAN dose that covers every plan of the course is used as it is (two such
 *    doses: ambiguous).
 * 3. Otherwise each plan needs its own dose: its PLAN (or BRACHY) dose as it is; two of them:
 *    ambiguous. With none, its BEAM doses summed, when they cover exactly the plan's treatment beams
 *    (each once; a SETUP beam or a beam with meterset 0 delivers nothing and needs no dose). A plan
 *    without any dose, when others have one, leaves the sum incomplete.
 * 4. Several plans are summed when all their doses share one frame of reference; otherwise
 *    ambiguous (no registration is applied).
 * 5. The dose must share the frame of reference of the structure set it will be evaluated on.
 * Any problem gives `{ kind: 'skipped', skipped: reason }`: the DVH is not computed for the course,
 * and the reason goes to case_metadata.json. Nothing is guessed.
 */
import type { Uid } from '../dicom/uid.js';
import type { RtDoseRefs, RtPlanRefs } from './rt-refs.js';

export interface PlanInput {
  sopInstanceUid: Uid;
  /** The plan's own Frame of Reference UID, else that of the structure set it references. */
  frameOfReferenceUid: Uid | null;
  refs: RtPlanRefs;
}

export interface DoseInput {
  sopInstanceUid: Uid;
  file: string;
  frameOfReferenceUid: Uid | null;
  refs: RtDoseRefs;
}

/** One plan's share of a sum. */
export interface PlanDosePart {
  planSopInstanceUid: Uid;
  kind: 'single' | 'sum-beams';
  files: string[];
  doseSopInstanceUids: Uid[];
  /** For sum-beams: the beam of each file, in the same order. */
  beamNumbers?: number[];
}

export type DoseRecipe =
  | {
      kind: 'single';
      files: string[];
      doseSopInstanceUids: Uid[];
      summationType: string;
      planSopInstanceUids: Uid[];
      frameOfReferenceUid: Uid;
    }
  | {
      kind: 'sum-beams';
      files: string[];
      doseSopInstanceUids: Uid[];
      beamNumbers: number[];
      planSopInstanceUids: Uid[];
      frameOfReferenceUid: Uid;
    }
  | {
      kind: 'sum-plans';
      files: string[];
      parts: PlanDosePart[];
      planSopInstanceUids: Uid[];
      frameOfReferenceUid: Uid;
    }
  | { kind: 'skipped'; skipped: string };

export interface DoseRecipeResult {
  recipe: DoseRecipe;
  /** Doses present but not used, and why (not a reason to skip). */
  notes: string[];
}

const SUM_TYPES = new Set(['PLAN_SUM', 'MULTI_PLAN']);
/** Whole-plan doses: used as they are. */
const PLAN_TYPES = new Set(['PLAN', 'BRACHY']);

export function decideDoseRecipe(plans: PlanInput[], doses: DoseInput[], structureSetFrameOfReferenceUid: Uid | null): DoseRecipeResult {
  const notes: string[] = [];
  const skip = (...reasons: string[]): DoseRecipeResult => ({ recipe: { kind: 'skipped', skipped: reasons.join('; ') }, notes });
  if (doses.length === 0) return skip(plans.length > 0 ? `no RTDOSE for plan ${plans.map(planName).join(', ')}` : 'no RTDOSE in the course');

  const planByUid = new Map(plans.map((p) => [p.sopInstanceUid as string, p]));
  const problems: string[] = [];
  for (const d of doses) {
    if (d.refs.doseUnits !== 'GY') problems.push(`RTDOSE ${d.sopInstanceUid} has DoseUnits "${d.refs.doseUnits || '(none)'}", not GY`);
    if (d.refs.referencedPlanUids.length === 0) problems.push(`RTDOSE ${d.sopInstanceUid} (${d.refs.summationType || 'no DoseSummationType'}) references no RTPLAN`);
    for (const uid of d.refs.referencedPlanUids) {
      if (!planByUid.has(uid)) problems.push(`RTDOSE ${d.sopInstanceUid} references RTPLAN ${uid}, which is not in the input`);
    }
  }
  if (problems.length > 0) return skip(...problems);
  if (plans.length === 0) return skip('no RTPLAN in the course');

  const sums = doses.filter((d) => SUM_TYPES.has(d.refs.summationType));
  const covering = sums.filter((d) => plans.every((p) => d.refs.referencedPlanUids.includes(p.sopInstanceUid)));
  if (covering.length > 1) return skip(`${covering.length} PLAN_SUM/MULTI_PLAN doses cover all plans (${covering.map((d) => d.sopInstanceUid).join(', ')}): which one is meant is ambiguous`);
  if (covering.length === 1) {
    const d = covering[0];
    const others = doses.filter((x) => x !== d);
    if (others.length > 0) notes.push(`${others.length} other RTDOSE not used: the ${d.refs.summationType} dose ${d.sopInstanceUid} covers every plan`);
    return finish(single(d, d.refs.referencedPlanUids), structureSetFrameOfReferenceUid, notes);
  }
  for (const d of sums) notes.push(`${d.refs.summationType} dose ${d.sopInstanceUid} not used: it covers plans ${d.refs.referencedPlanUids.join(', ')} but not all ${plans.length} plans of the course`);
  for (const d of doses) {
    if (!SUM_TYPES.has(d.refs.summationType) && !PLAN_TYPES.has(d.refs.summationType) && d.refs.summationType !== 'BEAM') {
      notes.push(`RTDOSE ${d.sopInstanceUid} not used: DoseSummationType "${d.refs.summationType || '(none)'}" is not a whole plan, a plan sum or a beam`);
    }
  }

  const parts: PlanDosePart[] = [];
  for (const plan of plans) {
    const mine = doses.filter((d) => d.refs.referencedPlanUids.length === 1 && d.refs.referencedPlanUids[0] === plan.sopInstanceUid);
    const part = planPart(plan, mine, notes);
    if (typeof part === 'string') problems.push(part);
    else parts.push(part);
  }
  if (problems.length > 0) return skip(...problems);

  const byUid = new Map(doses.map((d) => [d.sopInstanceUid as string, d]));
  const frames = new Set(parts.flatMap((p) => p.doseSopInstanceUids.map((u) => byUid.get(u)!.frameOfReferenceUid ?? '(none)')));
  if (frames.size > 1) {
    return skip(`the doses lie in different frames of reference (${[...frames].join(', ')}): they cannot be summed without a registration`);
  }
  const frameOfReferenceUid = byUid.get(parts[0].doseSopInstanceUids[0])!.frameOfReferenceUid;
  if (!frameOfReferenceUid) return skip('the RTDOSE has no FrameOfReferenceUID (0020,0052)');
  const files = parts.flatMap((p) => p.files);
  const planSopInstanceUids = parts.map((p) => p.planSopInstanceUid);
  if (parts.length === 1) {
    const p = parts[0];
    const recipe: DoseRecipe =
      p.kind === 'single'
        ? { kind: 'single', files, doseSopInstanceUids: p.doseSopInstanceUids, summationType: byUid.get(p.doseSopInstanceUids[0])!.refs.summationType, planSopInstanceUids, frameOfReferenceUid }
        : { kind: 'sum-beams', files, doseSopInstanceUids: p.doseSopInstanceUids, beamNumbers: p.beamNumbers!, planSopInstanceUids, frameOfReferenceUid };
    return finish(recipe, structureSetFrameOfReferenceUid, notes);
  }
  return finish({ kind: 'sum-plans', files, parts, planSopInstanceUids, frameOfReferenceUid }, structureSetFrameOfReferenceUid, notes);
}

/** One plan's dose, or the reason it has none that can be used. */
function planPart(plan: PlanInput, mine: DoseInput[], notes: string[]): PlanDosePart | string {
  const whole = mine.filter((d) => PLAN_TYPES.has(d.refs.summationType));
  const beams = mine.filter((d) => d.refs.summationType === 'BEAM');
  if (whole.length > 1) return `plan ${planName(plan)} has ${whole.length} ${whole[0].refs.summationType} doses (${whole.map((d) => d.sopInstanceUid).join(', ')}): which one is meant is ambiguous`;
  if (whole.length === 1) {
    if (beams.length > 0) notes.push(`plan ${planName(plan)}: ${beams.length} BEAM doses not used, its PLAN dose is the total`);
    return { planSopInstanceUid: plan.sopInstanceUid, kind: 'single', files: [whole[0].file], doseSopInstanceUids: [whole[0].sopInstanceUid] };
  }
  if (beams.length === 0) return `plan ${planName(plan)} has no dose of its own (no PLAN or BEAM dose), so the course sum would be incomplete`;

  const expected = treatmentBeams(plan, beams);
  if (expected.size === 0) return `plan ${planName(plan)} lists no treatment beams, so its ${beams.length} BEAM doses cannot be checked for completeness`;
  const seen = new Map<number, DoseInput>();
  for (const d of beams) {
    if (d.refs.referencedBeamNumbers.length !== 1) return `BEAM dose ${d.sopInstanceUid} references ${d.refs.referencedBeamNumbers.length} beams, not one`;
    const n = d.refs.referencedBeamNumbers[0];
    if (seen.has(n)) return `plan ${planName(plan)}: beam ${n} has two BEAM doses (${seen.get(n)!.sopInstanceUid}, ${d.sopInstanceUid}): ambiguous`;
    if (!expected.has(n)) return `BEAM dose ${d.sopInstanceUid} is for beam ${n}, which is not a treatment beam of plan ${planName(plan)} (beams ${[...expected].join(', ')})`;
    seen.set(n, d);
  }
  const missing = [...expected].filter((n) => !seen.has(n));
  if (missing.length > 0) return `plan ${planName(plan)}: BEAM doses for beams ${[...seen.keys()].sort((a, b) => a - b).join(', ')}, but beam ${missing.join(', ')} has none, so the sum would be incomplete`;
  const ordered = [...seen.entries()].sort((a, b) => a[0] - b[0]);
  return {
    planSopInstanceUid: plan.sopInstanceUid,
    kind: 'sum-beams',
    files: ordered.map(([, d]) => d.file),
    doseSopInstanceUids: ordered.map(([, d]) => d.sopInstanceUid),
    beamNumbers: ordered.map(([n]) => n),
  };
}

/** The beams that deliver dose in the fraction group the doses name (all groups when none is named). */
function treatmentBeams(plan: PlanInput, doses: DoseInput[]): Set<number> {
  const groupNumbers = new Set(doses.map((d) => d.refs.referencedFractionGroupNumber).filter((n): n is number => n !== null));
  const groups = plan.refs.fractionGroups.filter((g) => groupNumbers.size === 0 || (g.number !== null && groupNumbers.has(g.number)));
  const setup = new Set(plan.refs.beams.filter((b) => b.deliveryType === 'SETUP').map((b) => b.number));
  const out = new Set<number>();
  for (const g of groups) for (const b of g.beams) if (!setup.has(b.number) && b.meterset !== 0) out.add(b.number);
  if (groups.length === 0) for (const b of plan.refs.beams) if (b.deliveryType !== 'SETUP') out.add(b.number);
  return new Set([...out].sort((a, b) => a - b));
}

function single(d: DoseInput, planSopInstanceUids: Uid[]): DoseRecipe {
  if (!d.frameOfReferenceUid) return { kind: 'skipped', skipped: `RTDOSE ${d.sopInstanceUid} has no FrameOfReferenceUID (0020,0052)` };
  return { kind: 'single', files: [d.file], doseSopInstanceUids: [d.sopInstanceUid], summationType: d.refs.summationType, planSopInstanceUids, frameOfReferenceUid: d.frameOfReferenceUid };
}

function finish(recipe: DoseRecipe, structureFor: Uid | null, notes: string[]): DoseRecipeResult {
  if (recipe.kind !== 'skipped' && structureFor && recipe.frameOfReferenceUid !== structureFor) {
    return { recipe: { kind: 'skipped', skipped: `the dose's frame of reference ${recipe.frameOfReferenceUid} differs from the structure set's ${structureFor}: no registration is applied` }, notes };
  }
  return { recipe, notes };
}

function planName(p: PlanInput): string {
  return p.refs.label ? `"${p.refs.label}" (${p.sopInstanceUid})` : p.sopInstanceUid;
}
