// A planned patient for the pipeline tests: CT, planning RTSTRUCT, RTPLAN and RTDOSE with a known dose.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { writeCtSeries, type CtSeriesResult } from '../../src/dicom/ct-series-writer.js';
import { readCtSeries } from '../../src/dicom/ct-series-reader.js';
import { buildRtStruct, readRtStruct } from '../../src/rt/rtstruct.js';
import { ctReference } from '../../src/rt/structure-set.js';
import { buildRtPlan, parseRtPlanSummary } from '../../src/dicom/rt-plan.js';
import { buildRtDose } from '../../src/dicom/rt-dose.js';
import { boxContours } from '../../src/dvh/synthetic-plan.js';

export const PLAN_PHANTOM = { rows: 64, columns: 64, slices: 20, pixelSpacingMm: [6, 6] as [number, number], sliceThicknessMm: 10 };

/** A planned patient: CT, planning RTSTRUCT (a 60x60 mm box PTV), a plan (60 Gy) and a PLAN dose:
 *  60 Gy everywhere in x < 0 (patient right), 20 Gy elsewhere. */
export async function plannedPatient(root: string, patientId: string): Promise<CtSeriesResult & { rtFiles: string[] }> {
  const ct = await writeCtSeries(path.join(root, patientId, 'ct'), { patientId, patientName: `${patientId}^TEST`, studyDate: '20250304', phantom: PLAN_PHANTOM });
  const vol = await readCtSeries(ct.files);
  const study = { studyInstanceUid: ct.studyInstanceUid, seriesInstanceUid: ct.seriesInstanceUid, frameOfReferenceUid: ct.frameOfReferenceUid, patientId, patientName: `${patientId}^TEST`, studyDate: '20250304', studyTime: '100000', accessionNumber: '' };
  const ref = ctReference(vol.grid, vol.sliceSopInstanceUids, study);
  const zs = ref.slices.map((s) => s.zMm).filter((z, i) => i >= 5 && i < 15);
  // The PTV straddles x = 0: half of it at 60 Gy, half at 20 Gy.
  const rs = buildRtStruct({ ct: ref, rois: [{ number: 1, name: 'PTV', color: [255, 0, 0], interpretedType: 'PTV', algorithm: 'MANUAL', contours: boxContours([-30, -30, 30, 30], zs) }], seriesDescription: 'plan structures', structureSetLabel: 'PLAN' });
  const rsUid = readRtStruct(rs).sopInstanceUid;
  const plan = buildRtPlan({ patientId, patientName: `${patientId}^TEST`, studyInstanceUid: ct.studyInstanceUid, frameOfReferenceUid: ct.frameOfReferenceUid, label: 'LUNG', date: '20250310', referencedStructureSetUid: rsUid, prescriptionGy: 60, fractions: 30 });
  const planUid = String(parseRtPlanSummary(plan).sopInstanceUid);
  const g = vol.grid;
  const doseGrid = g;
  const [nx, ny, nz] = doseGrid.dims;
  const dose = new Float32Array(nx * ny * nz);
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++) {
        const x = g.originMm[0] + i * g.spacingMm[0] * g.direction[0][0];
        dose[i + nx * (j + ny * k)] = x < 0 ? 60 : 20;
      }
  const rd = buildRtDose({ patientId, patientName: `${patientId}^TEST`, studyInstanceUid: ct.studyInstanceUid, frameOfReferenceUid: ct.frameOfReferenceUid, grid: doseGrid, doseGy: dose, summationType: 'PLAN', referencedPlan: { sopInstanceUid: planUid } });
  const rtDir = path.join(root, patientId, 'rt');
  mkdirSync(rtDir, { recursive: true });
  const rtFiles = [path.join(rtDir, 'RS.dcm'), path.join(rtDir, 'RP.dcm'), path.join(rtDir, 'RD.dcm')];
  [rs, plan, rd].forEach((bytes, i) => writeFileSync(rtFiles[i], bytes));
  return { ...ct, rtFiles };
}

