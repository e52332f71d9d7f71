/**
 * The slurm executor of the batch command. After organize (local), every course is one task of an
 * sbatch job array; the task runs `rtpipeline run --only-course DIR` with the course stages on a
 * compute node, against a copy of this run's effective config, with this process's environment
 * (`--export=ALL`: timeouts, worker caps, CUDA_VISIBLE_DEVICES). Progress is followed with squeue
 * (and scontrol for the final state of a task). A task that ended without recording a result in its
 * case_metadata.json (node failure, time limit, out of memory, killed) is resubmitted up to
 * max_retries times; a course whose stages failed is a failed course, as with the local executor, and
 * is not retried. SIGTERM/SIGINT (the AbortSignal) cancels every job of the run with scancel.
 *
 * Assumptions (documented in the README): the output and logs folders are on a filesystem mounted at
 * the same path on the compute nodes (checked with a probe job, see shared-fs-probe.ts), and, without
 * a container, this installation (node and dist/) is at the same path there too.
 */
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { StageName } from '../pipeline/stage-names.js';
import type { CourseOutcome } from '../batch/run.js';
import { caseMetadataPath, updateCaseMetadata } from '../pipeline/course.js';
import { writeFileAtomic } from '../store/durable-fs.js';
import type { CourseExecutor, CourseRef, CourseRunner } from './course-executor.js';
import { arraySpec, courseArrayScript, launcherFor, sbatchArgs, type SlurmJobId, type SlurmSettings } from './slurm-job.js';
import { jobState, queuedTasks, sbatch, scancel } from './slurm-client.js';
import { checkSharedFilesystem, sleep } from './shared-fs-probe.js';

/** This installation's CLI (dist/src/cli.js), run on the compute nodes when there is no container. */
const CLI_JS = fileURLToPath(new URL('../cli.js', import.meta.url));

export interface SlurmExecutorOptions {
  config: Config;
  forceRedo: boolean;
  log: Logger;
  signal?: AbortSignal;
}

export function slurmSettings(config: Config): SlurmSettings {
  const e = config.executor;
  return { partition: e.partition, account: e.account, gpusPerTask: e.gpus_per_task, time: e.time, container: e.container };
}

/** The daemon's study jobs on SLURM: one course, one array task, with `config` (output_dir and
 *  logs_dir set to the node's folders) as the task's effective config. */
export function slurmCourseRunner(config: Config): CourseRunner {
  return async (course, stages, o) => {
    const [outcome] = await new SlurmExecutor({ config, forceRedo: o.forceRedo, log: o.log, signal: o.signal }).runCourses([course], stages);
    return outcome;
  };
}

/** What a course task left in its case_metadata.json (`pipeline`, written by runBatch). */
interface PipelineRecord {
  ok: boolean;
  error?: string;
  stages?: CourseOutcome['stages'];
}

async function pipelineRecord(courseDir: string): Promise<PipelineRecord | undefined> {
  try {
    const meta = JSON.parse(await fsp.readFile(caseMetadataPath(courseDir), 'utf8')) as { pipeline?: PipelineRecord };
    return meta.pipeline && typeof meta.pipeline.ok === 'boolean' ? meta.pipeline : undefined;
  } catch {
    return undefined;
  }
}

function cancelled(c: CourseRef): CourseOutcome {
  return { ...c, ok: false, error: 'cancelled (SIGTERM/SIGINT): its SLURM task was cancelled', stages: [] };
}

export class SlurmExecutor implements CourseExecutor {
  readonly kind = 'slurm' as const;
  private readonly settings: SlurmSettings;
  private readonly active = new Set<SlurmJobId>();

  constructor(private readonly o: SlurmExecutorOptions) {
    this.settings = slurmSettings(o.config);
  }

  async runCourses(courses: readonly CourseRef[], stages: readonly StageName[]): Promise<CourseOutcome[]> {
    const { config, log } = this.o;
    const outDir = path.resolve(config.output_dir);
    const logsDir = path.resolve(config.logs_dir);
    const pollMs = config.executor.poll_seconds * 1000;
    if (courses.length === 0) return [];
    // Only organize was asked for: nothing to send to the cluster.
    if (stages.length === 0) return courses.map((c) => ({ ...c, ok: true, stages: [] }));
    const runDir = path.join(outDir, '.rtpipeline', 'slurm', `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(3).toString('hex')}`);
    const taskLogs = path.join(logsDir, 'slurm');
    await fsp.mkdir(taskLogs, { recursive: true });
    const onAbort = () => void this.cancelAll();
    this.o.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      log.info({ runDir }, 'slurm: checking that the output folder is shared with the compute nodes (probe job)');
      try {
        await checkSharedFilesystem({ settings: this.settings, runDir, pollMs, signal: this.o.signal, onSubmitted: (id) => this.track(id as SlurmJobId), onGone: (id) => this.active.delete(id as SlurmJobId) });
      } catch (e) {
        if (this.o.signal?.aborted) return courses.map((c) => cancelled(c));
        throw e;
      }
      log.info('slurm: shared-filesystem probe passed');

      const coursesFile = path.join(runDir, 'courses.txt');
      const configFile = path.join(runDir, 'config.yaml');
      const scriptFile = path.join(runDir, 'course-array.sh');
      // The tasks run locally on their node: the same settings, but never the slurm executor again.
      await writeFileAtomic(configFile, stringify({ ...config, executor: { ...config.executor, kind: 'local' } }));
      await writeFileAtomic(coursesFile, courses.map((c) => c.dir).join('\n') + '\n');
      const script = courseArrayScript({
        launcher: launcherFor(this.settings, process.execPath, CLI_JS),
        outDir,
        logsDir,
        configFile,
        stages,
        coursesFile,
        forceRedo: this.o.forceRedo,
      });
      await writeFileAtomic(scriptFile, script);
      // A record left by an earlier run must not be taken for this run's result.
      for (const c of courses) await updateCaseMetadata(c.dir, { pipeline: undefined });

      const outcomes = new Map<number, CourseOutcome>();
      let pending = courses.map((_, i) => i);
      for (let attempt = 0; pending.length > 0 && !this.o.signal?.aborted; attempt++) {
        const args = [...sbatchArgs(this.settings, { jobName: 'rtpipeline-course', outputPattern: path.join(taskLogs, 'rtpipeline-%A_%a.out'), chdir: process.cwd() }), arraySpec(pending)];
        const job = await sbatch(args, script);
        this.track(job);
        log.info({ job, tasks: pending.length, attempt: attempt + 1, script: scriptFile }, `slurm: submitted array job ${job} (${pending.length} course task(s), attempt ${attempt + 1})`);
        await this.waitUntilGone([job], pollMs);
        this.active.delete(job);
        if (this.o.signal?.aborted) break;
        const retry: number[] = [];
        for (const i of pending) {
          const c = courses[i];
          const rec = await pipelineRecord(c.dir);
          if (rec) {
            outcomes.set(i, { ...c, ok: rec.ok, error: rec.error, stages: rec.stages ?? [] });
            continue;
          }
          const task = `${job}_${i}`;
          const st = await jobState(task);
          const why = `array task ${task} ended ${st.state ?? 'in an unknown state'}${st.exitCode ? ` (exit code ${st.exitCode})` : ''} without a result; see ${path.join(taskLogs, `rtpipeline-${job}_${i}.out`)}`;
          if (attempt < config.executor.max_retries) {
            log.warn({ course: c.dir, task, state: st.state }, `slurm: ${why}: resubmitting (retry ${attempt + 1} of ${config.executor.max_retries})`);
            retry.push(i);
          } else {
            log.error({ course: c.dir, task, state: st.state }, `slurm: ${why}; giving up after ${attempt + 1} attempt(s)`);
            outcomes.set(i, { ...c, ok: false, error: `${why} (after ${attempt + 1} attempt(s))`, stages: [] });
          }
        }
        pending = retry;
      }
      return courses.map((c, i) => outcomes.get(i) ?? cancelled(c));
    } finally {
      this.o.signal?.removeEventListener('abort', onAbort);
      if (this.active.size > 0 || this.cancelling) await this.cancelAll();
    }
  }

  private track(job: SlurmJobId): void {
    this.active.add(job);
  }

  private async waitUntilGone(jobs: SlurmJobId[], pollMs: number): Promise<void> {
    while ((await queuedTasks(jobs)).size > 0) {
      if (this.o.signal?.aborted) return;
      await sleep(pollMs, this.o.signal);
    }
  }

  /** scancel every job of this run, then wait (bounded) until squeue no longer lists them. */
  private cancelling?: Promise<void>;
  private cancelAll(): Promise<void> {
    this.cancelling ??= (async () => {
      const jobs = [...this.active];
      if (jobs.length === 0) return;
      this.o.log.warn({ jobs }, `slurm: cancelling job(s) ${jobs.join(', ')} (scancel)`);
      await scancel(jobs).catch((e) => this.o.log.error({ err: (e as Error).message }, 'slurm: scancel failed'));
      const deadline = Date.now() + 120_000;
      while ((await queuedTasks(jobs).catch(() => new Map())).size > 0 && Date.now() < deadline) await sleep(500);
      for (const j of jobs) this.active.delete(j);
    })();
    return this.cancelling;
  }
}
