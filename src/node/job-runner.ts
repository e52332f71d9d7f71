import type { IndexDb, JobRow } from '../store/index-db.js';
import type { Logger } from '../log.js';

/** What a job kind does for one study; returns a JSON-able summary kept with the job. */
export type StageFn = (job: JobRow, log: Logger) => Promise<unknown>;

/**
 * Runs the persistent jobs of completed studies. A job is claimed in a transaction, so it runs once;
 * one left 'running' by a crash is queued again at start. A failing job records its error and the
 * runner goes on with the next.
 */
export class JobRunner {
  private readonly running = new Set<Promise<void>>();
  private stopped = false;
  private heartbeatMs: number;

  constructor(
    private readonly index: IndexDb,
    private readonly stages: Record<string, StageFn>,
    private readonly concurrency: number,
    private readonly log: Logger,
    opts: { heartbeatSeconds?: number } = {},
  ) {
    this.heartbeatMs = (opts.heartbeatSeconds ?? 60) * 1000;
  }

  start(): void {
    const n = this.index.requeueInterruptedJobs();
    if (n > 0) this.log.warn({ jobs: n }, 'jobs interrupted by a restart are queued again');
    this.kick();
  }

  kick(): void {
    while (!this.stopped && this.running.size < this.concurrency) {
      const job = this.index.claimNextJob(Date.now());
      if (!job) return;
      const p = this.run(job)
        .catch((e: Error) => this.log.error({ jobId: job.id, err: e.message }, 'job bookkeeping failed; the job resumes at the next start'))
        .finally(() => {
        this.running.delete(p);
        this.kick();
      });
      this.running.add(p);
    }
  }

  private async run(job: JobRow): Promise<void> {
    const study = this.index.getStudy(job.study_uid);
    const log = this.log.child({ jobId: job.id, studyUid: job.study_uid, patientId: study?.patient_id, kind: job.kind, generation: job.generation });
    const started = Date.now();
    const beat = setInterval(
      () => log.info({ elapsedS: Math.round((Date.now() - started) / 1000) }, `Still processing ${job.kind} for ${study?.patient_id ?? '?'}/${job.study_uid}`),
      this.heartbeatMs,
    );
    log.info({ attempt: job.attempts }, 'job started');
    try {
      const stage = this.stages[job.kind];
      if (!stage) throw new Error(`no stage named "${job.kind}" in this version`);
      const result = await stage(job, log);
      this.index.finishJob(job.id, 'done', Date.now(), null, result);
      log.info({ ms: Date.now() - started }, 'job done');
    } catch (e) {
      const message = (e as Error).message;
      this.index.finishJob(job.id, 'failed', Date.now(), message, undefined);
      log.error({ err: message, ms: Date.now() - started }, 'job failed');
    } finally {
      clearInterval(beat);
    }
  }

  get active(): number {
    return this.running.size;
  }

  /** Stops claiming jobs; a running one is left to the process exit and resumes at the next start. */
  stop(): void {
    this.stopped = true;
  }
}
