/**
 * Radiomics benchmark: Original-image features, every class (pyradiomics mode, bin width 25, no
 * resampling), on the IBSI CT phantom's GTV (target: under 1 s on 2 cores), and on spheres of 60 to
 * 500 cm³ in a synthetic CT, to show how the time grows with the ROI (it should be close to linear).
 * Also the IBSI-mode time on the GTV (configuration A, every family). Median of BENCH_RADIOMICS_ROUNDS (3).
 * Run: `npx tsc -p tsconfig.json && node dist/bench/radiomics.js` (or BENCH_ONLY=radiomics npm run bench).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readNifti } from '../src/io/nifti.js';
import { parsePyradiomicsParams } from '../src/radiomics/params.js';
import { extractPyradiomics } from '../src/radiomics/pyradiomics.js';
import { computeIbsiFeatures } from '../src/radiomics/extract.js';
import { CT_CONFIGS } from '../src/radiomics/settings.js';
import type { RawVolume } from '../src/radiomics/preprocess.js';
import { median, positiveIntEnv } from './stats.js';

const TARGET_GTV_S = 1;
const ORIGINAL_ALL = 'imageType:\n  Original: {}\nfeatureClass:\n  shape:\n  firstorder:\n  glcm:\n  glrlm:\n  glszm:\n  gldm:\n  ngtdm:\nsetting:\n  binWidth: 25\n';

export interface RadiomicsBenchResult {
  gtv: { voxels: number; volumeCm3: number; pyradiomicsS: number; ibsiS: number; features: number };
  spheres: { volumeCm3: number; voxels: number; seconds: number; secondsPerMillionVoxels: number }[];
  /** Time per voxel of the largest sphere over that of the smallest: 1 = linear. */
  growthRatio: number;
  targetGtvS: number;
  pass: boolean;
}

function sharedDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const repo = path.resolve(here, here.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');
  const candidates = [process.env.RTPIPELINE_SHARED_DIR, path.resolve(repo, '../shared'), '/work/shared'].filter((c): c is string => !!c);
  const found = candidates.find((c) => existsSync(path.join(c, 'reference/ibsi')));
  if (!found) throw new Error(`the IBSI CT phantom is needed (looked in ${candidates.join(', ')}); set RTPIPELINE_SHARED_DIR`);
  return found;
}

async function volume(file: string): Promise<RawVolume & { data: Float64Array }> {
  const img = await readNifti(file);
  const data = new Float64Array(img.data.length);
  for (let i = 0; i < data.length; i++) data[i] = img.data[i] * img.sclSlope + img.sclInter;
  return { dims: img.grid.dims, spacingMm: img.grid.spacingMm, data };
}

function timed<T>(f: () => T): { value: T; seconds: number } {
  const t0 = performance.now();
  const value = f();
  return { value, seconds: (performance.now() - t0) / 1000 };
}

/** A synthetic CT (1 mm voxels, soft tissue with noise-like texture) and a centred sphere of `cm3`. */
function sphereCase(cm3: number): { image: RawVolume; mask: RawVolume; voxels: number } {
  const n = 120;
  const dims: [number, number, number] = [n, n, n];
  const image = new Float64Array(n * n * n);
  const mask = new Uint8Array(n * n * n);
  const r = Math.cbrt((3 * cm3 * 1000) / (4 * Math.PI));
  let voxels = 0;
  for (let k = 0; k < n; k++)
    for (let j = 0; j < n; j++)
      for (let i = 0; i < n; i++) {
        const v = i + n * (j + n * k);
        // Deterministic texture: a few sinusoids, 0..200 HU.
        image[v] = Math.round(100 + 60 * Math.sin(i * 0.7) * Math.cos(j * 0.5) + 40 * Math.sin(k * 0.9 + i * 0.3));
        const c = (n - 1) / 2;
        if ((i - c) ** 2 + (j - c) ** 2 + (k - c) ** 2 <= r * r) (mask[v] = 1), voxels++;
      }
  return { image: { dims, spacingMm: [1, 1, 1], data: image }, mask: { dims, spacingMm: [1, 1, 1], data: mask }, voxels };
}

export async function radiomicsBench(): Promise<RadiomicsBenchResult> {
  const rounds = positiveIntEnv('BENCH_RADIOMICS_ROUNDS', 3);
  const params = parsePyradiomicsParams(ORIGINAL_ALL, 'bench (Original, all classes)');
  const phantom = path.join(sharedDir(), 'reference/ibsi/ibsi_1_ct_radiomics_phantom/nifti');
  const image = await volume(path.join(phantom, 'image/phantom.nii.gz'));
  const mask = await volume(path.join(phantom, 'mask/mask.nii.gz'));
  const gtvVoxels = mask.data.reduce((a, v) => a + (v > 0 ? 1 : 0), 0);
  const voxelCm3 = (image.spacingMm[0] * image.spacingMm[1] * image.spacingMm[2]) / 1000;
  extractPyradiomics(image, mask, params); // warm-up (JIT)
  const py: number[] = [];
  let features = 0;
  for (let r = 0; r < rounds; r++) {
    const t = timed(() => extractPyradiomics(image, mask, params));
    py.push(t.seconds);
    features = t.value.size;
  }
  const ibsi: number[] = [];
  for (let r = 0; r < rounds; r++) ibsi.push(timed(() => computeIbsiFeatures(image, mask, CT_CONFIGS.A)).seconds);
  const gtv = { voxels: gtvVoxels, volumeCm3: Math.round(gtvVoxels * voxelCm3 * 10) / 10, pyradiomicsS: median(py), ibsiS: median(ibsi), features };
  console.log(`radiomics bench: IBSI CT phantom GTV (${gtv.volumeCm3} cm3, ${gtvVoxels} voxels)`);
  console.log(`  pyradiomics mode, Original, all classes (${features} features): ${gtv.pyradiomicsS.toFixed(3)} s (target < ${TARGET_GTV_S} s) ${gtv.pyradiomicsS < TARGET_GTV_S ? 'PASS' : 'MISS'}`);
  console.log(`  IBSI mode, configuration A, every family: ${gtv.ibsiS.toFixed(3)} s`);

  const spheres: RadiomicsBenchResult['spheres'] = [];
  console.log(`\n  sphere cm3  voxels   seconds  s per 1e6 voxels`);
  for (const cm3 of [60, 125, 250, 500]) {
    const c = sphereCase(cm3);
    const times: number[] = [];
    for (let r = 0; r < rounds; r++) times.push(timed(() => extractPyradiomics(c.image, c.mask, params)).seconds);
    const seconds = median(times);
    spheres.push({ volumeCm3: cm3, voxels: c.voxels, seconds, secondsPerMillionVoxels: seconds / (c.voxels / 1e6) });
    console.log(`  ${String(cm3).padStart(10)}  ${String(c.voxels).padStart(7)}  ${seconds.toFixed(3).padStart(7)}  ${(seconds / (c.voxels / 1e6)).toFixed(2).padStart(16)}`);
  }
  const growthRatio = spheres[spheres.length - 1].secondsPerMillionVoxels / spheres[0].secondsPerMillionVoxels;
  console.log(`  time per voxel, 500 vs 60 cm3: ${growthRatio.toFixed(2)} (1 = linear)`);
  return { gtv, spheres, growthRatio, targetGtvS: TARGET_GTV_S, pass: gtv.pyradiomicsS < TARGET_GTV_S };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  radiomicsBench().then(
    (r) => console.log(`\nBENCH_RESULT ${JSON.stringify({ radiomics: r })}`),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
