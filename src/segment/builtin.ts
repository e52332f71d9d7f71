/**
 * The built-in segmentation engine: BODY, LUNG_L, LUNG_R and BONES from a CT volume by thresholds and
 * morphology. No model, no I/O; deterministic. The work is done on run-length masks (runs.ts).
 */
import type { Mask, Volume } from '../geometry/types.js';
import { bodySteps, type BodyOptions } from './body.js';
import { segmentBones, type BoneOptions } from './bones.js';
import { lungSteps, type LungOptions } from './lungs.js';
import { cropRuns, emptyRuns, maskOfRuns, runsBox, uncropRuns, type RunMask } from './runs.js';
import { runSteps, runStepsYielding, type Steps } from './steps.js';

export type BuiltinStructureName = 'BODY' | 'LUNG_L' | 'LUNG_R' | 'BONES';

interface StructureInfo {
  name: BuiltinStructureName;
  /** RGB 0-255, as ROI Display Color. */
  color: [number, number, number];
  /** RT ROI Interpreted Type. */
  type: 'EXTERNAL' | 'ORGAN';
}

export interface BuiltinStructure extends StructureInfo {
  mask: Mask;
}

/** A structure as a run-length mask on the CT's grid: a few MB where a byte mask takes 52 MB. */
export interface BuiltinRunStructure extends StructureInfo {
  runs: RunMask;
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
  return segmentBuiltinRuns(ct, options).map(({ runs, ...info }) => ({ ...info, mask: maskOfRuns(runs) }));
}

export function segmentBuiltinRuns(ct: Volume<Int16Array>, options: BuiltinOptions = {}): BuiltinRunStructure[] {
  return runSteps(builtinSteps(ct, options));
}

/** segmentBuiltinRuns, letting the event loop run between its steps (a few tens of ms each). */
export function segmentBuiltinRunsAsync(ct: Volume<Int16Array>, options: BuiltinOptions = {}): Promise<BuiltinRunStructure[]> {
  return runStepsYielding(builtinSteps(ct, options));
}

function* builtinSteps(ct: Volume<Int16Array>, options: BuiltinOptions): Steps<BuiltinRunStructure[]> {
  // A stage's time is its own work, not the pauses between its steps.
  function* timed<T>(stage: 'body' | 'lungs' | 'bones', steps: Steps<T>): Steps<T> {
    let ms = 0;
    for (;;) {
      const t0 = performance.now();
      const r = steps.next();
      ms += performance.now() - t0;
      if (r.done) {
        options.onStage?.(stage, ms);
        return r.value;
      }
      yield;
    }
  }
  const body = yield* timed('body', bodySteps(ct, options.body));
  // Lungs and bones lie inside the body, so they are found in its bounding box, where the CT is read
  // in place (no copy).
  const box = runsBox(body);
  const inBox = box ? cropRuns(body, box) : null;
  const uncrop = (m: RunMask | undefined): RunMask => (box && m ? uncropRuns(m, box, ct.grid) : emptyRuns(ct.grid));
  const lungs = inBox ? yield* timed('lungs', lungSteps(ct, inBox, box!, options.lungs)) : undefined;
  const bones = inBox ? yield* timed('bones', oneStep(() => segmentBones(ct, inBox, box!, options.bones))) : undefined;
  const structure = (name: BuiltinStructureName, runs: RunMask): BuiltinRunStructure => ({
    name,
    runs,
    color: BUILTIN_COLORS[name],
    type: name === 'BODY' ? 'EXTERNAL' : 'ORGAN',
  });
  return [
    structure('BODY', body),
    structure('LUNG_L', uncrop(lungs?.left)),
    structure('LUNG_R', uncrop(lungs?.right)),
    structure('BONES', uncrop(bones)),
  ];
}

function* oneStep<T>(run: () => T): Steps<T> {
  return run();
}
