/**
 * The batch command (`rtpipeline --dicom-root IN --outdir OUT --logs LOGS`): organize the tree into
 * course folders, then run the course stages of every course through the same stage pool, markers
 * and stages as the daemon. A failing course is recorded and the others go on; the exit code is 1
 * when any course failed. Cohort tables go to `<outdir>/_RESULTS/`.
 */
import path from 'node:path';
import { createHash } from 'node:crypto';
import { existsSync, openSync, closeSync, promises as fsp } from 'node:fs';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { StagePool } from '../pipeline/stage-pool.js';
import { runCourse, type PlannedStage, type StageOutcome } from '../pipeline/course-pipeline.js';
import { STAGES, type StageName } from '../pipeline/stage-names.js';
import type { OrganizeTreeInput } from '../pipeline/stages/organize.js';
import type { OrganizeResult } from '../organize/organize.js';
import type { SegmentationInput } from '../pipeline/stages/segmentation.js';
import { segmentationSettingsKey } from '../pipeline/segmentation-key.js';
import type { DvhInput } from '../pipeline/stages/dvh.js';
import type { RadiomicsInput } from '../pipeline/stages/radiomics.js';
import type { RobustnessInput } from '../pipeline/stages/robustness.js';
import type { QcInput } from '../pipeline/stages/qc.js';
import { fileURLToPath } from 'node:url';

/** The original rtpipeline's CT settings (1 mm B-spline, bin width 25, Original + LoG + wavelet). */
const DEFAULT_RADIOMICS_PARAMS = fileURLToPath(new URL('../../../config/radiomics/ct-default.yaml', import.meta.url));
import { caseMetadataPath, updateCaseMetadata } from '../pipeline/course.js';
import { readPart10Header } from '../dicom/header-file.js';
import { usableCpusSync } from '../system/cpus.js';
import { resolveWorkers } from '../system/workers.js';
import { ProgressBar } from './progress.js';
import { writeCohortResults } from './results.js';
import type { CourseExecutor, CourseRef } from '../executor/course-executor.js';
import { SlurmExecutor } from '../executor/slurm-executor.js';

export interface BatchOptions {
  config: Config;
  /** Stages to run (contract order); default: every stage this version has. */
  stages: readonly StageName[];
  forceRedo: boolean;
  log: Logger;
  progress?: ProgressBar;
  signal?: AbortSignal;
  /** Internal (`--only-course DIR`, what a SLURM array task runs): only this organized course folder,
   *  on this machine, and no cohort tables (the submitting process writes those). */
  onlyCourse?: string;
}

export interface CourseOutcome {
  patientId: string;
  courseId: string;
  dir: string;
  ok: boolean;
  error?: string;
  stages: { stage: StageName; status: StageOutcome['status'] | 'failed'; ms: number }[];
}

export interface BatchResult {
  courses: CourseOutcome[];
  exitCode: 0 | 1;
}

export async function runBatch(opts: BatchOptions): Promise<BatchResult> {
  const { config, log } = opts;
  const outDir = path.resolve(config.output_dir);
  const cpus = usableCpusSync();
  const workers = resolveWorkers({ env: {}, configMaxWorkers: config.max_workers, configSegWorkers: config.seg_workers, usable: cpus.count });
  for (const w of workers.warnings) log.warn(w);
  log.info({ usableCpus: cpus.count, cpuLimit: cpus.source, maxWorkers: workers.maxWorkers, segWorkers: workers.segWorkers, stages: opts.stages }, 'batch run');
  const pool = new StagePool({ maxWorkers: workers.maxWorkers, segWorkers: workers.segWorkers, graceMs: config.node.shutdown_grace_seconds * 1000, log });
  const progress = opts.progress ?? new ProgressBar(0);
  try {
    if (opts.onlyCourse !== undefined) return await runOnlyCourse(opts.onlyCourse, pool, opts, progress);
    let courses: CourseRef[];
    if (opts.stages.includes('organize')) {
      if (!config.dicom_root) throw new Error('the organize stage needs --dicom-root (or dicom_root in the config)');
      progress.status(`organize ${config.dicom_root}`);
      const input: OrganizeTreeInput = { kind: 'tree', dicomRoot: path.resolve(config.dicom_root), outDir };
      const organized = await pool.run<OrganizeResult>('organize', input, { log, signal: opts.signal });
      log.info({ courses: organized.courses.length, scannedFiles: organized.scannedFiles, skippedFiles: organized.skippedFiles.length, unassigned: organized.unassigned.length }, 'organize done');
      courses = organized.courses.map((c) => ({ patientId: c.patientId, courseId: c.courseId, dir: c.dir }));
    } else {
      courses = await existingCourses(outDir);
      if (courses.length === 0) throw new Error(`no organized courses in ${outDir}: run the organize stage first (or without --stage)`);
    }
    progress.setTotal(courses.length);
    const courseStages = opts.stages.filter((s) => s !== 'organize');
    const executor: CourseExecutor =
      config.executor.kind === 'slurm'
        ? new SlurmExecutor({ config, forceRedo: opts.forceRedo, log, signal: opts.signal })
        : { kind: 'local', runCourses: (cs, stages) => Promise.all(cs.map((c) => runOneCourse(c, stages, pool, opts, progress))) };
    const outcomes = await executor.runCourses(courses, courseStages);
    if (executor.kind !== 'local') for (const o of outcomes) progress.tick(o.ok);
    await writeCohortResults(outDir, outcomes, log, config);
    const failed = outcomes.filter((o) => !o.ok);
    progress.finish();
    log.info({ courses: outcomes.length, failed: failed.length }, failed.length > 0 ? `${failed.length} of ${outcomes.length} course(s) failed` : `all ${outcomes.length} course(s) done`);
    return { courses: outcomes, exitCode: failed.length > 0 ? 1 : 0 };
  } finally {
    await pool.stop();
  }
}

/**
 * One course folder, run here (a SLURM array task). Test hook: with RTPIPELINE_TEST_FAIL_ONCE=FILE,
 * the first run that manages to create FILE exits with an error before touching the course, so the
 * tests can check that the executor resubmits a task that ended without a result.
 */
async function runOnlyCourse(dir: string, pool: StagePool, opts: BatchOptions, progress: ProgressBar): Promise<BatchResult> {
  const failOnce = process.env.RTPIPELINE_TEST_FAIL_ONCE;
  if (failOnce && claimFile(failOnce)) throw new Error(`RTPIPELINE_TEST_FAIL_ONCE (test hook): failing this first attempt on purpose (created ${failOnce})`);
  const courseDir = path.resolve(dir);
  if (!existsSync(caseMetadataPath(courseDir))) throw new Error(`--only-course ${dir}: not an organized course folder (no case_metadata.json); run organize first`);
  const meta = JSON.parse(await fsp.readFile(caseMetadataPath(courseDir), 'utf8')) as { patientId?: string; courseId?: string };
  const course = { patientId: meta.patientId ?? path.basename(path.dirname(courseDir)), courseId: meta.courseId ?? path.basename(courseDir), dir: courseDir };
  progress.setTotal(1);
  const outcome = await runOneCourse(course, opts.stages.filter((s) => s !== 'organize'), pool, opts, progress);
  progress.finish();
  return { courses: [outcome], exitCode: outcome.ok ? 0 : 1 };
}

/** Creates `file` if it does not exist yet; true when this call created it (atomic: O_EXCL). */
function claimFile(file: string): boolean {
  try {
    closeSync(openSync(file, 'wx'));
    return true;
  } catch {
    return false;
  }
}

/** Course folders of an earlier organize: `<out>/<patient>/<course>/case_metadata.json`. */
async function existingCourses(outDir: string): Promise<CourseRef[]> {
  const out: CourseRef[] = [];
  if (!existsSync(outDir)) return out;
  for (const p of (await fsp.readdir(outDir, { withFileTypes: true })).filter((d) => d.isDirectory() && !d.name.startsWith('_'))) {
    for (const c of (await fsp.readdir(path.join(outDir, p.name), { withFileTypes: true })).filter((d) => d.isDirectory())) {
      const dir = path.join(outDir, p.name, c.name);
      if (!existsSync(caseMetadataPath(dir))) continue;
      const meta = JSON.parse(await fsp.readFile(caseMetadataPath(dir), 'utf8')) as { patientId?: string; courseId?: string };
      out.push({ patientId: meta.patientId ?? p.name, courseId: meta.courseId ?? c.name, dir });
    }
  }
  return out.sort((a, b) => a.dir.localeCompare(b.dir));
}

async function filesIn(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  return (await fsp.readdir(dir)).filter((f) => f.endsWith('.dcm')).sort().map((f) => path.join(dir, f));
}

async function runOneCourse(c: CourseRef, stages: readonly StageName[], pool: StagePool, opts: BatchOptions, progress: ProgressBar): Promise<CourseOutcome> {
  const label = `${c.patientId}/${c.courseId}`;
  const log = opts.log.child({ patientId: c.patientId, courseId: c.courseId });
  try {
    const planned = await planCourse(c, stages, opts.config);
    const { outcomes } = await runCourse({
      pool,
      courseDir: c.dir,
      label,
      stages: planned.map((p) => ({ ...p, input: (r) => (progress.status(`${p.stage} ${label}`), p.input(r)) })),
      forceRedo: opts.forceRedo,
      log,
      signal: opts.signal,
      heartbeatSeconds: opts.config.heartbeat_seconds,
    });
    const stagesDone = outcomes.map((o) => ({ stage: o.stage, status: o.status, ms: o.ms }));
    await updateCaseMetadata(c.dir, { pipeline: { ok: true, stages: stagesDone } });
    progress.tick(true);
    return { ...c, ok: true, stages: stagesDone };
  } catch (e) {
    const error = (e as Error).message;
    log.error({ err: error }, `course ${label} failed`);
    await updateCaseMetadata(c.dir, { pipeline: { ok: false, error } }).catch(() => undefined);
    progress.tick(false);
    return { ...c, ok: false, error, stages: [] };
  }
}

/** The course stages with their inputs and keys (what their outputs depend on). */
async function planCourse(c: CourseRef, stages: readonly StageName[], config: Config): Promise<PlannedStage[]> {
  const ctFiles = await filesIn(path.join(c.dir, 'DICOM', 'CT'));
  const rtstructs = await filesIn(path.join(c.dir, 'DICOM', 'RTSTRUCT'));
  const contentKey = createHash('sha256').update([...ctFiles, ...rtstructs].map((f) => path.basename(f)).join('\n')).digest('hex').slice(0, 16);
  const out: PlannedStage[] = [];
  for (const stage of stages) {
    if (stage === 'segmentation') {
      const settingsKey = await segmentationSettingsKey(config.segmentation, config.custom_structures);
      const input = await segmentationInput(c, ctFiles, rtstructs, config);
      out.push({ stage, key: `${contentKey}:${settingsKey}`, input: () => input });
    } else if (stage === 'dvh') {
      // The DVH depends on the doses and plans too; a re-run segmentation invalidates it anyway.
      const doses = [...(await filesIn(path.join(c.dir, 'DICOM', 'RTDOSE'))), ...(await filesIn(path.join(c.dir, 'DICOM', 'RTPLAN')))];
      const key = createHash('sha256').update([contentKey, ...doses.map((f) => path.basename(f))].join('\n')).digest('hex').slice(0, 16);
      const input: DvhInput = { courseDir: c.dir, patientId: c.patientId, courseId: c.courseId };
      out.push({ stage, key, input: () => input });
    } else if (stage === 'radiomics') {
      if (!config.radiomics.enabled) continue;
      const paramsFile = path.resolve(config.radiomics.params_file ?? DEFAULT_RADIOMICS_PARAMS);
      const key = createHash('sha256').update(JSON.stringify([contentKey, config.radiomics, existsSync(paramsFile) ? await fsp.readFile(paramsFile, 'utf8') : 'missing'])).digest('hex').slice(0, 16);
      const input: RadiomicsInput = {
        courseDir: c.dir,
        patientId: c.patientId,
        courseId: c.courseId,
        paramsFile,
        skipRois: config.radiomics.skip_rois,
        minVoxels: config.radiomics.min_voxels,
        maxVoxels: config.radiomics.max_voxels,
        workers: config.radiomics.sequential ? 1 : Math.max(1, config.max_workers ?? usableCpusSync().count - 1),
      };
      out.push({ stage, key, input: () => input });
    } else if (stage === 'robustness') {
      if (!config.radiomics_robustness.enabled) continue;
      const paramsFile = path.resolve(config.radiomics.params_file ?? DEFAULT_RADIOMICS_PARAMS);
      const key = createHash('sha256').update(JSON.stringify([contentKey, config.radiomics_robustness, existsSync(paramsFile) ? await fsp.readFile(paramsFile, 'utf8') : 'missing'])).digest('hex').slice(0, 16);
      const input: RobustnessInput = { courseDir: c.dir, patientId: c.patientId, courseId: c.courseId, paramsFile, settings: config.radiomics_robustness.segmentation_perturbation };
      out.push({ stage, key, input: () => input });
    } else if (stage === 'qc') {
      // The report reads only the course folder; the chained marker key already covers upstream changes.
      const input: QcInput = { courseDir: c.dir, patientId: c.patientId, courseId: c.courseId };
      out.push({ stage, key: 'qc-v1', input: () => input });
    } else {
      throw new Error(`stage ${stage} is not available in this version`);
    }
  }
  return out;
}

async function segmentationInput(c: CourseRef, ctFiles: string[], rtstructs: string[], config: Config): Promise<SegmentationInput> {
  const base = {
    engine: config.segmentation.engine,
    settings: config.segmentation,
    customStructures: config.custom_structures && path.resolve(config.custom_structures),
    manualRtstruct: rtstructs[0],
    segWorkers: Math.max(1, config.seg_workers ?? 1),
    graceSeconds: Math.min(10, config.node.shutdown_grace_seconds / 2),
  };
  if (ctFiles.length === 0) return base;
  const { header } = await readPart10Header(ctFiles[0]);
  return {
    ...base,
    ct: {
      ctFiles,
      courseDir: c.dir,
      study: {
        studyInstanceUid: header.studyInstanceUid,
        seriesInstanceUid: header.seriesInstanceUid,
        frameOfReferenceUid: header.frameOfReferenceUid ?? '',
        patientId: header.patientId,
        patientName: header.patientName,
        studyDate: header.studyDate,
        studyTime: header.studyTime,
        accessionNumber: header.accessionNumber,
      },
      seed: `rtpipeline-batch-v1:${header.studyInstanceUid}:${header.seriesInstanceUid}:${ctFiles.length}`,
    },
  };
}

/** `--stage` values, checked: an unknown name is a usage error. */
export function parseStages(values: readonly string[] | undefined): StageName[] {
  if (!values || values.length === 0) return [...STAGES];
  const names = values.flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!(STAGES as readonly string[]).includes(n)) throw new RangeError(`unknown stage "${n}" (stages: ${STAGES.join(', ')})`);
  }
  return STAGES.filter((s) => names.includes(s));
}
