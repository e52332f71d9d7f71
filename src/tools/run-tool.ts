/**
 * The one way we run an external tool (TotalSegmentator, dcm2niix, nnU-Net, ...): execa 9, with a
 * time limit, cancellation, a heartbeat and bounded output capture.
 *
 * Why the process-tree handling: these tools are Python programs that start worker processes
 * (multiprocessing, torch data loaders), and some start helpers in a new session (setsid), which a
 * process-group kill does not reach. The tool is spawned detached (it leads its own session and
 * process group) and, while it runs, /proc is scanned every few seconds to remember every process
 * that descends from it (ppid links) or shares a session/group with such a process. Stopping it
 * (time limit, AbortSignal, or leftovers after it exited) sends SIGTERM to the group and to every
 * remembered process that is still the same process (start time checked, so a recycled pid is never
 * signalled), then SIGKILL to whatever is left after the grace period, and waits until they are gone.
 *
 * A process that both changes session and loses its parent between two scans (a daemonising
 * double fork completing in under TRACK_INTERVAL_MS) can still escape; the tools we run do not do that.
 * Without /proc (not Linux) only the process group is signalled.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { execa } from 'execa';
import type { Logger } from '../log.js';
import { readProcEntry, type ProcEntry } from '../system/proc.js';

export interface RunToolOptions {
  /** Executable name (looked up on PATH) or path. */
  file: string;
  args: string[];
  cwd?: string;
  /** Added to (and overriding) process.env; `undefined` removes a variable. Everything else,
   *  CUDA_VISIBLE_DEVICES included, reaches the tool untouched. */
  env?: Record<string, string | undefined>;
  timeoutSeconds: number;
  /** Between SIGTERM and SIGKILL. Default 10. */
  graceSeconds?: number;
  /** Aborting it (daemon shutdown, job cancelled) stops the tool like a timeout. */
  signal?: AbortSignal;
  /** Default 60. */
  heartbeatSeconds?: number;
  /** Called every heartbeatSeconds while the tool runs; without it, `log` gets an info line instead. */
  onHeartbeat?: (elapsedMs: number) => void;
  /** Told the pid of the tool, then of every process found in its tree (also those that left its
   *  session), e.g. to record them so that a node restarted after kill -9 can kill them. */
  onSpawn?: (pid: number) => void;
  log?: Logger;
  /** What the tool does, for messages and logs, e.g. "TotalSegmentator (total) for P1/2024-01". */
  label: string;
  /** Named in the timeout message as the way to allow more time, e.g. "TOTALSEG_TIMEOUT". */
  timeoutVariable?: string;
  /** Appended to "not found: <file>", e.g. "install it or set segmentation.command". */
  notFoundHint?: string;
}

export interface ToolResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export type ToolFailure = 'timeout' | 'cancelled' | 'exit-code' | 'signal' | 'not-found' | 'spawn';

/** Why a tool run failed; `reason` lets callers decide (e.g. retry on CPU only after 'exit-code'). */
export class ToolError extends Error {
  constructor(
    message: string,
    readonly reason: ToolFailure,
    readonly details: { label: string; file: string; exitCode?: number; signal?: string; stdout: string; stderr: string; durationMs: number },
  ) {
    super(message);
    this.name = 'ToolError';
  }
}

/** Captured output kept per stream: the end is what explains a failure. */
export const OUTPUT_TAIL_BYTES = 1 << 20;
const STDERR_LINES_IN_MESSAGE = 20;
const TRACK_INTERVAL_MS = 2_000;
const EARLY_SCAN_MS = 300;
/** After SIGKILL, how long to wait for the kernel to finish the processes (D state) before giving up. */
const KILL_WAIT_MS = 5_000;
/** After the tool and its tree are gone, how long its output pipes may take to drain and close. */
const PIPE_CLOSE_WAIT_MS = 2_000;

type ExitStatus = { code: number | null; signal: NodeJS.Signals | null };
type StopReason = 'timeout' | 'cancelled';
type Fail = (message: string, reason: ToolFailure, extra?: { exitCode?: number; signal?: string }) => ToolError;

export async function runTool(opts: RunToolOptions): Promise<ToolResult> {
  if (!(opts.timeoutSeconds > 0)) throw new RangeError(`${opts.label}: timeoutSeconds must be positive, got ${opts.timeoutSeconds}`);
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const stdout = new TailBuffer(OUTPUT_TAIL_BYTES);
  const stderr = new TailBuffer(OUTPUT_TAIL_BYTES);
  const output = () => ({ stdout: stdout.text(), stderr: stderr.text() });
  const fail: Fail = (message, reason, extra = {}) =>
    new ToolError(`${opts.label}: ${message}`, reason, { label: opts.label, file: opts.file, ...extra, ...output(), durationMs: elapsed() });

  if (opts.signal?.aborted) throw fail('cancelled before it started', 'cancelled');
  if (opts.cwd !== undefined && !isDirectory(opts.cwd)) throw fail(`working directory ${opts.cwd} does not exist`, 'spawn');
  const subprocess = execa(opts.file, opts.args, {
    cwd: opts.cwd,
    env: toolEnv(opts.env),
    extendEnv: false,
    detached: true,
    stdin: 'ignore',
    buffer: false,
    reject: false,
    stripFinalNewline: false,
  });
  subprocess.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
  subprocess.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
  const pid = subprocess.pid;
  if (pid === undefined) {
    const result = await subprocess;
    throw spawnFailure(opts, (result as { code?: string }).code, result.message, fail);
  }
  opts.log?.debug({ tool: opts.label, pid, file: opts.file, args: opts.args }, 'tool started');
  opts.onSpawn?.(pid);

  const { status, stoppedFor } = await supervise(subprocess, pid, opts, elapsed);
  // Resolves once the output pipes are closed; whatever still holds them escaped the tree, so do not wait forever.
  const closed = await Promise.race([subprocess.then(() => true), sleep(PIPE_CLOSE_WAIT_MS).then(() => false)]);
  if (!closed) {
    opts.log?.warn({ tool: opts.label, pid }, `${opts.label}: its output pipes are still held open by a process outside its tree; not waiting for them`);
    subprocess.stdout?.destroy();
    subprocess.stderr?.destroy();
  }
  opts.log?.debug({ tool: opts.label, pid, exitCode: status.code, signal: status.signal, durationMs: elapsed() }, 'tool finished');
  const exitCode = outcome(status, stoppedFor, opts, elapsed(), output(), fail);
  return { exitCode, ...output(), durationMs: elapsed() };
}

/** Watches a started tool until it and its tree are gone: time limit, abort, heartbeat, leftovers. */
async function supervise(
  subprocess: NodeJS.EventEmitter,
  pid: number,
  opts: RunToolOptions,
  elapsed: () => number,
): Promise<{ status: ExitStatus; stoppedFor?: StopReason }> {
  const graceMs = (opts.graceSeconds ?? 10) * 1000;
  const tree = new ProcessTree(pid, opts.onSpawn);
  liveTrees.add(tree);
  let stopping: { reason: StopReason; done: Promise<void> } | undefined;
  let leftovers: Promise<void> | undefined;
  let exited = false;
  const stop = (reason: StopReason) => {
    // Once the tool itself has exited its result stands; leftovers are already being stopped.
    if (stopping || exited) return;
    opts.log?.warn({ tool: opts.label, pid, elapsedMs: elapsed() }, reason === 'timeout' ? `${opts.label} timed out after ${opts.timeoutSeconds} s; stopping it` : `${opts.label} cancelled; stopping it`);
    stopping = { reason, done: stopTree(tree, graceMs, opts.log, opts.label) };
  };
  const onAbort = () => stop('cancelled');
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const timers = [
    setTimeout(() => stop('timeout'), opts.timeoutSeconds * 1000),
    setInterval(() => {
      if (opts.onHeartbeat) opts.onHeartbeat(elapsed());
      else opts.log?.info({ tool: opts.label, elapsedMs: elapsed() }, `Still running ${opts.label} (${formatDuration(elapsed())})`);
    }, (opts.heartbeatSeconds ?? 60) * 1000),
    setInterval(() => tree.scan(), TRACK_INTERVAL_MS),
    // An early look too: tools often start their workers (and daemonise them) right away.
    setTimeout(() => tree.scan(), EARLY_SCAN_MS),
  ];
  const exit = new Promise<ExitStatus>((resolve) => {
    subprocess.once('exit', (code: number | null, signal: NodeJS.Signals | null) => {
      exited = true;
      tree.rootExited();
      // The tool is done, but processes it started may live on (and keep its output pipes open).
      if (!stopping && tree.scan().length > 0) {
        opts.log?.warn({ tool: opts.label, pid }, `${opts.label} exited but left processes running; stopping them`);
        leftovers = stopTree(tree, graceMs, opts.log, opts.label);
      }
      resolve({ code, signal });
    });
  });
  try {
    const status = await exit;
    await stopping?.done;
    await leftovers;
    return { status, stoppedFor: stopping?.reason };
  } finally {
    for (const t of timers) clearTimeout(t);
    opts.signal?.removeEventListener('abort', onAbort);
    liveTrees.delete(tree);
  }
}

/** The exit code of a successful run; otherwise the ToolError that says why it failed. */
function outcome(status: ExitStatus, stoppedFor: StopReason | undefined, opts: RunToolOptions, durationMs: number, out: { stdout: string; stderr: string }, fail: Fail): number {
  if (stoppedFor === 'timeout') {
    const more = opts.timeoutVariable ? `; set ${opts.timeoutVariable} (seconds) to allow more time` : '';
    throw fail(`timed out after ${opts.timeoutSeconds} s (${opts.file}), the process tree was stopped${more}`, 'timeout');
  }
  if (stoppedFor === 'cancelled') throw fail(`cancelled after ${formatDuration(durationMs)} (${opts.file}), the process tree was stopped`, 'cancelled');
  if (status.signal) {
    const why = status.signal === 'SIGKILL' ? ' (out of memory? check the kernel log)' : '';
    throw fail(`${opts.file} was killed by ${status.signal}${why}${lastLines(out)}`, 'signal', { signal: status.signal });
  }
  const exitCode = status.code ?? -1;
  if (exitCode !== 0) throw fail(`${opts.file} exited with code ${exitCode}${lastLines(out)}`, 'exit-code', { exitCode });
  return exitCode;
}

/** "1 h 02 min", "3 min 05 s", "12 s": for heartbeat lines a person reads. */
export function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)} min ${pad(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} min`;
}

function toolEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const [name, value] of Object.entries(extra)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function spawnFailure(opts: RunToolOptions, code: string | undefined, message: string | undefined, fail: Fail): ToolError {
  if (code === 'ENOENT') return fail(`not found: ${opts.file} (${opts.notFoundHint ?? 'install it or put it on PATH'})`, 'not-found');
  if (code === 'EACCES') return fail(`not executable: ${opts.file} (check its permissions, e.g. chmod +x)`, 'spawn');
  return fail(`could not start ${opts.file}: ${(message ?? "unknown error").split('\n')[0]}`, 'spawn');
}

function lastLines(out: { stdout: string; stderr: string }): string {
  const [name, text] = out.stderr.trim() ? ['stderr', out.stderr] : ['stdout', out.stdout];
  const lines = text.trimEnd().split('\n');
  if (lines.length === 1 && lines[0] === '') return ' (no output)';
  return `; last lines of ${name}:\n${lines.slice(-STDERR_LINES_IN_MESSAGE).join('\n')}`;
}

/** Keeps the last `maxBytes` of a stream; notes how much was dropped before it. */
class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  private dropped = 0;
  constructor(private readonly maxBytes: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > this.maxBytes) {
      const excess = this.size - this.maxBytes;
      const first = this.chunks[0];
      if (first.length <= excess) {
        this.chunks.shift();
        this.size -= first.length;
        this.dropped += first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.size -= excess;
        this.dropped += excess;
      }
    }
  }

  text(): string {
    const body = Buffer.concat(this.chunks).toString('utf8');
    return this.dropped > 0 ? `[... ${this.dropped} earlier bytes not kept ...]\n${body}` : body;
  }
}

// ---------------------------------------------------------------------------------------------------
// The tool's process tree, from /proc


const HAVE_PROC = existsSync('/proc/self/stat');


function readProcTable(): ProcEntry[] {
  const out: ProcEntry[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const e = readProcEntry(pid);
    if (e) out.push(e);
  }
  return out;
}

/** Zombies have finished: they hold no resources and cannot be signalled away. */
const isRunning = (e: ProcEntry) => e.state !== 'Z' && e.state !== 'X' && e.state !== 'x';

const SELF = HAVE_PROC ? readProcEntry(process.pid) : null;

/** Every process that belongs to one tool run, remembered across scans. */
class ProcessTree {
  /** pid -> start time of every process seen as part of the tree. */
  private readonly known = new Map<number, string>();
  /** Sessions and process groups of the tree (the root leads its own: it was spawned detached). */
  private readonly groups = new Set<number>();
  private rootAlive = true;

  /** `onNew` hears of each process that joins the tree (the root excepted), e.g. to record it. */
  constructor(
    readonly root: number,
    private readonly onNew?: (pid: number) => void,
  ) {
    this.groups.add(root);
    this.known.set(root, readProcEntry(root)?.start ?? '');
    this.scan();
  }

  rootExited(): void {
    this.rootAlive = false;
  }

  /** The tree's running processes now; also extends what is remembered. */
  scan(): ProcEntry[] {
    if (!HAVE_PROC) return [];
    const table = readProcTable();
    const members = new Map<number, ProcEntry>();
    const foreign = new Set([0, 1, SELF?.sid, SELF?.pgid, process.pid]);
    const belongs = (e: ProcEntry) =>
      (e.pid === this.root && this.rootAlive) ||
      this.known.get(e.pid) === e.start ||
      members.has(e.ppid) ||
      this.groups.has(e.sid) ||
      this.groups.has(e.pgid);
    // Repeat until stable: a process found through a new session can make its children members.
    for (let added = true; added; ) {
      added = false;
      for (const e of table) {
        if (members.has(e.pid) || !isRunning(e) || e.pid === process.pid || !belongs(e)) continue;
        members.set(e.pid, e);
        const isNew = this.known.get(e.pid) !== e.start;
        this.known.set(e.pid, e.start);
        if (isNew && e.pid !== this.root) this.onNew?.(e.pid);
        for (const g of [e.sid, e.pgid]) if (!foreign.has(g)) this.groups.add(g);
        added = true;
      }
    }
    return [...members.values()];
  }

  signal(members: ProcEntry[], signal: NodeJS.Signals): void {
    // The group first, in one call, so that a parent and its children get it together.
    if (!HAVE_PROC || members.some((m) => m.pgid === this.root)) trySignal(-this.root, signal);
    for (const m of members) trySignal(m.pid, signal);
  }
}

function trySignal(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // ESRCH: it is already gone.
  }
}

/** SIGTERM, the grace period (ended early when everything is gone), SIGKILL, then wait for the end. */
async function stopTree(tree: ProcessTree, graceMs: number, log: Logger | undefined, label: string): Promise<void> {
  let members = tree.scan();
  tree.signal(members, 'SIGTERM');
  if (!HAVE_PROC) {
    await sleep(graceMs);
    tree.signal([], 'SIGKILL');
    return;
  }
  members = await waitUntilGone(tree, graceMs);
  if (members.length === 0) return;
  log?.warn({ tool: label, pids: members.map((m) => m.pid) }, `${label}: ${members.length} process(es) ignored SIGTERM for ${graceMs / 1000} s; sending SIGKILL`);
  tree.signal(members, 'SIGKILL');
  members = await waitUntilGone(tree, KILL_WAIT_MS);
  if (members.length > 0) log?.error({ tool: label, pids: members.map((m) => m.pid) }, `${label}: processes still present after SIGKILL (uninterruptible I/O?)`);
}

async function waitUntilGone(tree: ProcessTree, ms: number): Promise<ProcEntry[]> {
  const deadline = performance.now() + ms;
  let pause = 10;
  for (;;) {
    const members = tree.scan();
    if (members.length === 0 || performance.now() >= deadline) return members;
    await sleep(Math.min(pause, Math.max(1, deadline - performance.now())));
    pause = Math.min(pause * 2, 200);
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Trees of tools still running, so that our own exit (even an uncaught error) takes them along. */
const liveTrees = new Set<ProcessTree>();
process.once('exit', () => {
  for (const tree of liveTrees) tree.signal(tree.scan(), 'SIGKILL');
});
