import type { IndexDb, JobRow } from '../store/index-db.js';
import type { Logger } from '../log.js';
import type { Timeline } from '../store/timeline.js';

/** What a job kind does for one study; returns a JSON-able summary kept with the job. The signal
 *  aborts on cancel (reason "cancelled") or on a graceful stop (reason "shutdown"). */
export type StageFn = (job: JobRow, log: Logger, signal: AbortSignal) => Promise<unknown>;

/**
 * Runs the persistent jobs of completed studies. A job is claimed in a transaction, so it runs once;
 * one left 'running' by a crash is queued again at start. A failing job records its error and the
 * runner goes on with the next. A graceful stop aborts the running jobs and puts them back in the
 * queue; a cancelled job is recorded as cancelled.
 */
export class JobRunner {
  private readonly running = new Map<number, { done: Promise<void>; abort: AbortController }>();
  private stopped = false;

  constructor(
    private readonly index: IndexDb,
    private readonly stages: Record<string, StageFn>,
    private readonly concurrency: number,
    private readonly log: Logger,
    /** The per-study timeline: 'job' started / done / failed / cancelled / requeued. */
    private readonly timeline?: Timeline,
  ) {}

  private note(job: JobRow, state: string, detail: Record<string, unknown> = {}): void {
    try {
      this.timeline?.record(job.study_uid, 'job', { jobId: job.id, state, generation: job.generation, ...detail });
    } catch (e) {
      this.log.warn({ jobId: job.id, err: (e as Error).message }, 'timeline entry not written');
    }
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
      const abort = new AbortController();
      const done = this.run(job, abort.signal)
        .catch((e: Error) => this.log.error({ jobId: job.id, err: e.message }, 'job bookkeeping failed; the job resumes at the next start'))
        .finally(() => {
          this.running.delete(job.id);
          this.kick();
        });
      this.running.set(job.id, { done, abort });
    }
  }

  private async run(job: JobRow, signal: AbortSignal): Promise<void> {
    const study = this.index.getStudy(job.study_uid);
    const log = this.log.child({ jobId: job.id, studyUid: job.study_uid, patientId: study?.patient_id, kind: job.kind, generation: job.generation });
    const started = Date.now();
    log.info({ attempt: job.attempts }, 'job started');
    this.note(job, 'started', { attempt: job.attempts });
    try {
      const stage = this.stages[job.kind];
      if (!stage) throw new Error(`no stage named "${job.kind}" in this version`);
      const result = await stage(job, log, signal);
      this.index.finishJob(job.id, 'done', Date.now(), null, result);
      log.info({ ms: Date.now() - started }, 'job done');
      this.note(job, 'done', { ms: Date.now() - started });
    } catch (e) {
      const message = (e as Error).message;
      if (signal.aborted && signal.reason === 'shutdown') {
        this.index.requeueJob(job.id);
        log.warn({ err: message }, 'job interrupted by the stop: queued again, it resumes at the next start');
        this.note(job, 'requeued', { reason: 'shutdown' });
      } else if (signal.aborted) {
        this.index.finishJob(job.id, 'cancelled', Date.now(), 'cancelled by request', undefined);
        log.warn({ ms: Date.now() - started }, 'job cancelled');
        this.note(job, 'cancelled', { reason: 'cancelled by request' });
      } else {
        this.index.finishJob(job.id, 'failed', Date.now(), message, undefined);
        log.error({ err: message, ms: Date.now() - started }, 'job failed');
        this.note(job, 'failed', { error: message });
      }
    }
  }

  get active(): number {
    return this.running.size;
  }

  /** Cancels a queued job, or aborts a running one (its stage worker and tools are stopped). */
  cancel(id: number): boolean {
    const r = this.running.get(id);
    if (r) {
      r.abort.abort('cancelled');
      return true;
    }
    const cancelled = this.index.cancelJob(id, Date.now());
    const job = cancelled ? this.index.getJob(id) : undefined;
    if (job) this.note(job, 'cancelled', { reason: 'cancelled by request' });
    return cancelled;
  }

  /** Stops claiming jobs and aborts the running ones; they go back to the queue. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const r of this.running.values()) r.abort.abort('shutdown');
    await Promise.all([...this.running.values()].map((r) => r.done));
  }
}
