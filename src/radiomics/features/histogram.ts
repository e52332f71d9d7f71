/**
 * IBSI intensity histogram features (family ZVCW) on the discretised grey levels 1..N_g of the
 * intensity mask. The histogram spans all N_g levels, empty ones included (they matter for the
 * gradient features).
 */
import type { Discretised, Features, RoiVolume } from '../types.js';
import { distributionFeatures, maskedValues } from './statistics.js';

export function histogramFeatures(vol: RoiVolume, disc: Discretised): Features {
  const values = maskedValues(disc.levels, vol.intensityMask);
  const f = distributionFeatures(values, 'ih');
  const ng = Math.max(disc.nLevels, f.get('ih_max') as number);
  const hist = new Float64Array(ng + 1); // index = level
  for (let i = 0; i < values.length; i++) hist[values[i]]++;
  const n = values.length;
  // Mode: the most frequent level; on a tie the one closest to the mean (IBSI), then the lowest.
  const mean = f.get('ih_mean') as number;
  let mode = 1;
  for (let g = 1; g <= ng; g++) {
    if (hist[g] > hist[mode] || (hist[g] === hist[mode] && Math.abs(g - mean) < Math.abs(mode - mean))) mode = g;
  }
  f.set('ih_mode', mode);
  let entropy = 0;
  let uniformity = 0;
  for (let g = 1; g <= ng; g++) {
    const p = hist[g] / n;
    if (p > 0) entropy -= p * Math.log2(p);
    uniformity += p * p;
  }
  f.set('ih_entropy', entropy);
  f.set('ih_uniformity', uniformity);
  // Histogram gradient: one-sided at both ends, central differences inside (IBSI 12CE).
  let maxGrad = -Infinity;
  let maxAt = 1;
  let minGrad = Infinity;
  let minAt = 1;
  for (let g = 1; g <= ng; g++) {
    let grad: number;
    if (ng === 1) grad = 0;
    else if (g === 1) grad = hist[2] - hist[1];
    else if (g === ng) grad = hist[ng] - hist[ng - 1];
    else grad = (hist[g + 1] - hist[g - 1]) / 2;
    if (grad > maxGrad) (maxGrad = grad), (maxAt = g);
    if (grad < minGrad) (minGrad = grad), (minAt = g);
  }
  f.set('ih_max_grad', maxGrad);
  f.set('ih_max_grad_g', maxAt);
  f.set('ih_min_grad', minGrad);
  f.set('ih_min_grad_g', minAt);
  return f;
}
