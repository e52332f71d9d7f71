/**
 * LUNG_L and LUNG_R: air-density voxels enclosed by the body, without the trachea and main bronchi,
 * split into the two lungs and named by side (DICOM LPS: the patient's left is +x).
 *
 * An opening per slice with a disc wider than the airways removes the trachea and main bronchi (however a
 * tube runs, its axial section is at most one diameter thick across) but keeps the lungs, which are far
 * thicker. The two largest components left are the lung seeds; they grow back
 * over the few millimetres of lung edge the opening shaved off, but not into the airway tree (the
 * part of the removed air that reaches the top of the scan, where only the trachea is).
 */
import { voxelToPatient, type Volume } from '../geometry/types.js';
import type { Box } from './mask.js';
import {
  componentsInsideRuns,
  componentsTouchingSliceRuns,
  dilateRuns,
  erodeRuns,
  growLabelRuns,
  largestLabelRuns,
  openRuns,
} from './morphology.js';
import {
  emptyRuns,
  intersectRuns,
  runLabelStats,
  runsBox,
  runsWithLabel,
  subtractRuns,
  thresholdRuns,
  type LabelledRunMask,
  type RunMask,
} from './runs.js';
import type { Steps } from './steps.js';

export interface LungOptions {
  /** Default -400 HU: lung parenchyma is ~-850, soft tissue ~40. */
  thresholdHu?: number;
  /** Radius of the per-slice opening disc, larger than the radius of the trachea and main bronchi
   *  (default 12 mm). */
  airwayRadiusMm?: number;
  /** How far (mm) the lungs grow back into the air the opening shaved off their edges (default 6 mm). */
  restoreRadiusMm?: number;
  /** The second component counts as a lung only if at least this fraction of the first (default 0.3);
   *  otherwise the lungs are taken to touch and the largest component is split. */
  minLungRatio?: number;
}

export interface Lungs {
  left: RunMask;
  right: RunMask;
}

/** Lung seeds or lungs: runs labelled 1..count. */
interface Labelled {
  labelled: LabelledRunMask;
  count: number;
}

export function* lungSteps(ct: Volume<Int16Array>, body: RunMask, box?: Box, options: LungOptions = {}): Steps<Lungs> {
  const grid = body.grid;
  // Air inside the body, minus air connected to the outside (the air around the patient, the couch foam).
  const air = componentsInsideRuns(thresholdRuns(ct, 'below', options.thresholdHu ?? -400, box), body, 6);
  yield;
  const airwayRadiusMm = options.airwayRadiusMm ?? 12;
  const core = openRuns(air, { radiusMm: [airwayRadiusMm, airwayRadiusMm, 0] });
  yield;
  const seeds = lungSeeds(core, body, options.minLungRatio ?? 0.3);
  if (seeds.count === 0) return { left: emptyRuns(grid), right: emptyRuns(grid) };
  yield;
  const airway = airwayTree(air, core);
  const near = dilateRuns(seeds.labelled, { radiusMm: options.restoreRadiusMm ?? 6 });
  yield;
  const band = subtractRuns(subtractRuns(intersectRuns(near, air), airway), seeds.labelled);
  return nameBySide({ labelled: growLabelRuns(seeds.labelled, band), count: seeds.count }, body);
}

/** The removed air (air minus the opened air) connected to the most superior slice with air. */
function airwayTree(air: RunMask, core: RunMask): RunMask {
  const residue = subtractRuns(air, core);
  const box = runsBox(air);
  if (!box) return residue;
  const superiorIsHighK = air.grid.direction[2][2] >= 0;
  return componentsTouchingSliceRuns(residue, superiorIsHighK ? box.hi[2] - 1 : box.lo[2], 26);
}

/** One seed per lung: the two largest components of the opened air, or, when the second is too small
 *  to be a lung (the lungs touch), the largest one split in two. */
function lungSeeds(core: RunMask, body: RunMask, minRatio: number): Labelled {
  const { labelled, sizes } = largestLabelRuns(core, 2, 6);
  if (sizes.length === 2 && sizes[1] >= minRatio * sizes[0]) return { labelled, count: 2 };
  if (sizes.length === 0) return { labelled, count: 0 };
  const blob = runsWithLabel(labelled, 1);
  return splitTouchingLungs(blob, body, minRatio) ?? { labelled: { ...blob, label: new Uint8Array(blob.start.length).fill(1) }, count: 1 };
}

const SPLIT_RADII_MM = [4, 6, 8, 11, 15, 20, 25, 30];

/** Erodes with growing radii until the blob falls into two lung-sized parts on either side of the body's
 *  midline, then gives every voxel of the blob to the geodesically nearer part. Null if it never does
 *  (a single lung). */
function splitTouchingLungs(blob: RunMask, body: RunMask, minRatio: number): Labelled | null {
  const midlineX = centroidX(body);
  for (const radiusMm of SPLIT_RADII_MM) {
    const { labelled, sizes } = largestLabelRuns(erodeRuns(blob, { radiusMm }), 2, 6);
    if (sizes.length === 0) return null;
    if (sizes.length < 2 || sizes[1] < minRatio * sizes[0]) continue;
    const [, a, b] = centroidsX(labelled, 2);
    if ((a - midlineX) * (b - midlineX) < 0) return { labelled: growLabelRuns(labelled, blob), count: 2 };
  }
  return null;
}

/** The patient's left is +x in LPS whatever the image orientation, so sides come from patient-space centroids. */
function nameBySide(lungs: Labelled, body: RunMask): Lungs {
  const x = centroidsX(lungs.labelled, lungs.count);
  let leftLabel: number;
  let rightLabel: number;
  if (lungs.count === 1) {
    const onLeft = x[1] > centroidX(body);
    [leftLabel, rightLabel] = onLeft ? [1, 0] : [0, 1];
  } else {
    [leftLabel, rightLabel] = x[1] > x[2] ? [1, 2] : [2, 1];
  }
  const side = (label: number) => (label === 0 ? emptyRuns(body.grid) : runsWithLabel(lungs.labelled, label));
  return { left: side(leftLabel), right: side(rightLabel) };
}

/** Patient x (mm) of the centroid of each label 1..count (index 0 unused; 0 for an empty label). The
 *  grid is affine, so the voxel-index centroid maps through it. */
function centroidsX(m: LabelledRunMask, count: number): number[] {
  return runLabelStats(m, count).centroidVoxel.map((c) => (c ? voxelToPatient(m.grid, c[0], c[1], c[2])[0] : 0));
}

function centroidX(m: RunMask): number {
  return centroidsX({ ...m, label: new Uint8Array(m.start.length).fill(1) }, 1)[1];
}
