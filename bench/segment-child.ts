/**
 * Child process of bench/segment: runs the built-in auto-segmentation (read CT, NIfTI, BODY / LUNG_L /
 * LUNG_R / BONES, contours, RS_auto.dcm) once, in a process of its own, so that its wall time and peak
 * RSS are measured exactly like plastimatch's.
 *
 * Usage: node dist/bench/segment-child.js <input.json>   (an AutoSegmentInput)
 * Prints one line `SEGMENT_CHILD {...}` on stdout: the AutoSegmentResult, the in-process wall time of
 * autoSegment and this process's own VmHWM (peak resident set) read from /proc/self/status at the end.
 */
import { readFileSync } from 'node:fs';
import { autoSegment, type AutoSegmentInput } from '../src/pipeline/auto-segment.js';

function vmHwmKb(): number {
  const m = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error('no VmHWM in /proc/self/status');
  return Number(m[1]);
}

async function main(): Promise<void> {
  const inputFile = process.argv[2];
  if (!inputFile) throw new Error('usage: segment-child <input.json>');
  const input = JSON.parse(readFileSync(inputFile, 'utf8')) as AutoSegmentInput;
  const t0 = performance.now();
  const result = await autoSegment(input);
  const autoSegmentMs = Math.round(performance.now() - t0);
  console.log(`SEGMENT_CHILD ${JSON.stringify({ result, autoSegmentMs, vmHwmKb: vmHwmKb() })}`);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`segment-child failed: ${(e as Error).stack ?? e}`);
    process.exit(1);
  },
);
