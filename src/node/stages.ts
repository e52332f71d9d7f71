import path from 'node:path';
import { promises as fsp } from 'node:fs';
import type { IndexDb, JobRow } from '../store/index-db.js';
import type { Destination } from '../config/schema.js';
import { writeFileAtomic } from '../store/durable-fs.js';
import type { OutboundQueue } from './outbound.js';
import type { StageFn } from './job-runner.js';

/** Characters that cannot appear in a path component taken from a DICOM identifier. */
export function sanitizeId(id: string): string {
  const s = id.replace(/[\u0000-\u001f\u007f/\\:*?"<>|]/g, '_').replace(/^\.+$/, '_').trim();
  return s.length > 0 ? s.slice(0, 64) : 'UNKNOWN';
}

/**
 * The daemon's study job until the full pipeline lands: write the study manifest (what arrived,
 * per series) and, in routing mode, queue the study for every destination.
 */
export function studyJobStage(deps: { index: IndexDb; outputDir: string; destinations: Destination[]; forward: boolean; outbound: OutboundQueue }): StageFn {
  return async (job: JobRow) => {
    const study = deps.index.getStudy(job.study_uid);
    if (!study) throw new Error(`study ${job.study_uid} is not in the index`);
    const series = deps.index.seriesOfStudy(job.study_uid);
    const instances = deps.index.instancesOfStudy(job.study_uid);
    const dir = path.join(deps.outputDir, sanitizeId(study.patient_id), sanitizeId(study.study_uid));
    await fsp.mkdir(dir, { recursive: true });
    const manifest = {
      patientId: study.patient_id,
      patientName: study.patient_name,
      studyInstanceUid: study.study_uid,
      studyDate: study.study_date,
      generation: job.generation,
      callingAet: study.calling_aet,
      series: series.map((s) => ({ seriesInstanceUid: s.series_uid, modality: s.modality, number: s.number, description: s.description, frameOfReferenceUid: s.frame_of_reference_uid, instances: s.instance_count })),
      instances: instances.length,
      bytes: instances.reduce((a, i) => a + i.size, 0),
    };
    await writeFileAtomic(path.join(dir, 'study_manifest.json'), JSON.stringify(manifest, null, 2));
    const queued: number[] = [];
    if (deps.forward) {
      for (const d of deps.destinations) queued.push(deps.outbound.enqueue(d, instances.map((i) => i.path), `job:${job.id}`));
    }
    return { manifest: path.join(dir, 'study_manifest.json'), series: series.length, instances: instances.length, outbound: queued };
  };
}
