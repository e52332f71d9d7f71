import { contentUid } from '../dicom/uid.js';

/**
 * The lineage of a study's result RTSTRUCT: every version (generation) of a study's RS_auto is an
 * instance of the same series, so a PACS or TPS shows one series whose newest instance (highest
 * InstanceNumber) is current. The series UID depends only on the study and the engine, never on
 * the generation; the SOP Instance UID comes from the job's seed (which includes the generation),
 * so each version is a new instance and a re-run of the same generation rewrites the same one.
 */
export interface ResultLineage {
  seriesInstanceUid: string;
  /** The generation that made this version (1, 2, ...). */
  instanceNumber: number;
}

export function resultLineage(studyUid: string, engine: string, generation: number): ResultLineage {
  return { seriesInstanceUid: lineageSeriesUid(studyUid, `RS_auto:${engine}`), instanceNumber: generation };
}

/** The series UID of a study's result named `result` (2.25 form, from a hash). */
export function lineageSeriesUid(studyUid: string, result: string): string {
  return contentUid('rtpipeline-lineage-v1', studyUid, result);
}
