/**
 * The worker-thread side of a pipeline stage (the bree job protocol, plus ours): a job file in
 * `jobs/` calls hostStage(fn) and nothing else. The stage's input comes as workerData.input; its
 * result or error goes back as one `result` message, then bree's `done`. A `cancel` message from
 * the main thread aborts the stage's signal, which kills any external tool it runs; the pids of
 * those tools are reported so that the main thread can kill them even if this thread dies.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';

export type StageLevel = 'debug' | 'info' | 'warn' | 'error';

/** What a stage gets besides its input: cancellation, logging through the node's logger, child pids. */
export interface StageContext {
  signal: AbortSignal;
  /** Lines go to the node's logger, with the job's bindings (job, study, patient). */
  log: Logger;
  /** Report an external process (its own process group) started by this stage. */
  onChild: (pid: number) => void;
  onChildExit: (pid: number) => void;
}

/** Messages from a stage worker to the main thread (besides bree's bare 'done'). */
export type StageMessage =
  | { type: 'result'; ok: true; result: unknown }
  | { type: 'result'; ok: false; error: string }
  | { type: 'log'; level: StageLevel; msg: string; fields?: Record<string, unknown> }
  | { type: 'child'; pid: number }
  | { type: 'child-exit'; pid: number };

export function hostStage<I, R>(fn: (input: I, ctx: StageContext) => Promise<R>): void {
  const port = parentPort;
  if (!port) throw new Error('a stage job file must run in a worker thread (started by the stage pool)');
  const post = (m: StageMessage) => port.postMessage(m);
  const abort = new AbortController();
  port.on('message', (m: unknown) => {
    if (m === 'cancel') abort.abort(new Error('cancelled'));
  });
  const ctx: StageContext = {
    signal: abort.signal,
    log: workerLogger(post),
    onChild: (pid) => post({ type: 'child', pid }),
    onChildExit: (pid) => post({ type: 'child-exit', pid }),
  };
  const input = (workerData as { input: I }).input;
  fn(input, ctx).then(
    (result) => post({ type: 'result', ok: true, result }),
    (e: unknown) => post({ type: 'result', ok: false, error: e instanceof Error ? e.message : String(e) }),
  ).finally(() => {
    port.postMessage('done');
  });
}

const LEVELS: Record<number, StageLevel> = { 10: 'debug', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'error' };

/** A pino logger whose lines travel to the main thread as messages, to be written there once. */
function workerLogger(post: (m: StageMessage) => void): Logger {
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        const { level, msg, time: _t, ...fields } = JSON.parse(line) as Record<string, unknown>;
        post({ type: 'log', level: LEVELS[level as number] ?? 'info', msg: String(msg ?? ''), fields });
      }
      cb();
    },
  });
  return pino({ level: 'debug', base: undefined }, stream);
}
