/**
 * Ingest benchmark: C-STORE throughput of the node against DCMTK's storescp, and the node's peak
 * RSS while receiving a long series.
 *
 * Timing: R rounds (BENCH_ROUNDS, default 5). Each round starts a fresh storescp and a fresh node
 * (each with an empty receiver folder), then times only `storescu +sd <200 CT slices>` against each,
 * alternating which receiver goes first. The ratio of the medians is reported against the target.
 *
 * Memory: one node receives BENCH_MEMORY_SLICES (default 2000) slices; its VmHWM (peak resident set)
 * is read from /proc/<node pid>/status after the transfer.
 *
 * Everything lives in one temp folder that is deleted at the end, also on failure, and every child
 * process is stopped (see `Children`).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';
import { median, positiveIntEnv } from './stats.js';
import { baseEnv, Children, isRunning, sleep, type Child } from './children.js';

const LOOPBACK = '127.0.0.1';
const NODE_AET = 'RTPIPELINE';
const REF_AET = 'REF';
const TIMING_SLICES = 200;
const RATIO_TARGET = 1.25;
const RSS_TARGET_MB = 150;
/** The node's CLI, relative to this file once compiled (dist/bench/ingest.js -> dist/src/cli.js). */
const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));

export interface IngestResult {
  rounds: number;
  timingSlices: number;
  memorySlices: number;
  storescpRoundsS: number[];
  nodeRoundsS: number[];
  storescpMedianS: number;
  nodeMedianS: number;
  ingestRatio: number;
  ingestRatioTarget: number;
  ingestRatioPass: boolean;
  memoryTransferS: number;
  /** VmRSS of the memory-run node right after it became healthy, for context. */
  idleRssMb: number;
  peakRssMb: number;
  peakRssTargetMb: number;
  peakRssPass: boolean;
  durabilityFloorS: number;
  durableRatio: number;
}

// ---------------------------------------------------------------------------------------------
// Child processes

// DCMTK reads TCP_NODELAY from the environment; without it small PDUs hit Nagle delays.
const DCMTK_ENV = () => baseEnv({ TCP_NODELAY: '1' });

// ---------------------------------------------------------------------------------------------
// Small helpers


/** A port that was free on 127.0.0.1 a moment ago (bind to 0; the tiny race is accepted). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, LOOPBACK, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once 127.0.0.1:port accepts a TCP connection. */
async function waitForPort(port: number, child: Child, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ port, host: LOOPBACK });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => {
        s.destroy();
        resolve(false);
      });
    });
    if (ok) return;
    if (!isRunning(child)) throw new Error(`${child.name} exited before listening:\n${child.output()}`);
    if (Date.now() > deadline) throw new Error(`${child.name}: port ${port} not accepting connections after ${timeoutMs} ms:\n${child.output()}`);
    await sleep(50);
  }
}

/** Polls GET http://127.0.0.1:port/health until it answers 200. */
async function waitForHealth(port: number, child: Child, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  for (;;) {
    try {
      const res = await fetch(`http://${LOOPBACK}:${port}/health`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    if (!isRunning(child)) throw new Error(`${child.name} exited before becoming healthy (code ${child.proc.exitCode}):\n${child.output()}`);
    if (Date.now() > deadline) throw new Error(`${child.name}: /health not 200 after ${timeoutMs} ms (${last}):\n${child.output()}`);
    await sleep(50);
  }
}

/** All regular files under dir whose name ends with suffix (recursive). */
async function countFiles(dir: string, suffix = ''): Promise<number> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith(suffix)).length;
}

/** Seconds to make the files durable the way the node does, one after the other, with no network. */
async function durabilityFloor(srcDir: string, destDir: string): Promise<number> {
  const { readdir: rd, readFile, open, rename } = await import('node:fs/promises');
  await mkdir(destDir, { recursive: true });
  const names = (await rd(srcDir)).sort();
  const datas = await Promise.all(names.map((n) => readFile(path.join(srcDir, n))));
  const t0 = performance.now();
  for (let i = 0; i < names.length; i++) {
    const tmp = path.join(destDir, `${names[i]}.part`);
    const h = await open(tmp, 'w');
    await h.write(datas[i]);
    await h.datasync();
    await h.close();
    await rename(tmp, path.join(destDir, names[i]));
    const d = await open(destDir, 'r');
    await d.sync();
    await d.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  rmSync(destDir, { recursive: true, force: true });
  return seconds;
}

// ---------------------------------------------------------------------------------------------
// Receivers and sender

interface Receiver {
  name: string;
  aet: string;
  port: number;
  /** Where the received files end up, and how to count them. */
  count(): Promise<number>;
  child: Child;
}

/** DCMTK storescp (single process) writing into outDir. It listens on all interfaces (3.6.7 has no
 *  bind option); we only ever connect to 127.0.0.1. */
async function startStorescp(children: Children, outDir: string): Promise<Receiver> {
  await mkdir(outDir, { recursive: true }); // storescp refuses a missing -od folder
  const port = await freePort();
  const child = children.spawn('storescp', 'storescp', ['-aet', REF_AET, '-od', outDir, String(port)], DCMTK_ENV());
  await waitForPort(port, child);
  return { name: 'storescp', aet: REF_AET, port, child, count: () => countFiles(outDir) };
}

/** The node, spawned as `node dist/src/cli.js serve ...` directly (no shell), so child.pid is the node. */
async function startNode(children: Children, dataDir: string): Promise<Receiver> {
  const port = await freePort();
  let httpPort = await freePort();
  while (httpPort === port) httpPort = await freePort();
  const args = [CLI, 'serve', '--bind', LOOPBACK, '--dicom-port', String(port), '--http-port', String(httpPort), '--data-dir', dataDir, '--aet', NODE_AET];
  const child = children.spawn('node', process.execPath, args, baseEnv({ RTPIPELINE_LOG_FORMAT: 'json', RTPIPELINE_LOG_LEVEL: 'warn' }));
  await waitForHealth(httpPort, child);
  return { name: 'node', aet: NODE_AET, port, child, count: () => countFiles(path.join(dataDir, 'store'), '.dcm') };
}

/**
 * Sends every file of srcDir with storescu and returns the wall time of the storescu process alone.
 * Fails loudly on a non-zero exit or if the receiver does not hold exactly `expected` files.
 */
async function timedStorescu(children: Children, to: Receiver, srcDir: string, expected: number): Promise<number> {
  const args = ['-aec', to.aet, '+sd', LOOPBACK, String(to.port), srcDir];
  const t0 = process.hrtime.bigint();
  const scu = children.spawn('storescu', 'storescu', args, DCMTK_ENV());
  const timeout = setTimeout(() => scu.proc.kill('SIGKILL'), 10 * 60_000);
  const { code } = await scu.exited;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  clearTimeout(timeout);
  if (code !== 0) throw new Error(`storescu -> ${to.name} exited with ${code ?? scu.proc.signalCode}:\n${scu.output()}\n--- ${to.name} output:\n${to.child.output()}`);
  const got = await to.count();
  if (got !== expected) throw new Error(`${to.name} holds ${got} files after storescu, expected ${expected}:\n--- storescu:\n${scu.output()}\n--- ${to.name}:\n${to.child.output()}`);
  if (!isRunning(to.child)) throw new Error(`${to.name} exited during the transfer:\n${to.child.output()}`);
  return seconds;
}

/** A memory figure (VmHWM = peak resident set, VmRSS = current) of the live node, in MiB. Checks
 *  that the pid really is the node's CLI (spawned without a shell, so it should be). */
function nodeMemoryMb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  if (cmdline[0] !== process.execPath || cmdline[1] !== CLI) throw new Error(`pid ${pid} is not the node (cmdline: ${cmdline.join(' ')})`);
  const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) / 1024;
}

// ---------------------------------------------------------------------------------------------
// The benchmark

let activeCleanup: (() => Promise<void>) | undefined;

/** Stops every child and deletes the temp folder of a run in progress (for signal handlers). */
export async function abortIngestBench(): Promise<void> {
  await activeCleanup?.();
}

export async function ingestBench(): Promise<IngestResult> {
  const rounds = positiveIntEnv('BENCH_ROUNDS', 5);
  const memorySlices = positiveIntEnv('BENCH_MEMORY_SLICES', 2000);
  const work = mkdtempSync(path.join(tmpdir(), `rtpipeline-bench-${randomBytes(4).toString('hex')}-`));
  const children = new Children();
  // One shared promise, so that a signal's abort and the normal `finally` both wait for the end.
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= children.stopAll().finally(() => rmSync(work, { recursive: true, force: true })));
  activeCleanup = cleanup;

  try {
    console.log(`ingest bench: temp folder ${work}`);

    // 1. Synthetic CT studies, written once: 200 slices for timing, memorySlices for the RSS run.
    const phantom = (slices: number) => ({ rows: 512, columns: 512, slices, pixelSpacingMm: [0.9, 0.9] as [number, number], sliceThicknessMm: 2.5 });
    const t = Date.now();
    const timingDir = path.join(work, 'src-timing');
    await writeCtSeries(timingDir, { patientId: 'BENCH-T', patientName: 'BENCH^TIMING', transferSyntax: 'explicit', phantom: phantom(TIMING_SLICES) });
    const memoryDir = path.join(work, 'src-memory');
    await writeCtSeries(memoryDir, { patientId: 'BENCH-M', patientName: 'BENCH^MEMORY', transferSyntax: 'explicit', phantom: phantom(memorySlices) });
    console.log(`generated ${TIMING_SLICES} + ${memorySlices} CT slices (512x512, explicit VR LE) in ${((Date.now() - t) / 1000).toFixed(1)} s`);

    // 2. Timing: fresh receivers each round; alternate which side goes first to even out cache effects.
    const storescpS: number[] = [];
    const nodeS: number[] = [];
    const sides: Record<'storescp' | 'node', { start: (dir: string) => Promise<Receiver>; times: number[] }> = {
      storescp: { start: (dir) => startStorescp(children, dir), times: storescpS },
      node: { start: (dir) => startNode(children, dir), times: nodeS },
    };
    console.log(`\nround  first     storescp_s  node_s   node/storescp`);
    for (let r = 1; r <= rounds; r++) {
      const order = r % 2 === 1 ? (['storescp', 'node'] as const) : (['node', 'storescp'] as const);
      for (const side of order) {
        const recvDir = path.join(work, `recv-${side}-${r}`);
        const recv = await sides[side].start(recvDir);
        sides[side].times.push(await timedStorescu(children, recv, timingDir, TIMING_SLICES));
        if (!(await children.stop(recv.child))) console.warn(`warning: ${side} did not exit within 15 s of SIGTERM; killed`);
        rmSync(recvDir, { recursive: true, force: true }); // keep disk use flat across rounds
      }
      const [a, b] = [storescpS[r - 1], nodeS[r - 1]];
      console.log(`${String(r).padStart(5)}  ${order[0].padEnd(8)}  ${a.toFixed(3).padStart(10)}  ${b.toFixed(3).padStart(6)}   ${(b / a).toFixed(2).padStart(13)}`);
    }
    const storescpMedianS = median(storescpS);
    const nodeMedianS = median(nodeS);
    const ingestRatio = Math.round((nodeMedianS / storescpMedianS) * 100) / 100; // judged as printed
    console.log(`median ${' '.repeat(8)}  ${storescpMedianS.toFixed(3).padStart(10)}  ${nodeMedianS.toFixed(3).padStart(6)}`);
    const ratioPass = ingestRatio <= RATIO_TARGET;
    console.log(`ingest ratio (node/storescp, median of ${rounds}): ${ingestRatio.toFixed(2)} (target <= ${RATIO_TARGET}) ${ratioPass ? 'PASS' : 'MISS'}`);
    // What durability alone costs on this disk: storescp does no fsync, the node must.
    const durabilityFloorS = await durabilityFloor(timingDir, path.join(work, 'floor'));
    const durableRatio = Math.round((nodeMedianS / (storescpMedianS + durabilityFloorS)) * 100) / 100;
    console.log(`durability floor (write + fdatasync + rename + dir fsync of the same ${TIMING_SLICES} files, no network): ${durabilityFloorS.toFixed(3)} s`);
    console.log(`node / (storescp + durability floor): ${durableRatio.toFixed(2)}`);

    // 3. Memory: one node receives the long series; VmHWM is read while it is still running.
    const memRecvDir = path.join(work, 'recv-node-memory');
    const memNode = await startNode(children, memRecvDir);
    const idleMb = nodeMemoryMb(memNode.child.proc.pid!, 'VmRSS'); // context: the node at rest
    const memoryTransferS = await timedStorescu(children, memNode, memoryDir, memorySlices);
    const peakMb = nodeMemoryMb(memNode.child.proc.pid!, 'VmHWM');
    if (!(await children.stop(memNode.child))) console.warn('warning: node did not exit within 15 s of SIGTERM; killed');
    const rssPass = peakMb < RSS_TARGET_MB;
    console.log(`\n${memorySlices} slices to the node in ${memoryTransferS.toFixed(1)} s (${(memorySlices / memoryTransferS).toFixed(0)} slices/s)`);
    console.log(`node RSS when idle after start: ${Math.round(idleMb)} MB`);
    console.log(`node peak RSS receiving ${memorySlices} slices: ${Math.round(peakMb)} MB (target < ${RSS_TARGET_MB} MB) ${rssPass ? 'PASS' : 'MISS'}`);

    const round3 = (x: number) => Math.round(x * 1000) / 1000;
    return {
      rounds,
      timingSlices: TIMING_SLICES,
      memorySlices,
      storescpRoundsS: storescpS.map(round3),
      nodeRoundsS: nodeS.map(round3),
      storescpMedianS: round3(storescpMedianS),
      nodeMedianS: round3(nodeMedianS),
      ingestRatio,
      ingestRatioTarget: RATIO_TARGET,
      ingestRatioPass: ratioPass,
      memoryTransferS: round3(memoryTransferS),
      idleRssMb: Math.round(idleMb * 10) / 10,
      peakRssMb: Math.round(peakMb * 10) / 10,
      peakRssTargetMb: RSS_TARGET_MB,
      peakRssPass: rssPass,
      durabilityFloorS,
      durableRatio,
    };
  } finally {
    await cleanup();
    activeCleanup = undefined;
  }
}
