import { createHash } from 'node:crypto';

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

/** 2.25.<128-bit integer> (PS3.5 B.2) from a hash of the study and the result's name. */
export function lineageSeriesUid(studyUid: string, result: string): string {
  const bytes = createHash('sha256').update(`rtpipeline-lineage-v1\0${studyUid}\0${result}`).digest().subarray(0, 16);
  // RFC 9562 version-8 / variant bits, like the project's other derived UIDs.
  bytes[6] = (bytes[6] & 0x0f) | 0x80;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  return `2.25.${BigInt('0x' + bytes.toString('hex')).toString(10)}`;
}
