import path from 'node:path';
import { promises as fsp } from 'node:fs';
import { readCtSeries } from '../dicom/ct-series-reader.js';
import { writeNifti } from '../io/nifti.js';
import { segmentBuiltin } from '../segment/builtin.js';
import { maskToContours } from '../geometry/contours.js';
import { buildRtStruct, readRtStruct, type RtStructRoiInput } from '../rt/rtstruct.js';
import { SOP_CLASS } from '../dicom/sop-classes.js';
import { writeFileAtomic } from '../store/durable-fs.js';
import type { Vec3 } from '../geometry/types.js';

/** What the auto-segmentation of one study needs: the CT files and the study's identity. */
export interface AutoSegmentInput {
  ctFiles: string[];
  courseDir: string;
  study: {
    studyInstanceUid: string;
    seriesInstanceUid: string;
    frameOfReferenceUid: string;
    patientId: string;
    patientName: string;
    studyDate: string;
    studyTime: string;
    accessionNumber: string;
  };
  /** Makes the RTSTRUCT deterministic: a re-run of the same job writes the same bytes and UIDs. */
  seed: string;
}

export interface AutoSegmentResult {
  rsAuto: string;
  sopInstanceUid: string;
  rois: { name: string; voxels: number; volumeCm3: number; contours: number }[];
  timingsMs: Record<string, number>;
}

/**
 * The built-in auto-segmentation of a CT series into the course folder (contract layout):
 * NIFTI/ct.nii.gz, Segmentation/builtin/<ROI>.nii.gz and RS_auto.dcm.
 */
export async function autoSegment(input: AutoSegmentInput): Promise<AutoSegmentResult> {
  const timingsMs: Record<string, number> = {};
  const time = async <T>(name: string, f: () => Promise<T> | T): Promise<T> => {
    const t0 = performance.now();
    const r = await f();
    timingsMs[name] = Math.round(performance.now() - t0);
    return r;
  };
  const ct = await time('read_ct', () => readCtSeries(input.ctFiles));
  const segDir = path.join(input.courseDir, 'Segmentation', 'builtin');
  await fsp.mkdir(path.join(input.courseDir, 'NIFTI'), { recursive: true });
  await fsp.mkdir(segDir, { recursive: true });
  await time('write_ct_nifti', () => writeNifti(path.join(input.courseDir, 'NIFTI', 'ct.nii.gz'), ct, { gzipLevel: 1 }));
  const structures = await time('segment', () => segmentBuiltin(ct));
  const voxelCm3 = (ct.grid.spacingMm[0] * ct.grid.spacingMm[1] * ct.grid.spacingMm[2]) / 1000;
  const rois: RtStructRoiInput[] = [];
  const summary: AutoSegmentResult['rois'] = [];
  for (const [n, s] of structures.entries()) {
    await time(`write_${s.name}`, () => writeNifti(path.join(segDir, `${s.name}.nii.gz`), s.mask, { gzipLevel: 1 }));
    const bySlice = await time(`contour_${s.name}`, () => maskToContours(s.mask));
    const contours = bySlice.flatMap((cs, k) => cs.map((c) => ({ ...c, sopInstanceUid: ct.sliceSopInstanceUids[k] })));
    let voxels = 0;
    for (let x = 0; x < s.mask.data.length; x++) voxels += s.mask.data[x];
    summary.push({ name: s.name, voxels, volumeCm3: Math.round(voxels * voxelCm3 * 100) / 100, contours: contours.length });
    rois.push({ number: n + 1, name: s.name, color: s.color, interpretedType: s.type, algorithm: 'AUTOMATIC', contours });
  }
  const normal = ct.grid.direction[2] as Vec3;
  const zOf = (k: number) => {
    const o = ct.grid.originMm;
    const p: Vec3 = [o[0] + k * ct.grid.spacingMm[2] * normal[0], o[1] + k * ct.grid.spacingMm[2] * normal[1], o[2] + k * ct.grid.spacingMm[2] * normal[2]];
    return p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2];
  };
  const rs = await time('write_rtstruct', () =>
    buildRtStruct({
      ct: {
        ...input.study,
        sliceNormal: normal,
        slices: ct.sliceSopInstanceUids.map((uid, k) => ({ sopInstanceUid: uid, sopClassUid: SOP_CLASS.CtImage, zMm: zOf(k) })),
      },
      rois,
      seriesDescription: 'rtpipeline auto-segmentation (builtin)',
      structureSetLabel: 'RS_auto',
      deterministic: { seed: input.seed },
    }),
  );
  const rsAuto = path.join(input.courseDir, 'RS_auto.dcm');
  await writeFileAtomic(rsAuto, rs);
  return { rsAuto, sopInstanceUid: readRtStruct(rs).sopInstanceUid, rois: summary, timingsMs };
}
