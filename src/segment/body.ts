/**
 * BODY (external contour): everything denser than air that belongs to the patient, with the lungs and
 * other internal air filled in, and without the couch.
 */
import type { Volume } from '../geometry/types.js';
import { dilateRuns, erodeRuns, fillHolesRuns, keepLargestRuns } from './morphology.js';
import type { Steps } from './steps.js';
import { thresholdRuns, type RunMask } from './runs.js';

export interface BodyOptions {
  /** Default -350 HU: between fat (~-100) and air or couch foam (< -800). */
  thresholdHu?: number;
  /** Erosion radius that breaks thin bridges to the couch, straps or cables before the largest component
   *  is taken (default 4 mm). */
  detachRadiusMm?: number;
  /** Closing radius smoothing the skin over noise (default 3 mm). */
  closingRadiusMm?: number;
}

export function* bodySteps(ct: Volume<Int16Array>, options: BodyOptions = {}): Steps<RunMask> {
  const detach = { radiusMm: options.detachRadiusMm ?? 4 };
  const dense = thresholdRuns(ct, 'above', options.thresholdHu ?? -350);
  yield;
  // Only the patient's eroded component is grown back: the opening of the patient alone. Opening the
  // whole mask first would grow a cut bridge back from both ends and rejoin a couch closer than twice
  // the radius. 6-connectivity: a couch touching only along an edge stays separate.
  const core = keepLargestRuns(erodeRuns(dense, detach), 6);
  yield;
  const patient = dilateRuns(core, detach);
  yield;
  const filled = fillHolesRuns(patient, true);
  yield;
  const closing = { radiusMm: options.closingRadiusMm ?? 3 };
  const grown = dilateRuns(filled, closing);
  yield;
  return fillHolesRuns(erodeRuns(grown, closing), true);
}
