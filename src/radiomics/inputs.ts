/**
 * Image and mask inputs of `rtpipeline radiomics`: a NIfTI image or a DICOM CT series folder, and a
 * NIfTI mask (one label) or an RTSTRUCT ROI rasterised on the image grid. Both end on one grid.
 */
import path from 'node:path';
import { promises as fsp, statSync } from 'node:fs';
import { readNifti } from '../io/nifti.js';
import { readCtSeries } from '../dicom/ct-series-reader.js';
import { readRtStruct } from '../rt/rtstruct.js';
import { contoursToMask } from '../geometry/contours.js';
import type { Grid } from '../geometry/types.js';
import type { RawVolume } from './preprocess.js';

export interface RadiomicsImage extends RawVolume {
  grid: Grid;
  data: Float64Array;
}

export class RadiomicsInputError extends Error {}

const isNifti = (f: string) => /\.nii(\.gz)?$/i.test(f);

export async function loadImage(source: string): Promise<RadiomicsImage> {
  const st = statSync(source, { throwIfNoEntry: false });
  if (!st) throw new RadiomicsInputError(`image ${source} does not exist`);
  if (st.isDirectory()) {
    const files = (await fsp.readdir(source)).filter((f) => !f.startsWith('.')).sort().map((f) => path.join(source, f));
    const ct = await readCtSeries(files);
    return { grid: ct.grid, dims: ct.grid.dims, spacingMm: ct.grid.spacingMm, data: Float64Array.from(ct.data) };
  }
  if (!isNifti(source)) throw new RadiomicsInputError(`image ${source}: expected a NIfTI file (.nii, .nii.gz) or a DICOM series folder`);
  const img = await readNifti(source);
  const data = new Float64Array(img.data.length);
  // Real values (scl_slope/scl_inter), cast through float32 as IBSI asks before any rounding.
  for (let i = 0; i < data.length; i++) data[i] = Math.fround(img.data[i] * img.sclSlope + img.sclInter);
  return { grid: img.grid, dims: img.grid.dims, spacingMm: img.grid.spacingMm, data };
}

/** A binary mask on the image's grid: voxels equal to `label` of a NIfTI, or an RTSTRUCT ROI. */
export async function loadMask(source: string, image: RadiomicsImage, opts: { label?: number; roi?: string }): Promise<RawVolume> {
  const n = image.data.length;
  const out = new Uint8Array(n);
  if (isNifti(source)) {
    const m = await readNifti(source);
    const same = m.grid.dims.every((d, i) => d === image.grid.dims[i]) && m.grid.spacingMm.every((s, i) => Math.abs(s - image.grid.spacingMm[i]) < 1e-3);
    if (!same) throw new RadiomicsInputError(`mask ${source} is ${m.grid.dims.join('x')} at ${m.grid.spacingMm.join('x')} mm; the image is ${image.grid.dims.join('x')} at ${image.grid.spacingMm.join('x')} mm: they must share a grid`);
    const label = opts.label ?? 1;
    let count = 0;
    for (let v = 0; v < n; v++) if (m.data[v] * m.sclSlope + m.sclInter === label) (out[v] = 1), count++;
    if (count === 0) throw new RadiomicsInputError(`mask ${source} has no voxel with label ${label}`);
  } else {
    const rs = readRtStruct(await fsp.readFile(source));
    if (!opts.roi) throw new RadiomicsInputError(`mask ${source} is an RTSTRUCT: name the ROI with --roi (ROIs: ${rs.rois.map((r) => r.name).join(', ')})`);
    const roi = rs.rois.find((r) => r.name === opts.roi) ?? rs.rois.find((r) => r.name.toLowerCase() === opts.roi!.toLowerCase());
    if (!roi) throw new RadiomicsInputError(`RTSTRUCT ${source} has no ROI "${opts.roi}" (ROIs: ${rs.rois.map((r) => r.name).join(', ')})`);
    const mask = contoursToMask(image.grid, roi.contours.filter((c) => c.geometricType === 'CLOSED_PLANAR').map((c) => ({ points: c.points })));
    out.set(mask.data);
    if (!out.some((v) => v === 1)) throw new RadiomicsInputError(`ROI "${roi.name}" covers no voxel of the image`);
  }
  return { dims: image.dims, spacingMm: image.spacingMm, data: out };
}
