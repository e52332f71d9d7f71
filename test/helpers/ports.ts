// Loopback networking + child-process plumbing shared by the DCMTK and Orthanc test helpers.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const LOOPBACK = '127.0.0.1';

/** Ports this test process has handed out: the kernel may give a just-closed port again. */
const handedOut = new Set<number>();

/** A port that was free on 127.0.0.1 a moment ago (the usual bind-to-0 trick; tiny race is accepted),
 *  and never one this process handed out before (a node's DICOM and HTTP ports must differ). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await anyFreePort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

function anyFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, LOOPBACK, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once 127.0.0.1:port accepts a TCP connection; rejects after timeoutMs. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ port, host: LOOPBACK });
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => { s.destroy(); resolve(false); });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} not accepting connections after ${timeoutMs} ms`);
    await sleep(50);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Neither storescp 3.6.7 nor Orthanc 1.10.1 has a bind-address option: both listen on 0.0.0.0.
 * To keep test servers off every non-loopback interface we LD_PRELOAD a tiny shim that rewrites
 * bind(INADDR_ANY / in6addr_any) to the loopback address. It also sets PDEATHSIG so the server
 * is SIGKILLed if the vitest worker dies without running its teardown (no orphaned servers).
 */
const SHIM_C = String.raw`
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
__attribute__((constructor)) static void die_with_parent(void) { prctl(PR_SET_PDEATHSIG, SIGKILL); }
int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  static int (*real)(int, const struct sockaddr *, socklen_t);
  if (!real) real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
  if (addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    struct sockaddr_in a; memcpy(&a, addr, sizeof a);
    if (a.sin_addr.s_addr == htonl(INADDR_ANY)) a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return real(fd, (const struct sockaddr *)&a, sizeof a);
  }
  if (addr && addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
    struct sockaddr_in6 a; memcpy(&a, addr, sizeof a);
    if (IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr)) a.sin6_addr = in6addr_loopback;
    return real(fd, (const struct sockaddr *)&a, sizeof a);
  }
  return real(fd, addr, len);
}
`;

let shimPath: string | undefined;

/** Env for a server child: LD_PRELOAD of the loopback shim (compiled once per source version with gcc). */
export function loopbackEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (!shimPath) {
    const hash = createHash('sha256').update(SHIM_C).digest('hex').slice(0, 12);
    const so = join(tmpdir(), `rtpipeline-loopback-${hash}.so`);
    if (!existsSync(so)) {
      const src = join(tmpdir(), `rtpipeline-loopback-${hash}-${process.pid}.c`);
      const tmpSo = `${so}.${process.pid}.tmp`;
      writeFileSync(src, SHIM_C);
      const r = spawnSync('gcc', ['-shared', '-fPIC', '-O2', '-o', tmpSo, src, '-ldl'], { encoding: 'utf8' });
      if (r.status !== 0) {
        // Refuse rather than silently start servers on all interfaces.
        throw new Error(`cannot build loopback bind shim (gcc needed): ${r.error?.message ?? r.stderr}`);
      }
      rmSync(src);
      renameSync(tmpSo, so); // atomic, so concurrent workers never load a half-written file
    }
    shimPath = so;
  }
  const preload = [shimPath, base.LD_PRELOAD].filter(Boolean).join(':');
  return { ...base, LD_PRELOAD: preload };
}

/** Local addresses (e.g. "127.0.0.1") with a LISTEN socket on this port, from /proc/net/tcp{,6}. */
export function listeningAddresses(port: number): string[] {
  const out: string[] = [];
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(f)) continue;
    for (const line of readFileSync(f, 'utf8').trim().split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      const [hexAddr, hexPort] = local.split(':');
      if (state !== '0A' || parseInt(hexPort, 16) !== port) continue;
      out.push(hexAddr.length === 8 ? hexToIpv4(hexAddr) : hexAddr === '0'.repeat(32) ? '::' : hexAddr === '00000000000000000000000001000000' ? '::1' : hexAddr);
    }
  }
  return out;
}

function hexToIpv4(h: string): string {
  // /proc stores the address in host (little-endian) byte order.
  return [6, 4, 2, 0].map((i) => parseInt(h.slice(i, i + 2), 16)).join('.');
}

// --- child processes ---------------------------------------------------------------------

const live = new Set<ChildProcess>();
// Last-resort cleanup if the worker exits normally without teardown (PDEATHSIG covers crashes).
process.once('exit', () => { for (const c of live) c.kill('SIGKILL'); });

/** Track a child so it is killed when this process exits. */
export function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

/** SIGTERM, then SIGKILL if it has not exited after graceMs; resolves once it is gone. */
export async function killAndWait(child: ChildProcess, graceMs = 5_000): Promise<void> {
  const done = exited(child);
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await done;
  clearTimeout(t);
}

export interface RunResult { code: number; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** Run a command to completion; never rejects on non-zero exit (only if it cannot be spawned). */
export function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = track(spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.once('error', (e) => { clearTimeout(timer); reject(e); });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, signal, stdout, stderr });
    });
  });
}
