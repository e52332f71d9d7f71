/**
 * BODY (external contour): everything denser than air that belongs to the patient, with the lungs and
 * other internal air filled in, and without the couch.
 */
import type { Mask, Volume } from '../geometry/types.js';
import { huAbove } from './mask.js';
import { close, dilate, erode, fillHolesPerSlice, keepLargestComponent } from './morphology.js';

export interface BodyOptions {
  /** Default -350 HU: between fat (~-100) and air or couch foam (< -800). */
  thresholdHu?: number;
  /** Erosion radius that breaks thin bridges to the couch, straps or cables before the largest component
   *  is taken (default 4 mm). */
  detachRadiusMm?: number;
  /** Closing radius smoothing the skin over noise (default 3 mm). */
  closingRadiusMm?: number;
}

export function segmentBody(ct: Volume<Int16Array>, options: BodyOptions = {}): Mask {
  const detach = { radiusMm: options.detachRadiusMm ?? 4 };
  const dense = huAbove(ct, options.thresholdHu ?? -350);
  // Only the patient's eroded component is grown back: the opening of the patient alone. Opening the
  // whole mask first would grow a cut bridge back from both ends and rejoin a couch closer than twice
  // the radius. 6-connectivity: a couch touching only along an edge stays separate.
  const patient = dilate(keepLargestComponent(erode(dense, detach), 6), detach);
  const filled = fillHolesPerSlice(patient);
  return fillHolesPerSlice(close(filled, { radiusMm: options.closingRadiusMm ?? 3 }));
}
