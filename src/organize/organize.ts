/**
 * The batch organize stage: any folder tree of DICOM in, course folders out.
 *
 *   <outDir>/<PatientID>/<CourseID>/DICOM/{CT,RTSTRUCT,RTPLAN,RTDOSE}/<SOPInstanceUID>.dcm
 *   <outDir>/<PatientID>/<CourseID>/DICOM/other/<Modality>_<SeriesInstanceUID>/<SOPInstanceUID>.dcm
 *   <outDir>/<PatientID>/<CourseID>/case_metadata.json
 *
 * Files are hard links to the originals when the output is on the same file system (no space used),
 * copies otherwise. A raw dataset (no preamble, no file meta) is written as a Part 10 file, so that
 * every reader downstream sees standard files. Running it again on the same tree gives the same folders and metadata: existing
 * links and copies with the same content are kept, case_metadata.json carries no timestamps, and the
 * keys other stages added to it are kept (it is merged, not replaced).
 */
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import { part10Header } from '../dicom/part10.js';
import { sameContent } from '../store/durable-fs.js';
import { sanitizeId, updateCaseMetadata } from '../pipeline/course.js';
import { scanTree, type ScannedInstance, type SkippedFile } from './scan.js';
import { groupCourses, type CoursePlan } from './courses.js';
import type { DoseRecipe, PlanDosePart } from './dose-recipe.js';

export interface OrganizeProgress {
  phase: 'scan' | 'place';
  done: number;
  total: number;
}

export interface OrganizeOptions {
  dicomRoot: string;
  outDir: string;
  /** Files read or placed at once (default 16). */
  concurrency?: number;
  onProgress?: (p: OrganizeProgress) => void;
}

export interface CourseSummary {
  patientId: string;
  courseId: string;
  /** The course folder (absolute). */
  dir: string;
  ctSeriesInstanceUid: string | null;
  /** Files placed per DICOM/ sub-folder. */
  files: Record<string, number>;
  linked: number;
  copied: number;
  /** The recipe with paths of the placed copies (absolute); `kind: 'skipped'` carries the reason. */
  doseRecipe: DoseRecipe;
  prescriptionGy: number | null;
  warnings: string[];
}

export interface OrganizeResult {
  courses: CourseSummary[];
  /** Files that are not readable DICOM, with why. */
  skippedFiles: SkippedFile[];
  /** DICOM objects that belong to no course, with why. */
  unassigned: SkippedFile[];
  warnings: string[];
  /** Files found under dicomRoot. */
  scannedFiles: number;
}

const DEFAULT_CONCURRENCY = 16;

export async function organizeTree(opts: OrganizeOptions): Promise<OrganizeResult> {
  const dicomRoot = path.resolve(opts.dicomRoot);
  const outDir = path.resolve(opts.outDir);
  const concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
  const st = await fsp.stat(dicomRoot).catch(() => undefined);
  if (!st?.isDirectory()) throw new Error(`--dicom-root ${dicomRoot} is not a folder; give the folder that holds the DICOM files`);

  // The output may live inside the input tree (e.g. --dicom-root . --outdir ./Data_Organized):
  // never index our own links, or a second run would see every object twice.
  const scan = await scanTree(dicomRoot, {
    concurrency,
    exclude: [outDir],
    onProgress: opts.onProgress && ((p) => opts.onProgress!({ phase: 'scan', ...p })),
  });
  const grouping = groupCourses(scan.instances);
  const raw = new Map(scan.instances.filter((i) => !i.encoding.part10).map((i) => [i.path, i]));
  const warnings = [...grouping.warnings, ...scan.unreadableFolders.map((f) => `folder not read: ${f.path}: ${f.reason}`)];

  const total = grouping.courses.reduce((n, c) => n + placements(c).length, 0);
  let done = 0;
  const courses: CourseSummary[] = [];
  for (const course of grouping.courses) {
    courses.push(
      await writeCourse(course, outDir, dicomRoot, concurrency, raw, () => {
        done++;
        if (opts.onProgress && (done % 200 === 0 || done === total)) opts.onProgress({ phase: 'place', done, total });
      }),
    );
  }
  return { courses, skippedFiles: scan.skipped, unassigned: grouping.unassigned, warnings, scannedFiles: scan.instances.length + scan.skipped.length };
}

interface Placement {
  source: string;
  /** Relative to the course folder. */
  target: string;
  folder: string;
}

/** Where each of the course's objects goes. */
function placements(c: CoursePlan): Placement[] {
  const out: Placement[] = [];
  const put = (folder: string, source: string, sop: string) => out.push({ source, folder, target: path.join('DICOM', folder, `${sanitizeId(sop)}.dcm`) });
  c.ct?.files.forEach((f, n) => put('CT', f, c.ct!.sopInstanceUids[n]));
  for (const s of c.rtstructs) put('RTSTRUCT', s.file, s.sopInstanceUid);
  for (const p of c.plans) put('RTPLAN', p.file, p.sopInstanceUid);
  for (const d of c.doses) put('RTDOSE', d.file, d.sopInstanceUid);
  for (const s of c.otherSeries) {
    const folder = path.join('other', `${sanitizeId(s.modality)}_${sanitizeId(s.seriesInstanceUid)}`);
    s.files.forEach((f, n) => put(folder, f, s.sopInstanceUids[n]));
  }
  return out;
}

async function writeCourse(
  c: CoursePlan,
  outDir: string,
  dicomRoot: string,
  concurrency: number,
  raw: Map<string, ScannedInstance>,
  onPlaced: () => void,
): Promise<CourseSummary> {
  const dir = path.join(outDir, c.patientDir, c.courseId);
  const list = placements(c);
  for (const folder of new Set(list.map((p) => path.dirname(p.target)))) await fsp.mkdir(path.join(dir, folder), { recursive: true });
  let linked = 0;
  let copied = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, list.length) }, async () => {
      while (next < list.length) {
        const p = list[next++];
        const target = path.join(dir, p.target);
        const rawInstance = raw.get(p.source);
        const how = rawInstance ? await placeAsPart10(rawInstance, target) : await place(p.source, target);
        if (how === 'linked') linked++;
        else if (how === 'copied') copied++;
        onPlaced();
      }
    }),
  );
  const files: Record<string, number> = {};
  for (const p of list) {
    const key = p.folder.startsWith('other') ? 'other' : p.folder;
    files[key] = (files[key] ?? 0) + 1;
  }
  const placedPath = new Map(list.map((p) => [p.source, p.target]));
  const relRecipe = mapRecipeFiles(c.doseRecipe, (f) => placedPath.get(f) ?? f);
  await updateCaseMetadata(dir, caseMetadata(c, placedPath, relRecipe, dicomRoot));
  return {
    patientId: c.patientId,
    courseId: c.courseId,
    dir,
    ctSeriesInstanceUid: c.ct?.seriesInstanceUid ?? null,
    files,
    linked,
    copied,
    doseRecipe: mapRecipeFiles(relRecipe, (f) => path.join(dir, f)),
    prescriptionGy: c.prescriptionGy,
    warnings: c.warnings,
  };
}

/**
 * A hard link, else a copy (another file system, or links not allowed). An existing target that is
 * the same file or has the same bytes is kept (a re-run); a different one is replaced.
 */
async function place(source: string, target: string): Promise<'linked' | 'copied' | 'kept'> {
  try {
    await fsp.link(source, target);
    return 'linked';
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      const [a, b] = await Promise.all([fsp.stat(source), fsp.stat(target)]);
      if ((a.dev === b.dev && a.ino === b.ino) || (await sameContent(source, target))) return 'kept';
      await fsp.rm(target);
      return place(source, target);
    }
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK' && code !== 'ENOTSUP') {
      throw new Error(`cannot place ${source} as ${target}: ${(e as Error).message}`);
    }
    await fsp.copyFile(source, target);
    return 'copied';
  }
}

/** A raw dataset copied behind a Part 10 header; an existing target with the same dataset is kept. */
async function placeAsPart10(inst: ScannedInstance, target: string): Promise<'copied' | 'kept'> {
  const header = part10Header({ sopClassUid: inst.sopClassUid, sopInstanceUid: inst.sopInstanceUid, transferSyntaxUid: inst.encoding.transferSyntaxUid });
  const existing = await fsp.stat(target).catch(() => undefined);
  if (existing && (await sameContent(inst.path, target, 0, header.length))) return 'kept';
  const tmp = `${target}.${process.pid}.tmp`;
  await fsp.writeFile(tmp, Buffer.concat([header, await fsp.readFile(inst.path)]));
  await fsp.rename(tmp, target);
  return 'copied';
}

function mapRecipeFiles(r: DoseRecipe, map: (file: string) => string): DoseRecipe {
  if (r.kind === 'skipped') return r;
  const files = r.files.map(map);
  if (r.kind !== 'sum-plans') return { ...r, files };
  const parts: PlanDosePart[] = r.parts.map((p) => ({ ...p, files: p.files.map(map) }));
  return { ...r, files, parts };
}

/** The course's case_metadata.json keys written by this stage (paths relative to the course folder). */
function caseMetadata(c: CoursePlan, placed: Map<string, string>, recipe: DoseRecipe, dicomRoot: string): Record<string, unknown> {
  const rel = (f: string) => placed.get(f) ?? f;
  const src = (f: string) => path.relative(dicomRoot, f);
  return {
    patientId: c.patientId,
    patientName: c.patientName,
    courseId: c.courseId,
    studyInstanceUid: c.ct?.studyInstanceUid ?? null,
    dicomRoot,
    ct: c.ct && {
      seriesInstanceUid: c.ct.seriesInstanceUid,
      studyInstanceUid: c.ct.studyInstanceUid,
      frameOfReferenceUid: c.ct.frameOfReferenceUid,
      studyDate: c.ct.studyDate,
      slices: c.ct.files.length,
      folder: 'DICOM/CT',
    },
    rtstructs: c.rtstructs.map((s) => ({ ...s, file: rel(s.file), source: src(s.file) })),
    plans: c.plans.map((p) => ({ ...p, file: rel(p.file), source: src(p.file) })),
    doses: c.doses.map((d) => ({ ...d, file: rel(d.file), source: src(d.file) })),
    otherSeries: c.otherSeries.map((s) => ({ modality: s.modality, seriesInstanceUid: s.seriesInstanceUid, frameOfReferenceUid: s.frameOfReferenceUid, files: s.files.length })),
    links: {
      doseToPlan: c.doses.flatMap((d) => d.referencedPlanUids.map((plan) => ({ dose: d.sopInstanceUid, plan, found: c.plans.some((p) => p.sopInstanceUid === plan) }))),
      planToStructureSet: c.plans.flatMap((p) => p.referencedStructureSetUids.map((s) => ({ plan: p.sopInstanceUid, structureSet: s, found: c.rtstructs.some((r) => r.sopInstanceUid === s) }))),
      structureSetToSeries: c.rtstructs.flatMap((r) => r.referencedSeriesUids.map((s) => ({ structureSet: r.sopInstanceUid, series: s, isCourseCt: s === c.ct?.seriesInstanceUid }))),
    },
    doseRecipe: recipe,
    dvh: recipe.kind === 'skipped' ? { skipped: true, reason: recipe.skipped } : { skipped: false, recipe: recipe.kind },
    prescriptionGy: c.prescriptionGy,
    warnings: c.warnings,
  };
}
