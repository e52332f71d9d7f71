/** A course folder of the contract's output layout: `<out>/<PatientID>/<CourseID>`. */
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import { writeFileAtomic } from '../store/durable-fs.js';

/** Characters that cannot appear in a path component taken from a DICOM identifier. */
export function sanitizeId(id: string): string {
  const s = id.replace(/[\u0000-\u001f\u007f/\\:*?"<>|]/g, '_').replace(/^\.+$/, '_').trim();
  return s.length > 0 ? s.slice(0, 64) : 'UNKNOWN';
}

/** `YYYY-MM-DD` of a DICOM date, else undefined. */
function isoDate(da: string): string | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(da.trim());
  return m ? `${m[1]}-${m[2]}-${m[3]}` : undefined;
}

/**
 * The course folder of a study (contract): CourseID is `YYYY-MM` of the earliest plan date when the
 * study has a plan, else the study date `YYYY-MM-DD`; `_2`, `_3` when another study of the patient
 * has that ID. The folder's case_metadata.json names its study.
 */
export async function courseDirFor(
  outputDir: string,
  study: { patient_id: string; study_uid: string; study_date: string },
  opts: { earliestPlanDate?: string } = {},
): Promise<{ dir: string; courseId: string }> {
  const patientDir = path.join(outputDir, sanitizeId(study.patient_id));
  // A study keeps its folder once it has one (e.g. its plan and dose arrive after the CT). Async:
  // this runs on the daemon's event loop, which must keep answering C-STOREs.
  const names = await fsp.readdir(patientDir).catch(() => [] as string[]);
  // A folder without metadata belongs to nobody yet (e.g. a job that crashed right after mkdir).
  const taken = new Set<string>();
  for (const name of names.sort()) {
    const owner = await studyOfCourse(path.join(patientDir, name));
    if (owner === study.study_uid) return { dir: path.join(patientDir, name), courseId: name };
    if (owner !== undefined) taken.add(name);
  }
  const planMonth = opts.earliestPlanDate && isoDate(opts.earliestPlanDate)?.slice(0, 7);
  const base = planMonth || (isoDate(study.study_date) ?? sanitizeId(study.study_uid));
  for (let n = 1; ; n++) {
    const courseId = n === 1 ? base : `${base}_${n}`;
    if (taken.has(courseId)) continue;
    const dir = path.join(patientDir, courseId);
    await fsp.mkdir(dir, { recursive: true });
    return { dir, courseId };
  }
}

/** The StudyInstanceUID a course folder's case_metadata.json names, if any. */
async function studyOfCourse(courseDir: string): Promise<string | undefined> {
  try {
    return (JSON.parse(await fsp.readFile(caseMetadataPath(courseDir), 'utf8')) as { studyInstanceUid?: string }).studyInstanceUid;
  } catch {
    return undefined;
  }
}

export function caseMetadataPath(courseDir: string): string {
  return path.join(courseDir, 'case_metadata.json');
}

/** Merges `patch` into the course's case_metadata.json (atomically; one writer per course at a time). */
export async function updateCaseMetadata(courseDir: string, patch: Record<string, unknown>): Promise<Record<string, unknown>> {
  const file = caseMetadataPath(courseDir);
  let current: Record<string, unknown> = {};
  try {
    current = JSON.parse(await fsp.readFile(file, 'utf8')) as Record<string, unknown>;
  } catch {
    // first write
  }
  const next = { ...current, ...patch };
  await writeFileAtomic(file, JSON.stringify(next, null, 2));
  return next;
}
