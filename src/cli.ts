#!/usr/bin/env node
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { statSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, ConfigError } from './config/load.js';
import { parseDestination, formatDestination } from './config/destination.js';
import { createLogger } from './log.js';
import { logPhiOptions } from './audit/node-audit.js';
import { RtNode } from './node/node.js';
import { sendFiles, isStoredStatus } from './dicom/scu.js';
import { checkPipelineSettings } from './pipeline/preflight.js';
import { runBatch, parseStages } from './batch/run.js';
import { summaryTable } from './batch/progress.js';
import { executorSchema, type Config } from './config/schema.js';

const USAGE = `rtpipeline: radiotherapy DICOM node and pipeline

  rtpipeline serve    [--config FILE] [--aet AE] [--dicom-port N] [--http-port N] [--data-dir DIR]
                      [--destination AE@HOST:PORT]... [--allow-caller AE]... [--stable-seconds S]
                      [--watch DIR]... [--max-workers N] [--seg-workers N] [--bind ADDR]
                      [--tls-port N]   (the DICOM TLS port; needs node.tls in the config file)
  rtpipeline ui       [serve flags]   the same node as serve; its web UI is at http://HOST:HTTP-PORT/
  rtpipeline send     --destination AE@HOST:PORT [--aet AE] FILES_OR_DIRS...
  rtpipeline [run]    --dicom-root DIR [--outdir DIR] [--logs DIR] [--config FILE] [--stage NAME]...
                      [--max-workers N] [--seg-workers N] [--segmentation-engine builtin|totalsegmentator|none]
                      [--totalseg-device gpu|cpu|mps] [--totalseg-fast] [--no-totalseg-force-split]
                      [--totalseg-roi-subset A,B] [--custom-structures FILE] [--force-redo] [-v]
                      [--executor local|slurm] [--partition P] [--account A] [--gpus-per-task N]
                      [--time HH:MM:SS] [--container IMAGE.sif]   (slurm: one sbatch array task per course)
                      (stages: organize, segmentation, dvh, radiomics, robustness, qc)
  rtpipeline radiomics IMAGE MASK [--param FILE] [--label N] [--roi NAME] [--out FILE.csv] [--ibsi]
                      (IMAGE: NIfTI or a DICOM series folder; MASK: NIfTI, or an RTSTRUCT with --roi)
  rtpipeline validate --config FILE
  rtpipeline demo     [--data-dir DIR] [--slices N] [--size N]   (a node + a synthetic thorax CT, end to end)
  rtpipeline doctor   [--json] [--config FILE]   (self-test: CPUs, cgroup limits, workers, timeouts, signals, tools, GPU, disk)

Flags beat environment variables (RTPIPELINE_<KEY>), which beat the config file, which beats the
built-in defaults. Exit codes: 0 success, 1 some work failed, 2 bad usage or config.`;

class UsageError extends Error {}

const SERVE_OPTIONS: ParseArgsConfig['options'] = {
  config: { type: 'string' },
  aet: { type: 'string' },
  'dicom-port': { type: 'string' },
  'http-port': { type: 'string' },
  'data-dir': { type: 'string' },
  destination: { type: 'string', multiple: true },
  'allow-caller': { type: 'string', multiple: true },
  'stable-seconds': { type: 'string' },
  watch: { type: 'string', multiple: true },
  'max-workers': { type: 'string' },
  'seg-workers': { type: 'string' },
  bind: { type: 'string' },
  'tls-port': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

function parse(args: string[], options: ParseArgsConfig['options'], allowPositionals = false): { values: Values; positionals: string[] } {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true }) as { values: Values; positionals: string[] };
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

async function serve(args: string[]): Promise<number> {
  const { values } = parse(args, SERVE_OPTIONS);
  if (values.help) return help();
  const flags = values as Record<string, string | string[] | undefined>;
  const { config, file } = loadConfig({ file: values.config as string | undefined, flags });
  await checkPipelineSettings(config);
  // log_phi: a masked id uses the node's salt (<data_dir>/audit/salt), as the audit trail does.
  const log = createLogger({ phi: logPhiOptions(config, path.join(path.resolve(config.node.data_dir), 'audit')) });
  const node = new RtNode(config, log, { configFile: file });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutdown requested');
    // Stages get shutdown_grace_seconds, then are killed; this is the backstop behind that.
    const hardMs = (config.node.shutdown_grace_seconds + 15) * 1000;
    const hard = setTimeout(() => {
      log.error(`graceful stop took longer than ${hardMs / 1000} s: exiting`);
      process.exit(1);
    }, hardMs);
    hard.unref();
    void node.stop(8000).then(
      () => process.exit(0),
      (e) => {
        log.error({ err: (e as Error).message }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  // A bug in one association or job must not take the node down with every other one.
  process.on('unhandledRejection', (e) => log.error({ err: e instanceof Error ? e.stack : String(e) }, 'unhandled rejection'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  log.info({ config: file ?? '(built-in defaults)' }, 'starting rtpipeline node');
  await node.start();
  return new Promise<number>(() => undefined); // runs until a signal
}

const RUN_OPTIONS: ParseArgsConfig['options'] = {
  'dicom-root': { type: 'string' },
  outdir: { type: 'string' },
  logs: { type: 'string' },
  config: { type: 'string' },
  stage: { type: 'string', multiple: true },
  'max-workers': { type: 'string' },
  'seg-workers': { type: 'string' },
  'segmentation-engine': { type: 'string' },
  'totalseg-device': { type: 'string' },
  'totalseg-fast': { type: 'boolean' },
  'totalseg-force-split': { type: 'boolean' },
  'no-totalseg-force-split': { type: 'boolean' },
  'totalseg-roi-subset': { type: 'string' },
  'sequential-radiomics': { type: 'boolean' },
  'radiomics-params': { type: 'string' },
  'custom-structures': { type: 'string' },
  'force-redo': { type: 'boolean' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
  // Where the course stages run (config `executor`).
  executor: { type: 'string' },
  partition: { type: 'string' },
  account: { type: 'string' },
  'gpus-per-task': { type: 'string' },
  time: { type: 'string' },
  container: { type: 'string' },
  // Internal: what a SLURM array task runs (one organized course folder, no cohort tables).
  'only-course': { type: 'string' },
};

/** The `--executor ...` flags over the config's `executor` section (flag > config), validated. */
function withExecutorFlags(config: Config, values: Values): Config {
  const flags: Record<string, unknown> = {};
  const text = (name: string) => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
  if (text('executor') !== undefined) flags.kind = text('executor');
  for (const [flag, key] of [['partition', 'partition'], ['account', 'account'], ['time', 'time'], ['container', 'container']] as const) {
    if (text(flag) !== undefined) flags[key] = text(flag);
  }
  const gpus = text('gpus-per-task');
  if (gpus !== undefined) flags.gpus_per_task = /^\d+$/.test(gpus) ? Number(gpus) : gpus;
  if (Object.keys(flags).length === 0) return config;
  const r = executorSchema.safeParse({ ...config.executor, ...flags });
  if (!r.success) {
    const issue = r.error.issues[0];
    const key = String(issue.path[0] ?? 'kind');
    const flag = { kind: 'executor', gpus_per_task: 'gpus-per-task' }[key] ?? key;
    throw new UsageError(`--${flag}: ${issue.message}`);
  }
  return { ...config, executor: r.data };
}

/** The batch pipeline over a folder tree (`rtpipeline [run] --dicom-root IN --outdir OUT --logs LOGS`). */
async function runCommand(args: string[]): Promise<number> {
  const { values } = parse(args, RUN_OPTIONS);
  if (values.help) return help();
  if (values['totalseg-force-split'] && values['no-totalseg-force-split']) throw new UsageError('--totalseg-force-split and --no-totalseg-force-split contradict each other');
  const loaded = loadConfig({ file: values.config as string | undefined, flags: values as Record<string, string | string[] | boolean | undefined> });
  const config = withExecutorFlags(loaded.config, values);
  const onlyCourse = values['only-course'] as string | undefined;
  let stages;
  try {
    stages = parseStages(values.stage as string[] | undefined);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (onlyCourse !== undefined) stages = stages.filter((s) => s !== 'organize');
  if (stages.includes('organize') && !config.dicom_root) throw new UsageError('--dicom-root DIR is needed (the folder tree of DICOM files to process)');
  await checkPipelineSettings(config);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const logFile = path.join(path.resolve(config.logs_dir), `rtpipeline_${stamp}.log`);
  const log = createLogger({ level: values.verbose ? 'debug' : undefined, file: logFile, phi: logPhiOptions(config, path.resolve(config.logs_dir)) });
  log.info({ dicomRoot: config.dicom_root, outdir: config.output_dir, logFile }, 'rtpipeline batch run');
  const abort = new AbortController();
  const onSignal = (signal: string) => {
    log.warn({ signal }, 'stopping: running stages are cancelled, finished ones are kept (markers); run again to resume');
    abort.abort('shutdown');
  };
  // Kept installed after the first signal: a repeated SIGTERM must not kill the run half-way through
  // cancelling its work (with --executor slurm: before scancel has emptied the queue).
  process.on('SIGINT', () => (abort.signal.aborted ? log.warn('already stopping') : onSignal('SIGINT')));
  process.on('SIGTERM', () => (abort.signal.aborted ? log.warn('already stopping') : onSignal('SIGTERM')));
  const result = await runBatch({ config, stages, forceRedo: values['force-redo'] === true, log, signal: abort.signal, onlyCourse });
  if (!onlyCourse && result.courses.length > 0) process.stdout.write(`\n${summaryTable(result.courses)}\n`);
  for (const c of result.courses.filter((x) => !x.ok)) process.stderr.write(`failed: ${c.patientId}/${c.courseId}: ${c.error}\n`);
  process.stdout.write(`${result.courses.length - result.courses.filter((x) => !x.ok).length}/${result.courses.length} course(s) done; results in ${path.resolve(config.output_dir)}, log ${logFile}\n`);
  return abort.signal.aborted ? 1 : result.exitCode;
}

/** `rtpipeline radiomics IMAGE MASK`: the features of one ROI. */
async function radiomics(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    { param: { type: 'string' }, label: { type: 'string' }, roi: { type: 'string' }, out: { type: 'string' }, ibsi: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    true,
  );
  if (values.help) return help();
  if (positionals.length !== 2) throw new UsageError('radiomics needs IMAGE and MASK (NIfTI files, or a DICOM series folder and an RTSTRUCT with --roi NAME)');
  const label = values.label === undefined ? undefined : Number(values.label);
  if (label !== undefined && !Number.isInteger(label)) throw new UsageError(`--label must be a whole number, not "${values.label}"`);
  const { radiomicsCommand } = await import('./radiomics/command.js');
  const { RadiomicsInputError } = await import('./radiomics/inputs.js');
  try {
    const r = await radiomicsCommand({ image: positionals[0], mask: positionals[1], param: values.param as string | undefined, label, roi: values.roi as string | undefined, out: values.out as string | undefined, ibsi: values.ibsi === true });
    if (r.out) process.stdout.write(`${r.rows} features written to ${r.out}\n`);
    else process.stdout.write(r.csv);
    return 0;
  } catch (e) {
    if (e instanceof RadiomicsInputError) throw new UsageError(e.message);
    throw e;
  }
}

async function validate(args: string[]): Promise<number> {
  const { values } = parse(args, { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } });
  if (values.help) return help();
  if (!values.config) throw new UsageError('validate needs --config FILE');
  // Only the file is checked: the environment of the machine that validates is not the node's.
  const { config } = loadConfig({ file: values.config as string, env: {} });
  const notes = await checkPipelineSettings(config);
  process.stdout.write(`${values.config}: valid (AE ${config.node.aet}, DICOM port ${config.node.dicom_port}, HTTP port ${config.node.http_port}, ${config.node.destinations.length} destination(s), segmentation ${config.segmentation.engine})\n`);
  for (const n of notes) process.stdout.write(`  ${n}\n`);
  return 0;
}

/** Expands directories (recursively) into their files, in a stable order. */
function expandFiles(items: string[]): string[] {
  const out: string[] = [];
  for (const item of items) {
    let st;
    try {
      st = statSync(item);
    } catch {
      throw new UsageError(`${item}: no such file or directory`);
    }
    if (st.isDirectory()) out.push(...expandFiles(readdirSync(item).sort().map((n) => path.join(item, n))));
    else if (st.isFile()) out.push(item);
  }
  return out;
}

async function send(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { destination: { type: 'string', multiple: true }, aet: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, true);
  if (values.help) return help();
  const dests = (values.destination as string[] | undefined) ?? [];
  if (dests.length === 0) throw new UsageError('send needs --destination AE@HOST:PORT');
  if (positionals.length === 0) throw new UsageError('send needs at least one file or folder');
  const files = expandFiles(positionals);
  const log = createLogger();
  const callingAet = (values.aet as string | undefined) ?? process.env.RTPIPELINE_AET ?? 'RTPIPELINE';
  let failed = 0;
  for (const text of dests) {
    let dest;
    try {
      dest = parseDestination(text);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    log.info({ destination: formatDestination(dest), files: files.length }, 'sending');
    const r = await sendFiles(dest, files, { callingAet });
    const ok = r.results.filter((x) => isStoredStatus(x.status)).length;
    for (const x of r.results.filter((y) => !isStoredStatus(y.status))) {
      log.error({ file: x.file, status: x.status === undefined ? 'not sent' : `0x${x.status.toString(16)}`, comment: x.comment }, 'instance not stored by destination');
    }
    if (r.associationError) log.error({ destination: formatDestination(dest), error: r.associationError }, 'association failed');
    log.info({ destination: formatDestination(dest), stored: ok, failed: files.length - ok }, 'send finished');
    failed += files.length - ok;
  }
  return failed > 0 ? 1 : 0;
}

async function demo(args: string[]): Promise<number> {
  const { values } = parse(args, { 'data-dir': { type: 'string' }, slices: { type: 'string' }, size: { type: 'string' }, help: { type: 'boolean', short: 'h' } });
  if (values.help) return help();
  const log = createLogger({ level: process.env.RTPIPELINE_LOG_LEVEL ?? 'warn' });
  const num = (v: unknown, name: string) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 2) throw new UsageError(`--${name} must be an integer >= 2`);
    return n;
  };
  // Loaded on demand: the phantom writer and dcmjs are not needed by a running node.
  const { runDemo } = await import('./demo.js');
  return runDemo({ dataDir: values['data-dir'] as string | undefined, slices: num(values.slices, 'slices'), size: num(values.size, 'size'), log, out: (l) => process.stdout.write(l + '\n') });
}

async function doctor(args: string[]): Promise<number> {
  const { values } = parse(args, { json: { type: 'boolean' }, config: { type: 'string' }, help: { type: 'boolean', short: 'h' } });
  if (values.help) return help();
  // Same config as `serve` would use (file, then RTPIPELINE_* variables), so the data dir checked is the node's.
  const { config } = loadConfig({ file: values.config as string | undefined });
  const { runDoctor } = await import('./doctor.js');
  const r = await runDoctor({ json: values.json === true, config });
  process.stdout.write(r.text + '\n');
  return r.ok ? 0 : 1;
}

function help(): number {
  process.stdout.write(USAGE + '\n');
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'serve':
      // The web UI is part of every node: `ui` is `serve` under the name users look for.
      case 'ui':
        return await serve(rest);
      case 'validate':
        return await validate(rest);
      case 'send':
        return await send(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        return help();
      case 'demo':
        return await demo(rest);
      case 'doctor':
        return await doctor(rest);
      case 'run':
        return await runCommand(rest);
      case 'radiomics':
        return await radiomics(rest);
      default:
        // `rtpipeline --dicom-root IN ...` without a sub-command is `run` (contract).
        if (cmd.startsWith('-')) return await runCommand(argv);
        throw new UsageError(`unknown command "${cmd}"`);
    }
  } catch (e) {
    if (e instanceof ConfigError || e instanceof UsageError) {
      process.stderr.write(`rtpipeline: ${e.message}\n${e instanceof UsageError ? '\n' + USAGE + '\n' : ''}`);
      return 2;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`rtpipeline: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
