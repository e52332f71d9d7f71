import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/config/load.js';
import { configSchema } from '../src/config/schema.js';
import { readCtSeries } from '../src/dicom/ct-series-reader.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';
import { dice, type Grid, type Volume } from '../src/geometry/types.js';
import { readNifti } from '../src/io/nifti.js';
import type { PhantomSpec } from '../src/phantom/thorax.js';
import { centroidMm } from '../src/segment/mask.js';
import { loadCustomModel, runCustomModel, splitLabels } from '../src/segment/custom-model.js';
import {
  runTotalSegmentator,
  totalSegmentatorCommand,
  totalSegmentatorTemplate,
  type EngineResult,
  type SegmentationConfig,
  type TotalSegInvocation,
  type TotalSegmentatorOptions,
} from '../src/segment/totalsegmentator.js';
import type { GpuInfo } from '../src/system/gpu.js';
import { ToolError } from '../src/tools/run-tool.js';
import { phantomTruth, phantomVolume } from './helpers/phantom-truth.js';
import { processesWithMarker } from './helpers/processes.js';

const BIN = fileURLToPath(new URL('./fixtures/bin', import.meta.url));
const PATH = `${BIN}:${process.env.PATH}`;
const SPEC: PhantomSpec = { rows: 64, columns: 64, slices: 20, pixelSpacingMm: [6, 6], sliceThicknessMm: 10 };
const TIMEOUTS = { totalsegSeconds: 60, dcm2niixSeconds: 60 };
const HAS_GPU = async (): Promise<GpuInfo> => ({ available: true, devices: [{ index: 0, name: 'Test GPU', memoryMb: 24576 }] });
const NO_GPU = async (): Promise<GpuInfo> => ({ available: false, devices: [], reason: 'nvidia-smi not found (no NVIDIA driver in this environment)' });

let dir: string;
let ct: Volume<Int16Array>;
/** The writer-input run on the CPU, shared by several tests. */
let baseline: EngineResult;
let baselineLog: Invocation[];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rtp-totalseg-'));
  ct = phantomVolume(SPEC);
  const log = join(dir, 'baseline.log');
  baseline = await runTotalSegmentator(options({ workDir: join(dir, 'baseline'), env: { PATH, FAKE_TOTALSEG_LOG: log } }));
  baselineLog = invocations(log);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));


function segConfig(over: Partial<SegmentationConfig> = {}): SegmentationConfig {
  return { ...configSchema.parse({}).segmentation, device: 'cpu', ...over };
}

function options(over: Partial<TotalSegmentatorOptions> & { workDir: string }): TotalSegmentatorOptions {
  return { ct, config: segConfig(), segWorkers: 2, timeouts: TIMEOUTS, detectGpu: NO_GPU, ...over };
}

interface Invocation {
  tool: string;
  argv: string[];
  env: Record<string, string>;
}

function invocations(file: string): Invocation[] {
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Invocation);
}

/** The values that follow `flag` up to the next option. */
function flagValues(argv: string[], flag: string): string[] | undefined {
  const at = argv.indexOf(flag);
  if (at < 0) return undefined;
  const rest = argv.slice(at + 1);
  const end = rest.findIndex((a) => a.startsWith('-'));
  return end < 0 ? rest : rest.slice(0, end);
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

const byName = (r: EngineResult) => new Map(r.structures.map((s) => [s.name, s.mask]));

describe('runTotalSegmentator', () => {
  it('returns the non-empty classes on the CT grid, with their TotalSegmentator names', () => {
    expect(baseline.structures.map((s) => s.name)).toEqual(['body', 'lung_left', 'lung_right', 'vertebrae_T6']);
    for (const s of baseline.structures) {
      expect(s.mask.grid).toEqual(ct.grid);
      expect(s.mask.data.length).toBe(ct.data.length);
      expect(s.mask.data.every((v) => v === 0 || v === 1)).toBe(true);
    }
    expect(baseline.notes).toContain('1 empty class(es) dropped: brain');
    expect(baseline.device).toBe('cpu');
    // The masks are where the anatomy is: patient left is +x in LPS.
    const truth = phantomTruth(SPEC, ct.grid);
    const masks = byName(baseline);
    expect(dice(masks.get('lung_left')!.data, truth.lungL)).toBeGreaterThan(0.9);
    expect(dice(masks.get('lung_right')!.data, truth.lungR)).toBeGreaterThan(0.9);
    expect(dice(masks.get('body')!.data, truth.body)).toBeGreaterThan(0.95);
    expect(centroidMm(masks.get('lung_left')!)![0]).toBeGreaterThan(20);
    expect(centroidMm(masks.get('lung_right')!)![0]).toBeLessThan(-20);
  });

  it('passes the default options: -ot nifti, --task total, --force_split, the device and thread counts', () => {
    expect(baselineLog).toHaveLength(1);
    const { argv } = baselineLog[0];
    expect(baseline.command).toEqual(['TotalSegmentator', ...argv]);
    expect(flagValues(argv, '-i')).toEqual([join(dir, 'baseline', 'input', 'ct.nii.gz')]);
    expect(flagValues(argv, '-o')).toEqual([join(dir, 'baseline', 'totalseg-total')]);
    expect(flagValues(argv, '-ot')).toEqual(['nifti']);
    expect(flagValues(argv, '--task')).toEqual(['total']);
    expect(flagValues(argv, '-d')).toEqual(['cpu']);
    expect(flagValues(argv, '--nr_thr_resamp')).toEqual(['2']);
    expect(flagValues(argv, '--nr_thr_saving')).toEqual(['2']);
    expect(argv).toContain('--force_split');
    expect(argv).not.toContain('--fast');
    expect(argv).not.toContain('--roi_subset');
  });

  it('passes --fast, --roi_subset, no --force_split, and the environment (CUDA_VISIBLE_DEVICES, weights, license)', async () => {
    const log = join(dir, 'subset.log');
    const saved = process.env.CUDA_VISIBLE_DEVICES;
    process.env.CUDA_VISIBLE_DEVICES = '1';
    let result: EngineResult;
    try {
      result = await runTotalSegmentator(
        options({
          workDir: join(dir, 'subset'),
          config: segConfig({ fast: true, roi_subset: ['lung_left', 'vertebrae_T6', 'brain'], force_split: false }),
          segWorkers: 3,
          env: { PATH, FAKE_TOTALSEG_LOG: log, TOTALSEG_WEIGHTS_PATH: '/opt/totalseg-weights', TOTALSEG_LICENSE: 'aca_TEST' },
        }),
      );
    } finally {
      if (saved === undefined) delete process.env.CUDA_VISIBLE_DEVICES;
      else process.env.CUDA_VISIBLE_DEVICES = saved;
    }
    const [{ argv, env }] = invocations(log);
    expect(argv).toContain('--fast');
    expect(argv).not.toContain('--force_split');
    expect(flagValues(argv, '--roi_subset')).toEqual(['lung_left', 'vertebrae_T6', 'brain']);
    expect(flagValues(argv, '--nr_thr_resamp')).toEqual(['3']);
    expect(env).toEqual({ CUDA_VISIBLE_DEVICES: '1', TOTALSEG_WEIGHTS_PATH: '/opt/totalseg-weights', TOTALSEG_LICENSE: 'aca_TEST' });
    expect(result.structures.map((s) => s.name)).toEqual(['lung_left', 'vertebrae_T6']);
    expect(Array.from(byName(result).get('lung_left')!.data)).toEqual(Array.from(byName(baseline).get('lung_left')!.data));
  });

  it('runs on CPU, and says so, when a GPU is requested but none is detected', async () => {
    const log = join(dir, 'nogpu.log');
    const result = await runTotalSegmentator(options({ workDir: join(dir, 'nogpu'), config: segConfig({ device: 'gpu' }), detectGpu: NO_GPU, env: { PATH, FAKE_TOTALSEG_LOG: log } }));
    expect(result.device).toBe('cpu');
    expect(result.notes.join('\n')).toContain('device gpu requested but no GPU detected (nvidia-smi not found');
    expect(invocations(log).map((i) => flagValues(i.argv, '-d'))).toEqual([['cpu']]);
  });

  it('re-runs once on CPU when the GPU run fails', async () => {
    const log = join(dir, 'fallback.log');
    const result = await runTotalSegmentator(
      options({ workDir: join(dir, 'fallback'), config: segConfig({ device: 'gpu' }), detectGpu: HAS_GPU, env: { PATH, FAKE_TOTALSEG_LOG: log, FAKE_NO_GPU: '1' } }),
    );
    expect(invocations(log).map((i) => flagValues(i.argv, '-d'))).toEqual([['gpu'], ['cpu']]);
    expect(result.device).toBe('cpu');
    expect(result.command).toContain('cpu');
    expect(result.notes.join('\n')).toContain('TotalSegmentator failed on GPU (RuntimeError: No CUDA GPUs are available); re-ran on CPU');
    expect(result.structures.map((s) => s.name)).toEqual(baseline.structures.map((s) => s.name));
  });

  it('uses the GPU when one is detected, and fails without fallback when it is off', async () => {
    const log = join(dir, 'gpu.log');
    const ok = await runTotalSegmentator(options({ workDir: join(dir, 'gpu'), config: segConfig({ device: 'gpu' }), detectGpu: HAS_GPU, env: { PATH, FAKE_TOTALSEG_LOG: log } }));
    expect(ok.device).toBe('gpu');
    expect(ok.notes).toEqual(['1 empty class(es) dropped: brain']);
    const err = await rejection(
      runTotalSegmentator(options({ workDir: join(dir, 'gpu'), config: segConfig({ device: 'gpu' }), detectGpu: HAS_GPU, cpuFallback: false, env: { PATH, FAKE_TOTALSEG_LOG: log, FAKE_NO_GPU: '1' } })),
    );
    expect(err).toBeInstanceOf(ToolError);
    expect(err.message).toContain('exited with code 1');
    expect(err.message).toContain('No CUDA GPUs are available');
    expect(invocations(log).map((i) => flagValues(i.argv, '-d'))).toEqual([['gpu'], ['gpu']]);
  });

  it('stops a hanging TotalSegmentator at TOTALSEG_TIMEOUT and leaves no process behind', async () => {
    const marker = randomUUID();
    const t0 = performance.now();
    const err = await rejection(
      runTotalSegmentator(
        options({
          workDir: join(dir, 'hang'),
          config: segConfig({ command: 'TotalSegmentator-hang -i {input} -o {output} {args}' }),
          timeouts: { ...TIMEOUTS, totalsegSeconds: 1 },
          graceSeconds: 1,
          env: { PATH, RTP_TEST_MARKER: marker },
        }),
      ),
    );
    expect(err.message).toContain('TotalSegmentator (total): timed out after 1 s');
    expect(err.message).toContain('TOTALSEG_TIMEOUT');
    expect(performance.now() - t0).toBeLessThan(4000);
    expect(processesWithMarker(marker)).toEqual([]);
  });

  it('says what to do when TotalSegmentator is not installed', async () => {
    const err = await rejection(runTotalSegmentator(options({ workDir: join(dir, 'missing'), env: { PATH: '/nonexistent' } })));
    expect(err.message).toContain('not found: TotalSegmentator (install it or set segmentation.command)');
  });

  it('reads a dcm2niix input (rows flipped) back onto the CT grid', async () => {
    const seriesDir = join(dir, 'series');
    const { files } = await writeCtSeries(seriesDir, { patientId: 'TS-1', patientName: 'PHANTOM^TS', phantom: SPEC });
    const series = await readCtSeries(files);
    expect(series.grid).toEqual(ct.grid);
    const log = join(dir, 'dcm2niix.log');
    const result = await runTotalSegmentator(options({ ct: { grid: series.grid }, ctDicomDir: seriesDir, workDir: join(dir, 'dcm2niix'), env: { PATH, FAKE_TOTALSEG_LOG: log } }));
    // dcm2niix really did write the rows in the other order (so the affine did the work).
    const input = await readNifti(join(dir, 'dcm2niix', 'input', 'ct.nii.gz'));
    expect(input.grid.direction[1][1]).toBe(-1);
    expect(input.sclInter).toBe(-1024);
    expect(flagValues(invocations(log)[0].argv, '-i')).toEqual([join(dir, 'dcm2niix', 'input', 'ct.nii.gz')]);
    expect(result.structures.map((s) => s.name)).toEqual(baseline.structures.map((s) => s.name));
    const expected = byName(baseline);
    for (const s of result.structures) {
      expect(s.mask.grid).toEqual(series.grid);
      expect(dice(s.mask.data, expected.get(s.name)!.data)).toBe(1);
    }
  });
});

describe('TotalSegmentator command templates', () => {
  const inv = (over: Partial<TotalSegInvocation> = {}): TotalSegInvocation => ({
    input: '/work/in/ct.nii.gz',
    output: '/work/out',
    device: 'gpu',
    task: 'total',
    fast: false,
    roiSubset: null,
    forceSplit: true,
    threads: 4,
    env: {},
    ...over,
  });
  const ARGS = (device: string) => ['-ot', 'nifti', '--task', 'total', '--force_split', '-d', device, '--nr_thr_resamp', '4', '--nr_thr_saving', '4'];

  it('local install', () => {
    expect(totalSegmentatorCommand(null, inv())).toEqual(['TotalSegmentator', '-i', '/work/in/ct.nii.gz', '-o', '/work/out', ...ARGS('gpu')]);
    expect(totalSegmentatorCommand('local', inv({ fast: true, roiSubset: ['liver', 'spleen'], forceSplit: false, device: 'mps', threads: 0 }))).toEqual([
      'TotalSegmentator', '-i', '/work/in/ct.nii.gz', '-o', '/work/out',
      '-ot', 'nifti', '--task', 'total', '--fast', '--roi_subset', 'liver', 'spleen', '-d', 'mps', '--nr_thr_resamp', '1', '--nr_thr_saving', '1',
    ]);
  });

  it('docker: --gpus only on gpu, -e for the variables that are set, weights mounted', () => {
    const env = { CUDA_VISIBLE_DEVICES: '0', TOTALSEG_LICENSE: 'aca_X', TOTALSEG_WEIGHTS_PATH: '/srv/weights' };
    expect(totalSegmentatorCommand('docker', inv({ env }))).toEqual([
      'docker', 'run', '--rm', '--gpus', 'all', '-e', 'CUDA_VISIBLE_DEVICES', '-e', 'TOTALSEG_LICENSE',
      '-v', '/srv/weights:/totalseg_weights', '-e', 'TOTALSEG_WEIGHTS_PATH=/totalseg_weights',
      '-v', '/work/in:/in:ro', '-v', '/work/out:/out', 'wasserth/totalsegmentator',
      'TotalSegmentator', '-i', '/in/ct.nii.gz', '-o', '/out', ...ARGS('gpu'),
    ]);
    expect(totalSegmentatorCommand('docker:registry.local/totalseg:2.4', inv({ device: 'cpu' }))).toEqual([
      'docker', 'run', '--rm', '-v', '/work/in:/in:ro', '-v', '/work/out:/out', 'registry.local/totalseg:2.4',
      'TotalSegmentator', '-i', '/in/ct.nii.gz', '-o', '/out', ...ARGS('cpu'),
    ]);
  });

  it('apptainer: --nv only on gpu', () => {
    const tail = ['--bind', '/work/in,/work/out', '/images/totalseg.sif', 'TotalSegmentator', '-i', '/work/in/ct.nii.gz', '-o', '/work/out'];
    expect(totalSegmentatorCommand('apptainer:/images/totalseg.sif', inv())).toEqual(['apptainer', 'exec', '--nv', ...tail, ...ARGS('gpu')]);
    expect(totalSegmentatorCommand('apptainer:/images/totalseg.sif', inv({ device: 'cpu' }))).toEqual(['apptainer', 'exec', ...tail, ...ARGS('cpu')]);
  });

  it('a template of your own: quoting, placeholders inside arguments, list placeholders', () => {
    const argv = totalSegmentatorCommand(`"/opt/my tools/ts" --in={input} -o '{output}' --device {device} -t {task} {roi_subset}`, inv({ roiSubset: ['a', 'b'] }));
    expect(argv).toEqual(['/opt/my tools/ts', '--in=/work/in/ct.nii.gz', '-o', '/work/out', '--device', 'gpu', '-t', 'total', 'a', 'b']);
  });

  it('refuses bad templates with a message that says what is wrong', () => {
    const cases: [string, RegExp][] = [
      ['TotalSegmentator -i {inptu} -o {output}', /segmentation\.command: unknown placeholder \{inptu\}.*known placeholders: \{input\}/],
      ['TotalSegmentator -i {input} -o {output} x{args}', /\{args\} expands to several arguments and must stand alone/],
      ['TotalSegmentator -i {input}', /must use \{output\}/],
      ['TotalSegmentator -o {output}', /must use \{input\} or \{input_dir\}/],
      ['TotalSegmentator -i "{input} -o {output}', /unclosed "/],
      ['TotalSegmentator -i {input} -o {output} ${HOME}', /unknown placeholder \{HOME\}/],
      ['TotalSegmentator -i {input} -o {output}/{', /stray "\{" or "\}"/],
      ['apptainer:', /needs an image name after "apptainer:"/],
    ];
    for (const [template, message] of cases) {
      expect(() => totalSegmentatorTemplate(template), template).toThrow(ConfigError);
      expect(() => totalSegmentatorTemplate(template), template).toThrow(message);
    }
  });
});

describe('custom nnU-Net models', () => {
  function modelFile(name: string, yaml: string): string {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, yaml);
    return file;
  }

  const MODEL = `name: thorax_test
dataset: 501
configuration: 3d_fullres
folds: [0, 1]
trainer: nnUNetTrainer_100epochs
env:
  nnUNet_results: "{model_dir}/results"
labels:
  1: LUNG_L
  2: LUNG_R
  3: BONE
  7: NEVER_PRESENT
`;

  it('splits the prediction by the label map onto the CT grid', async () => {
    const model = loadCustomModel(modelFile('model', MODEL));
    const log = join(dir, 'nnunet.log');
    const result = await runCustomModel({ model, ct, workDir: join(dir, 'custom'), device: 'cpu', segWorkers: 2, timeouts: TIMEOUTS, env: { PATH, FAKE_NNUNET_LOG: log } });
    expect(result.structures.map((s) => s.name)).toEqual(['LUNG_L', 'LUNG_R', 'BONE']);
    expect(result.notes).toEqual(['1 empty label(s) dropped: NEVER_PRESENT']);
    // The stand-in uses the same thresholds as the TotalSegmentator one, and writes its labels with
    // the i axis reversed: identical masks mean the affine was followed.
    const ts = byName(baseline);
    const pairs: [string, string][] = [['LUNG_L', 'lung_left'], ['LUNG_R', 'lung_right'], ['BONE', 'vertebrae_T6']];
    for (const [ours, theirs] of pairs) {
      const mask = result.structures.find((s) => s.name === ours)!.mask;
      expect(mask.grid).toEqual(ct.grid);
      expect(dice(mask.data, ts.get(theirs)!.data), ours).toBe(1);
    }
    const [{ argv, env }] = invocations(log);
    expect(result.command).toEqual(['nnUNetv2_predict', ...argv]);
    expect(flagValues(argv, '-i')).toEqual([join(dir, 'custom', 'input')]);
    expect(readdirSync(join(dir, 'custom', 'input'))).toEqual(['case_0000.nii.gz']);
    expect(flagValues(argv, '-d')).toEqual(['501']);
    expect(flagValues(argv, '-c')).toEqual(['3d_fullres']);
    expect(flagValues(argv, '-f')).toEqual(['0', '1']);
    expect(flagValues(argv, '-tr')).toEqual(['nnUNetTrainer_100epochs']);
    expect(flagValues(argv, '-device')).toEqual(['cpu']);
    expect(flagValues(argv, '-npp')).toEqual(['2']);
    expect(env.nnUNet_results).toBe(join(dir, 'results'));
  });

  it('falls back to CPU when the GPU run fails, and reports labels missing from the map', async () => {
    const model = loadCustomModel(modelFile('partial', MODEL.replace('  3: BONE\n', '').replace('name: thorax_test', 'name: partial')));
    const log = join(dir, 'nnunet-gpu.log');
    const result = await runCustomModel({
      model, ct, workDir: join(dir, 'custom-gpu'), device: 'gpu', detectGpu: HAS_GPU, segWorkers: 1, timeouts: TIMEOUTS, env: { PATH, FAKE_NNUNET_LOG: log, FAKE_NO_GPU: '1' },
    });
    expect(invocations(log).map((i) => flagValues(i.argv, '-device'))).toEqual([['cuda'], ['cpu']]);
    expect(result.device).toBe('cpu');
    expect(result.structures.map((s) => s.name)).toEqual(['LUNG_L', 'LUNG_R']);
    const bones = byName(baseline).get('vertebrae_T6')!.data.reduce((a, v) => a + v, 0);
    expect(result.notes).toContain(`label 3 (${bones} voxels) is not in the labels of ${join(dir, 'partial.yaml')}; ignored`);
    expect(result.notes.join('\n')).toContain('failed on GPU');
  });

  it('splitLabels: one mask per mapped label, unmapped values counted', () => {
    const grid: Grid = { dims: [4, 1, 1], spacingMm: [1, 1, 1], originMm: [0, 0, 0], direction: [[1, 0, 0], [0, 1, 0], [0, 0, 1]] };
    const { structures, unmapped } = splitLabels({ grid, data: new Uint16Array([0, 2, 5, 2]) }, new Map([[2, 'A'], [9, 'B']]), grid);
    expect(structures.map((s) => [s.name, Array.from(s.mask.data)])).toEqual([['A', [0, 1, 0, 1]]]);
    expect(unmapped).toEqual(new Map([[5, 1]]));
  });

  it('refuses a bad custom_model.yaml, naming the file, the line and the key', () => {
    const cases: [string, RegExp][] = [
      [MODEL.replace('labels:', 'lables:'), /bad\.yaml: line 8: unknown key "lables"/],
      [MODEL.replace('  2: LUNG_R', '  0: LUNG_R'), /bad\.yaml: line 10: labels\.0: label values must be positive integers/],
      [MODEL.replace('  2: LUNG_R', '  2: LUNG_L'), /bad\.yaml: line 10: labels\.2: name "LUNG_L" is also used by label 1/],
      [MODEL.replace('dataset: 501\n', ''), /bad\.yaml: dataset: missing \(required\)/],
      [MODEL.replace('folds: [0, 1]', 'folds: [0, -1]'), /bad\.yaml: line 4: folds/],
      [MODEL.replace('name: thorax_test', 'name: ../escape'), /bad\.yaml: line 1: name: use letters, digits/],
      [`${MODEL}command: nnUNetv2_predict -i {input} -o {output} -x {chekpoint}\n`, /bad\.yaml: line 13: command: unknown placeholder \{chekpoint\}/],
      [MODEL.replace('{model_dir}/results', '{modeldir}/results'), /bad\.yaml: line 7: env\.nnUNet_results: unknown placeholder \{modeldir\}/],
      ['name: [unclosed\n', /bad\.yaml: line \d+: YAML syntax error/],
    ];
    for (const [yaml, message] of cases) {
      const file = modelFile('bad', yaml);
      expect(() => loadCustomModel(file), yaml).toThrow(ConfigError);
      expect(() => loadCustomModel(file), yaml).toThrow(message);
    }
    expect(() => loadCustomModel(join(dir, 'absent.yaml'))).toThrow(/cannot read custom model file .*absent\.yaml: ENOENT/);
  });

  it('loads the example shipped in config/', () => {
    const model = loadCustomModel(fileURLToPath(new URL('../config/custom_model.example.yaml', import.meta.url)));
    expect(model.name).toBe('pelvis_gtv');
    expect([...model.labelMap]).toEqual([[1, 'GTV'], [2, 'CTV']]);
    expect(model.folds).toEqual(['0', '1', '2', '3', '4']);
  });
});
