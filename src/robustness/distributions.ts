/**
 * Continuous distributions needed for ICC confidence intervals: the regularised incomplete beta
 * function, the F distribution CDF and its quantile. Pure computation, double precision.
 *
 * Degrees of freedom may be non-integer (the ICC(2,1) interval uses a Satterthwaite df).
 */

/** Lanczos coefficients (g = 7, n = 9); relative error about 1e-15 for x > 0. */
const LANCZOS_G = 7;
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];
const HALF_LN_TWO_PI = 0.5 * Math.log(2 * Math.PI);

/** ln Γ(x) for x > 0. */
export function logGamma(x: number): number {
  if (!(x > 0)) throw new RangeError(`logGamma: x must be > 0, got ${x}`);
  if (x < 0.5) {
    // Reflection keeps the Lanczos series in its accurate range.
    return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  }
  const z = x - 1;
  let sum = LANCZOS[0];
  for (let i = 1; i < LANCZOS.length; i++) sum += LANCZOS[i] / (z + i);
  const t = z + LANCZOS_G + 0.5;
  return HALF_LN_TWO_PI + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

/** ln B(a, b). */
export function logBeta(a: number, b: number): number {
  return logGamma(a) + logGamma(b) - logGamma(a + b);
}

const CF_EPS = 1e-15;
const CF_TINY = 1e-300;

/**
 * Continued fraction for I_x(a, b) by the modified Lentz method (Numerical Recipes' betacf).
 * Converges quickly for x < (a + 1)/(a + b + 2); iterations grow like sqrt(max(a, b)).
 */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const qab = a + b;
  const qap = a + 1;
  const qam = a - 1;
  let c = 1;
  let d = 1 - (qab * x) / qap;
  if (Math.abs(d) < CF_TINY) d = CF_TINY;
  d = 1 / d;
  let h = d;
  const maxIterations = 10_000 + Math.ceil(20 * Math.sqrt(Math.max(a, b)));
  for (let m = 1; m <= maxIterations; m++) {
    const m2 = 2 * m;
    // Even step.
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < CF_TINY) d = CF_TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < CF_TINY) c = CF_TINY;
    d = 1 / d;
    h *= d * c;
    // Odd step.
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < CF_TINY) d = CF_TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < CF_TINY) c = CF_TINY;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < CF_EPS) return h;
  }
  throw new Error(`incomplete beta: continued fraction did not converge for a=${a}, b=${b}, x=${x}`);
}

/** The regularised incomplete beta function I_x(a, b) = B(x; a, b)/B(a, b), for a, b > 0 and 0 <= x <= 1. */
export function regularizedIncompleteBeta(x: number, a: number, b: number): number {
  if (!(a > 0) || !(b > 0)) throw new RangeError(`incomplete beta: a and b must be > 0, got a=${a}, b=${b}`);
  if (!(x >= 0 && x <= 1)) throw new RangeError(`incomplete beta: x must be in [0, 1], got ${x}`);
  if (x === 0) return 0;
  if (x === 1) return 1;
  const logFront = a * Math.log(x) + b * Math.log1p(-x) - logBeta(a, b);
  // Use the fraction where it converges fast; otherwise the symmetry I_x(a,b) = 1 - I_{1-x}(b,a).
  if (x < (a + 1) / (a + b + 2)) return (Math.exp(logFront) * betaContinuedFraction(a, b, x)) / a;
  return 1 - (Math.exp(logFront) * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** Density of Beta(a, b) at x in (0, 1). */
function betaDensity(x: number, a: number, b: number): number {
  return Math.exp((a - 1) * Math.log(x) + (b - 1) * Math.log1p(-x) - logBeta(a, b));
}

/**
 * Inverse of I_x(a, b) in x: the p-quantile of Beta(a, b). Newton steps kept inside a shrinking
 * bisection bracket, so it always converges even where the density is flat or infinite.
 */
export function inverseRegularizedIncompleteBeta(p: number, a: number, b: number): number {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`inverse incomplete beta: p must be in [0, 1], got ${p}`);
  if (!(a > 0) || !(b > 0)) throw new RangeError(`inverse incomplete beta: a and b must be > 0, got a=${a}, b=${b}`);
  if (p === 0) return 0;
  if (p === 1) return 1;
  let lo = 0;
  let hi = 1;
  let x = a / (a + b); // the mean: a reasonable start for every shape
  for (let iter = 0; iter < 300; iter++) {
    const err = regularizedIncompleteBeta(x, a, b) - p;
    if (err === 0) return x;
    if (err < 0) lo = x;
    else hi = x;
    const density = betaDensity(x, a, b);
    let next = density > 0 && Number.isFinite(density) ? x - err / density : Number.NaN;
    if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
    if (Math.abs(next - x) <= 1e-15 * Math.max(x, 1e-300) || hi - lo <= 1e-16 * hi) return next;
    x = next;
  }
  return x;
}

function checkDf(d1: number, d2: number): void {
  if (!(d1 > 0) || !(d2 > 0) || !Number.isFinite(d1) || !Number.isFinite(d2)) {
    throw new RangeError(`F distribution: degrees of freedom must be finite and > 0, got d1=${d1}, d2=${d2}`);
  }
}

/** P(X <= f) for X ~ F(d1, d2). */
export function fCdf(f: number, d1: number, d2: number): number {
  checkDf(d1, d2);
  if (!(f > 0)) return 0;
  if (f === Infinity) return 1;
  return regularizedIncompleteBeta((d1 * f) / (d1 * f + d2), d1 / 2, d2 / 2);
}

/** The p-quantile of F(d1, d2): the f with P(X <= f) = p. */
export function fQuantile(p: number, d1: number, d2: number): number {
  checkDf(d1, d2);
  if (!(p >= 0 && p <= 1)) throw new RangeError(`F quantile: p must be in [0, 1], got ${p}`);
  if (p === 0) return 0;
  if (p === 1) return Infinity;
  // Solve in whichever beta tail keeps x away from 1, so f = d2*x/(d1*(1-x)) loses no precision.
  if (p > 0.5) {
    const y = inverseRegularizedIncompleteBeta(1 - p, d2 / 2, d1 / 2); // y = 1 - x
    return (d2 * (1 - y)) / (d1 * y);
  }
  const x = inverseRegularizedIncompleteBeta(p, d1 / 2, d2 / 2);
  return (d2 * x) / (d1 * (1 - x));
}
