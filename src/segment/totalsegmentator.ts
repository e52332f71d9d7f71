/**
 * The TotalSegmentator engine: writes the CT as NIfTI, runs TotalSegmentator (a local install, a
 * docker image or an apptainer image) through runTool, and reads its per-class masks back onto the
 * CT grid.
 *
 * `segmentation.command` chooses how TotalSegmentator is started:
 *   null or "local"            TotalSegmentator -i {input} -o {output} {args}     (on PATH)
 *   "docker" | "docker:IMAGE"  docker run --rm {docker_gpus} {docker_env} {docker_weights}
 *                                -v {input_dir}:/in:ro -v {output}:/out IMAGE
 *                                TotalSegmentator -i /in/{input_name} -o /out {args}
 *                              (IMAGE defaults to wasserth/totalsegmentator)
 *   "apptainer:IMAGE.sif"      apptainer exec {apptainer_nv} --bind {input_dir},{output} IMAGE.sif
 *                                TotalSegmentator -i {input} -o {output} {args}
 *   anything else              a command template of your own, using the placeholders below.
 *
 * A template is split into arguments at whitespace (quote with '...' or "..." to keep spaces) and
 * never goes through a shell. Placeholders are replaced inside each argument:
 *   {input}        the input CT NIfTI (.nii.gz)           {input_dir}  its directory
 *   {input_name}   its file name                          {output}     the output directory
 *   {device}       gpu | cpu | mps (after GPU detection)  {task}       the TotalSegmentator task
 *   {threads}      thread count given to --nr_thr_resamp/--nr_thr_saving (from the seg workers)
 * and these stand alone as an argument, expanding to zero or more arguments:
 *   {args}            every TotalSegmentator option: -ot nifti --task T [--fast] [--roi_subset A B]
 *                     [--force_split] -d DEVICE --nr_thr_resamp N --nr_thr_saving N
 *   {roi_subset}      the roi_subset names (nothing when unset)
 *   {docker_gpus}     "--gpus all" when the device is gpu, nothing otherwise
 *   {docker_env}      "-e NAME" for each of CUDA_VISIBLE_DEVICES, TOTALSEG_LICENSE that is set
 *                     (docker takes the value from our environment, so a license key never shows in ps)
 *   {docker_weights}  "-v $TOTALSEG_WEIGHTS_PATH:/totalseg_weights -e TOTALSEG_WEIGHTS_PATH=/totalseg_weights"
 *                     when TOTALSEG_WEIGHTS_PATH is set: weights are kept on the host, not downloaded into
 *                     every throw-away container (writable, so a task's weights are fetched once)
 *   {apptainer_nv}    "--nv" when the device is gpu, nothing otherwise
 * A template must use {input} (or {input_dir}) and {output}; an unknown placeholder is an error.
 *
 * Device: `gpu` is only used when a GPU is detected (system/gpu.ts); otherwise the run is on CPU and a
 * note says so. When a GPU run fails with an error exit (CUDA out of memory, driver mismatch), it is
 * re-run once on CPU, with a fresh time limit, unless `cpuFallback: false`.
 *
 * The environment reaches the tool unchanged (CUDA_VISIBLE_DEVICES, TOTALSEG_WEIGHTS_PATH,
 * TOTALSEG_LICENSE, TOTALSEG_HOME_DIR...).
 */
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { resampleMaskToGrid } from '../geometry/resample.js';
import type { Grid, Mask } from '../geometry/types.js';
import { readNifti, writeNifti, type NiftiImage } from '../io/nifti.js';
import type { Logger } from '../log.js';
import { detectGpu as detectGpuDefault, type GpuInfo } from '../system/gpu.js';
import { runTool, ToolError } from '../tools/run-tool.js';
import type { ToolTimeouts } from '../tools/timeouts.js';

export type Device = 'gpu' | 'cpu' | 'mps';
export type SegmentationConfig = Config['segmentation'];

/** A CT on its grid; `data` (HU) is needed unless the input NIfTI comes from dcm2niix. */
export interface CtInput {
  grid: Grid;
  data?: Int16Array;
}

export interface SegmentedStructure {
  name: string;
  mask: Mask;
}

export interface EngineResult {
  /** Non-empty masks on the CT grid, sorted by name. */
  structures: SegmentedStructure[];
  /** The device the structures were computed on. */
  device: Device;
  /** The argv that produced them. */
  command: string[];
  /** What a user should know: GPU not found, CPU fallback, empty classes dropped. */
  notes: string[];
}

export interface TotalSegmentatorOptions {
  ct: CtInput;
  /** The CT series directory, for dcm2niix. */
  ctDicomDir?: string;
  /** Scratch directory for this run (input NIfTI and the tool's output); created if needed. */
  workDir: string;
  config: SegmentationConfig;
  segWorkers: number;
  timeouts: Pick<ToolTimeouts, 'totalsegSeconds' | 'dcm2niixSeconds'>;
  signal?: AbortSignal;
  log?: Logger;
  onHeartbeat?: (elapsedMs: number) => void;
  /** TotalSegmentator task; default "total". roi_subset applies to "total" only. */
  task?: string;
  /** How the input NIfTI is made: our writer (default when ct.data is given) or dcm2niix. */
  input?: 'writer' | 'dcm2niix';
  /** Re-run once on CPU when a GPU run fails. Default true. */
  cpuFallback?: boolean;
  /** Default: system/gpu.ts detectGpu. */
  detectGpu?: () => Promise<GpuInfo>;
  /** Added to the tool's environment. */
  env?: Record<string, string | undefined>;
  /** SIGTERM -> SIGKILL grace when a run is stopped; default 10 s. */
  graceSeconds?: number;
  /** Told the pid of every tool process started (its own process group), e.g. to kill it if this thread dies. */
  onSpawn?: (pid: number) => void;
}

const DEFAULT_DOCKER_IMAGE = 'wasserth/totalsegmentator';
const LOCAL_TEMPLATE = 'TotalSegmentator -i {input} -o {output} {args}';
const dockerTemplate = (image: string) =>
  `docker run --rm {docker_gpus} {docker_env} {docker_weights} -v {input_dir}:/in:ro -v {output}:/out ${image} TotalSegmentator -i /in/{input_name} -o /out {args}`;
const apptainerTemplate = (image: string) => `apptainer exec {apptainer_nv} --bind {input_dir},{output} ${image} TotalSegmentator -i {input} -o {output} {args}`;

/** Placeholders of TotalSegmentator command templates, and whether they expand to a list of arguments. */
export const TOTALSEG_PLACEHOLDERS = {
  input: 'scalar',
  input_dir: 'scalar',
  input_name: 'scalar',
  output: 'scalar',
  device: 'scalar',
  task: 'scalar',
  threads: 'scalar',
  args: 'list',
  roi_subset: 'list',
  docker_gpus: 'list',
  docker_env: 'list',
  docker_weights: 'list',
  apptainer_nv: 'list',
} as const satisfies PlaceholderSpec;

const WHERE = 'segmentation.command';

/** The template a `segmentation.command` value stands for (presets expanded), validated. */
export function totalSegmentatorTemplate(command: string | null): string {
  const c = command?.trim() ?? '';
  let template: string;
  if (c === '' || c === 'local') template = LOCAL_TEMPLATE;
  else if (c === 'docker') template = dockerTemplate(DEFAULT_DOCKER_IMAGE);
  else if (c.startsWith('docker:')) template = dockerTemplate(presetImage(c, 'docker:'));
  else if (c.startsWith('apptainer:')) template = apptainerTemplate(presetImage(c, 'apptainer:'));
  else template = c;
  checkTemplate(template, TOTALSEG_PLACEHOLDERS, WHERE);
  requirePlaceholders(template, [['input', 'input_dir'], ['output']], WHERE);
  return template;
}

function presetImage(command: string, prefix: string): string {
  const image = command.slice(prefix.length).trim();
  if (image === '' || /[\s{}'"]/.test(image)) throw new ConfigError(`${WHERE}: "${command}" needs an image name after "${prefix}" (no spaces, braces or quotes)`);
  return image;
}

/** What one TotalSegmentator run needs to know, for building its command line. */
export interface TotalSegInvocation {
  input: string;
  output: string;
  device: Device;
  task: string;
  fast: boolean;
  roiSubset: string[] | null;
  forceSplit: boolean;
  threads: number;
  /** Decides which -e/-v flags the docker preset adds. */
  env: Record<string, string | undefined>;
}

/** TotalSegmentator's options (everything but -i/-o). */
export function totalSegmentatorArgs(inv: TotalSegInvocation): string[] {
  const threads = String(Math.max(1, Math.floor(inv.threads)));
  return [
    '-ot', 'nifti',
    '--task', inv.task,
    ...(inv.fast ? ['--fast'] : []),
    ...(inv.roiSubset && inv.roiSubset.length > 0 ? ['--roi_subset', ...inv.roiSubset] : []),
    ...(inv.forceSplit ? ['--force_split'] : []),
    '-d', inv.device,
    '--nr_thr_resamp', threads,
    '--nr_thr_saving', threads,
  ];
}

/** The full argv for `segmentation.command` (null = local install). Pure. */
export function totalSegmentatorCommand(command: string | null, inv: TotalSegInvocation): string[] {
  const set = (name: string) => inv.env[name] !== undefined && inv.env[name] !== '';
  const weights = inv.env.TOTALSEG_WEIGHTS_PATH;
  const gpu = inv.device === 'gpu';
  return renderTemplate(
    totalSegmentatorTemplate(command),
    {
      input: inv.input,
      input_dir: path.dirname(inv.input),
      input_name: path.basename(inv.input),
      output: inv.output,
      device: inv.device,
      task: inv.task,
      threads: String(Math.max(1, Math.floor(inv.threads))),
      args: totalSegmentatorArgs(inv),
      roi_subset: inv.roiSubset ?? [],
      docker_gpus: gpu ? ['--gpus', 'all'] : [],
      docker_env: ['CUDA_VISIBLE_DEVICES', 'TOTALSEG_LICENSE'].filter(set).flatMap((name) => ['-e', name]),
      docker_weights: weights ? ['-v', `${weights}:/totalseg_weights`, '-e', 'TOTALSEG_WEIGHTS_PATH=/totalseg_weights'] : [],
      apptainer_nv: gpu ? ['--nv'] : [],
    },
    WHERE,
  );
}

/** Runs TotalSegmentator on the CT and returns its non-empty classes on the CT grid. */
export async function runTotalSegmentator(opts: TotalSegmentatorOptions): Promise<EngineResult> {
  const { config, log } = opts;
  totalSegmentatorTemplate(config.command); // a bad template fails before any work
  const task = opts.task ?? 'total';
  const notes: string[] = [];
  const env = { ...process.env, ...opts.env };
  await mkdir(opts.workDir, { recursive: true });
  const input = await prepareCtNifti({
    ct: opts.ct,
    ctDicomDir: opts.ctDicomDir,
    mode: opts.input,
    dir: path.join(opts.workDir, 'input'),
    fileName: 'ct.nii.gz',
    dcm2niixSeconds: opts.timeouts.dcm2niixSeconds,
    signal: opts.signal,
    onSpawn: opts.onSpawn,
    log,
  });
  const output = path.join(opts.workDir, `totalseg-${task}`);
  const requested = await resolveDevice(config.device, opts.detectGpu ?? (() => detectGpuDefault({ env })), notes, log);
  if (config.roi_subset && task !== 'total') notes.push(`roi_subset applies to the "total" task only; not passed to task "${task}"`);
  const invocation = (d: Device): TotalSegInvocation => ({
    input,
    output,
    device: d,
    task,
    fast: config.fast,
    roiSubset: task === 'total' ? config.roi_subset : null,
    forceSplit: config.force_split,
    threads: opts.segWorkers,
    env,
  });
  const run = async (d: Device): Promise<string[]> => {
    const argv = totalSegmentatorCommand(config.command, invocation(d));
    await rm(output, { recursive: true, force: true });
    await mkdir(output, { recursive: true });
    log?.info({ tool: 'TotalSegmentator', task, device: d, argv }, `Running TotalSegmentator (${task}) on ${d}`);
    await runTool({
      file: argv[0],
      args: argv.slice(1),
      env: opts.env,
      timeoutSeconds: opts.timeouts.totalsegSeconds,
      graceSeconds: opts.graceSeconds,
      timeoutVariable: 'TOTALSEG_TIMEOUT',
      notFoundHint: 'install it or set segmentation.command',
      signal: opts.signal,
      onHeartbeat: opts.onHeartbeat,
      onSpawn: opts.onSpawn,
      log,
      label: `TotalSegmentator (${task})`,
    });
    return argv;
  };
  const { command, device } = await withCpuFallback(requested, opts.cpuFallback !== false, run, notes, 'TotalSegmentator', log);
  const structures = await readClassMasks(output, opts.ct.grid, notes);
  log?.info({ tool: 'TotalSegmentator', task, device, structures: structures.length }, `TotalSegmentator (${task}) gave ${structures.length} non-empty structures`);
  return { structures, device, command, notes };
}

/** The device to run on: `gpu` only when one is detected. */
export async function resolveDevice(requested: Device, detect: () => Promise<GpuInfo>, notes: string[], log?: Logger): Promise<Device> {
  if (requested !== 'gpu') return requested;
  const gpu = await detect();
  if (gpu.available) return 'gpu';
  const note = `device gpu requested but no GPU detected (${gpu.reason ?? 'no reason given'}); running on CPU`;
  notes.push(note);
  log?.warn(note);
  return 'cpu';
}

/**
 * Runs `run(device)`; when a GPU run fails with an error exit (not a timeout or cancel), notes it and
 * runs once more on CPU. Returns the argv that succeeded and the device it ran on.
 */
export async function withCpuFallback(
  device: Device,
  enabled: boolean,
  run: (device: Device) => Promise<string[]>,
  notes: string[],
  what: string,
  log?: Logger,
): Promise<{ command: string[]; device: Device }> {
  try {
    return { command: await run(device), device };
  } catch (e) {
    if (!(device === 'gpu' && enabled && e instanceof ToolError && e.reason === 'exit-code')) throw e;
    const why = lastLine(e.details.stderr) ?? `exit code ${e.details.exitCode}`;
    notes.push(`${what} failed on GPU (${why}); re-ran on CPU`);
    log?.warn({ tool: what, err: e.message }, `${what} failed on GPU; re-running once on CPU`);
    return { command: await run('cpu'), device: 'cpu' };
  }
}

/** The last non-empty line of a tool's stderr: usually the exception that ended it. */
function lastLine(stderr: string): string | undefined {
  return stderr.trim().split('\n').filter((l) => l.trim() !== '').pop()?.trim();
}

/** Every `<class>.nii.gz` (or .nii) in `dir` as a mask on `grid`; empty ones dropped (and noted). */
async function readClassMasks(dir: string, grid: Grid, notes: string[]): Promise<SegmentedStructure[]> {
  const files = (await readdir(dir)).filter((f) => /\.nii(\.gz)?$/.test(f)).sort();
  if (files.length === 0) throw new Error(`TotalSegmentator wrote no .nii.gz masks to ${dir}; see its output above`);
  const structures: SegmentedStructure[] = [];
  const empty: string[] = [];
  for (const file of files) {
    const name = file.replace(/\.nii(\.gz)?$/, '');
    const mask = resampleMaskToGrid(binaryMask(await readNifti(path.join(dir, file))), grid);
    if (mask.data.includes(1)) structures.push({ name, mask });
    else empty.push(name);
  }
  if (empty.length > 0) notes.push(`${empty.length} empty class(es) dropped: ${empty.join(', ')}`);
  return structures;
}

/** A NIfTI image as a 0/1 mask on its own grid: a voxel is set when its (scaled) value is not 0. */
export function binaryMask(image: NiftiImage): Mask {
  const { data, sclSlope, sclInter } = image;
  const out = new Uint8Array(data.length);
  if (sclSlope === 1 && sclInter === 0) {
    for (let v = 0; v < data.length; v++) out[v] = data[v] !== 0 ? 1 : 0;
  } else {
    for (let v = 0; v < data.length; v++) out[v] = data[v] * sclSlope + sclInter !== 0 ? 1 : 0;
  }
  return { grid: image.grid, data: out };
}

// ---------------------------------------------------------------------------------------------------
// The input NIfTI

export interface PrepareCtNiftiOptions {
  ct: CtInput;
  ctDicomDir?: string;
  /** Default: 'writer' when ct.data is given, else 'dcm2niix'. */
  mode?: 'writer' | 'dcm2niix';
  /** Created (emptied first). */
  dir: string;
  /** e.g. ct.nii.gz, or case_0000.nii.gz for nnU-Net. */
  fileName: string;
  dcm2niixSeconds: number;
  signal?: AbortSignal;
  log?: Logger;
  onSpawn?: (pid: number) => void;
}

/**
 * Writes the CT as `<dir>/<fileName>`, with our NIfTI writer or with dcm2niix. dcm2niix stores rows
 * in the opposite order to DICOM (and may reorder slices); that is fine because every output is read
 * back through its affine (readNifti, resampleMaskToGrid), never by assuming an axis order.
 */
export async function prepareCtNifti(o: PrepareCtNiftiOptions): Promise<string> {
  const mode = o.mode ?? (o.ct.data ? 'writer' : 'dcm2niix');
  await rm(o.dir, { recursive: true, force: true });
  await mkdir(o.dir, { recursive: true });
  const file = path.join(o.dir, o.fileName);
  if (mode === 'writer') {
    if (!o.ct.data) throw new Error('the CT volume is needed to write the input NIfTI (or use dcm2niix with the CT series directory)');
    await writeNifti(file, { grid: o.ct.grid, data: o.ct.data }, { gzipLevel: 1 });
    return file;
  }
  if (!o.ctDicomDir) throw new Error('dcm2niix input needs the CT series directory (ctDicomDir)');
  const stem = 'ct';
  const { stdout } = await runTool({
    file: 'dcm2niix',
    args: ['-z', 'y', '-f', stem, '-o', o.dir, o.ctDicomDir],
    timeoutSeconds: o.dcm2niixSeconds,
    timeoutVariable: 'DCM2NIIX_TIMEOUT',
    notFoundHint: 'install dcm2niix (apt-get install dcm2niix) or let the pipeline write the NIfTI itself',
    signal: o.signal,
    onSpawn: o.onSpawn,
    log: o.log,
    label: `dcm2niix ${o.ctDicomDir}`,
  });
  // dcm2niix appends suffixes when it splits a series (e.g. _e2, _Tilt_1, _i00001): more than one
  // volume means the series is not one regular CT, which we must not guess about.
  const made = (await readdir(o.dir)).filter((f) => f.startsWith(stem) && f.endsWith('.nii.gz'));
  if (made.length !== 1) {
    const tail = stdout.trim().split('\n').slice(-5).join('\n');
    throw new Error(`dcm2niix made ${made.length} volumes from ${o.ctDicomDir} (${made.join(', ') || 'none'}), expected one; the series may have gantry tilt, irregular slices or several series. dcm2niix said:\n${tail}`);
  }
  if (made[0] !== o.fileName) await rename(path.join(o.dir, made[0]), file);
  return file;
}

// ---------------------------------------------------------------------------------------------------
// Command templates (also used by custom-model.ts)

export type PlaceholderSpec = Record<string, 'scalar' | 'list'>;
export type PlaceholderValues = Record<string, string | string[]>;

const PLACEHOLDER = /\{([A-Za-z0-9_]*)\}/g;

/** Splits a template into arguments at whitespace; '...' and "..." keep spaces. No escapes, no shell. */
export function splitTemplate(template: string, where: string): string[] {
  const args: string[] = [];
  let current = '';
  let inArg = false;
  let quote: string | null = null;
  for (const ch of template) {
    if (quote) {
      if (ch === quote) quote = null;
      else current += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inArg = true;
    } else if (/\s/.test(ch)) {
      if (inArg) args.push(current);
      current = '';
      inArg = false;
    } else {
      current += ch;
      inArg = true;
    }
  }
  if (quote) throw new ConfigError(`${where}: unclosed ${quote} in "${template}"`);
  if (inArg) args.push(current);
  if (args.length === 0) throw new ConfigError(`${where}: the command is empty`);
  return args;
}

/** Throws a ConfigError naming the first unknown placeholder, stray brace or misplaced list placeholder. */
export function checkTemplate(template: string, spec: PlaceholderSpec, where: string): string[] {
  const args = splitTemplate(template, where);
  const known = Object.keys(spec).map((n) => `{${n}}`).join(' ');
  for (const arg of args) {
    for (const [, name] of arg.matchAll(PLACEHOLDER)) {
      if (!(name in spec)) throw new ConfigError(`${where}: unknown placeholder {${name}} in "${template}"; known placeholders: ${known}`);
      if (spec[name] === 'list' && arg !== `{${name}}`) {
        throw new ConfigError(`${where}: {${name}} expands to several arguments and must stand alone, not inside "${arg}"`);
      }
    }
    const rest = arg.replace(PLACEHOLDER, '');
    if (/[{}]/.test(rest)) throw new ConfigError(`${where}: stray "{" or "}" in "${arg}" (placeholders look like {input}; known: ${known})`);
  }
  return args;
}

/** Throws unless, for each group, the template uses one of its placeholders. */
export function requirePlaceholders(template: string, groups: string[][], where: string): void {
  const used = new Set([...template.matchAll(PLACEHOLDER)].map((m) => m[1]));
  for (const group of groups) {
    if (!group.some((n) => used.has(n))) {
      throw new ConfigError(`${where}: "${template}" must use ${group.map((n) => `{${n}}`).join(' or ')}; the tool would not know where its ${group[0] === 'output' ? 'output goes' : 'input is'}`);
    }
  }
}

/** The argv of a template with placeholders replaced (list placeholders expand in place). Pure. */
export function renderTemplate(template: string, values: PlaceholderValues, where: string): string[] {
  const spec: PlaceholderSpec = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, Array.isArray(v) ? 'list' : 'scalar']));
  return checkTemplate(template, spec, where).flatMap((arg) => {
    const whole = /^\{([A-Za-z0-9_]+)\}$/.exec(arg);
    if (whole && Array.isArray(values[whole[1]])) return values[whole[1]] as string[];
    return [arg.replace(PLACEHOLDER, (_, name: string) => values[name] as string)];
  });
}
