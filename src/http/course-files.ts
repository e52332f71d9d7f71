/**
 * A finished job's course folder over HTTP: one file (GET /api/jobs/:id/files/<path>) or the
 * whole folder as a zip streamed file by file (GET /api/jobs/:id/download). Paths from the URL
 * are checked to stay inside the folder, symbolic links included.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import type { IndexDb } from '../store/index-db.js';
import { zipStream, type ZipInput } from '../io/zip.js';
import type { HttpReply } from './server.js';

export interface CourseResults {
  jobId: number;
  courseDir: string;
  courseId: string;
  patientId: string;
}

/** The course folder of a job that has results, or the HTTP answer saying why there is none. */
export function resultsOf(index: IndexDb, jobId: number): CourseResults | { error: HttpReply } {
  const job = Number.isInteger(jobId) ? index.getJob(jobId) : undefined;
  if (!job) return { error: { status: 404, body: { error: `no job ${jobId}` } } };
  const result = job.result ? (JSON.parse(job.result) as { courseDir?: unknown; courseId?: unknown; purged?: { at?: number; outputs?: boolean } }) : undefined;
  if (result?.purged?.outputs) {
    return { error: { status: 410, body: { error: `the results of job ${jobId} were removed by retention on ${new Date(result.purged.at ?? 0).toISOString()} (node.retention)` } } };
  }
  if (typeof result?.courseDir !== 'string') {
    return { error: { status: 409, body: { error: `job ${jobId} has no course folder yet (state ${job.state}); wait until it is done` } } };
  }
  const patientId = index.getStudy(job.study_uid)?.patient_id ?? 'patient';
  return { jobId, courseDir: result.courseDir, courseId: typeof result.courseId === 'string' ? result.courseId : path.basename(result.courseDir), patientId };
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.png': 'image/png',
  '.csv': 'text/csv; charset=utf-8',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.log': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.dcm': 'application/dicom',
  '.xlsx': 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  '.gz': 'application/gzip',
  '.nii': 'application/octet-stream',
  '.nrrd': 'application/octet-stream',
};

export function contentTypeOf(file: string): string {
  return CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** `rel` inside `root`, or undefined when it would leave it (`..`, absolute, a link pointing out). */
export async function insideFolder(root: string, rel: string): Promise<string | undefined> {
  if (rel === '' || rel.includes('\0') || rel.split(/[\\/]/).includes('..') || path.isAbsolute(rel)) return undefined;
  const realRoot = await fsp.realpath(root).catch(() => undefined);
  if (!realRoot) return undefined;
  const real = await fsp.realpath(path.join(realRoot, rel)).catch(() => undefined);
  if (!real) return undefined;
  const r = path.relative(realRoot, real);
  return r === '' || r.startsWith('..') || path.isAbsolute(r) ? undefined : real;
}

export async function courseFile(c: CourseResults, rel: string): Promise<HttpReply> {
  if (rel.split(/[\\/]/).includes('..') || path.isAbsolute(rel)) {
    return { status: 400, body: { error: `path "${rel}" leaves the course folder; give a path relative to it, without ".."` } };
  }
  const file = await insideFolder(c.courseDir, rel);
  const st = file ? await fsp.stat(file).catch(() => undefined) : undefined;
  if (!file || !st?.isFile()) return { status: 404, body: { error: `no file "${rel}" in the course folder of job ${c.jobId}` } };
  return { status: 200, body: createReadStream(file), contentType: contentTypeOf(file), headers: { 'content-length': String(st.size), 'cache-control': 'no-cache' } };
}

/** Regular files under `dir`, relative, sorted; links are not followed (nothing outside is zipped). */
async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  const entries = await fsp.readdir(path.join(dir, prefix), { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listFiles(dir, rel)));
    else if (e.isFile()) out.push(rel);
  }
  return out;
}

/** Already compressed: deflating again costs time for nothing. */
const STORED = new Set(['.gz', '.png', '.zip', '.xlsx', '.jpg']);

/** A download-safe file name: `<PatientID>_<CourseID>.zip` with anything odd replaced. */
export function zipName(c: CourseResults): string {
  return `${c.patientId}_${c.courseId}`.replace(/[^A-Za-z0-9._-]+/g, '_') + '.zip';
}

export async function courseZip(c: CourseResults): Promise<HttpReply> {
  const files = await listFiles(c.courseDir).catch(() => undefined);
  if (!files) return { status: 410, body: { error: `the course folder of job ${c.jobId} (${c.courseDir}) is gone` } };
  async function* entries(): AsyncGenerator<ZipInput> {
    for (const rel of files!) {
      yield { name: rel, data: await fsp.readFile(path.join(c.courseDir, rel)), compress: !STORED.has(path.extname(rel).toLowerCase()) };
    }
  }
  const name = zipName(c);
  return { status: 200, body: zipStream(entries()), contentType: 'application/zip', headers: { 'content-disposition': `attachment; filename="${name}"` } };
}
