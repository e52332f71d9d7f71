/**
 * `rtpipeline doctor`: the container self-test. It answers the questions asked when a deployment
 * misbehaves: how many CPUs does the process really get (and which limit decided it), how many
 * workers will run, which time limits are in force, does SIGTERM reach us (PID 1 without an init
 * is the classic trap), can worker threads start, which external tools and GPUs are there, and can
 * the data directories be written. Required checks make it exit 1; the rest are warnings.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants as fsc, readFileSync, statSync, statfsSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Config } from './config/schema.js';
import { usableCpus, type UsableCpus } from './system/cpus.js';
import { detectGpu, type GpuInfo } from './system/gpu.js';
import { resolveWorkers, type WorkerCounts } from './system/workers.js';
import { runTool, ToolError } from './tools/run-tool.js';
import { toolTimeouts, type ToolTimeouts } from './tools/timeouts.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  name: string;
  status: CheckStatus;
  /** A failed required check makes the doctor (and the container health check) fail. */
  required: boolean;
  message: string;
}

export interface ToolReport {
  name: string;
  purpose: string;
  found: boolean;
  path?: string;
  /** The version number, when the tool printed one. */
  version?: string;
  /** The line it was read from. */
  versionLine?: string;
  detail: string;
}

export interface DirReport {
  key: 'node.data_dir' | 'output_dir' | 'logs_dir';
  path: string;
  exists: boolean;
  writable: boolean;
  /** Free space on the file system that holds it (or would hold it). */
  freeMb?: number;
  detail: string;
}

export interface ProcessReport {
  node: string;
  platform: string;
  arch: string;
  pid: number;
  isPid1: boolean;
  /** Name of PID 1 (/proc/1/comm), e.g. "tini", "docker-init", "node". */
  pid1Comm?: string;
  initPresent: boolean;
}

export interface ProbeReport {
  ok: boolean;
  ms: number;
  detail: string;
}

export interface DoctorReport {
  ok: boolean;
  process: ProcessReport;
  cpus: UsableCpus;
  workers: WorkerCounts | { error: string };
  timeouts: ToolTimeouts | { error: string };
  signals: ProbeReport;
  workerSpawn: ProbeReport;
  tools: ToolReport[];
  gpu: GpuInfo;
  dirs: DirReport[];
  checks: Check[];
}

export interface DoctorOptions {
  json: boolean;
  config: Config;
  env?: NodeJS.ProcessEnv;
}

const PROBE_TIMEOUT_MS = 10_000;

/** Process names of the small inits that reap zombies and forward signals in containers. */
const INITS = new Set(['tini', 'tini-static', 'docker-init', 'dumb-init', 'catatonit', 's6-svscan', 'runit', 'systemd', 'init', 'supervisord']);

// ---- probes ---------------------------------------------------------------------------------

/** Spawns a child that handles SIGTERM, sends it one, and expects exit code 0 in time. */
function probeSignals(timeoutMs = PROBE_TIMEOUT_MS): Promise<ProbeReport> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  const code = `process.on('SIGTERM', () => process.exit(0)); process.stdout.write('ready\\n'); setInterval(() => {}, 1000);`;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    let sent = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ ok: false, ms: ms(), detail: sent ? `the child did not exit within ${timeoutMs} ms of SIGTERM` : `the child did not start within ${timeoutMs} ms` });
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      if (!sent && d.toString().includes('ready')) {
        sent = true;
        child.kill('SIGTERM');
      }
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      resolve({ ok: false, ms: ms(), detail: `could not start a child process: ${e.message}` });
    });
    child.once('exit', (exitCode, signal) => {
      clearTimeout(timer);
      const ok = sent && exitCode === 0;
      const how = signal ? `was killed by ${signal} (the handler did not run)` : `exited with code ${exitCode}`;
      resolve({ ok, ms: ms(), detail: ok ? `a child's SIGTERM handler ran and it exited 0 in ${ms()} ms` : `the child ${how}${sent ? '' : ' before SIGTERM was sent'}` });
    });
  });
}

/** Starts a worker thread that posts a message back. */
function probeWorker(timeoutMs = PROBE_TIMEOUT_MS): Promise<ProbeReport> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  return new Promise((resolve) => {
    let worker: Worker;
    try {
      worker = new Worker(`require('node:worker_threads').parentPort.postMessage('ready')`, { eval: true });
    } catch (e) {
      resolve({ ok: false, ms: ms(), detail: `could not start a worker thread: ${(e as Error).message}` });
      return;
    }
    const finish = (r: ProbeReport) => {
      clearTimeout(timer);
      void worker.terminate();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ ok: false, ms: ms(), detail: `no message from the worker thread within ${timeoutMs} ms` }), timeoutMs);
    worker.once('message', (m) => finish(m === 'ready' ? { ok: true, ms: ms(), detail: `a worker thread answered in ${ms()} ms` } : { ok: false, ms: ms(), detail: `unexpected message ${JSON.stringify(m)}` }));
    worker.once('error', (e) => finish({ ok: false, ms: ms(), detail: `worker thread error: ${e.message}` }));
  });
}

function processReport(): ProcessReport {
  let pid1Comm: string | undefined;
  try {
    pid1Comm = readFileSync('/proc/1/comm', 'utf8').trim();
  } catch {
    /* no /proc (not Linux), or hidden */
  }
  const isPid1 = process.pid === 1;
  return {
    node: process.version,
    platform: process.platform,
    arch: process.arch,
    pid: process.pid,
    isPid1,
    pid1Comm,
    initPresent: !isPid1 && pid1Comm !== undefined && INITS.has(pid1Comm),
  };
}

// ---- external tools -------------------------------------------------------------------------

interface ToolSpec {
  name: string;
  /** Executable names tried in order (apptainer was called singularity before). */
  commands: string[];
  args: string[];
  purpose: string;
}

const TOOLS: ToolSpec[] = [
  { name: 'dcm2niix', commands: ['dcm2niix'], args: ['--version'], purpose: 'DICOM to NIfTI for external segmentation models' },
  { name: 'TotalSegmentator', commands: ['TotalSegmentator'], args: ['--version'], purpose: 'segmentation.engine: totalsegmentator' },
  { name: 'nnUNetv2_predict', commands: ['nnUNetv2_predict'], args: ['--version'], purpose: 'segmentation.extra_models (nnU-Net)' },
  { name: 'plastimatch', commands: ['plastimatch'], args: ['--version'], purpose: 'reference conversions' },
  { name: 'storescu', commands: ['storescu'], args: ['--version'], purpose: 'DCMTK, manual sends and checks' },
  { name: 'docker', commands: ['docker'], args: ['--version'], purpose: 'containerised segmentation models' },
  { name: 'apptainer', commands: ['apptainer', 'singularity'], args: ['--version'], purpose: 'containerised segmentation models (HPC)' },
  { name: 'dciodvfy', commands: ['dciodvfy'], args: ['-version'], purpose: 'DICOM object validation (dicom3tools)' },
];

/** An executable on PATH, as the shell would find it. */
export function findOnPath(command: string, env: NodeJS.ProcessEnv): string | undefined {
  const dirs = command.includes('/') ? [''] : (env.PATH ?? '').split(':').filter((d) => d !== '');
  for (const dir of dirs) {
    const file = dir === '' ? command : path.join(dir, command);
    try {
      if (statSync(file).isFile()) {
        accessSync(file, fsc.X_OK);
        return file;
      }
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** First version-looking number in a tool's output: "v3.6.7" → 3.6.7, "1.00.snapshot.2022" kept whole. */
export function parseVersion(output: string): { version: string; line: string } | undefined {
  for (const raw of output.split('\n')) {
    const m = /(?:^|[^\w.])v?(\d+(?:\.[0-9A-Za-z]+)+)/.exec(raw);
    if (m) return { version: m[1], line: raw.replace(/\$/g, '').trim().slice(0, 160) };
  }
  return undefined;
}

async function probeTool(spec: ToolSpec, env: NodeJS.ProcessEnv): Promise<ToolReport> {
  let file: string | undefined;
  for (const c of spec.commands) file ??= findOnPath(c, env);
  const base = { name: spec.name, purpose: spec.purpose };
  if (!file) return { ...base, found: false, detail: `not found on PATH (${spec.commands.join(' or ')}; needed for ${spec.purpose})` };
  let output: string;
  let failure: string | undefined;
  try {
    const r = await runTool({ file, args: spec.args, env, timeoutSeconds: PROBE_TIMEOUT_MS / 1000, graceSeconds: 1, label: `${spec.name} ${spec.args.join(' ')}` });
    output = `${r.stdout}\n${r.stderr}`;
  } catch (e) {
    if (!(e instanceof ToolError)) throw e;
    // Several tools print their version and then exit non-zero; the version still counts.
    output = `${e.details.stdout}\n${e.details.stderr}`;
    failure = e.message.split('\n')[0];
  }
  const v = failure?.includes('timed out') ? undefined : parseVersion(output);
  if (v) return { ...base, found: true, path: file, version: v.version, versionLine: v.line, detail: v.line };
  return { ...base, found: true, path: file, detail: failure ?? 'found; it printed no version number' };
}

// ---- directories ----------------------------------------------------------------------------

function nearestExisting(p: string): string {
  let cur = p;
  for (;;) {
    try {
      statSync(cur);
      return cur;
    } catch {
      const up = path.dirname(cur);
      if (up === cur) return cur;
      cur = up;
    }
  }
}

function freeMb(p: string): number | undefined {
  try {
    const s = statfsSync(p);
    return Math.floor((s.bavail * s.bsize) / (1024 * 1024));
  } catch {
    return undefined;
  }
}

/** Writes and removes a probe file in an existing directory; for a missing one, checks it can be created. */
function probeDir(key: DirReport['key'], dir: string): DirReport {
  const abs = path.resolve(dir);
  const anchor = nearestExisting(abs);
  const exists = anchor === abs;
  const report = (writable: boolean, detail: string): DirReport => ({ key, path: abs, exists, writable, freeMb: freeMb(anchor), detail });
  if (!statSync(anchor).isDirectory()) {
    return report(false, exists ? `${abs} exists but is not a directory` : `${abs} cannot be created: ${anchor} is not a directory`);
  }
  if (!exists) {
    try {
      accessSync(anchor, fsc.W_OK);
      return report(true, `does not exist yet; can be created under ${anchor}`);
    } catch (e) {
      return report(false, `does not exist and cannot be created: ${anchor} is not writable (${(e as NodeJS.ErrnoException).code})`);
    }
  }
  const probe = path.join(abs, `.rtpipeline-doctor-${process.pid}-${Date.now()}`);
  try {
    writeFileSync(probe, 'probe');
    unlinkSync(probe);
    return report(true, 'writable');
  } catch (e) {
    return report(false, `not writable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); fix its owner or permissions, or point ${key} elsewhere`);
  }
}

// ---- assembling the report ------------------------------------------------------------------

function attempt<T>(fn: () => T): T | { error: string } {
  try {
    return fn();
  } catch (e) {
    return { error: (e as Error).message };
  }
}

const isError = (x: object): x is { error: string } => 'error' in x;

function describeTimeouts(t: ToolTimeouts): string {
  return [
    `TotalSegmentator ${t.totalsegSeconds} s (${t.sources.TOTALSEG_TIMEOUT})`,
    `dcm2niix ${t.dcm2niixSeconds} s (${t.sources.DCM2NIIX_TIMEOUT})`,
    `radiomics task ${t.radiomicsTaskSeconds} s (${t.sources.RTPIPELINE_RADIOMICS_TASK_TIMEOUT})`,
  ].join(', ');
}

function initCheck(p: ProcessReport): Check {
  const name = 'init';
  if (p.isPid1) {
    return { name, status: 'warn', required: false, message: 'rtpipeline is PID 1: exited tool processes are not reaped; run the container with --init (tini)' };
  }
  if (p.pid1Comm === undefined) return { name, status: 'ok', required: false, message: 'PID 1 not visible (no /proc)' };
  if (p.initPresent) return { name, status: 'ok', required: false, message: `PID 1 is ${p.pid1Comm}, an init that forwards signals and reaps zombies` };
  return { name, status: 'warn', required: false, message: `PID 1 is "${p.pid1Comm}", not a known init: make sure it forwards SIGTERM (exec form, or --init / tini)` };
}

function buildChecks(r: Omit<DoctorReport, 'ok' | 'checks'>, config: Config): Check[] {
  const checks: Check[] = [];
  const add = (name: string, status: CheckStatus, required: boolean, message: string) => checks.push({ name, status, required, message });
  add('cpus', r.cpus.count >= 1 ? 'ok' : 'fail', true, `${r.cpus.count} usable (${r.cpus.source}: ${r.cpus.detail})`);
  if (isError(r.workers)) add('workers', 'fail', true, r.workers.error);
  else {
    const w = r.workers;
    add('workers', w.warnings.length > 0 ? 'warn' : 'ok', true, `max ${w.maxWorkers} (${w.source}: ${w.detail}), segmentation ${w.segWorkers} (${w.segSource})${w.warnings.map((x) => `; ${x}`).join('')}`);
  }
  add('timeouts', isError(r.timeouts) ? 'fail' : 'ok', true, isError(r.timeouts) ? r.timeouts.error : describeTimeouts(r.timeouts));
  add('signals', r.signals.ok ? 'ok' : 'fail', true, r.signals.detail);
  checks.push(initCheck(r.process));
  add('worker-threads', r.workerSpawn.ok ? 'ok' : 'fail', true, r.workerSpawn.detail);
  const totalsegNeeded = config.segmentation.engine === 'totalsegmentator' && config.segmentation.command === null;
  for (const t of r.tools) {
    const required = t.name === 'TotalSegmentator' && totalsegNeeded;
    add(`tool ${t.name}`, t.found ? 'ok' : required ? 'fail' : 'warn', required, t.found ? `${t.path}: ${t.detail}` : t.detail);
  }
  const gpus = r.gpu.devices.map((d) => `${d.index}: ${d.name} ${d.memoryMb} MB`).join(', ');
  add('gpu', r.gpu.available ? 'ok' : 'warn', false, r.gpu.available ? `${gpus} (driver ${r.gpu.driverVersion ?? '?'})` : `no GPU: ${r.gpu.reason}`);
  for (const d of r.dirs) {
    const required = d.key === 'node.data_dir';
    const space = d.freeMb === undefined ? '' : `, ${d.freeMb} MB free`;
    let status: CheckStatus = d.writable ? 'ok' : required ? 'fail' : 'warn';
    let message = `${d.path}: ${d.detail}${space}`;
    if (status === 'ok' && required && d.freeMb !== undefined && d.freeMb < config.node.min_free_disk_mb) {
      status = 'warn';
      message += ` (below node.min_free_disk_mb ${config.node.min_free_disk_mb}: C-STOREs will be refused)`;
    }
    add(d.key, status, required, message);
  }
  return checks;
}

export function formatText(report: DoctorReport): string {
  const width = Math.max(...report.checks.map((c) => c.name.length));
  const label: Record<CheckStatus, string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' };
  const p = report.process;
  const lines = [`rtpipeline doctor: node ${p.node}, ${p.platform}/${p.arch}, pid ${p.pid}`];
  for (const c of report.checks) lines.push(`${label[c.status]}  ${c.name.padEnd(width)}  ${c.message}`);
  const failed = report.checks.filter((c) => c.status === 'fail').map((c) => c.name);
  const warned = report.checks.filter((c) => c.status === 'warn').length;
  lines.push(failed.length > 0 ? `result: FAIL (${failed.join(', ')})` : `result: ok${warned > 0 ? ` (${warned} warning${warned > 1 ? 's' : ''})` : ''}`);
  return lines.join('\n');
}

export async function runDoctor(opts: DoctorOptions): Promise<{ ok: boolean; report: DoctorReport; text: string }> {
  const env = opts.env ?? process.env;
  const { config } = opts;
  const [cpus, signals, workerSpawn, tools, gpu] = await Promise.all([
    usableCpus(),
    probeSignals(),
    probeWorker(),
    Promise.all(TOOLS.map((t) => probeTool(t, env))),
    detectGpu({ env }),
  ]);
  const partial: Omit<DoctorReport, 'ok' | 'checks'> = {
    process: processReport(),
    cpus,
    workers: attempt(() => resolveWorkers({ env, configMaxWorkers: config.max_workers, configSegWorkers: config.seg_workers, usable: cpus.count })),
    timeouts: attempt(() => toolTimeouts(env)),
    signals,
    workerSpawn,
    tools,
    gpu,
    dirs: [probeDir('node.data_dir', config.node.data_dir), probeDir('output_dir', config.output_dir), probeDir('logs_dir', config.logs_dir)],
  };
  const checks = buildChecks(partial, config);
  const ok = checks.every((c) => !(c.required && c.status === 'fail'));
  const report: DoctorReport = { ok, ...partial, checks };
  return { ok, report, text: opts.json ? JSON.stringify(report, null, 2) : formatText(report) };
}
