/** Child processes of the benches: spawned, drained, timed, and always stopped. */
import { spawn, type ChildProcess } from 'node:child_process';

/** A spawned child with its output kept (last 64 kB) for error messages and its wall time. */
export interface Child {
  name: string;
  proc: ChildProcess;
  /** Resolves on exit with the exit code and the wall time since spawn, in seconds. */
  exited: Promise<{ code: number | null; seconds: number }>;
  stdout(): string;
  output(): string;
}

/**
 * Every child a bench starts. Each one leads a process group of its own (detached), so that stopping
 * it also stops what it started (/usr/bin/time's child), and a terminal's Ctrl-C reaches only the bench.
 */
export class Children {
  private readonly live = new Set<Child>();

  spawn(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv): Child {
    const t0 = process.hrtime.bigint();
    const proc = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    let stdout = '';
    const append = (d: Buffer) => {
      out = (out + d.toString()).slice(-64_000);
    };
    // Always drain the pipes: a full pipe would stall a child that logs.
    proc.stdout!.on('data', (d: Buffer) => {
      stdout = (stdout + d.toString()).slice(-1_000_000);
      append(d);
    });
    proc.stderr!.on('data', append);
    const exited = new Promise<{ code: number | null; seconds: number }>((resolve) => {
      let seconds = 0;
      proc.once('error', (e) => {
        append(Buffer.from(`\n[${name}: ${e.message}]`));
        if (proc.pid === undefined) resolve({ code: null, seconds }); // never spawned: no 'close' follows
      });
      // 'exit' is the process's end (timed); 'close' follows once its pipes are drained.
      proc.once('exit', () => {
        seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      });
      proc.once('close', (code) => resolve({ code, seconds }));
    });
    const child: Child = { name, proc, exited, stdout: () => stdout, output: () => out };
    this.live.add(child);
    void exited.then(() => this.live.delete(child));
    return child;
  }

  /** SIGTERM to the child's process group, wait up to graceMs, then SIGKILL. False if SIGKILL was needed. */
  async stop(child: Child, graceMs = 15_000): Promise<boolean> {
    if (!isRunning(child)) return true;
    signalGroup(child, 'SIGTERM');
    const timer = new Promise<'timeout'>((r) => setTimeout(r, graceMs, 'timeout').unref());
    if ((await Promise.race([child.exited, timer])) !== 'timeout') return true;
    signalGroup(child, 'SIGKILL');
    await child.exited;
    return false;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.live].map((c) => this.stop(c)));
  }
}

export const isRunning = (c: Child) => c.proc.pid !== undefined && c.proc.exitCode === null && c.proc.signalCode === null;

function signalGroup(c: Child, signal: NodeJS.Signals): void {
  try {
    process.kill(-c.proc.pid!, signal); // the group this child leads (spawned detached)
  } catch {
    c.proc.kill(signal); // group already gone: at least the child itself
  }
}

/** The environment of every child: the bench's, minus anything that would configure the node. */
export function baseEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RTPIPELINE_')) env[k] = v;
  return { ...env, ...extra };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
