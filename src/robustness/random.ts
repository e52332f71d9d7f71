/**
 * Seeded randomness for the robustness perturbations. Pure: no global state, no Math.random.
 *
 * Two kinds are provided:
 * - `Random`, a sequential generator (sfc32, 128-bit state) for the few draws that parametrise a
 *   perturbation (the modes of a contour field);
 * - `normalAt`, a counter-based standard normal: the value for voxel `index` is a pure function of
 *   (key, index). Image noise uses it, so the noise of a voxel does not depend on which voxels
 *   were drawn before it (cropping or chunking the image changes nothing).
 *
 * Sub-seeds are derived with `deriveSeed(seed, ...parts)`, so each perturbation step draws from
 * its own stream and, e.g., the contour field of a translation does not change with the noise level.
 */

/** A 32-bit unsigned seed. */
export type Seed = number & { readonly __brand?: 'Seed' };

/** murmur3's 32-bit finaliser: an avalanche mix of one word. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Mixes one 32-bit word into a running hash (murmur3 body step). */
function mixWord(h: number, w: number): number {
  let k = Math.imul(w, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

const f64 = new Float64Array(1);
const f64Words = new Uint32Array(f64.buffer);

/** Words of a part: strings by UTF-16 code units, numbers by their float64 bits (so 0.5 ≠ 1). */
function partWords(part: number | string): number[] {
  if (typeof part === 'string') {
    const words = [part.length];
    for (let i = 0; i < part.length; i++) words.push(part.charCodeAt(i));
    return words;
  }
  f64[0] = part === 0 ? 0 : part; // -0 and +0 give the same stream
  return [f64Words[0], f64Words[1]];
}

/** A sub-seed for one purpose: the same (seed, parts) always give the same seed. */
export function deriveSeed(seed: number, ...parts: (number | string)[]): Seed {
  let h = fmix32((seed >>> 0) ^ 0x9e3779b9);
  for (const part of parts) for (const w of partWords(part)) h = mixWord(h, w);
  return fmix32(h ^ (parts.length * 0x27d4eb2f)) as Seed;
}

/** A uniform 32-bit hash of (key, index), for counter-based draws and deterministic tie-breaking. */
export function hashIndex(key: number, index: number): number {
  return fmix32(mixWord(key | 0, index) ^ 0x5bd1e995);
}

const TWO_PI = 2 * Math.PI;
const INV_2_32 = 1 / 4294967296;

/**
 * Standard normal N(0, 1) for (key, index). Box–Muller on the two hashed uniforms of the pair
 * index >> 1: the even index takes the cosine and the odd one the sine, so `normalPairAt` fills
 * two voxels for one pair of hashes and gives the same values.
 */
export function normalAt(key: number, index: number): number {
  const pair = index >>> 1;
  const r = pairRadius(key, pair);
  const angle = pairAngle(key, pair);
  return (index & 1) === 0 ? r * Math.cos(angle) : r * Math.sin(angle);
}

/** The two normals of pair `pair` (indices 2 pair and 2 pair + 1) written to out[0], out[1]. */
export function normalPairAt(key: number, pair: number, out: Float64Array): void {
  const r = pairRadius(key, pair);
  const angle = pairAngle(key, pair);
  out[0] = r * Math.cos(angle);
  out[1] = r * Math.sin(angle);
}

function pairRadius(key: number, pair: number): number {
  const u1 = (hashIndex(key, pair) + 0.5) * INV_2_32; // never 0, so the log is finite
  return Math.sqrt(-2 * Math.log(u1));
}

function pairAngle(key: number, pair: number): number {
  return TWO_PI * hashIndex(key ^ 0x68e31da4, pair) * INV_2_32;
}

/** sfc32 (Chris Doty-Humphrey's small fast counting generator), seeded through `deriveSeed`. */
export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spareNormal: number | null = null;

  constructor(seed: number) {
    this.a = deriveSeed(seed, 'sfc32', 0);
    this.b = deriveSeed(seed, 'sfc32', 1);
    this.c = deriveSeed(seed, 'sfc32', 2);
    this.d = 1;
    for (let i = 0; i < 12; i++) this.nextUint32(); // the authors' recommended warm-up
  }

  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextUint32() * INV_2_32;
  }

  /** Standard normal (Marsaglia's polar method; the second value of each pair is kept). */
  normal(): number {
    if (this.spareNormal !== null) {
      const v = this.spareNormal;
      this.spareNormal = null;
      return v;
    }
    let u: number;
    let v: number;
    let s: number;
    do {
      u = 2 * this.uniform() - 1;
      v = 2 * this.uniform() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const f = Math.sqrt((-2 * Math.log(s)) / s);
    this.spareNormal = v * f;
    return u * f;
  }
}
