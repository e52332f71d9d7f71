// Run-length masks (src/segment/runs.ts) and the run-based morphology and contouring built on them,
// checked against plain per-voxel references on random volumes.
import { describe, expect, it } from 'vitest';
import type { Grid, Mask, Volume } from '../src/geometry/types.js';
import { maskToContours, runsToContours } from '../src/geometry/contours.js';
import { growLabelRuns, growLabels, labelArray } from '../src/segment/morphology.js';
import { boxDims, cropData, cropGrid, type Box } from '../src/segment/mask.js';
import {
  cropRuns,
  intersectRuns,
  maskOfRuns,
  paintSlice,
  runLabelStats,
  runsBox,
  runsOfLabels,
  runsOfMask,
  runsWithLabel,
  subtractRuns,
  thresholdRuns,
  thresholdWithin,
  uncropRuns,
  unionRuns,
  voxelsOf,
  type LabelledRunMask,
  type RunMask,
} from '../src/segment/runs.js';

/** A small deterministic PRNG (mulberry32), so a failure reproduces. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function grid(dims: [number, number, number]): Grid {
  return { dims, spacingMm: [0.8, 0.9, 2], originMm: [-10, 20, 5], direction: [[1, 0, 0], [0, 1, 0], [0, 0, 1]] };
}

/** Blobby random mask: stretches of set voxels of random length, so rows have runs of every size. */
function randomMask(g: Grid, seed: number, density = 0.5): Mask {
  const rnd = random(seed);
  const data = new Uint8Array(g.dims[0] * g.dims[1] * g.dims[2]);
  for (let v = 0; v < data.length; ) {
    const len = 1 + Math.floor(rnd() * 12);
    const on = rnd() < density ? 1 : 0;
    data.fill(on, v, Math.min(data.length, v + len));
    v += len;
  }
  return { grid: g, data };
}

/** Every row's runs are sorted and separated by at least one clear voxel. */
function expectCanonical(m: RunMask): void {
  for (let r = 0; r < m.rowFirst.length - 1; r++) {
    for (let n = m.rowFirst[r]; n < m.rowFirst[r + 1]; n++) {
      expect(m.start[n]).toBeLessThan(m.end[n]);
      if (n > m.rowFirst[r]) expect(m.start[n]).toBeGreaterThan(m.end[n - 1]);
    }
  }
}

const G = grid([37, 23, 9]);

describe('run-length masks', () => {
  it('round-trip a byte mask, in canonical form', () => {
    for (const seed of [1, 2, 3]) {
      const mask = randomMask(G, seed);
      const runs = runsOfMask(mask);
      expectCanonical(runs);
      expect(maskOfRuns(runs).data).toEqual(mask.data);
      expect(voxelsOf(runs)).toBe(mask.data.reduce((n, v) => n + v, 0));
    }
  });

  it('intersect, subtract and unite like the per-voxel operations', () => {
    const a = randomMask(G, 11);
    const b = randomMask(G, 12, 0.4);
    const [ra, rb] = [runsOfMask(a), runsOfMask(b)];
    const per = (f: (x: number, y: number) => number) => Uint8Array.from(a.data, (x, v) => f(x, b.data[v]));
    for (const [runs, expected] of [
      [intersectRuns(ra, rb), per((x, y) => x & y)],
      [subtractRuns(ra, rb), per((x, y) => x & (1 - y))],
      [unionRuns(ra, rb), per((x, y) => x | y)],
    ] as const) {
      expectCanonical(runs);
      expect(maskOfRuns(runs).data).toEqual(expected);
    }
  });

  it('crops to a box and back, and finds the bounding box', () => {
    const mask = randomMask(G, 21, 0.3);
    const box: Box = { lo: [3, 2, 1], hi: [30, 20, 8] };
    const cropped = cropRuns(runsOfMask(mask), box);
    expect(cropped.grid).toEqual(cropGrid(G, box));
    expect(maskOfRuns(cropped).data).toEqual(cropData(mask.data, G.dims, box));
    const back = maskOfRuns(uncropRuns(cropped, box, G)).data;
    const expected = new Uint8Array(mask.data.length);
    const [cx, cy, cz] = boxDims(box);
    for (let k = 0; k < cz; k++)
      for (let j = 0; j < cy; j++)
        for (let i = 0; i < cx; i++) {
          const v = box.lo[0] + i + (box.lo[1] + j) * 37 + (box.lo[2] + k) * 37 * 23;
          expected[v] = mask.data[v];
        }
    expect(back).toEqual(expected);
    expect(runsBox(uncropRuns(cropped, box, G))).toEqual(byteBox(back, G));
  });

  it('paints one slice at a time, over whatever the buffer held', () => {
    const mask = randomMask(G, 31);
    const runs = runsOfMask(mask);
    const slice = new Uint8Array(37 * 23).fill(7);
    for (let k = 0; k < 9; k++) {
      paintSlice(runs, k, slice);
      expect(slice).toEqual(mask.data.subarray(k * 37 * 23, (k + 1) * 37 * 23));
    }
  });

  it('thresholds a CT like a per-voxel comparison, in a box and within a mask', () => {
    const rnd = random(41);
    // Values straddle the threshold in stretches of every length, so the eight-voxel skips are exercised at both ends.
    const data = new Int16Array(G.dims[0] * G.dims[1] * G.dims[2]);
    for (let v = 0; v < data.length; ) {
      const len = 1 + Math.floor(rnd() * 20);
      const base = rnd() < 0.5 ? -1000 : 100;
      for (let n = 0; n < len && v < data.length; n++, v++) data[v] = base + Math.round((rnd() - 0.5) * 40);
    }
    // Some voxels exactly at a threshold: neither above nor below it.
    for (let v = 0; v < data.length; v += 1 + Math.floor(rnd() * 30)) data[v] = [-350, -1000, 100][v % 3];
    const ct: Volume<Int16Array> = { grid: G, data };
    const box: Box = { lo: [2, 1, 0], hi: [35, 22, 9] };
    const within = randomMask(G, 42);
    for (const hu of [-350, -1000, 100, -32768, 32767]) {
      const above = Uint8Array.from(data, (x) => (x > hu ? 1 : 0));
      const below = Uint8Array.from(data, (x) => (x < hu ? 1 : 0));
      const [runsAbove, runsBelow] = [thresholdRuns(ct, 'above', hu), thresholdRuns(ct, 'below', hu)];
      expectCanonical(runsAbove);
      expectCanonical(runsBelow);
      expect(maskOfRuns(runsAbove).data).toEqual(above);
      expect(maskOfRuns(runsBelow).data).toEqual(below);
      expect(maskOfRuns(thresholdRuns(ct, 'below', hu, box)).data).toEqual(cropData(below, G.dims, box));
      const inBox = cropRuns(runsOfMask(within), box);
      const expected = cropData(Uint8Array.from(above, (x, v) => x & within.data[v]), G.dims, box);
      expect(maskOfRuns(thresholdWithin(ct, 'above', hu, inBox, box)).data).toEqual(expected);
    }
  });

  it('keeps labels apart: runs of labels, one label, sizes and centroids', () => {
    const rnd = random(51);
    const labels = new Uint8Array(G.dims[0] * G.dims[1] * G.dims[2]);
    for (let v = 0; v < labels.length; ) {
      const len = 1 + Math.floor(rnd() * 6);
      labels.fill(Math.floor(rnd() * 4), v, v + len); // adjacent stretches often differ only in label
      v += len;
    }
    const runs = runsOfLabels(labels, G);
    expect(labelArray(runs)).toEqual(labels);
    const stats = runLabelStats(runs, 3);
    for (const l of [1, 2, 3]) {
      expect(maskOfRuns(runsWithLabel(runs, l)).data).toEqual(Uint8Array.from(labels, (x) => (x === l ? 1 : 0)));
      let n = 0;
      const sum = [0, 0, 0];
      labels.forEach((x, v) => {
        if (x !== l) return;
        n++;
        sum[0] += v % 37;
        sum[1] += Math.floor(v / 37) % 23;
        sum[2] += Math.floor(v / (37 * 23));
      });
      expect(stats.voxels[l]).toBe(n);
      stats.centroidVoxel[l]!.forEach((c, a) => expect(c).toBeCloseTo(sum[a] / n, 9));
    }
  });
});

describe('label growing on runs', () => {
  /** Scattered seeds of labels 1 and 2 (so that many voxels touch both) and the voxels they may grow into. */
  function growthCase(seed: number, dims: [number, number, number]): { g: Grid; labels: Uint8Array; allowed: Uint8Array } {
    const rnd = random(seed);
    const size = dims[0] * dims[1] * dims[2];
    const labels = new Uint8Array(size);
    const allowed = new Uint8Array(size);
    for (let v = 0; v < size; v++) {
      const x = rnd();
      if (x < 0.12) labels[v] = x < 0.06 ? 1 : 2;
      else allowed[v] = x < 0.75 ? 1 : 0;
    }
    return { g: grid(dims), labels, allowed };
  }

  it('gives each allowed voxel the label of the geodesically nearest seed, as the byte version does', () => {
    for (const seed of [61, 62, 63]) {
      const { g, labels, allowed } = growthCase(seed, [30, 20, 10]);
      const expected = growLabels(labels, allowed, [30, 20, 10]);
      expect(expected.filter((l, v) => l !== 0 && labels[v] === 0).length).toBeGreaterThan(100); // it did grow
      const [seeds, into] = [runsOfLabels(labels, g) as LabelledRunMask, runsOfMask({ grid: g, data: allowed })];
      // Both ways: voxel by voxel on the runs, and on byte arrays (a sparse limit of 0 forces those).
      expect(labelArray(growLabelRuns(seeds, into))).toEqual(expected);
      expect(labelArray(growLabelRuns(seeds, into, 0))).toEqual(expected);
    }
  });
});

describe('contours of run-length masks', () => {
  it('are the contours of the same byte mask, point for point', () => {
    for (const seed of [71, 72]) {
      const mask = randomMask(grid([40, 30, 4]), seed, 0.55);
      for (const toleranceMm of [0, undefined]) {
        const fromRuns = runsToContours(runsOfMask(mask), { toleranceMm });
        const fromBytes = maskToContours(mask, { toleranceMm });
        expect(fromRuns.map((cs) => cs.map((c) => Array.from(c.points)))).toEqual(fromBytes.map((cs) => cs.map((c) => Array.from(c.points))));
        expect(fromRuns.flat().length).toBeGreaterThan(10);
      }
    }
  });
});

function byteBox(data: Uint8Array, g: Grid): Box | null {
  const [nx, ny] = g.dims;
  const lo = [Infinity, Infinity, Infinity];
  const hi = [0, 0, 0];
  data.forEach((x, v) => {
    if (!x) return;
    const p = [v % nx, Math.floor(v / nx) % ny, Math.floor(v / (nx * ny))];
    p.forEach((c, a) => {
      lo[a] = Math.min(lo[a], c);
      hi[a] = Math.max(hi[a], c + 1);
    });
  });
  return lo[0] === Infinity ? null : ({ lo, hi } as Box);
}
