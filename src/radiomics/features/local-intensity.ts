/**
 * IBSI local intensity features (family 9ST6): the mean intensity of all image voxels (ROI or not)
 * whose centres lie within a 1 cm³ sphere (radius (3/4π)^{1/3} cm ≈ 6.2 mm) around an ROI voxel.
 * Local peak: around the maximum-intensity voxel(s) of the intensity mask (the highest such mean when
 * several share the maximum). Global peak: the highest such mean over all intensity-mask voxels.
 */
import type { Features, RoiVolume } from '../types.js';

export const PEAK_RADIUS_MM = 10 * Math.cbrt(3 / (4 * Math.PI));

/** Per (dj, dk) row of the sphere: the half-width in i. */
interface SphereRow {
  dj: number;
  dk: number;
  halfI: number;
}

function sphereRows(spacingMm: [number, number, number], radiusMm: number): SphereRow[] {
  const [sx, sy, sz] = spacingMm;
  const rows: SphereRow[] = [];
  const mj = Math.floor(radiusMm / sy);
  const mk = Math.floor(radiusMm / sz);
  // A hair of tolerance: centres exactly on the sphere (e.g. 6.2 mm on a 2 mm grid does not occur, but 6 mm does) count.
  const r2 = radiusMm * radiusMm + 1e-9;
  for (let dk = -mk; dk <= mk; dk++)
    for (let dj = -mj; dj <= mj; dj++) {
      const rest = r2 - (dj * sy) ** 2 - (dk * sz) ** 2;
      if (rest < 0) continue;
      rows.push({ dj, dk, halfI: Math.floor(Math.sqrt(rest) / sx) });
    }
  return rows;
}

/** Sphere mean around voxel (i, j, k), using prefix sums along x for each row. */
function sphereMeanFactory(vol: RoiVolume) {
  const [nx, ny, nz] = vol.dims;
  // prefix[(j + ny k)(nx+1) + i] = Σ intensity[0..i-1] on that row.
  const prefix = new Float64Array((nx + 1) * ny * nz);
  for (let r = 0; r < ny * nz; r++) {
    let s = 0;
    const base = r * (nx + 1);
    prefix[base] = 0;
    for (let i = 0; i < nx; i++) {
      s += vol.intensity[r * nx + i];
      prefix[base + i + 1] = s;
    }
  }
  const rows = sphereRows(vol.spacingMm, PEAK_RADIUS_MM);
  return (i: number, j: number, k: number): number => {
    let sum = 0;
    let count = 0;
    for (const row of rows) {
      const jj = j + row.dj;
      const kk = k + row.dk;
      if (jj < 0 || jj >= ny || kk < 0 || kk >= nz) continue;
      const i0 = Math.max(0, i - row.halfI);
      const i1 = Math.min(nx - 1, i + row.halfI);
      const base = (jj + ny * kk) * (nx + 1);
      sum += prefix[base + i1 + 1] - prefix[base + i0];
      count += i1 - i0 + 1;
    }
    return sum / count;
  };
}

export function localIntensityFeatures(vol: RoiVolume): Features {
  const [nx, ny, nz] = vol.dims;
  const mean = sphereMeanFactory(vol);
  let max = -Infinity;
  for (let p = 0; p < vol.intensity.length; p++) if (vol.intensityMask[p] && vol.intensity[p] > max) max = vol.intensity[p];
  if (max === -Infinity) throw new Error('local intensity features need at least one voxel in the intensity mask');
  let local = -Infinity;
  let global = -Infinity;
  let p = 0;
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++, p++) {
        if (!vol.intensityMask[p]) continue;
        const m = mean(i, j, k);
        if (m > global) global = m;
        if (vol.intensity[p] === max && m > local) local = m;
      }
  return new Map([
    ['loc_peak_loc', local],
    ['loc_peak_glob', global],
  ]);
}
