import type { IndexDb, JobRow } from '../store/index-db.js';
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Config, Destination } from '../config/schema.js';
import { SOP_CLASS } from '../dicom/sop-classes.js';
import type { OutboundQueue } from './outbound.js';
import type { StageFn } from './job-runner.js';
import type { StagePool } from '../pipeline/stage-pool.js';
import { courseDirFor } from '../pipeline/course.js';
import { runCourse, type CourseRunOptions, type PlannedStage, type StageStatus } from '../pipeline/course-pipeline.js';
import { STAGES } from '../pipeline/stage-names.js';
import type { OrganizeInput } from '../pipeline/stages/organize.js';
import type { SegmentationInput, SegmentationResult } from '../pipeline/stages/segmentation.js';
import { segmentationSettingsKey } from '../pipeline/segmentation-key.js';
import type { StageName } from '../pipeline/stage-names.js';
import type { DvhInput } from '../pipeline/stages/dvh.js';
import type { QcInput } from '../pipeline/stages/qc.js';
import { scanFiles } from '../organize/scan.js';
import { readMarker } from '../pipeline/stage-markers.js';
import type { CourseRunner } from '../executor/course-executor.js';
import type { Timeline } from '../store/timeline.js';
import type { AuditSink } from '../audit/audit-log.js';
import type { RoutingSnapshot } from '../routing/routing-table.js';
import { routeStudy } from '../routing/study-route.js';
import { isOwnResultDescription, type RoutingRules } from '../routing/rules.js';
import { brandingFromConfig } from '../rt/branding.js';
import { formatDestination } from '../config/destination.js';
import { resultLineage } from '../rt/lineage.js';

export interface StudyJobDeps {
  index: IndexDb;
  pool: StagePool;
  outputDir: string;
  destinations: Destination[];
  forward: boolean;
  segmentation: Config['segmentation'];
  customStructures: string | null;
  segWorkers: number;
  graceSeconds: number;
  outbound: OutboundQueue;
  heartbeatSeconds: number;
  /** Set with `executor.kind: slurm`: the stages after organize run there (one course task) instead
   *  of in the stage pool; organize stays here (it reads this node's instance store). */
  remote?: CourseRunner;
  /** Told after the job's progress was written to the index (the HTTP event hub listens). */
  onProgress?: (jobId: number) => void;
  /** Return routing: the rules in force (read once per job). Absent: results go to `destinations`. */
  routing?: { current(): RoutingSnapshot };
  /** The per-study timeline ('skipped', 'held', 'stage'). */
  timeline?: Timeline;
  /** The audit trail ('result.held'). */
  audit?: AuditSink;
}

/** Live progress of a job, as kept in jobs.progress and shown by the API and the web UI. */
export interface JobProgress {
  /** The stage running now, or the last one that reported. */
  stage: StageName | null;
  stages: { stage: StageName; status: StageStatus | 'pending'; ms: number }[];
}

/** Progress of the planned stages, in the order runCourse takes them, all pending. */
export function initialProgress(planned: readonly StageName[]): JobProgress {
  return { stage: null, stages: STAGES.filter((s) => planned.includes(s)).map((stage) => ({ stage, status: 'pending', ms: 0 })) };
}

export function withStage(p: JobProgress, stage: StageName, status: StageStatus, ms: number): JobProgress {
  return { stage, stages: p.stages.map((s) => (s.stage === stage ? { stage, status, ms } : s)) };
}

/**
 * The objects placed under the course's DICOM/<modality>/ folders: the one CT series the pipeline
 * uses (a second CT series, e.g. a 4DCT average or a localiser, would mix two grids under DICOM/CT),
 * and no RTSTRUCT of ours that came back from the PACS (it is not a planning structure set).
 */
function courseObjects(
  instances: readonly { path: string; series_uid: string; sop_uid: string }[],
  series: readonly { series_uid: string; modality: string; description: string | null }[],
  ctSeriesUid: string | undefined,
  rules?: RoutingRules,
): { path: string; modality: string; sopInstanceUid: string }[] {
  const bySeries = new Map(series.map((s) => [s.series_uid, s]));
  return instances
    .map((i) => ({ i, s: bySeries.get(i.series_uid) }))
    .filter(({ i, s }) => {
      if (s?.modality === 'CT') return i.series_uid === ctSeriesUid;
      if (s?.modality === 'RTSTRUCT') return !isOwnResultDescription(s.description, rules);
      return true;
    })
    .map(({ i, s }) => ({ path: i.path, modality: s?.modality ?? 'OT', sopInstanceUid: i.sop_uid }));
}

/**
 * The daemon's study job: the course's stages (organize, segmentation) as worker-thread jobs, then
 * RS_auto.dcm queued for every destination (and, in routing mode, the study forwarded). A job run
 * again after a crash skips the stages already done and queues nothing twice.
 */
export function studyJob(deps: StudyJobDeps): StageFn {
  return async (job: JobRow, log, signal) => {
    const study = deps.index.getStudy(job.study_uid);
    if (!study) throw new Error(`study ${job.study_uid} is not in the index`);
    const series = deps.index.seriesOfStudy(job.study_uid);
    const instances = deps.index.instancesOfStudy(job.study_uid);
    const byClass = (uid: string) => instances.filter((i) => i.sop_class_uid === uid).map((i) => i.path);
    // The rules in force now stay this job's rules, whatever PUT /api/routing does meanwhile.
    const rules = deps.routing?.current();
    const routing = await routeStudy(rules, study, series, instances, deps.destinations);
    const routed = {
      route: routing.plan.route,
      rulesHash: routing.rulesHash,
      destinations: routing.plan.destinations.map(formatDestination),
      held: routing.plan.held,
      testDestination: routing.plan.testDestination,
    };
    if (routing.skipped) {
      log.warn({ studyUid: study.study_uid, patientId: study.patient_id, jobId: job.id, route: routed.route, reason: routing.skipped }, 'study skipped: input constraint not met');
      deps.timeline?.record(study.study_uid, 'skipped', { reason: routing.skipped, route: routed.route, jobId: job.id });
      return { skipped: routing.skipped, routing: routed, series: series.length, instances: instances.length };
    }
    const planDates = (await scanFiles(byClass(SOP_CLASS.RtPlan))).instances.map((p) => (p.rt?.kind === 'plan' ? p.rt.date : '')).filter(Boolean).sort();
    const { dir, courseId } = await courseDirFor(deps.outputDir, study, { earliestPlanDate: planDates[0] });
    const label = `${study.patient_id}/${courseId}`;
    const queued: number[] = [];
    if (deps.forward && !routing.plan.held) {
      for (const d of routing.plan.destinations) queued.push(deps.outbound.enqueue(d, instances.map((i) => i.path), `job:${job.id}`, { studyUid: job.study_uid }));
    }
    const branding = brandingFromConfig(routing.plan.branding);
    const ctSeries = series
      .filter((s) => s.modality === 'CT')
      .map((s) => ({ s, files: instances.filter((i) => i.series_uid === s.series_uid && i.sop_class_uid === SOP_CLASS.CtImage) }))
      .sort((a, b) => b.files.length - a.files.length)[0];
    // The planning structure set on the CT's frame of reference (not one of ours coming back).
    const manual = ctSeries
      ? instances
          .filter((i) => i.sop_class_uid === SOP_CLASS.RtStructureSet)
          .filter((i) => {
            const s = series.find((x) => x.series_uid === i.series_uid);
            return s?.frame_of_reference_uid === ctSeries.s.frame_of_reference_uid && !isOwnResultDescription(s?.description ?? null, rules);
          })
          .sort((a, b) => b.received_at - a.received_at)[0]
      : undefined;
    // What each stage's output depends on: the same study content and settings = nothing to redo.
    // The instances themselves (not the generation): a re-run request keeps the stages it does not force.
    const keyOf = (list: typeof instances) => createHash('sha256').update(list.map((i) => `${i.sop_uid}:${i.size}`).sort().join('\n')).digest('hex').slice(0, 16);
    const contentKey = keyOf(instances);
    // Segmentation reads the CT and the planning structure sets only: a dose arriving later keeps it.
    const segmentationInputsKey = keyOf(instances.filter((i) => i.sop_class_uid === SOP_CLASS.CtImage || i.sop_class_uid === SOP_CLASS.RtStructureSet));
    const options = job.options ? (JSON.parse(job.options) as { forceRedo?: boolean | StageName[] }) : {};
    const stages: PlannedStage[] = [
      {
        stage: 'organize',
        key: contentKey,
        input: (): OrganizeInput => ({
          kind: 'study',
          courseDir: dir,
          courseId,
          metadata: {
            patientId: study.patient_id,
            patientName: study.patient_name,
            studyInstanceUid: study.study_uid,
            studyDate: study.study_date,
            generation: job.generation,
            callingAet: study.calling_aet,
            series: series.map((s) => ({ seriesInstanceUid: s.series_uid, modality: s.modality, number: s.number, description: s.description, frameOfReferenceUid: s.frame_of_reference_uid, instances: s.instance_count })),
            instances: instances.length,
            bytes: instances.reduce((a, i) => a + i.size, 0),
          },
          instances: courseObjects(instances, series, ctSeries?.s.series_uid, rules),
        }),
      },
      {
        stage: 'segmentation',
        // Branding is in the key only when set: unbranded results keep the keys they always had.
        key: `${segmentationInputsKey}:${await segmentationSettingsKey(deps.segmentation, deps.customStructures)}${branding ? `:brand:${JSON.stringify(branding)}` : ''}`,
        input: (): SegmentationInput => ({
          engine: deps.segmentation.engine,
          settings: deps.segmentation,
          customStructures: deps.customStructures && path.resolve(deps.customStructures),
          manualRtstruct: manual?.path,
          segWorkers: deps.segWorkers,
          graceSeconds: deps.graceSeconds,
          branding,
          ct: ctSeries && {
            ctFiles: ctSeries.files.map((f) => f.path),
            courseDir: dir,
            study: {
              studyInstanceUid: study.study_uid,
              seriesInstanceUid: ctSeries.s.series_uid,
              frameOfReferenceUid: ctSeries.s.frame_of_reference_uid ?? '',
              patientId: study.patient_id,
              patientName: study.patient_name,
              studyDate: study.study_date,
              studyTime: study.study_time,
              accessionNumber: study.accession,
            },
            // Same study, generation and input series: same RTSTRUCT bytes and UIDs after a crash and re-run.
            seed: `rtpipeline-builtin-v1:${study.study_uid}:${ctSeries.s.series_uid}:${job.generation}:${ctSeries.files.length}`,
            // One series per study and engine for every version of RS_auto; InstanceNumber = generation.
            lineage: resultLineage(study.study_uid, deps.segmentation.engine, job.generation),
          },
        }),
      },
    ];
    // The DVH when the study brings a dose (its plan links are decided from the course's objects).
    if (byClass(SOP_CLASS.RtDose).length > 0) {
      stages.push({ stage: 'dvh', key: contentKey, input: (): DvhInput => ({ courseDir: dir, patientId: study.patient_id, courseId }) });
    }
    // The QC report (pictures and checks) for the web UI; it reads only the course folder.
    if (ctSeries) stages.push({ stage: 'qc', key: 'qc-v1', input: (): QcInput => ({ courseDir: dir, patientId: study.patient_id, courseId }) });
    let progress = initialProgress(stages.map((p) => p.stage));
    const report = () => {
      deps.index.setJobProgress(job.id, progress);
      deps.onProgress?.(job.id);
    };
    report();
    const onStage = (stage: StageName, status: StageStatus, ms: number) => {
      progress = withStage(progress, stage, status, ms);
      report();
      deps.timeline?.record(job.study_uid, 'stage', { jobId: job.id, stage, status, ms });
    };
    const course = { pool: deps.pool, courseDir: dir, label, log, signal, heartbeatSeconds: deps.heartbeatSeconds, forceRedo: options.forceRedo, onStage };
    const { outcomes, segmentation } = deps.remote
      ? await runRemotely(deps.remote, { ...course, stages, patientId: study.patient_id, courseId })
      : await runCourse({ ...course, stages }).then(({ outcomes, results }) => ({ outcomes, segmentation: results.segmentation as SegmentationResult }));
    if ('rsAuto' in segmentation && routing.plan.held) {
      log.info({ studyUid: study.study_uid, patientId: study.patient_id, jobId: job.id, route: routed.route, rsAuto: segmentation.rsAuto }, `result held: ${routing.plan.held}`);
      deps.timeline?.record(study.study_uid, 'held', { reason: routing.plan.held, route: routed.route, jobId: job.id, file: segmentation.rsAuto });
      deps.audit?.record({ type: 'result.held', outcome: 'success', studyUid: study.study_uid, jobId: job.id, route: routed.route, reason: routing.plan.held, sopInstanceUid: segmentation.sopInstanceUid });
    } else if ('rsAuto' in segmentation) {
      // Idempotent per job: a resumed job finds its items and queues nothing twice.
      for (const d of routing.plan.destinations) queued.push(deps.outbound.enqueue(d, [segmentation.rsAuto], `job:${job.id}:rs_auto`, { studyUid: job.study_uid }));
    }
    return { courseDir: dir, courseId, stages: outcomes.map((o) => ({ stage: o.stage, status: o.status, ms: o.ms })), series: series.length, instances: instances.length, segmentation, outbound: queued, routing: routed };
  };
}

type CourseRun = Omit<CourseRunOptions, 'signal'> & { signal: AbortSignal; patientId: string; courseId: string };

/**
 * Organize here, then the remaining stages as one course task of the remote executor (SLURM). The
 * task runs `rtpipeline run --only-course` on the course folder, so its markers and results are in
 * the folder like a local run's: the segmentation result is read back from its marker.
 */
async function runRemotely(remote: CourseRunner, o: CourseRun): Promise<{ outcomes: { stage: StageName; status: StageStatus; ms: number }[]; segmentation: SegmentationResult }> {
  const local = await runCourse({ ...o, stages: o.stages.filter((p) => p.stage === 'organize') });
  const rest = o.stages.map((p) => p.stage).filter((s) => s !== 'organize');
  // The task takes one force flag for all its stages: forcing one of them forces the later ones anyway.
  const f = o.forceRedo;
  const force = f === true || (f !== undefined && f !== false && rest.some((s) => f.includes(s)));
  o.onStage?.(rest[0], 'running', 0);
  const started = Date.now();
  const outcome = await remote({ patientId: o.patientId, courseId: o.courseId, dir: o.courseDir }, rest, { forceRedo: force, log: o.log, signal: o.signal });
  if (o.signal.aborted) throw new Error(`cancelled while the stages of ${o.label} ran remotely (${String(o.signal.reason)})`);
  if (!outcome.ok) {
    o.onStage?.(rest[0], 'failed', Date.now() - started);
    throw new Error(`the stages ${rest.join(', ')} of ${o.label} failed in their remote course task: ${outcome.error ?? 'no reason given'}`);
  }
  for (const s of outcome.stages) if (s.status !== 'failed') o.onStage?.(s.stage, s.status, s.ms);
  const marker = await readMarker(o.courseDir, 'segmentation');
  if (!marker) throw new Error(`the remote task of ${o.label} reported success but left no segmentation marker in ${o.courseDir}`);
  return { outcomes: [...local.outcomes, ...outcome.stages], segmentation: marker.result as SegmentationResult };
}
