/**
 * Small RT courses for tests: a tiny CT series with an RTSTRUCT on it, plans on that structure set,
 * and doses on a grid in the CT's frame of reference. Written with the project's own writers
 * (writeCtSeries, buildRtStruct, buildRtPlan, buildRtDose).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { writeCtSeries } from '../../src/dicom/ct-series-writer.js';
import { buildRtDose, type DoseSummationType } from '../../src/dicom/rt-dose.js';
import { buildRtPlan } from '../../src/dicom/rt-plan.js';
import { SOP_CLASS } from '../../src/dicom/sop-classes.js';
import { newUid } from '../../src/dicom/uid.js';
import type { Grid, Vec3 } from '../../src/geometry/types.js';
import { thoraxSlices, type PhantomSpec } from '../../src/phantom/thorax.js';
import { buildRtStruct, readRtStruct } from '../../src/rt/rtstruct.js';

/** 16x16x4 voxels of 4x4x5 mm: centres x,y in [-30, 30], z in [-7.5, 7.5]. */
export const TINY_PHANTOM: PhantomSpec = { rows: 16, columns: 16, slices: 4, pixelSpacingMm: [4, 4], sliceThicknessMm: 5, seed: 1 };

export interface CtCourseFixture {
  patientId: string;
  patientName: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  frameOfReferenceUid: string;
  ctFiles: string[];
  rtstructFile: string;
  rtstructUid: string;
}

/** A CT series in `dir/CT` and an RTSTRUCT (one square ROI) on it in `dir/RS.dcm`. */
export async function writeCtWithStructures(
  dir: string,
  opts: { patientId: string; patientName?: string; studyDate: string; transferSyntax?: 'explicit' | 'implicit' },
): Promise<CtCourseFixture> {
  const patientName = opts.patientName ?? `TEST^${opts.patientId}`;
  const ct = await writeCtSeries(path.join(dir, 'CT'), {
    patientId: opts.patientId,
    patientName,
    studyDate: opts.studyDate,
    transferSyntax: opts.transferSyntax,
    phantom: TINY_PHANTOM,
  });
  // writeCtSeries names each file CT.<SOPInstanceUID>.dcm, in slice order.
  const sliceUids = ct.files.map((f) => path.basename(f).replace(/^CT\./, '').replace(/\.dcm$/, ''));
  const z = [...thoraxSlices(TINY_PHANTOM)].map((s) => s.zMm);
  const square = (zMm: number) => Float64Array.from([-10, -10, zMm, 10, -10, zMm, 10, 10, zMm, -10, 10, zMm]);
  const rs = buildRtStruct({
    ct: {
      studyInstanceUid: ct.studyInstanceUid,
      seriesInstanceUid: ct.seriesInstanceUid,
      frameOfReferenceUid: ct.frameOfReferenceUid,
      patientId: opts.patientId,
      patientName,
      studyDate: opts.studyDate,
      slices: sliceUids.map((sopInstanceUid, k) => ({ sopInstanceUid, sopClassUid: SOP_CLASS.CtImage, zMm: z[k] })),
    },
    rois: [{ number: 1, name: 'PTV', color: [255, 0, 0], interpretedType: 'PTV', algorithm: 'MANUAL', contours: z.map((zz) => ({ points: square(zz) })) }],
    structureSetDate: opts.studyDate,
    structureSetTime: '120000',
  });
  const rtstructFile = path.join(dir, 'RS.dcm');
  await writeFile(rtstructFile, rs);
  return {
    patientId: opts.patientId,
    patientName,
    studyInstanceUid: ct.studyInstanceUid,
    seriesInstanceUid: ct.seriesInstanceUid,
    frameOfReferenceUid: ct.frameOfReferenceUid,
    ctFiles: ct.files,
    rtstructFile,
    rtstructUid: readRtStruct(rs).sopInstanceUid,
  };
}

export interface WrittenObject {
  file: string;
  sopInstanceUid: string;
}

/** An RTPLAN on the fixture's structure set with `beams` treatment beams numbered 1..n. */
export async function writePlan(
  file: string,
  ct: CtCourseFixture,
  opts: { label: string; date: string; prescriptionGy?: number; beams?: number },
): Promise<WrittenObject> {
  const sopInstanceUid = newUid();
  const bytes = buildRtPlan({
    patientId: ct.patientId,
    patientName: ct.patientName,
    studyInstanceUid: ct.studyInstanceUid,
    frameOfReferenceUid: ct.frameOfReferenceUid,
    sopInstanceUid,
    label: opts.label,
    date: opts.date,
    referencedStructureSetUid: ct.rtstructUid,
    prescriptionGy: opts.prescriptionGy,
    fractions: 5,
    beams: Array.from({ length: opts.beams ?? 2 }, (_, n) => ({ number: n + 1, name: `B${n + 1}`, gantryAngleDeg: n * 90, metersetMu: 100 })),
  });
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, bytes);
  return { file, sopInstanceUid };
}

/** The default dose grid: 8x8x4 voxels of 8x8x5 mm over the CT (centres x,y in [-28, 28]). */
export const DOSE_GRID: Grid = { dims: [8, 8, 4], spacingMm: [8, 8, 5], originMm: [-28, -28, -7.5], direction: [[1, 0, 0], [0, 1, 0], [0, 0, 1]] };

/** An RTDOSE in the fixture's frame of reference; dose = `gy(x, y, z)` at each voxel centre (default uniform `valueGy`). */
export async function writeDose(
  file: string,
  ct: CtCourseFixture,
  opts: {
    summationType: DoseSummationType;
    planUid?: string;
    beamNumber?: number;
    valueGy?: number;
    gy?: (p: Vec3) => number;
    grid?: Grid;
    frameOfReferenceUid?: string;
  },
): Promise<WrittenObject> {
  const grid = opts.grid ?? DOSE_GRID;
  const [nx, ny, nz] = grid.dims;
  const doseGy = new Float32Array(nx * ny * nz);
  for (let k = 0, n = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++, n++) {
        const p: Vec3 = [0, 1, 2].map((a) => grid.originMm[a] + i * grid.spacingMm[0] * grid.direction[0][a] + j * grid.spacingMm[1] * grid.direction[1][a] + k * grid.spacingMm[2] * grid.direction[2][a]) as Vec3;
        doseGy[n] = opts.gy ? opts.gy(p) : (opts.valueGy ?? 1);
      }
    }
  }
  const sopInstanceUid = newUid();
  const bytes = buildRtDose({
    patientId: ct.patientId,
    patientName: ct.patientName,
    studyInstanceUid: ct.studyInstanceUid,
    frameOfReferenceUid: opts.frameOfReferenceUid ?? ct.frameOfReferenceUid,
    sopInstanceUid,
    seriesInstanceUid: newUid(),
    grid,
    doseGy,
    summationType: opts.summationType,
    referencedPlan: opts.planUid ? { sopInstanceUid: opts.planUid, beamNumber: opts.beamNumber } : undefined,
  });
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, bytes);
  return { file, sopInstanceUid };
}
