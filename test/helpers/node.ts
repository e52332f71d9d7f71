// Starts the real rtpipeline node (compiled CLI) as a child process on loopback ports.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, sleep, track, exited } from './ports.js';

export const CLI = fileURLToPath(new URL('../../dist/src/cli.js', import.meta.url));

export interface NodeHandle {
  proc: ChildProcess;
  dicomPort: number;
  httpPort: number;
  dataDir: string;
  aet: string;
  logs(): string;
  /** Parsed JSON log events. */
  events(): Record<string, unknown>[];
  api(pathname: string, init?: RequestInit): Promise<{ status: number; body: any }>;
  waitFor<T>(fn: () => Promise<T | undefined> | T | undefined, timeoutMs?: number, what?: string): Promise<T>;
  stop(): Promise<number | null>;
  kill9(): Promise<void>;
}

export interface StartNodeOptions {
  dataDir?: string;
  dicomPort?: number;
  httpPort?: number;
  aet?: string;
  /** YAML text for a config file. */
  configYaml?: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
}

export function tempDir(prefix = 'rtp-test-'): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

export async function startNode(o: StartNodeOptions = {}): Promise<NodeHandle> {
  const dataDir = o.dataDir ?? path.join(tempDir(), 'data');
  const dicomPort = o.dicomPort ?? (await freePort());
  const httpPort = o.httpPort ?? (await freePort());
  const aet = o.aet ?? 'RTPIPELINE';
  const args = [CLI, 'serve', '--bind', '127.0.0.1', '--aet', aet, '--dicom-port', String(dicomPort), '--http-port', String(httpPort), '--data-dir', dataDir];
  if (o.configYaml) {
    const file = path.join(tempDir(), 'config.yaml');
    writeFileSync(file, o.configYaml);
    args.push('--config', file);
  }
  args.push(...(o.args ?? []));
  const proc = track(spawn(process.execPath, args, { env: { ...process.env, RTPIPELINE_LOG_FORMAT: 'json', RTPIPELINE_LOG_LEVEL: 'debug', ...o.env }, stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const base = `http://127.0.0.1:${httpPort}`;
  const handle: NodeHandle = {
    proc,
    dicomPort,
    httpPort,
    dataDir,
    aet,
    logs: () => out,
    events: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    async api(pathname, init) {
      const r = await fetch(base + pathname, init);
      const text = await r.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        /* text */
      }
      return { status: r.status, body };
    },
    async waitFor(fn, timeoutMs = 20_000, what = 'condition') {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const v = await fn();
        if (v !== undefined && v !== false) return v as never;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; node log tail:\n${out.split('\n').slice(-15).join('\n')}`);
        await sleep(100);
      }
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      const done = exited(proc);
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await done;
      clearTimeout(t);
      return proc.exitCode;
    },
    async kill9() {
      const done = exited(proc);
      proc.kill('SIGKILL');
      await done;
    },
  };
  const up = async () => {
    if (proc.exitCode !== null) throw new Error(`node exited with ${proc.exitCode} during start:\n${out}`);
    try {
      // 503 is an answer too: a node refusing work (e.g. disk nearly full) is up.
      return [200, 503].includes((await handle.api('/health')).status) ? true : undefined;
    } catch {
      return undefined;
    }
  };
  await handle.waitFor(up, 15_000, 'node health').catch(async (e) => {
    await handle.kill9(); // never leave a half-started node behind
    throw e;
  });
  return handle;
}
