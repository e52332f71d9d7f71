/**
 * IBSI intensity-volume histogram (family P88C). ν(i) = fraction of ROI voxels with value ≥ i and
 * γ(i) = (i − min G)/(max G − min G), both evaluated on every value of the range G, including values
 * absent from the ROI. V_x = the largest ν with γ ≥ x; I_x = the smallest i with ν ≤ x.
 */
import type { IvhInput } from '../preprocess.js';
import type { Features } from '../types.js';

export function ivhFeatures(input: IvhInput): Features {
  const { values, grid } = input;
  const n = values.length;
  const sorted = values.slice().sort();
  // ν at each grid value: fraction of voxels ≥ value, via one sweep over both ascending lists.
  const nu = new Float64Array(grid.length);
  let below = 0;
  for (let g = 0; g < grid.length; g++) {
    while (below < n && sorted[below] < grid[g] - 1e-9) below++;
    nu[g] = (n - below) / n;
  }
  const gMin = grid[0];
  const gMax = grid[grid.length - 1];
  const gamma = (g: number) => (gMax === gMin ? 0 : (grid[g] - gMin) / (gMax - gMin));
  const volumeAt = (x: number) => {
    // ν decreases with i, so the largest ν with γ ≥ x sits at the first such grid value.
    for (let g = 0; g < grid.length; g++) if (gamma(g) >= x - 1e-12) return nu[g];
    return 0;
  };
  const intensityAt = (x: number) => {
    for (let g = 0; g < grid.length; g++) if (nu[g] <= x) return grid[g];
    // No grid value leaves ≤ x of the volume: IBSI uses the maximum of the range + 1 step.
    return gMax + (grid.length > 1 ? grid[1] - grid[0] : 1);
  };
  const v10 = volumeAt(0.1);
  const v90 = volumeAt(0.9);
  const i10 = intensityAt(0.1);
  const i90 = intensityAt(0.9);
  return new Map([
    ['ivh_v10', v10],
    ['ivh_v90', v90],
    ['ivh_i10', i10],
    ['ivh_i90', i90],
    ['ivh_diff_v10_v90', v10 - v90],
    ['ivh_diff_i10_i90', i10 - i90],
  ]);
}
