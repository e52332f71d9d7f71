import { readFile } from 'node:fs/promises';
import type { IndexDb } from '../store/index-db.js';
import { SOP_CLASS } from '../dicom/sop-classes.js';
import { readCtSliceHeaders } from '../dicom/ct-series-reader.js';
import { readRtStruct } from '../rt/rtstruct.js';
import { validateRtStruct, type CtSeriesGeometry } from '../rt/rtstruct-validate.js';

/**
 * Validates an RTSTRUCT file about to be sent against its study as the index knows it: reads the
 * structure set, the study's instances and the referenced CT series' slice headers (first bytes of
 * each file, no pixels), and runs the pure checks of rtstruct-validate.ts. Returns the failures
 * (empty = it may leave). `studyUid` is the outbound item's study; without one, the structure
 * set's own study is used.
 */
export async function validateOutgoingRtStruct(file: string, index: IndexDb, studyUid: string | null): Promise<string[]> {
  let rs;
  try {
    rs = readRtStruct(await readFile(file));
  } catch (e) {
    return [`cannot read the RTSTRUCT ${file}: ${(e as Error).message}`];
  }
  const study = studyUid ?? rs.studyInstanceUid;
  const instances = index.instancesOfStudy(study);
  const series = index.seriesOfStudy(study).find((s) => s.series_uid === rs.referencedSeriesInstanceUid && s.modality === 'CT');
  let ctSeries: CtSeriesGeometry | undefined;
  if (series) {
    const files = instances.filter((i) => i.series_uid === series.series_uid && i.sop_class_uid === SOP_CLASS.CtImage).map((i) => i.path);
    try {
      ctSeries = { seriesInstanceUid: series.series_uid, frameOfReferenceUid: series.frame_of_reference_uid, slices: readCtSliceHeaders(files) };
    } catch (e) {
      return [`cannot read the geometry of CT series ${series.series_uid}: ${(e as Error).message}`];
    }
  }
  return validateRtStruct(rs, {
    instances: instances.map((i) => ({ sopInstanceUid: i.sop_uid, sopClassUid: i.sop_class_uid, seriesInstanceUid: i.series_uid })),
    ctSeries,
  });
}
