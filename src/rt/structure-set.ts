/**
 * A structure set on a CT: the RTSTRUCT's reference to the CT slices, the contours of each mask on
 * those slices, display colours; and the automatic structure set (RS_auto) of any engine's masks.
 */
import { maskToContours } from '../geometry/contours.js';
import type { Contour, Grid, Mask, Vec3 } from '../geometry/types.js';
import { SOP_CLASS } from '../dicom/sop-classes.js';
import { buildRtStruct, type RoiInterpretedType, type RtStructCtReference } from './rtstruct.js';
import type { RtStructBranding } from './branding.js';

/** Patient and study identity of the CT (everything of the RTSTRUCT's CT reference but the slices). */
export type CtIdentity = Omit<RtStructCtReference, 'slices' | 'sliceNormal'>;

/** The CT as an RTSTRUCT references it: every slice, with its plane's position along the normal. */
export function ctReference(grid: Grid, sliceSopInstanceUids: readonly string[], study: CtIdentity): RtStructCtReference {
  if (sliceSopInstanceUids.length !== grid.dims[2]) {
    throw new RangeError(`the CT grid has ${grid.dims[2]} slices but ${sliceSopInstanceUids.length} slice SOP Instance UIDs were given`);
  }
  const normal = grid.direction[2] as Vec3;
  const originAlong = grid.originMm[0] * normal[0] + grid.originMm[1] * normal[1] + grid.originMm[2] * normal[2];
  return {
    ...study,
    sliceNormal: normal,
    slices: sliceSopInstanceUids.map((uid, k) => ({ sopInstanceUid: uid, sopClassUid: SOP_CLASS.CtImage, zMm: originAlong + k * grid.spacingMm[2] })),
  };
}

/** Closed planar contours of a mask, each naming the CT slice it lies on. */
export function maskContours(mask: Mask, sliceSopInstanceUids: readonly string[]): Contour[] {
  return maskToContours(mask).flatMap((cs, k) => cs.map((c) => ({ ...c, sopInstanceUid: sliceSopInstanceUids[k] })));
}

/** Distinct, readable display colours for ROIs that bring none. */
const PALETTE: [number, number, number][] = [
  [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240],
  [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128], [220, 190, 255], [170, 110, 40], [128, 0, 0],
];

export function paletteColor(index: number): [number, number, number] {
  return [...PALETTE[index % PALETTE.length]] as [number, number, number];
}

/** An engine's structure on the CT grid. */
export interface EngineStructure {
  name: string;
  mask: Mask;
  color?: [number, number, number];
  type?: RoiInterpretedType;
}

/**
 * The RTSTRUCT of automatic structures (ROI Generation Algorithm AUTOMATIC), deterministic for the
 * same seed and input; empty masks are the caller's to drop.
 */
export function automaticStructureSet(opts: {
  grid: Grid;
  sliceSopInstanceUids: readonly string[];
  study: CtIdentity;
  structures: readonly EngineStructure[];
  seed: string;
  seriesDescription: string;
  label: string;
  branding?: RtStructBranding;
  /** Series and version of the result (src/rt/lineage.ts). */
  lineage?: { seriesInstanceUid: string; instanceNumber: number };
}): Buffer {
  return buildRtStruct({
    ct: ctReference(opts.grid, opts.sliceSopInstanceUids, opts.study),
    rois: opts.structures.map((s, i) => ({
      number: i + 1,
      name: s.name,
      color: s.color ?? paletteColor(i),
      interpretedType: s.type ?? 'ORGAN',
      algorithm: 'AUTOMATIC' as const,
      contours: maskContours(s.mask, opts.sliceSopInstanceUids),
    })),
    seriesDescription: opts.seriesDescription,
    structureSetLabel: opts.label,
    seriesInstanceUid: opts.lineage?.seriesInstanceUid,
    instanceNumber: opts.lineage?.instanceNumber,
    deterministic: { seed: opts.seed },
    branding: opts.branding,
  });
}
