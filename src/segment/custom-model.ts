/**
 * Custom nnU-Net v2 models, each described by a `custom_model.yaml` (see
 * config/custom_model.example.yaml):
 *
 *   name: pelvis_gtv                 # names the output (Segmentation/<name>/); letters, digits, . _ -
 *   dataset: Dataset501_PelvisGTV    # or the number, 501
 *   configuration: 3d_fullres
 *   folds: [0, 1, 2, 3, 4]           # or "all", or one fold; default 0-4
 *   trainer: nnUNetTrainer           # optional, as are plans and checkpoint
 *   env: { nnUNet_results: "{model_dir}/nnUNet_results" }
 *   labels: { 1: GTV, 2: CTV }       # label value -> structure name
 *   command: null                    # optional template, default below
 *
 * The CT is written as `<case>_0000.nii.gz` (nnU-Net's channel naming, channel 0 = CT) in an input
 * folder; the model writes one multi-label `<case>.nii.gz`, which is resampled onto the CT grid and
 * split into one mask per label of `labels`. Values not in `labels` are reported in the notes.
 *
 * Command template placeholders (see totalsegmentator.ts for the template rules):
 *   {input} input folder   {input_file} the CT NIfTI   {output} output folder   {case} case id
 *   {dataset} {configuration}   {device} cuda | cpu | mps   {model_dir} folder of the yaml
 *   {threads} seg workers       {folds} (list)   {options} (list: -tr, -p, -chk when set, -npp/-nps N)
 * Default: nnUNetv2_predict -i {input} -o {output} -d {dataset} -c {configuration} -f {folds} -device {device} {options}
 * `{model_dir}` may also be used in env values. Models share TOTALSEG_TIMEOUT with TotalSegmentator.
 */
import { readFileSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { isMap, isScalar, LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../config/load.js';
import { resampleNearest, type LabelData } from '../geometry/resample.js';
import type { Grid } from '../geometry/types.js';
import { readNifti, type NiftiImage } from '../io/nifti.js';
import type { Logger } from '../log.js';
import { detectGpu as detectGpuDefault, type GpuInfo } from '../system/gpu.js';
import { runTool } from '../tools/run-tool.js';
import type { ToolTimeouts } from '../tools/timeouts.js';
import {
  checkTemplate,
  prepareCtNifti,
  renderTemplate,
  requirePlaceholders,
  resolveDevice,
  withCpuFallback,
  type CtInput,
  type Device,
  type EngineResult,
  type SegmentedStructure,
} from './totalsegmentator.js';

const DEFAULT_COMMAND = 'nnUNetv2_predict -i {input} -o {output} -d {dataset} -c {configuration} -f {folds} -device {device} {options}';
const CASE_ID = 'case';

export const CUSTOM_MODEL_PLACEHOLDERS = {
  input: 'scalar',
  input_file: 'scalar',
  output: 'scalar',
  case: 'scalar',
  dataset: 'scalar',
  configuration: 'scalar',
  device: 'scalar',
  model_dir: 'scalar',
  threads: 'scalar',
  folds: 'list',
  options: 'list',
} as const;

const fold = z.union([z.number().int().nonnegative(), z.literal('all')]);

const customModelSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'use letters, digits, ".", "_" or "-" (it names a folder)'),
    description: z.string().optional(),
    command: z.string().nullable().default(null),
    dataset: z.union([z.string().min(1), z.number().int().positive()]).transform(String),
    configuration: z.string().min(1),
    folds: z
      .union([fold, z.array(fold).min(1)])
      .default([0, 1, 2, 3, 4])
      .transform((f) => (Array.isArray(f) ? f : [f]).map(String)),
    trainer: z.string().min(1).optional(),
    plans: z.string().min(1).optional(),
    checkpoint: z.string().min(1).optional(),
    env: z.record(z.string(), z.union([z.string(), z.number()]).transform(String)).default({}),
    labels: z.record(z.string().regex(/^[1-9][0-9]*$/, 'label values must be positive integers'), z.string().trim().min(1).max(64, 'at most 64 characters (a DICOM ROI name)')),
  })
  .strict()
  .superRefine((m, ctx) => {
    const entries = Object.entries(m.labels);
    if (entries.length === 0) ctx.addIssue({ code: 'custom', path: ['labels'], message: 'needs at least one "value: name" entry' });
    const seen = new Map<string, string>();
    for (const [value, name] of entries) {
      const other = seen.get(name.toLowerCase());
      if (other) ctx.addIssue({ code: 'custom', path: ['labels', value], message: `name "${name}" is also used by label ${other}` });
      seen.set(name.toLowerCase(), value);
    }
  });

export type CustomModelSpec = z.output<typeof customModelSchema>;

export interface CustomModel extends CustomModelSpec {
  /** The yaml it was loaded from, and its folder ({model_dir}). */
  file: string;
  dir: string;
  /** The command template (the default when `command` is null), validated. */
  template: string;
  /** Label value -> structure name. */
  labelMap: Map<number, string>;
}

/** Reads and validates a custom_model.yaml; a problem is a ConfigError naming the file, line and key. */
export function loadCustomModel(file: string): CustomModel {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read custom model file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const yaml = parseYaml(file, text);
  const parsed = customModelSchema.safeParse(yaml.data);
  if (!parsed.success) throw new ConfigError(`invalid custom model:\n  ${parsed.error.issues.map((i) => describeIssue(i, file, yaml)).join('\n  ')}`);
  const spec = parsed.data;
  const template = spec.command ?? DEFAULT_COMMAND;
  const where = `${file}: ${yaml.lineOf(['command'])}command`;
  checkTemplate(template, CUSTOM_MODEL_PLACEHOLDERS, where);
  requirePlaceholders(template, [['input', 'input_file'], ['output']], where);
  for (const [name, value] of Object.entries(spec.env)) {
    const unknown = [...value.matchAll(/\{([^}]*)\}/g)].find((m) => m[1] !== 'model_dir');
    if (unknown) throw new ConfigError(`${file}: ${yaml.lineOf(['env', name])}env.${name}: unknown placeholder {${unknown[1]}} (only {model_dir} is replaced in env values)`);
  }
  const labelMap = new Map(Object.entries(spec.labels).map(([value, name]) => [Number(value), name]));
  return { ...spec, file, dir: path.dirname(path.resolve(file)), template, labelMap };
}

interface ParsedYaml {
  data: unknown;
  /** "line N: " of the key at `keys` (or of its nearest existing parent), "" when unknown. */
  lineOf(keys: readonly PropertyKey[]): string;
}

function parseYaml(file: string, text: string): ParsedYaml {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    throw new ConfigError(`${file}: line ${lineCounter.linePos(e.pos[0]).line}: YAML syntax error: ${e.message.split('\n')[0]}`);
  }
  const lineOf = (keys: readonly PropertyKey[]): string => {
    for (let n = keys.length; n > 0; n--) {
      const parent = n === 1 ? doc.contents : doc.getIn(keys.slice(0, n - 1) as unknown[], true);
      if (!isMap(parent)) continue;
      // Compared as strings: the keys of `labels` are numbers in the YAML document.
      const pair = parent.items.find((p) => isScalar(p.key) && String(p.key.value) === String(keys[n - 1]));
      const range = pair && isScalar(pair.key) ? pair.key.range : undefined;
      if (range) return `line ${lineCounter.linePos(range[0]).line}: `;
    }
    return '';
  };
  return { data: doc.toJS() ?? {}, lineOf };
}

function describeIssue(issue: z.core.$ZodIssue, file: string, yaml: ParsedYaml): string {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => `${file}: ${yaml.lineOf([...issue.path, k])}unknown key "${[...issue.path, k].join('.')}"`).join('\n  ');
  }
  const key = issue.path.join('.') || '(top level)';
  const value = issue.path.reduce<unknown>((node, k) => (node && typeof node === 'object' ? (node as Record<PropertyKey, unknown>)[k] : undefined), yaml.data);
  const missing = (issue.code === 'invalid_type' || issue.code === 'invalid_union') && value === undefined;
  // A bad record key (a label value) carries the reason in a nested issue.
  const message = missing ? 'missing (required)' : issue.code === 'invalid_key' ? (issue.issues[0]?.message ?? issue.message) : issue.message;
  return `${file}: ${yaml.lineOf(issue.path)}${key}: ${message}`;
}

export interface CustomModelOptions {
  model: CustomModel;
  ct: CtInput;
  ctDicomDir?: string;
  /** Scratch directory for this model's run; created if needed. */
  workDir: string;
  /** Requested device (segmentation.device); gpu is used only when detected. */
  device: Device;
  segWorkers: number;
  timeouts: Pick<ToolTimeouts, 'totalsegSeconds' | 'dcm2niixSeconds'>;
  signal?: AbortSignal;
  log?: Logger;
  onHeartbeat?: (elapsedMs: number) => void;
  input?: 'writer' | 'dcm2niix';
  /** Re-run once on CPU when a GPU run fails. Default true. */
  cpuFallback?: boolean;
  detectGpu?: () => Promise<GpuInfo>;
  env?: Record<string, string | undefined>;
  graceSeconds?: number;
  /** Told the pid of every tool process started (its own process group), e.g. to kill it if this thread dies. */
  onSpawn?: (pid: number) => void;
}

const NNUNET_DEVICE: Record<Device, string> = { gpu: 'cuda', cpu: 'cpu', mps: 'mps' };

/** The argv of one run of `model`. Pure. */
export function customModelCommand(model: CustomModel, run: { inputDir: string; inputFile: string; output: string; device: Device; threads: number }): string[] {
  const threads = String(Math.max(1, Math.floor(run.threads)));
  const options = [
    ...(model.trainer ? ['-tr', model.trainer] : []),
    ...(model.plans ? ['-p', model.plans] : []),
    ...(model.checkpoint ? ['-chk', model.checkpoint] : []),
    '-npp', threads,
    '-nps', threads,
  ];
  return renderTemplate(
    model.template,
    {
      input: run.inputDir,
      input_file: run.inputFile,
      output: run.output,
      case: CASE_ID,
      dataset: model.dataset,
      configuration: model.configuration,
      device: NNUNET_DEVICE[run.device],
      model_dir: model.dir,
      threads,
      folds: model.folds,
      options,
    },
    `${model.file}: command`,
  );
}

/** Runs the model on the CT; returns one mask per label (non-empty ones) on the CT grid. */
export async function runCustomModel(opts: CustomModelOptions): Promise<EngineResult> {
  const { model, log } = opts;
  const notes: string[] = [];
  const env: Record<string, string | undefined> = { ...opts.env };
  for (const [name, value] of Object.entries(model.env)) env[name] = value.replaceAll('{model_dir}', model.dir);
  const inputDir = path.join(opts.workDir, 'input');
  const inputFile = await prepareCtNifti({
    ct: opts.ct,
    ctDicomDir: opts.ctDicomDir,
    mode: opts.input,
    dir: inputDir,
    fileName: `${CASE_ID}_0000.nii.gz`,
    dcm2niixSeconds: opts.timeouts.dcm2niixSeconds,
    signal: opts.signal,
    onSpawn: opts.onSpawn,
    log,
  });
  const output = path.join(opts.workDir, 'prediction');
  const requested = await resolveDevice(opts.device, opts.detectGpu ?? (() => detectGpuDefault({ env: { ...process.env, ...env } })), notes, log);
  const run = async (d: Device): Promise<string[]> => {
    const argv = customModelCommand(model, { inputDir, inputFile, output, device: d, threads: opts.segWorkers });
    await rm(output, { recursive: true, force: true });
    await mkdir(output, { recursive: true });
    log?.info({ tool: model.name, device: d, argv }, `Running custom model ${model.name} on ${d}`);
    await runTool({
      file: argv[0],
      args: argv.slice(1),
      env,
      timeoutSeconds: opts.timeouts.totalsegSeconds,
      graceSeconds: opts.graceSeconds,
      timeoutVariable: 'TOTALSEG_TIMEOUT',
      notFoundHint: `install nnU-Net v2 or set "command" in ${model.file}`,
      signal: opts.signal,
      onHeartbeat: opts.onHeartbeat,
      onSpawn: opts.onSpawn,
      log,
      label: `custom model ${model.name}`,
    });
    return argv;
  };
  const { command, device } = await withCpuFallback(requested, opts.cpuFallback !== false, run, notes, `custom model ${model.name}`, log);
  const predictionFile = path.join(output, `${CASE_ID}.nii.gz`);
  const present = await readdir(output);
  if (!present.includes(`${CASE_ID}.nii.gz`)) {
    throw new Error(`custom model ${model.name}: no prediction ${predictionFile} (the output folder holds: ${present.join(', ') || 'nothing'})`);
  }
  const { structures, unmapped } = splitLabels(labelVolume(await readNifti(predictionFile)), model.labelMap, opts.ct.grid);
  for (const [value, voxels] of unmapped) notes.push(`label ${value} (${voxels} voxels) is not in the labels of ${model.file}; ignored`);
  const found = new Set(structures.map((s) => s.name));
  const empty = [...model.labelMap.values()].filter((n) => !found.has(n));
  if (empty.length > 0) notes.push(`${empty.length} empty label(s) dropped: ${empty.join(', ')}`);
  log?.info({ tool: model.name, device, structures: structures.length }, `custom model ${model.name} gave ${structures.length} non-empty structures`);
  return { structures, device, command, notes };
}

/** The label values of a NIfTI image (scaling applied and rounded, in the rare case it has one). */
function labelVolume(image: NiftiImage): { grid: Grid; data: LabelData } {
  if (image.sclSlope === 1 && image.sclInter === 0) return { grid: image.grid, data: image.data };
  const data = new Int32Array(image.data.length);
  for (let v = 0; v < data.length; v++) data[v] = Math.round(image.data[v] * image.sclSlope + image.sclInter);
  return { grid: image.grid, data };
}

/**
 * Splits a label image into one mask per mapped label on `target` (nearest-neighbour resampling of
 * the labels first, so each target voxel gets exactly one label). Empty labels are left out; labels
 * present but not mapped are counted in `unmapped`. Pure.
 */
export function splitLabels(
  labels: { grid: Grid; data: LabelData },
  labelMap: ReadonlyMap<number, string>,
  target: Grid,
): { structures: SegmentedStructure[]; unmapped: Map<number, number> } {
  const onTarget = resampleNearest(labels, target);
  const order = [...labelMap.keys()].sort((a, b) => a - b);
  const slot = new Map(order.map((value, n) => [value, n]));
  const masks = order.map(() => new Uint8Array(onTarget.length));
  const counts = new Array<number>(order.length).fill(0);
  const unmapped = new Map<number, number>();
  for (let v = 0; v < onTarget.length; v++) {
    const value = onTarget[v];
    if (value === 0) continue;
    const n = slot.get(value);
    if (n === undefined) unmapped.set(value, (unmapped.get(value) ?? 0) + 1);
    else {
      masks[n][v] = 1;
      counts[n]++;
    }
  }
  const structures = order.flatMap((value, n) => (counts[n] > 0 ? [{ name: labelMap.get(value)!, mask: { grid: target, data: masks[n] } }] : []));
  return { structures, unmapped };
}
