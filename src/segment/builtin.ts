/**
 * The built-in segmentation engine: BODY, LUNG_L, LUNG_R and BONES from a CT volume by thresholds and
 * morphology. No model, no I/O; deterministic.
 */
import type { Mask, Volume } from '../geometry/types.js';
import { segmentBody, type BodyOptions } from './body.js';
import { boundingBox, cropData, cropGrid, emptyMask, pasteData, type Box } from './mask.js';
import { segmentBones, type BoneOptions } from './bones.js';
import { segmentLungs, type LungOptions } from './lungs.js';

export type BuiltinStructureName = 'BODY' | 'LUNG_L' | 'LUNG_R' | 'BONES';

export interface BuiltinStructure {
  name: BuiltinStructureName;
  mask: Mask;
  /** RGB 0-255, as ROI Display Color. */
  color: [number, number, number];
  /** RT ROI Interpreted Type. */
  type: 'EXTERNAL' | 'ORGAN';
}

export interface BuiltinOptions {
  body?: BodyOptions;
  lungs?: LungOptions;
  bones?: BoneOptions;
  /** Called after each stage with its wall time, e.g. to log or export metrics. */
  onStage?: (stage: 'body' | 'lungs' | 'bones', ms: number) => void;
}

export const BUILTIN_COLORS: Record<BuiltinStructureName, [number, number, number]> = {
  BODY: [0, 255, 0],
  LUNG_L: [0, 128, 255],
  LUNG_R: [0, 255, 255],
  BONES: [255, 255, 150],
};

export function segmentBuiltin(ct: Volume<Int16Array>, options: BuiltinOptions = {}): BuiltinStructure[] {
  const timed = <T>(stage: 'body' | 'lungs' | 'bones', run: () => T): T => {
    const t0 = performance.now();
    const result = run();
    options.onStage?.(stage, performance.now() - t0);
    return result;
  };
  const body = timed('body', () => segmentBody(ct, options.body));
  // Lungs and bones lie inside the body, so they are found in its bounding box: less than half of a
  // typical CT volume, and every full-volume pass is that much cheaper.
  const box = boundingBox(body.data, ct.grid.dims);
  const inBox = box ? cropToBox(ct, body, box) : null;
  const uncrop = (m: Mask): Mask => (box ? { grid: ct.grid, data: pasteData(m.data, box, ct.grid.dims, new Uint8Array(body.data.length)) } : emptyMask(ct.grid));
  const lungs = timed('lungs', () => (inBox ? segmentLungs(inBox.ct, inBox.body, options.lungs) : null));
  const bones = timed('bones', () => (inBox ? segmentBones(inBox.ct, inBox.body, options.bones) : null));
  const structure = (name: BuiltinStructureName, mask: Mask): BuiltinStructure => ({
    name,
    mask,
    color: BUILTIN_COLORS[name],
    type: name === 'BODY' ? 'EXTERNAL' : 'ORGAN',
  });
  return [
    structure('BODY', body),
    structure('LUNG_L', lungs ? uncrop(lungs.left) : emptyMask(ct.grid)),
    structure('LUNG_R', lungs ? uncrop(lungs.right) : emptyMask(ct.grid)),
    structure('BONES', bones ? uncrop(bones) : emptyMask(ct.grid)),
  ];
}

function cropToBox(ct: Volume<Int16Array>, body: Mask, box: Box): { ct: Volume<Int16Array>; body: Mask } {
  const grid = cropGrid(ct.grid, box);
  return { ct: { grid, data: cropData(ct.data, ct.grid.dims, box) }, body: { grid, data: cropData(body.data, ct.grid.dims, box) } };
}
