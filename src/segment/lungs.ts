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
import type { Grid, Mask, Volume } from '../geometry/types.js';
import { boundingBox, centroidMm, emptyMask, huBelow, labelStats } from './mask.js';
import { componentsInside, componentsTouchingSlice, dilate, erode, growLabels, largestComponentLabels, open } from './morphology.js';

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
  left: Mask;
  right: Mask;
}

/** Lung seeds or lungs: label 1..count per voxel. */
interface Labelled {
  labels: Uint8Array;
  count: number;
}

export function segmentLungs(ct: Volume<Int16Array>, body: Mask, options: LungOptions = {}): Lungs {
  const grid = ct.grid;
  // Air inside the body, minus air connected to the outside (the air around the patient, the couch foam).
  const air = componentsInside(huBelow(ct, options.thresholdHu ?? -400), body, 6);
  const airwayRadiusMm = options.airwayRadiusMm ?? 12;
  const core = open(air, { radiusMm: [airwayRadiusMm, airwayRadiusMm, 0] });
  const seeds = lungSeeds(core, body, options.minLungRatio ?? 0.3);
  if (seeds.count === 0) return { left: emptyMask(grid), right: emptyMask(grid) };

  const airway = airwayTree(air, core);
  const near = dilate({ grid, data: seeds.labels }, { radiusMm: options.restoreRadiusMm ?? 6 }).data;
  const band = new Uint8Array(near.length);
  for (let v = 0; v < band.length; v++) band[v] = near[v] & air.data[v] & ~airway.data[v] & (seeds.labels[v] === 0 ? 1 : 0);
  return nameBySide({ labels: growLabels(seeds.labels, band, grid.dims), count: seeds.count }, body);
}

/** The removed air (air minus the opened air) connected to the most superior slice with air. */
function airwayTree(air: Mask, core: Mask): Mask {
  const residue = new Uint8Array(air.data.length);
  for (let v = 0; v < residue.length; v++) residue[v] = air.data[v] & ~core.data[v];
  const box = boundingBox(air.data, air.grid.dims);
  if (!box) return { grid: air.grid, data: residue };
  const superiorIsHighK = air.grid.direction[2][2] >= 0;
  return componentsTouchingSlice({ grid: air.grid, data: residue }, superiorIsHighK ? box.hi[2] - 1 : box.lo[2], 26);
}

/** One seed per lung: the two largest components of the opened air, or, when the second is too small
 *  to be a lung (the lungs touch), the largest one split in two. */
function lungSeeds(core: Mask, body: Mask, minRatio: number): Labelled {
  const { labels, sizes } = largestComponentLabels(core, 2, 6);
  if (sizes.length === 2 && sizes[1] >= minRatio * sizes[0]) return { labels, count: 2 };
  if (sizes.length === 0) return { labels, count: 0 };
  for (let v = 0; v < labels.length; v++) labels[v] = labels[v] === 1 ? 1 : 0;
  return splitTouchingLungs({ grid: core.grid, data: labels }, body, minRatio) ?? { labels, count: 1 };
}

const SPLIT_RADII_MM = [4, 6, 8, 11, 15, 20, 25, 30];

/** Erodes with growing radii until the blob falls into two lung-sized parts on either side of the body's
 *  midline, then gives every voxel of the blob to the geodesically nearer part. Null if it never does
 *  (a single lung). */
function splitTouchingLungs(blob: Mask, body: Mask, minRatio: number): Labelled | null {
  const midlineX = centroidMm(body)?.[0] ?? 0;
  for (const radiusMm of SPLIT_RADII_MM) {
    const { labels, sizes } = largestComponentLabels(erode(blob, { radiusMm }), 2, 6);
    if (sizes.length === 0) return null;
    if (sizes.length < 2 || sizes[1] < minRatio * sizes[0]) continue;
    const [, a, b] = labelStats(labels, blob.grid, 2).centroidMm;
    if ((a![0] - midlineX) * (b![0] - midlineX) < 0) return { labels: growLabels(labels, blob.data, blob.grid.dims), count: 2 };
  }
  return null;
}

/** The patient's left is +x in LPS whatever the image orientation, so sides come from patient-space centroids. */
function nameBySide(lungs: Labelled, body: Mask): Lungs {
  const grid = body.grid;
  const x = labelStats(lungs.labels, grid, lungs.count).centroidMm.map((c) => c?.[0] ?? 0);
  let leftLabel: number;
  let rightLabel: number;
  if (lungs.count === 1) {
    const onLeft = x[1] > (centroidMm(body)?.[0] ?? 0);
    [leftLabel, rightLabel] = onLeft ? [1, 0] : [0, 1];
  } else {
    [leftLabel, rightLabel] = x[1] > x[2] ? [1, 2] : [2, 1];
  }
  return { left: labelMask(lungs.labels, leftLabel, grid), right: labelMask(lungs.labels, rightLabel, grid) };
}

function labelMask(labels: Uint8Array, label: number, grid: Grid): Mask {
  const data = new Uint8Array(labels.length);
  if (label === 0) return { grid, data };
  for (let v = 0; v < data.length; v++) data[v] = labels[v] === label ? 1 : 0;
  return { grid, data };
}
