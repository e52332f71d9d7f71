/**
 * BONES: bone-density voxels inside the body (which keeps out the couch shell and any other dense
 * object outside the patient), without isolated specks.
 */
import type { Volume } from '../geometry/types.js';
import { voxelVolumeMm3, type Box } from './mask.js';
import { removeSmallRuns } from './morphology.js';
import { thresholdWithin, type RunMask } from './runs.js';

export interface BoneOptions {
  /** Default 250 HU: above contrast-free soft tissue and noise, below cortical and most trabecular bone. */
  thresholdHu?: number;
  /** Components smaller than this are dropped as noise or calcifications (default 100 mm³). */
  minComponentMm3?: number;
}

/** `body` lies on `box` of the CT's grid (the whole grid when no box is given); so does the result. */
export function segmentBones(ct: Volume<Int16Array>, body: RunMask, box?: Box, options: BoneOptions = {}): RunMask {
  // Only the voxels inside the body are read.
  const dense = thresholdWithin(ct, 'above', options.thresholdHu ?? 250, body, box);
  const minVoxels = Math.ceil((options.minComponentMm3 ?? 100) / voxelVolumeMm3(ct.grid));
  return removeSmallRuns(dense, minVoxels, 26);
}
