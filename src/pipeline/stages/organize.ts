/**
 * The organize stage of a daemon study: the course folder's case_metadata.json, and the study's
 * source objects under `DICOM/<modality>/` (hard links when the store is on the same file system,
 * so a 2 GB study costs no space; copies otherwise).
 */
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import { sanitizeId, updateCaseMetadata } from '../course.js';
import { organizeTree, type OrganizeResult as OrganizeTreeResult } from '../../organize/organize.js';
import type { StageContext } from '../job-host.js';

export interface OrganizeInput {
  kind: 'study';
  courseDir: string;
  courseId: string;
  metadata: Record<string, unknown>;
  instances: { path: string; modality: string; sopInstanceUid: string }[];
}

export interface OrganizeResult {
  courseDir: string;
  courseId: string;
  linked: number;
  copied: number;
  byModality: Record<string, number>;
}

export async function organizeStudy(input: OrganizeInput): Promise<OrganizeResult> {
  let linked = 0;
  let copied = 0;
  const byModality: Record<string, number> = {};
  const made = new Set<string>();
  for (const inst of input.instances) {
    const modality = sanitizeId(inst.modality || 'OT');
    const dir = path.join(input.courseDir, 'DICOM', modality);
    if (!made.has(dir)) {
      await fsp.mkdir(dir, { recursive: true });
      made.add(dir);
    }
    const target = path.join(dir, `${sanitizeId(inst.sopInstanceUid)}.dcm`);
    byModality[modality] = (byModality[modality] ?? 0) + 1;
    try {
      await fsp.link(inst.path, target);
      linked++;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') continue; // a resumed run: the object is there already
      if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw new Error(`cannot place ${inst.path} in ${dir}: ${(e as Error).message}`);
      await fsp.copyFile(inst.path, target);
      copied++;
    }
  }
  await updateCaseMetadata(input.courseDir, { ...input.metadata, courseId: input.courseId, dicom: byModality });
  return { courseDir: input.courseDir, courseId: input.courseId, linked, copied, byModality };
}

/** The batch form: a whole folder tree, indexed and sorted into course folders (src/organize). */
export interface OrganizeTreeInput {
  kind: 'tree';
  dicomRoot: string;
  outDir: string;
  concurrency?: number;
}

export async function organizeStage(input: OrganizeInput | OrganizeTreeInput, ctx: StageContext): Promise<OrganizeResult | OrganizeTreeResult> {
  if (input.kind === 'study') return organizeStudy(input);
  let lastLog = 0;
  const result = await organizeTree({
    dicomRoot: input.dicomRoot,
    outDir: input.outDir,
    concurrency: input.concurrency,
    onProgress: (p) => {
      if (Date.now() - lastLog < 5000) return;
      lastLog = Date.now();
      ctx.log.info(p, `organize: ${p.phase} ${p.done}/${p.total}`);
    },
  });
  for (const f of result.skippedFiles.slice(0, 50)) ctx.log.warn({ file: f.path, reason: f.reason }, 'not DICOM or not readable: skipped');
  for (const w of result.warnings) ctx.log.warn(w);
  return result;
}
