/**
 * Robustness benchmark: the standard perturbation grid (81 perturbations: noise 0/10/20 HU, z
 * translations 0/±4 mm, 2 contour realisations + the original, volume −15/0/+15 %) on the IBSI CT
 * phantom's GTV, Original-image features of every class (pyradiomics mode, bin width 25). Reports
 * the time of the perturbations alone and with the feature extraction, per perturbation.
 * Run: `npx tsc -p tsconfig.json && node dist/bench/robustness.js` (or BENCH_ONLY=robustness npm run bench).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readNifti } from '../src/io/nifti.js';
import { parsePyradiomicsParams } from '../src/radiomics/params.js';
import { extractPyradiomics } from '../src/radiomics/pyradiomics.js';
import { applyPerturbation, perturbationCount, perturbations, type PerturbationSettings } from '../src/robustness/perturb.js';

const STANDARD: PerturbationSettings = {
  intensity: 'standard',
  small_volume_changes: [-0.15, 0, 0.15],
  large_volume_changes: [-0.3, 0.3],
  max_translation_mm: 4,
  n_random_contour_realizations: 2,
  noise_levels: [0, 10, 20],
};
const ORIGINAL_ALL = 'imageType:\n  Original: {}\nfeatureClass:\n  shape:\n  firstorder:\n  glcm:\n  glrlm:\n  glszm:\n  gldm:\n  ngtdm:\nsetting:\n  binWidth: 25\n';

export interface RobustnessBenchResult {
  perturbations: number;
  perturbSeconds: number;
  totalSeconds: number;
  secondsPerPerturbation: number;
}

function phantomDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const repo = path.resolve(here, here.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');
  const candidates = [process.env.RTPIPELINE_SHARED_DIR, path.resolve(repo, '../shared'), '/work/shared'].filter((c): c is string => !!c);
  const found = candidates.find((c) => existsSync(path.join(c, 'reference/ibsi')));
  if (!found) throw new Error(`the IBSI CT phantom is needed (looked in ${candidates.join(', ')}); set RTPIPELINE_SHARED_DIR`);
  return path.join(found, 'reference/ibsi/ibsi_1_ct_radiomics_phantom/nifti');
}

export async function robustnessBench(): Promise<RobustnessBenchResult> {
  const dir = phantomDir();
  const img = await readNifti(path.join(dir, 'image/phantom.nii.gz'));
  const msk = await readNifti(path.join(dir, 'mask/mask.nii.gz'));
  const dims = img.grid.dims as [number, number, number];
  const spacing = img.grid.spacingMm as [number, number, number];
  const data = Float64Array.from(img.data as ArrayLike<number>, (v) => v * img.sclSlope + img.sclInter);
  const mask = Uint8Array.from(msk.data as ArrayLike<number>, (v) => (v > 0 ? 1 : 0));
  const params = parsePyradiomicsParams(ORIGINAL_ALL, 'bench (Original, all classes)');
  const n = perturbationCount(STANDARD);
  let t0 = performance.now();
  for (const p of perturbations(STANDARD, 1)) applyPerturbation({ dims, data }, { dims, data: mask }, spacing, p);
  const perturbSeconds = (performance.now() - t0) / 1000;
  t0 = performance.now();
  for (const p of perturbations(STANDARD, 1)) {
    const r = applyPerturbation({ dims, data }, { dims, data: mask }, spacing, p);
    extractPyradiomics({ dims, spacingMm: spacing, data: r.image }, { dims, spacingMm: spacing, data: r.mask }, params);
  }
  const totalSeconds = (performance.now() - t0) / 1000;
  const result = { perturbations: n, perturbSeconds, totalSeconds, secondsPerPerturbation: totalSeconds / n };
  console.log(`robustness bench: standard grid (${n} perturbations) on the IBSI CT phantom GTV`);
  console.log(`  perturbations alone: ${perturbSeconds.toFixed(2)} s; with Original features of every class: ${totalSeconds.toFixed(1)} s (${result.secondsPerPerturbation.toFixed(2)} s per perturbation)`);
  return result;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  robustnessBench().then(
    (r) => console.log(`\nBENCH_RESULT ${JSON.stringify({ robustness: r })}`),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
