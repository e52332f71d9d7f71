import path from 'node:path';
import { existsSync, readFileSync, promises as fsp } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { IndexDb, JobRow, StudyRow } from '../store/index-db.js';
import type { Destination } from '../config/schema.js';
import { writeFileAtomic } from '../store/durable-fs.js';
import { SOP_CLASS } from '../dicom/sop-classes.js';
import type { OutboundQueue } from './outbound.js';
import type { StageFn } from './job-runner.js';
import type { AutoSegmentInput, AutoSegmentResult } from '../pipeline/auto-segment.js';
import type { Logger } from '../log.js';

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
 * The course folder of a study (contract): `<out>/<PatientID>/<CourseID>` with CourseID the study
 * date (no plan yet in the daemon), `_2`, `_3` when another study of the patient has that date.
 */
export async function courseDirFor(outputDir: string, study: StudyRow): Promise<{ dir: string; courseId: string }> {
  const base = isoDate(study.study_date) ?? sanitizeId(study.study_uid);
  const patientDir = path.join(outputDir, sanitizeId(study.patient_id));
  for (let n = 1; ; n++) {
    const courseId = n === 1 ? base : `${base}_${n}`;
    const dir = path.join(patientDir, courseId);
    const meta = path.join(dir, 'case_metadata.json');
    if (!existsSync(meta)) {
      await fsp.mkdir(dir, { recursive: true });
      return { dir, courseId };
    }
    const owner = (JSON.parse(readFileSync(meta, 'utf8')) as { studyInstanceUid?: string }).studyInstanceUid;
    if (owner === study.study_uid) return { dir, courseId };
  }
}

/** Runs the auto-segmentation job file in a worker thread: CPU-heavy work off the DICOM event loop. */
function runAutoSegmentWorker(input: AutoSegmentInput): Promise<AutoSegmentResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('../../jobs/auto-segment.js', import.meta.url), { workerData: input });
    worker.once('message', (m: { ok: boolean; result?: AutoSegmentResult; error?: string }) => (m.ok ? resolve(m.result!) : reject(new Error(m.error))));
    worker.once('error', reject);
    worker.once('exit', (code) => (code !== 0 ? reject(new Error(`auto-segmentation worker exited with code ${code}`)) : undefined));
  });
}

export interface StudyJobDeps {
  index: IndexDb;
  outputDir: string;
  destinations: Destination[];
  forward: boolean;
  engine: 'builtin' | 'totalsegmentator' | 'none';
  outbound: OutboundQueue;
}

/**
 * The daemon's study job: write the course folder's metadata; with the built-in engine, segment the
 * study's CT and queue RS_auto.dcm for every destination; in routing mode, forward the study too.
 */
export function studyJobStage(deps: StudyJobDeps): StageFn {
  return async (job: JobRow, log: Logger) => {
    const study = deps.index.getStudy(job.study_uid);
    if (!study) throw new Error(`study ${job.study_uid} is not in the index`);
    const series = deps.index.seriesOfStudy(job.study_uid);
    const instances = deps.index.instancesOfStudy(job.study_uid);
    const { dir, courseId } = await courseDirFor(deps.outputDir, study);
    const metadata: Record<string, unknown> = {
      patientId: study.patient_id,
      patientName: study.patient_name,
      courseId,
      studyInstanceUid: study.study_uid,
      studyDate: study.study_date,
      generation: job.generation,
      callingAet: study.calling_aet,
      series: series.map((s) => ({ seriesInstanceUid: s.series_uid, modality: s.modality, number: s.number, description: s.description, frameOfReferenceUid: s.frame_of_reference_uid, instances: s.instance_count })),
      instances: instances.length,
      bytes: instances.reduce((a, i) => a + i.size, 0),
    };
    const manifest = path.join(dir, 'case_metadata.json');
    await writeFileAtomic(manifest, JSON.stringify(metadata, null, 2));
    const queued: number[] = [];
    if (deps.forward) {
      for (const d of deps.destinations) queued.push(deps.outbound.enqueue(d, instances.map((i) => i.path), `job:${job.id}`));
    }
    let segmentation: AutoSegmentResult | { skipped: string } = { skipped: `segmentation engine is "${deps.engine}"` };
    const ctSeries = series
      .filter((s) => s.modality === 'CT')
      .map((s) => ({ s, files: instances.filter((i) => i.series_uid === s.series_uid && i.sop_class_uid === SOP_CLASS.CtImage) }))
      .sort((a, b) => b.files.length - a.files.length)[0];
    if (deps.engine === 'builtin' && !ctSeries) segmentation = { skipped: 'no CT series in the study' };
    else if (deps.engine === 'builtin' && ctSeries) {
      const result = await runAutoSegmentWorker({
        ctFiles: ctSeries.files.map((f) => f.path),
        courseDir: dir,
        study: {
          studyInstanceUid: study.study_uid,
          seriesInstanceUid: ctSeries.s.series_uid,
          frameOfReferenceUid: ctSeries.s.frame_of_reference_uid ?? '',
          patientId: study.patient_id,
          patientName: study.patient_name,
          studyDate: study.study_date,
          studyTime: study.study_time,
          accessionNumber: study.accession,
        },
        // Same study, generation and input series: same RTSTRUCT bytes and UIDs after a crash and re-run.
        seed: `rtpipeline-builtin-v1:${study.study_uid}:${ctSeries.s.series_uid}:${job.generation}:${ctSeries.files.length}`,
      });
      log.info({ rsAuto: result.rsAuto, rois: result.rois, timingsMs: result.timingsMs }, 'auto-segmentation written');
      for (const d of deps.destinations) queued.push(deps.outbound.enqueue(d, [result.rsAuto], `job:${job.id}:rs_auto`));
      segmentation = result;
      metadata.segmentation = { engine: 'builtin', rsAuto: result.rsAuto, sopInstanceUid: result.sopInstanceUid, rois: result.rois };
      await writeFileAtomic(manifest, JSON.stringify(metadata, null, 2));
    }
    return { courseDir: dir, manifest, series: series.length, instances: instances.length, segmentation, outbound: queued };
  };
}
