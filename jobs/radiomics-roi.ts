// Worker thread of the radiomics stage: the features of one ROI. The CT comes as a SharedArrayBuffer
// (one copy for every ROI worker); the stage terminates this thread at the per-ROI time limit.
import { parentPort, workerData } from 'node:worker_threads';
import { loadPyradiomicsParams } from '../src/radiomics/params.js';
import { extractPyradiomics } from '../src/radiomics/pyradiomics.js';

interface Input {
  image: { dims: [number, number, number]; spacingMm: [number, number, number]; shared: SharedArrayBuffer };
  mask: Uint8Array;
  paramsFile: string;
}

async function main(): Promise<[string, number][]> {
  const { image, mask, paramsFile } = workerData as Input;
  const params = await loadPyradiomicsParams(paramsFile);
  const data = new Float64Array(image.shared);
  const features = extractPyradiomics({ dims: image.dims, spacingMm: image.spacingMm, data }, { dims: image.dims, spacingMm: image.spacingMm, data: mask }, params, { label: 1 });
  return [...features];
}

main().then(
  (features) => parentPort!.postMessage({ ok: true, features }),
  (e: Error) => parentPort!.postMessage({ ok: false, error: e.message }),
);
