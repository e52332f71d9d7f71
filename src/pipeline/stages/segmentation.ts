/**
 * The segmentation stage of a course: the configured engine writes Segmentation/<engine>/*.nii.gz
 * and RS_auto.dcm. Engine "none" (routing only) does nothing and says so.
 */
import type { StageContext } from '../job-host.js';
import { autoSegment, type AutoSegmentInput, type AutoSegmentResult } from '../auto-segment.js';

export interface SegmentationInput {
  engine: 'builtin' | 'totalsegmentator' | 'none';
  /** The CT to segment; absent when the course has no CT series. */
  ct?: AutoSegmentInput;
}

export type SegmentationResult = { engine: string; skipped: string } | ({ engine: string } & AutoSegmentResult);

export async function segmentationStage(input: SegmentationInput, ctx: StageContext): Promise<SegmentationResult> {
  if (input.engine === 'none') return { engine: 'none', skipped: 'segmentation engine is "none"' };
  if (!input.ct) return { engine: input.engine, skipped: 'no CT series in the study' };
  if (input.engine === 'builtin') {
    const result = await autoSegment(input.ct);
    ctx.log('info', 'auto-segmentation written', { rsAuto: result.rsAuto, rois: result.rois, timingsMs: result.timingsMs });
    return { engine: 'builtin', ...result };
  }
  throw new Error(`segmentation engine "${input.engine}" is not wired in yet`);
}
