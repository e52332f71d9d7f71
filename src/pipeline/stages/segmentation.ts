/**
 * The segmentation stage of a course. The configured engine (built-in, or TotalSegmentator with its
 * extra tasks) and then any custom nnU-Net models write Segmentation/<engine or model>/*.nii.gz;
 * RS_auto.dcm holds all their structures. With a custom structures file, RS_custom.dcm holds the
 * planning RTSTRUCT's ROIs + the automatic ones + the boolean custom structures.
 */
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import type { StageContext } from '../job-host.js';
import type { Config } from '../../config/schema.js';
import { autoSegment, type AutoSegmentInput } from '../auto-segment.js';
import { readCtSeries, type CtSeries } from '../../dicom/ct-series-reader.js';
import { readNifti, writeNifti } from '../../io/nifti.js';
import { maskVolume, type Mask } from '../../geometry/types.js';
import { runTotalSegmentator, type EngineResult } from '../../segment/totalsegmentator.js';
import { loadCustomModel, runCustomModel } from '../../segment/custom-model.js';
import { loadCustomStructures, buildRsCustom, type RsCustomReport } from '../../rt/custom-structures.js';
import { automaticStructureSet, type EngineStructure } from '../../rt/structure-set.js';
import { readRtStruct } from '../../rt/rtstruct.js';
import { toolTimeouts } from '../../tools/timeouts.js';
import type { RtStructBranding } from '../../rt/branding.js';
import { writeFileAtomic } from '../../store/durable-fs.js';

export interface SegmentationInput {
  engine: Config['segmentation']['engine'];
  /** The CT to segment; absent when the course has no CT series. */
  ct?: AutoSegmentInput;
  settings: Config['segmentation'];
  /** Custom structures YAML (config custom_structures), or null. */
  customStructures: string | null;
  /** The planning RTSTRUCT on the CT's frame of reference, if the course has one. */
  manualRtstruct?: string;
  segWorkers: number;
  /** SIGTERM -> SIGKILL grace for external tools. */
  graceSeconds: number;
  /** Result branding of RS_auto (routing); part of the stage key, so a change re-makes RS_auto. */
  branding?: RtStructBranding;
}

interface SourceSummary {
  source: string;
  structures: { name: string; voxels: number; volumeCm3: number }[];
  device?: string;
  command?: string[];
  notes?: string[];
}

export type SegmentationResult =
  | { engine: string; skipped: string }
  | {
      engine: string;
      rsAuto: string;
      sopInstanceUid: string;
      rois: { name: string; voxels: number; volumeCm3: number }[];
      sources: SourceSummary[];
      rsCustom?: { file: string; report: RsCustomReport };
      timingsMs?: Record<string, number>;
    };

export async function segmentationStage(input: SegmentationInput, ctx: StageContext): Promise<SegmentationResult> {
  if (input.engine === 'none') return { engine: 'none', skipped: 'segmentation engine is "none"' };
  if (!input.ct) return { engine: input.engine, skipped: 'no CT series in the study' };
  const ct = input.ct;
  const courseDir = ct.courseDir;
  const extras = input.settings.custom_models.length > 0 || input.customStructures !== null;

  if (input.engine === 'builtin' && !extras) {
    const result = await autoSegment({ ...ct, branding: input.branding });
    ctx.log.info({ rsAuto: result.rsAuto, rois: result.rois, timingsMs: result.timingsMs }, 'auto-segmentation written');
    return { engine: 'builtin', ...result, sources: [{ source: 'builtin', structures: result.rois }] };
  }

  const spawned = new Set<number>();
  const tools = {
    signal: ctx.signal,
    log: ctx.log,
    segWorkers: input.segWorkers,
    timeouts: toolTimeouts(),
    graceSeconds: input.graceSeconds,
    cpuFallback: input.settings.cpu_fallback,
    input: input.settings.input,
    ctDicomDir: undefined as string | undefined,
    onSpawn: (pid: number) => {
      spawned.add(pid);
      ctx.onChild(pid);
    },
  };
  const forgetTools = () => {
    for (const pid of spawned) ctx.onChildExit(pid);
    spawned.clear();
  };

  const structures: EngineStructure[] = [];
  const sources: SourceSummary[] = [];
  let volume: CtSeries;
  let timingsMs: Record<string, number> | undefined;
  if (input.engine === 'builtin') {
    const builtin = await autoSegment({ ...ct, branding: input.branding });
    timingsMs = builtin.timingsMs;
    volume = await readCtSeries(ct.ctFiles);
    for (const roi of builtin.rois) {
      const img = await readNifti(path.join(courseDir, 'Segmentation', 'builtin', `${roi.name}.nii.gz`));
      structures.push({ name: roi.name, mask: { grid: img.grid, data: Uint8Array.from(img.data as ArrayLike<number>) } });
    }
    sources.push({ source: 'builtin', structures: builtin.rois });
  } else {
    volume = await readCtSeries(ct.ctFiles);
    await fsp.mkdir(path.join(courseDir, 'NIFTI'), { recursive: true });
    await writeNifti(path.join(courseDir, 'NIFTI', 'ct.nii.gz'), volume, { gzipLevel: 1 });
    if (input.settings.input === 'dcm2niix') tools.ctDicomDir = await linkCtDir(ct.ctFiles, path.join(courseDir, '.rtpipeline', 'work', 'ct-dicom'));
    const tasks = ['total', ...input.settings.extra_models.filter((t) => t !== 'total')];
    try {
      for (const task of tasks) {
        const r = await runTotalSegmentator({
          ...tools,
          ct: volume,
          workDir: path.join(courseDir, '.rtpipeline', 'work', `totalseg-${task}`),
          config: input.settings,
          task,
        });
        structures.push(...(await keep(courseDir, 'totalsegmentator', r, sources, `totalsegmentator${task === 'total' ? '' : `:${task}`}`)));
      }
    } finally {
      forgetTools();
    }
  }

  for (const file of input.settings.custom_models) {
    const model = loadCustomModel(file);
    try {
      const r = await runCustomModel({
        ...tools,
        model,
        ct: volume,
        device: input.settings.device,
        workDir: path.join(courseDir, '.rtpipeline', 'work', `model-${model.name}`),
      });
      structures.push(...(await keep(courseDir, model.name, r, sources, `custom:${model.name}`)));
    } finally {
      forgetTools();
    }
  }

  const study = ct.study;
  const rsAuto = path.join(courseDir, 'RS_auto.dcm');
  const rsBytes = automaticStructureSet({
    grid: volume.grid,
    sliceSopInstanceUids: volume.sliceSopInstanceUids,
    study,
    structures,
    seed: `${ct.seed}:auto:${sources.map((s) => s.source).join(',')}`,
    seriesDescription: `rtpipeline auto-segmentation (${sources.map((s) => s.source).join(', ')})`,
    label: 'RS_auto',
    branding: input.branding,
    lineage: ct.lineage,
  });
  await writeFileAtomic(rsAuto, rsBytes);
  const result: SegmentationResult = {
    engine: input.engine,
    rsAuto,
    sopInstanceUid: readRtStruct(rsBytes).sopInstanceUid,
    rois: structures.map((s) => ({ name: s.name, ...maskVolume(s.mask) })),
    sources,
    timingsMs,
  };

  if (input.customStructures) {
    const definitions = await loadCustomStructures(input.customStructures);
    const manual = input.manualRtstruct ? await fsp.readFile(input.manualRtstruct) : undefined;
    const custom = buildRsCustom({
      ct: { grid: volume.grid, sliceSopInstanceUids: volume.sliceSopInstanceUids, study },
      manual,
      auto: structures,
      definitions,
      seed: `${ct.seed}:custom`,
    });
    const file = path.join(courseDir, 'RS_custom.dcm');
    await writeFileAtomic(file, custom.rtstruct);
    await writeMasks(courseDir, 'custom', custom.custom);
    for (const m of custom.report.missing) ctx.log.warn({ structure: m.name, missing: m.missingSources }, `custom structure ${m.name} skipped: missing ${m.missingSources.join(', ')}`);
    result.rsCustom = { file, report: custom.report };
  }
  ctx.log.info({ rsAuto, rois: result.rois.length, sources: sources.map((s) => s.source), rsCustom: result.rsCustom?.file }, 'segmentation written');
  return result;
}

/** Writes an engine's masks under Segmentation/<folder>/ and returns them for the structure sets. */
async function keep(courseDir: string, folder: string, r: EngineResult, sources: SourceSummary[], source: string): Promise<EngineStructure[]> {
  await writeMasks(courseDir, folder, r.structures);
  sources.push({
    source,
    device: r.device,
    command: r.command,
    notes: r.notes,
    structures: r.structures.map((s) => ({ name: s.name, ...maskVolume(s.mask) })),
  });
  return r.structures;
}

async function writeMasks(courseDir: string, folder: string, masks: readonly { name: string; mask: Mask }[]): Promise<void> {
  const dir = path.join(courseDir, 'Segmentation', folder);
  await fsp.mkdir(dir, { recursive: true });
  for (const s of masks) await writeNifti(path.join(dir, `${s.name.replace(/[^A-Za-z0-9_.-]/g, '_')}.nii.gz`), s.mask, { gzipLevel: 1 });
}

/** A folder holding just the CT series (hard links), for dcm2niix. */
async function linkCtDir(files: string[], dir: string): Promise<string> {
  await fsp.rm(dir, { recursive: true, force: true });
  await fsp.mkdir(dir, { recursive: true });
  for (const [i, f] of files.entries()) {
    const target = path.join(dir, `${String(i).padStart(5, '0')}.dcm`);
    await fsp.link(f, target).catch(() => fsp.copyFile(f, target));
  }
  return dir;
}
