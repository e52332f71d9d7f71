/**
 * pyradiomics feature definitions where they differ from IBSI's or have no IBSI counterpart:
 * first order (kurtosis not in excess, voxelArrayShift in Energy/TotalEnergy/RMS, histogram Entropy
 * and Uniformity on the binned levels), shape (mesh volume/area, vertex diameters per plane, PCA with
 * the N covariance) and the GLCM (per-angle matrices averaged or summed with pyradiomics' weighting,
 * N_g = the highest grey level, Correlation 1 and Imc1 0 for flat matrices, MCC).
 * The GLRLM, GLSZM, GLDM and NGTDM are IBSI's matrices (texture/*.ts); pyradiomics.ts maps their tags.
 */
import { marchingCubesMesh, maskBox, principalAxes } from './morphology.js';
import { percentile } from './features/statistics.js';
import { glcmMatrixFeatures, type Offset } from './texture/glcm.js';
import type { Vec3 } from './types.js';

const EPS = 2.220446049250313e-16; // numpy.spacing(1), added inside pyradiomics' logarithms

/** firstorder features of the ROI values (`levels`: their bin numbers, for Entropy and Uniformity). */
export function firstOrderFeatures(values: Float64Array, levels: Int32Array, voxelVolumeMm3: number, shift: number): Map<string, number> {
  const n = values.length;
  if (n === 0) throw new Error('firstorder: the ROI has no voxel');
  const sorted = values.slice().sort();
  let sum = 0, energy = 0;
  for (const v of values) {
    sum += v;
    energy += (v + shift) ** 2;
  }
  const mean = sum / n;
  let m2 = 0, m3 = 0, m4 = 0, mad = 0;
  for (const v of values) {
    const d = v - mean;
    m2 += d * d;
    m3 += d * d * d;
    m4 += d * d * d * d;
    mad += Math.abs(d);
  }
  m2 /= n;
  m3 /= n;
  m4 /= n;
  const p10 = percentile(sorted, 10);
  const p90 = percentile(sorted, 90);
  let rN = 0, rSum = 0;
  for (const v of values) if (v >= p10 && v <= p90) (rN++, (rSum += v));
  const rMean = rSum / rN;
  let rmad = 0;
  for (const v of values) if (v >= p10 && v <= p90) rmad += Math.abs(v - rMean);
  const counts = new Map<number, number>();
  for (const l of levels) counts.set(l, (counts.get(l) ?? 0) + 1);
  let entropy = 0, uniformity = 0;
  for (const c of counts.values()) {
    const p = c / n;
    entropy -= p * Math.log2(p + EPS);
    uniformity += p * p;
  }
  return new Map([
    ['Energy', energy],
    ['TotalEnergy', energy * voxelVolumeMm3],
    ['Entropy', entropy],
    ['Minimum', sorted[0]],
    ['10Percentile', p10],
    ['90Percentile', p90],
    ['Maximum', sorted[n - 1]],
    ['Mean', mean],
    ['Median', percentile(sorted, 50)],
    ['InterquartileRange', percentile(sorted, 75) - percentile(sorted, 25)],
    ['Range', sorted[n - 1] - sorted[0]],
    ['MeanAbsoluteDeviation', mad / n],
    ['RobustMeanAbsoluteDeviation', rmad / rN],
    ['RootMeanSquared', Math.sqrt(energy / n)],
    ['StandardDeviation', Math.sqrt(m2)],
    ['Skewness', m2 === 0 ? 0 : m3 / m2 ** 1.5],
    ['Kurtosis', m2 === 0 ? 0 : m4 / (m2 * m2)],
    ['Variance', m2],
    ['Uniformity', uniformity],
  ]);
}

// ---------------------------------------------------------------------------------------------
// Shape

/**
 * Mesh vertices that can realise a maximum distance within a plane or in 3-D, in doubled voxel
 * units. Marching cubes on a binary mask puts a vertex at the midpoint of every edge between a mask
 * voxel and a background voxel (6-neighbours); per line along x (and along y) only the two extreme
 * vertices can be convex-hull vertices of any plane containing that line, or of the whole set.
 */
function extremeVertices(mask: Uint8Array, dims: Vec3, along: 0 | 1): Int32Array {
  const [nx, ny, nz] = dims;
  const at = (i: number, j: number, k: number) => (i >= 0 && j >= 0 && k >= 0 && i < nx && j < ny && k < nz ? mask[i + nx * (j + ny * k)] : 0);
  // Group vertices by their line: key = the other two doubled coordinates.
  const lines = new Map<number, [number, number]>();
  const other = along === 0 ? [1, 2] : [0, 2];
  const add = (p: Vec3) => {
    const key = p[other[0]] * 100003 + p[other[1]];
    const v = p[along];
    const cur = lines.get(key);
    if (!cur) lines.set(key, [v, v]);
    else {
      if (v < cur[0]) cur[0] = v;
      if (v > cur[1]) cur[1] = v;
    }
  };
  const lineCoords = new Map<number, Vec3>();
  const steps: Vec3[] = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
  for (let k = -1; k < nz; k++)
    for (let j = -1; j < ny; j++)
      for (let i = -1; i < nx; i++) {
        const a = at(i, j, k);
        for (const s of steps) {
          if (a === at(i + s[0], j + s[1], k + s[2])) continue;
          const p: Vec3 = [2 * i + s[0] + 2, 2 * j + s[1] + 2, 2 * k + s[2] + 2]; // +2: keep coordinates >= 0
          add(p);
          lineCoords.set(p[other[0]] * 100003 + p[other[1]], p);
        }
      }
  const out = new Int32Array(lines.size * 6);
  let w = 0;
  for (const [key, [lo, hi]] of lines) {
    const p = lineCoords.get(key) as Vec3;
    for (const v of [lo, hi]) {
      const q: Vec3 = [p[0], p[1], p[2]];
      q[along] = v;
      out[w++] = q[0];
      out[w++] = q[1];
      out[w++] = q[2];
    }
  }
  return out;
}

/** Largest distance (mm) between points of `pts` (doubled voxel units) sharing coordinate `same`, or any pair. */
function maxDistance(pts: Int32Array, spacing: Vec3, same: 0 | 1 | 2 | null): number {
  const h = spacing.map((s) => s / 2);
  const n = pts.length / 3;
  const groups = new Map<number, number[]>();
  for (let p = 0; p < n; p++) {
    const key = same === null ? 0 : pts[3 * p + same];
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push(p);
  }
  let best = 0;
  for (const g of groups.values()) {
    for (let a = 0; a < g.length; a++) {
      const pa = 3 * g[a];
      for (let b = a + 1; b < g.length; b++) {
        const pb = 3 * g[b];
        const dx = (pts[pa] - pts[pb]) * h[0];
        const dy = (pts[pa + 1] - pts[pb + 1]) * h[1];
        const dz = (pts[pa + 2] - pts[pb + 2]) * h[2];
        const d = dx * dx + dy * dy + dz * dz;
        if (d > best) best = d;
      }
    }
  }
  return Math.sqrt(best);
}

/** pyradiomics shape features of a binary mask (x fastest) with voxel spacing in mm. */
export function shapeFeatures(mask: Uint8Array, dims: Vec3, spacing: Vec3): Map<string, number> {
  const box = maskBox(mask, dims);
  if (!box) throw new Error('shape: the mask is empty');
  const mesh = marchingCubesMesh(mask, dims, box, spacing);
  const V = mesh.volumeMm3;
  const A = mesh.areaMm2;
  const [l1, l2, l3] = principalAxes(mask, dims, box, spacing, 'n');
  const alongX = extremeVertices(mask, dims, 0);
  const alongY = extremeVertices(mask, dims, 1);
  const k = Math.cbrt(36 * Math.PI * V * V);
  return new Map([
    ['MeshVolume', V],
    ['VoxelVolume', box.count * spacing[0] * spacing[1] * spacing[2]],
    ['SurfaceArea', A],
    ['SurfaceVolumeRatio', A / V],
    ['Sphericity', k / A],
    ['Compactness1', V / Math.sqrt(Math.PI * A * A * A)],
    ['Compactness2', (36 * Math.PI * V * V) / (A * A * A)],
    ['SphericalDisproportion', A / k],
    ['Maximum3DDiameter', maxDistance(alongX, spacing, null)],
    ['Maximum2DDiameterSlice', maxDistance(alongX, spacing, 2)],
    ['Maximum2DDiameterColumn', maxDistance(alongX, spacing, 1)],
    ['Maximum2DDiameterRow', maxDistance(alongY, spacing, 0)],
    ['MajorAxisLength', 4 * Math.sqrt(l1)],
    ['MinorAxisLength', 4 * Math.sqrt(l2)],
    ['LeastAxisLength', 4 * Math.sqrt(l3)],
    ['Elongation', l1 > 0 ? Math.sqrt(l2 / l1) : 0],
    ['Flatness', l1 > 0 ? Math.sqrt(l3 / l1) : 0],
  ]);
}

// ---------------------------------------------------------------------------------------------
// GLCM

export type WeightingNorm = 'manhattan' | 'euclidean' | 'infinity' | 'no_weighting' | null;

/** pyradiomics generateAngles: one of each ± pair of offsets whose Chebyshev norm is in `distances`. */
export function pyradiomicsAngles(distances: number[], inPlane: boolean): Offset[] {
  const d = Math.max(...distances);
  const out: Offset[] = [];
  for (let z = -d; z <= d; z++)
    for (let y = -d; y <= d; y++)
      for (let x = -d; x <= d; x++) {
        const norm = Math.max(Math.abs(x), Math.abs(y), Math.abs(z));
        if (!distances.includes(norm) || (inPlane && z !== 0)) continue;
        // Keep the representative whose first nonzero of (z, y, x) is positive.
        const first = z !== 0 ? z : y !== 0 ? y : x;
        if (first > 0) out.push([x, y, z]);
      }
  return out;
}

/** Per-angle co-occurrence counts (ng x ng, a→b only) over a zero-padded level box. */
function countAngle(levels: Int32Array, dims: Vec3, o: Offset, ng: number): Float64Array {
  const [nx, ny, nz] = dims;
  const m = new Float64Array(ng * ng);
  const step = o[0] + nx * (o[1] + ny * o[2]);
  const [ox, oy, oz] = o;
  for (let k = 0; k < nz; k++) {
    if (k + oz < 0 || k + oz >= nz) continue;
    for (let j = 0; j < ny; j++) {
      if (j + oy < 0 || j + oy >= ny) continue;
      const row = nx * (j + ny * k);
      for (let i = Math.max(0, -ox); i < Math.min(nx, nx - ox); i++) {
        const a = levels[row + i];
        if (!a) continue;
        const b = levels[row + i + step];
        if (b) m[(a - 1) * ng + b - 1]++;
      }
    }
  }
  return m;
}

const GLCM_OUT = [
  'Autocorrelation', 'JointAverage', 'ClusterProminence', 'ClusterShade', 'ClusterTendency', 'Contrast', 'Correlation',
  'DifferenceAverage', 'DifferenceEntropy', 'DifferenceVariance', 'JointEnergy', 'JointEntropy', 'Imc1', 'Imc2', 'Idm',
  'MCC', 'Idmn', 'Id', 'Idn', 'InverseVariance', 'MaximumProbability', 'SumAverage', 'SumEntropy', 'SumSquares',
  'Dissimilarity', 'Homogeneity1', 'Homogeneity2', 'SumVariance',
] as const;

/** Features of one (normalisable) GLCM with pyradiomics' conventions; null when empty. */
function glcmOne(m: Float64Array, ng: number): number[] | null {
  const f = new Float64Array(25);
  if (!glcmMatrixFeatures(m, ng, f)) return null;
  const [jointMax, muI, varI, hxy, diffAvg, diffVar, diffEntr, sumAvg, , sumEntr, energy, contrast, dissim, invDiff, invDiffN, idm, idmn, invVar, corr, autoCorr, clustTend, clustShade, clustProm, imc1, imc2] = f;
  return [
    autoCorr, muI, clustProm, clustShade, clustTend, contrast, Number.isNaN(corr) ? 1 : corr,
    diffAvg, diffEntr, diffVar, energy, hxy, Number.isNaN(imc1) ? 0 : imc1, imc2, idm,
    mcc(m, ng), idmn, invDiff, invDiffN, invVar, jointMax, sumAvg, sumEntr, varI,
    dissim, invDiff, idm, clustTend,
  ];
}

/**
 * Maximal correlation coefficient: √(second largest eigenvalue of Q), Q_ij = Σ_k p_ik p_jk/(p_x(i) p_y(k)).
 * Q is similar to B·Bᵀ with B = D_x^{-1/2} P D_y^{-1/2}, a symmetric PSD matrix, so Jacobi applies.
 */
function mcc(m: Float64Array, ng: number): number {
  let total = 0;
  for (const c of m) total += c;
  const px = new Float64Array(ng);
  const py = new Float64Array(ng);
  for (let i = 0; i < ng; i++)
    for (let j = 0; j < ng; j++) {
      px[i] += m[i * ng + j] / total;
      py[j] += m[i * ng + j] / total;
    }
  const rows = [...px.keys()].filter((i) => px[i] > 0);
  const cols = [...py.keys()].filter((j) => py[j] > 0);
  const r = rows.length;
  if (r < 2) return 1; // one grey level: pyradiomics' eigen-decomposition gives 1
  const b = rows.map((i) => cols.map((j) => m[i * ng + j] / total / Math.sqrt(px[i] * py[j])));
  const q = rows.map((_, a) => rows.map((__, c) => b[a].reduce((s, v, k) => s + v * b[c][k], 0)));
  const eig = jacobiEigenvalues(q).sort((x, y) => y - x);
  return Math.sqrt(Math.max(0, eig[1]));
}

function jacobiEigenvalues(a: number[][]): number[] {
  const n = a.length;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p][q] * a[p][q];
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++)
      for (let q = p + 1; q < n; q++) {
        if (Math.abs(a[p][q]) < 1e-300) continue;
        const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k][p], akq = a[k][q];
          a[k][p] = c * akp - s * akq;
          a[k][q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p][k], aqk = a[q][k];
          a[p][k] = c * apk - s * aqk;
          a[q][k] = s * apk + c * aqk;
        }
      }
  }
  return a.map((row, i) => row[i]);
}

/**
 * pyradiomics GLCM features over a level box (0 = outside the ROI), angles from `distances`
 * (in-plane when `inPlane`). weightingNorm null: features per angle, mean over non-empty angles;
 * otherwise the angle matrices are summed with pyradiomics' weights (exp(−‖d‖²), 1 for no_weighting).
 */
export function glcmPyradiomics(
  levels: Int32Array,
  dims: Vec3,
  spacing: Vec3,
  ng: number,
  opts: { distances: number[]; inPlane: boolean; symmetrical: boolean; weightingNorm: WeightingNorm },
): Map<string, number> {
  const angles = pyradiomicsAngles(opts.distances, opts.inPlane);
  const mats = angles.map((o) => {
    const m = countAngle(levels, dims, o, ng);
    if (opts.symmetrical) {
      for (let i = 0; i < ng; i++)
        for (let j = i; j < ng; j++) {
          const s = m[i * ng + j] + m[j * ng + i];
          m[i * ng + j] = s;
          m[j * ng + i] = s;
        }
    }
    return m;
  });
  const rows: number[][] = [];
  if (opts.weightingNorm === null) {
    for (const m of mats) {
      const r = glcmOne(m, ng);
      if (r) rows.push(r);
    }
  } else {
    const sum = new Float64Array(ng * ng);
    angles.forEach((o, a) => {
      const d = o.map((c, ax) => Math.abs(c) * spacing[ax]);
      let w = 1;
      if (opts.weightingNorm === 'infinity') w = Math.exp(-(Math.max(...d) ** 2));
      else if (opts.weightingNorm === 'euclidean') w = Math.exp(-(d[0] ** 2 + d[1] ** 2 + d[2] ** 2));
      else if (opts.weightingNorm === 'manhattan') w = Math.exp(-((d[0] + d[1] + d[2]) ** 2));
      for (let i = 0; i < sum.length; i++) sum[i] += w * mats[a][i];
    });
    const r = glcmOne(sum, ng);
    if (r) rows.push(r);
  }
  const out = new Map<string, number>();
  GLCM_OUT.forEach((name, f) => out.set(name, rows.length ? rows.reduce((s, r) => s + r[f], 0) / rows.length : Number.NaN));
  return out;
}
