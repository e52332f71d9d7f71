// Worker-thread job: the built-in auto-segmentation of one study, off the node's event loop so
// that C-STOREs keep being answered while a CT is segmented. Thin: the work is in src/pipeline.
import { parentPort, workerData } from 'node:worker_threads';
import { autoSegment, type AutoSegmentInput } from '../src/pipeline/auto-segment.js';

autoSegment(workerData as AutoSegmentInput).then(
  (result) => parentPort!.postMessage({ ok: true, result }),
  (e: Error) => parentPort!.postMessage({ ok: false, error: e.message }),
);
