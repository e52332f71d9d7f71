/**
 * Runs pipeline stages as bree worker-thread jobs (job files `jobs/<stage>.js`), at most
 * `maxWorkers` at once and at most `segWorkers` segmentation stages (the memory-hungry ones) among
 * them. Each run is a one-off bree job: added, run, removed. Cancelling a stage (shutdown, a
 * cancelled job) asks the worker to stop, which kills its external tools; after the grace period
 * the worker is terminated and any tool it reported is killed here, so nothing outlives the stage.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Bree from 'bree';
import type { Logger } from '../log.js';
import type { StageMessage } from './job-host.js';
import type { StageName } from './stage-names.js';

export interface StagePoolOptions {
  maxWorkers: number;
  segWorkers: number;
  log: Logger;
  /** Folder of the compiled job files; default: the package's `dist/jobs`. */
  jobsDir?: string;
  /** How long a cancelled stage gets to stop by itself before its worker is terminated. */
  graceMs?: number;
  /** Told of every external tool a stage starts and of its end (see ChildRegistry). */
  children?: { add(pid: number): void; remove(pid: number): void };
}

export interface StageRunOptions {
  log: Logger;
  signal?: AbortSignal;
}

interface Running {
  stage: StageName;
  log: Logger;
  children: Set<number>;
  settle: (r: { ok: true; result: unknown } | { ok: false; error: string }) => void;
  cancel: () => void;
}

const DEFAULT_JOBS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../jobs');

export class StageCancelledError extends Error {}

export class StagePool {
  private readonly bree: Bree;
  private readonly running = new Map<string, Running>();
  private readonly waiting: { stage: StageName; start: () => void; refuse: (e: Error) => void }[] = [];
  private seq = 0;
  private stopped = false;
  private readonly jobsDir: string;
  private readonly graceMs: number;

  constructor(private readonly opts: StagePoolOptions) {
    this.jobsDir = opts.jobsDir ?? DEFAULT_JOBS_DIR;
    this.graceMs = opts.graceMs ?? 30_000;
    const log = opts.log;
    this.bree = new Bree({
      root: false,
      doRootCheck: false,
      jobs: [],
      // bree logs (message, meta); pino wants (meta, message).
      logger: {
        info: () => undefined,
        warn: (m: unknown) => log.warn(String(m)),
        error: (m: unknown) => log.error(String(m)),
      } as unknown as Bree.BreeLogger,
      workerMessageHandler: ({ name, message }: { name: string; message: unknown }) => this.onMessage(name, message),
      errorHandler: (err: unknown, meta: { name: string }) => this.onWorkerError(meta.name, err instanceof Error ? err : new Error(String(err))),
    });
  }

  get active(): number {
    return this.running.size;
  }

  /** Runs one stage in a worker thread; resolves with the stage's result, rejects with its error. */
  run<R>(stage: StageName, input: unknown, runOpts: StageRunOptions): Promise<R> {
    if (this.stopped) return Promise.reject(new StageCancelledError(`${stage} not started: the pipeline is stopping`));
    if (runOpts.signal?.aborted) return Promise.reject(new StageCancelledError(`${stage} cancelled`));
    return new Promise<R>((resolve, reject) => {
      // A stage cancelled while it waits for a worker leaves the queue: it must not start later.
      const onAbort = () => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) {
          this.waiting.splice(i, 1);
          reject(new StageCancelledError(`${stage} cancelled before it started`));
        }
      };
      const start = () => {
        runOpts.signal?.removeEventListener('abort', onAbort);
        this.start(stage, input, runOpts).then((r) => resolve(r as R), reject);
      };
      const entry = { stage, start, refuse: reject };
      runOpts.signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(entry);
      this.pump();
    });
  }

  private canStart(stage: StageName): boolean {
    if (this.running.size >= this.opts.maxWorkers) return false;
    if (stage !== 'segmentation') return true;
    let seg = 0;
    for (const r of this.running.values()) if (r.stage === 'segmentation') seg++;
    return seg < this.opts.segWorkers;
  }

  private pump(): void {
    for (let i = 0; i < this.waiting.length; ) {
      const w = this.waiting[i];
      if (this.canStart(w.stage)) {
        this.waiting.splice(i, 1);
        w.start();
      } else i++;
    }
  }

  private async start(stage: StageName, input: unknown, runOpts: StageRunOptions): Promise<unknown> {
    const name = `${stage}-${++this.seq}`;
    const log = runOpts.log;
    let finished = false;
    let cancelled = false;
    const result = new Promise<unknown>((resolve, reject) => {
      const entry: Running = {
        stage,
        log,
        children: new Set(),
        settle: (r) => {
          if (finished) return;
          finished = true;
          if (r.ok) resolve(r.result);
          else reject(cancelled ? new StageCancelledError(r.error) : new Error(r.error));
        },
        cancel: () => undefined,
      };
      entry.cancel = () => {
        if (cancelled || finished) return;
        cancelled = true;
        log.warn({ stage }, `cancelling ${stage}`);
        this.bree.workers.get(name)?.postMessage('cancel');
        // A stage that does not stop in time is terminated, and its tools with it.
        const t = setTimeout(() => {
          if (finished) return;
          log.warn({ stage, graceMs: this.graceMs }, `${stage} did not stop within the grace period: terminating it`);
          void this.bree.workers.get(name)?.terminate();
          this.killChildren(entry, 'SIGKILL');
        }, this.graceMs);
        t.unref();
      };
      this.running.set(name, entry);
      runOpts.signal?.addEventListener('abort', () => entry.cancel(), { once: true });
    });
    try {
      await this.bree.add({ name, path: path.join(this.jobsDir, `${stage}.js`), worker: { workerData: { input } } });
      await this.bree.run(name);
    } catch (e) {
      this.finish(name, { ok: false, error: `${stage} could not start: ${(e as Error).message}` });
    }
    // The worker has gone ('worker deleted'): settle a stage that died without a result.
    const onDeleted = (deleted: string) => {
      if (deleted !== name) return;
      this.bree.off('worker deleted', onDeleted);
      this.finish(name, { ok: false, error: `${stage} worker stopped without a result` });
    };
    this.bree.on('worker deleted', onDeleted);
    try {
      return await result;
    } finally {
      this.bree.off('worker deleted', onDeleted);
    }
  }

  private finish(name: string, r: { ok: true; result: unknown } | { ok: false; error: string }): void {
    const entry = this.running.get(name);
    if (!entry) return;
    this.running.delete(name);
    // Tools a stage started and did not see end are killed with it.
    this.killChildren(entry, 'SIGKILL');
    entry.settle(r);
    void this.bree.remove(name).catch(() => undefined);
    this.pump();
  }

  private onMessage(name: string, message: unknown): void {
    const entry = this.running.get(name);
    if (!entry || message === 'done' || typeof message !== 'object' || message === null) return;
    const m = message as StageMessage;
    switch (m.type) {
      case 'result':
        this.finish(name, m.ok ? { ok: true, result: m.result } : { ok: false, error: m.error });
        break;
      case 'log':
        entry.log[m.level]({ stage: entry.stage, ...m.fields }, m.msg);
        break;
      case 'child':
        entry.children.add(m.pid);
        this.opts.children?.add(m.pid);
        break;
      case 'child-exit':
        entry.children.delete(m.pid);
        this.opts.children?.remove(m.pid);
        break;
    }
  }

  private onWorkerError(name: string, err: Error): void {
    const entry = this.running.get(name);
    if (entry) this.finish(name, { ok: false, error: `${entry.stage} worker failed: ${err.message}` });
  }

  private killChildren(entry: Running, signal: NodeJS.Signals): void {
    for (const pid of entry.children) {
      for (const target of [-pid, pid]) {
        try {
          process.kill(target, signal);
        } catch {
          // already gone
        }
      }
      this.opts.children?.remove(pid);
    }
    entry.children.clear();
  }

  /** Cancels every running stage and refuses new ones; resolves when all workers are gone. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const w of this.waiting.splice(0)) w.refuse(new StageCancelledError(`${w.stage} not started: the pipeline is stopping`));
    for (const entry of this.running.values()) entry.cancel();
    while (this.running.size > 0) await new Promise((r) => setTimeout(r, 50));
  }
}
