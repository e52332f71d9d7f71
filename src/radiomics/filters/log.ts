/**
 * Laplacian of Gaussian, as pyradiomics' LoG image type (SimpleITK LaplacianRecursiveGaussian with
 * NormalizeAcrossScale): σ² (∂²/∂x² + ∂²/∂y² + ∂²/∂z²)(G_σ * f), σ in mm, spacing-aware.
 *
 * What differs: SimpleITK approximates the Gaussian and its derivatives with Deriche's recursive
 * (IIR) filters; here they are sampled kernels truncated at 5σ (moments corrected), applied
 * separably, with the image extended by its edge value (as the recursive filter's boundary). Both
 * converge to the continuous LoG; they differ most for σ below ~1 voxel, where the recursive
 * approximation is coarsest. On an analytic Gaussian blob this LoG is within 1e-4 of the peak value
 * (test/radiomics-pyradiomics.test.ts).
 */
import type { Vec3 } from '../types.js';

/** Sampled 1-D Gaussian (sum 1) and its second derivative (zero sum, Σ g''·x² = 2) in per-mm² units. */
export function gaussianKernels(sigmaMm: number, spacingMm: number): { g: Float64Array; d2: Float64Array; radius: number } {
  if (!(sigmaMm > 0)) throw new Error(`LoG: sigma must be > 0 mm, got ${sigmaMm}`);
  const s = sigmaMm / spacingMm; // sigma in voxels
  const radius = Math.max(1, Math.ceil(5 * s));
  const n = 2 * radius + 1;
  const g = new Float64Array(n);
  const d2 = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const x = i - radius;
    g[i] = Math.exp((-x * x) / (2 * s * s));
    sum += g[i];
  }
  for (let i = 0; i < n; i++) g[i] /= sum;
  // g'' = g (x² − s²)/s⁴; enforce the discrete moments so a constant gives 0 and x² gives exactly 2.
  let m0 = 0, m2 = 0;
  for (let i = 0; i < n; i++) {
    const x = i - radius;
    d2[i] = (g[i] * (x * x - s * s)) / (s * s * s * s);
    m0 += d2[i];
  }
  for (let i = 0; i < n; i++) d2[i] -= m0 * g[i];
  for (let i = 0; i < n; i++) m2 += d2[i] * (i - radius) ** 2;
  const toMm = 1 / (spacingMm * spacingMm);
  for (let i = 0; i < n; i++) d2[i] *= (2 / m2) * toMm;
  return { g, d2, radius };
}

/** Convolves along one axis with an odd kernel, edge values extended. */
function convolveAxis(src: Float64Array, dims: Vec3, axis: 0 | 1 | 2, kernel: Float64Array): Float64Array {
  const [nx, ny, nz] = dims;
  const n = dims[axis];
  const stride = axis === 0 ? 1 : axis === 1 ? nx : nx * ny;
  const r = (kernel.length - 1) / 2;
  const out = new Float64Array(src.length);
  const line = new Float64Array(n + 2 * r);
  const lines = (nx * ny * nz) / n;
  for (let l = 0; l < lines; l++) {
    // Base index of line l: enumerate the two other axes.
    let base: number;
    if (axis === 0) base = l * nx;
    else if (axis === 1) base = (l % nx) + Math.floor(l / nx) * nx * ny;
    else base = l;
    for (let i = 0; i < n + 2 * r; i++) {
      const c = Math.min(n - 1, Math.max(0, i - r));
      line[i] = src[base + c * stride];
    }
    for (let i = 0; i < n; i++) {
      let v = 0;
      for (let t = 0; t < kernel.length; t++) v += kernel[t] * line[i + t];
      out[base + i * stride] = v;
    }
  }
  return out;
}

/** σ²·∇²(G_σ * f) of a volume (x fastest), σ in mm. */
export function laplacianOfGaussian(data: ArrayLike<number>, dims: Vec3, spacingMm: Vec3, sigmaMm: number): Float64Array {
  const k = spacingMm.map((s) => gaussianKernels(sigmaMm, s));
  const src = Float64Array.from(data);
  const gz = convolveAxis(src, dims, 2, k[2].g);
  const gzy = convolveAxis(gz, dims, 1, k[1].g);
  const xx = convolveAxis(gzy, dims, 0, k[0].d2);
  const yy = convolveAxis(convolveAxis(gz, dims, 1, k[1].d2), dims, 0, k[0].g);
  const zz = convolveAxis(convolveAxis(convolveAxis(src, dims, 2, k[2].d2), dims, 1, k[1].g), dims, 0, k[0].g);
  const s2 = sigmaMm * sigmaMm;
  const out = new Float64Array(src.length);
  for (let i = 0; i < out.length; i++) out[i] = s2 * (xx[i] + yy[i] + zz[i]);
  return out;
}

/** Voxels of margin the LoG of `sigmaMm` needs around a region for exact values inside it. */
export function logMarginVoxels(sigmaMm: number, spacingMm: Vec3): Vec3 {
  return spacingMm.map((s) => gaussianKernels(sigmaMm, s).radius) as Vec3;
}

/** pyradiomics' image type name: 'log-sigma-' + Python str(float(sigma)) with '.' → '-' + '-mm-3D'. */
export function logImageName(sigmaMm: number): string {
  const text = Number.isInteger(sigmaMm) ? sigmaMm.toFixed(1) : String(sigmaMm);
  return `log-sigma-${text.replace('.', '-')}-mm-3D`;
}
