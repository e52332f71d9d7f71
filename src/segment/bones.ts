/**
 * BONES: bone-density voxels inside the body (which keeps out the couch shell and any other dense
 * object outside the patient), without isolated specks.
 */
import type { Mask, Volume } from '../geometry/types.js';
import { huAbove, intersect, voxelVolumeMm3 } from './mask.js';
import { removeSmallComponents } from './morphology.js';

export interface BoneOptions {
  /** Default 250 HU: above contrast-free soft tissue and noise, below cortical and most trabecular bone. */
  thresholdHu?: number;
  /** Components smaller than this are dropped as noise or calcifications (default 100 mm³). */
  minComponentMm3?: number;
}

export function segmentBones(ct: Volume<Int16Array>, body: Mask, options: BoneOptions = {}): Mask {
  const dense = intersect(huAbove(ct, options.thresholdHu ?? 250), body);
  const minVoxels = Math.ceil((options.minComponentMm3 ?? 100) / voxelVolumeMm3(ct.grid));
  return removeSmallComponents(dense, minVoxels, 26);
}
