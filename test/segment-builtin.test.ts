import { describe, expect, it } from 'vitest';
import { dice, type Grid, type Mask, type Vec3 } from '../src/geometry/types.js';
import { thoraxAnatomy, thoraxCouch, type PhantomSpec } from '../src/phantom/thorax.js';
import { segmentBuiltin, type BuiltinStructure } from '../src/segment/builtin.js';
import { phantomTruth, phantomVolume, truthMask, type Truth } from './helpers/phantom-truth.js';
import { centroidMm, labelStats } from '../src/segment/mask.js';
import {
  close,
  componentsInside,
  componentsTouchingSlice,
  connectedComponents,
  dilate,
  erode,
  fillHoles3d,
  fillHolesPerSlice,
  growLabels,
  keepLargestComponent,
  largestComponentLabels,
  open,
  removeSmallComponents,
  type Connectivity,
} from '../src/segment/morphology.js';

// ---------------------------------------------------------------------------------------------------
// Phantom volumes and their ground truth


/** Mirrors i (columns): the same patient seen with the image's row direction along -x, as in a feet-first scan. */
function mirrorI(grid: Grid, data: Uint8Array | Int16Array): Uint8Array | Int16Array {
  const [nx] = grid.dims;
  const out = data.slice();
  for (let row = 0; row < data.length / nx; row++) {
    for (let i = 0; i < nx; i++) out[row * nx + i] = data[row * nx + nx - 1 - i];
  }
  return out;
}

function mirroredGrid(grid: Grid): Grid {
  const xLast = grid.originMm[0] + (grid.dims[0] - 1) * grid.spacingMm[0];
  return { ...grid, originMm: [xLast, grid.originMm[1], grid.originMm[2]], direction: [[-1, 0, 0], grid.direction[1], grid.direction[2]] };
}

const byName = (structures: BuiltinStructure[], name: string) => structures.find((s) => s.name === name)!.mask.data;

function overlap(a: Uint8Array, b: Uint8Array): number {
  let n = 0;
  for (let v = 0; v < a.length; v++) n += a[v] & b[v];
  return n;
}

function count(a: Uint8Array): number {
  return overlap(a, a);
}

function scores(structures: BuiltinStructure[], truth: Truth) {
  return {
    BODY: dice(byName(structures, 'BODY'), truth.body),
    LUNG_L: dice(byName(structures, 'LUNG_L'), truth.lungL),
    LUNG_R: dice(byName(structures, 'LUNG_R'), truth.lungR),
    BONES: dice(byName(structures, 'BONES'), truth.bones),
  };
}

function expectGoodSegmentation(label: string, structures: BuiltinStructure[], truth: Truth): void {
  const s = scores(structures, truth);
  const bronchi = overlap(truth.bronchi, byName(structures, 'LUNG_L')) + overlap(truth.bronchi, byName(structures, 'LUNG_R'));
  console.log(
    `${label}: Dice ${Object.entries(s)
      .map(([n, d]) => `${n} ${d.toFixed(4)}`)
      .join(', ')}; extrapulmonary bronchi in lungs ${bronchi}/${count(truth.bronchi)} voxels`,
  );
  expect(s.BODY).toBeGreaterThanOrEqual(0.98);
  expect(s.LUNG_L).toBeGreaterThanOrEqual(0.95);
  expect(s.LUNG_R).toBeGreaterThanOrEqual(0.95);
  expect(s.BONES).toBeGreaterThanOrEqual(0.9);
  // The couch (its shell is bone-dense) is in neither BODY nor BONES.
  expect(count(truth.couch)).toBeGreaterThan(0);
  expect(overlap(truth.couch, byName(structures, 'BODY'))).toBe(0);
  expect(overlap(truth.couch, byName(structures, 'BONES'))).toBe(0);
  // The trachea is in no lung, and at most a short stump of each main bronchus.
  expect(count(truth.trachea)).toBeGreaterThan(0);
  expect(overlap(truth.trachea, byName(structures, 'LUNG_L'))).toBe(0);
  expect(overlap(truth.trachea, byName(structures, 'LUNG_R'))).toBe(0);
  expect(bronchi).toBeLessThan(0.2 * count(truth.bronchi));
}

const SMALL: PhantomSpec = { rows: 128, columns: 128, slices: 60, pixelSpacingMm: [3.5, 3.5], sliceThicknessMm: 5 };
const MEDIUM: PhantomSpec = { rows: 256, columns: 256, slices: 80, pixelSpacingMm: [1.953125, 1.953125], sliceThicknessMm: 3.75 };

describe('built-in segmentation of the thorax phantom', () => {
  it.each([
    ['128x128x60, 3.5 mm pixels, 5 mm slices', SMALL],
    ['256x256x80, 1.95 mm pixels, 3.75 mm slices', MEDIUM],
  ])('segments BODY, lungs and BONES (%s)', (label, spec) => {
    const ct = phantomVolume(spec);
    const structures = segmentBuiltin(ct);
    expect(structures.map((s) => [s.name, s.type])).toEqual([
      ['BODY', 'EXTERNAL'],
      ['LUNG_L', 'ORGAN'],
      ['LUNG_R', 'ORGAN'],
      ['BONES', 'ORGAN'],
    ]);
    for (const s of structures) expect(s.mask.grid).toBe(ct.grid);
    expectGoodSegmentation(label, structures, phantomTruth(spec, ct.grid));
  });

  it('names the lungs by patient side when the image is mirrored (row direction along -x)', () => {
    const hfs = phantomVolume(SMALL);
    const grid = mirroredGrid(hfs.grid);
    const ct = { grid, data: mirrorI(hfs.grid, hfs.data) as Int16Array };
    const truth = phantomTruth(SMALL, hfs.grid);
    const mirrored = Object.fromEntries(Object.entries(truth).map(([k, v]) => [k, mirrorI(hfs.grid, v)])) as unknown as Truth;
    const structures = segmentBuiltin(ct);
    expectGoodSegmentation('mirrored 128x128x60', structures, mirrored);
    // In this image the left lung lies at low column indices.
    expect(overlap(byName(structures, 'LUNG_L'), mirrored.lungL)).toBeGreaterThan(0.9 * count(mirrored.lungL));
  });

  it('keeps the couch out of BODY when a thin strap joins them', () => {
    const ct = phantomVolume(SMALL);
    const truth = phantomTruth(SMALL, ct.grid);
    // One column of soft tissue (3.5 mm wide) across the air gap, over the whole scan length.
    const bodyBottom = Math.max(...thoraxAnatomy(SMALL).filter((e) => e.name === 'body').map((e) => e.centreMm[1] + e.radiiMm[1]));
    const couchTop = thoraxCouch(SMALL)[0].yMm[0];
    const strap = truthMask(ct.grid, (x, y) => x > 0 && x < 3.5 && y > bodyBottom - 5 && y < couchTop + 1);
    for (let v = 0; v < strap.length; v++) if (strap[v] && ct.data[v] < -500) ct.data[v] = 40;
    const structures = segmentBuiltin(ct);
    expect(overlap(truth.couch, byName(structures, 'BODY'))).toBe(0);
    expect(dice(byName(structures, 'BODY'), truth.body)).toBeGreaterThanOrEqual(0.98);
  });

  it('separates lungs that touch (a broad air-density bridge behind the heart)', () => {
    const ct = phantomVolume(SMALL);
    const truth = phantomTruth(SMALL, ct.grid);
    // Paint lung density over x in [-45, 45], y in [32, 64], z in [-60, 20] mm: 32 mm thick, too thick
    // for the airway opening to cut. Its halves belong to the lung on their side.
    const bridge = truthMask(ct.grid, (x, y, z) => Math.abs(x) <= 45 && y >= 32 && y <= 64 && z >= -60 && z <= 20);
    for (let v = 0; v < bridge.length; v++) {
      if (!bridge[v]) continue;
      ct.data[v] = -850;
      const left = v % ct.grid.dims[0] >= ct.grid.dims[0] / 2;
      (left ? truth.lungL : truth.lungR)[v] = 1;
      (left ? truth.lungR : truth.lungL)[v] = 0;
    }
    const structures = segmentBuiltin(ct);
    const s = scores(structures, truth);
    console.log(`touching lungs: Dice LUNG_L ${s.LUNG_L.toFixed(4)}, LUNG_R ${s.LUNG_R.toFixed(4)}`);
    expect(s.LUNG_L).toBeGreaterThanOrEqual(0.95);
    expect(s.LUNG_R).toBeGreaterThanOrEqual(0.95);
  });

  it('runs on a 512x512x200 volume (timing printed, not asserted)', () => {
    const spec: PhantomSpec = { rows: 512, columns: 512, slices: 200, pixelSpacingMm: [0.9765625, 0.9765625], sliceThicknessMm: 1.5 };
    const ct = phantomVolume(spec);
    const stages: string[] = [];
    const t0 = performance.now();
    const structures = segmentBuiltin(ct, { onStage: (stage, ms) => stages.push(`${stage} ${ms.toFixed(0)} ms`) });
    const total = performance.now() - t0;
    const truth = phantomTruth(spec, ct.grid);
    const s = scores(structures, truth);
    console.log(
      `512x512x200 segmented in ${total.toFixed(0)} ms (${stages.join(', ')}); Dice ` +
        Object.entries(s)
          .map(([n, d]) => `${n} ${d.toFixed(4)}`)
          .join(', '),
    );
    expect(structures).toHaveLength(4);
  });
});

// ---------------------------------------------------------------------------------------------------
// Morphology on small arrays

function gridOf(dims: [number, number, number], spacingMm: Vec3 = [1, 1, 1]): Grid {
  return {
    dims,
    spacingMm,
    originMm: [0, 0, 0],
    direction: [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
    ],
  };
}

function maskOf(dims: [number, number, number], set: [number, number, number][], spacingMm?: Vec3): Mask {
  const grid = gridOf(dims, spacingMm);
  const data = new Uint8Array(dims[0] * dims[1] * dims[2]);
  for (const [i, j, k] of set) data[i + j * dims[0] + k * dims[0] * dims[1]] = 1;
  return { grid, data };
}

function at(m: Mask, i: number, j: number, k: number): number {
  const [nx, ny] = m.grid.dims;
  return m.data[i + j * nx + k * nx * ny];
}

/** Reference labelling: BFS over explicit neighbour offsets. */
function referenceComponents(m: Mask, connectivity: Connectivity): Int32Array {
  const [nx, ny, nz] = m.grid.dims;
  const offsets: Vec3[] = [];
  for (let dk = -1; dk <= 1; dk++)
    for (let dj = -1; dj <= 1; dj++)
      for (let di = -1; di <= 1; di++) {
        const n = Math.abs(di) + Math.abs(dj) + Math.abs(dk);
        if (n > 0 && (connectivity === 26 || n === 1)) offsets.push([di, dj, dk]);
      }
  const labels = new Int32Array(m.data.length);
  let next = 0;
  for (let v = 0; v < m.data.length; v++) {
    if (!m.data[v] || labels[v]) continue;
    labels[v] = ++next;
    const stack = [v];
    while (stack.length) {
      const u = stack.pop()!;
      const i = u % nx;
      const j = Math.floor(u / nx) % ny;
      const k = Math.floor(u / (nx * ny));
      for (const [di, dj, dk] of offsets) {
        const [a, b, c] = [i + di, j + dj, k + dk];
        if (a < 0 || b < 0 || c < 0 || a >= nx || b >= ny || c >= nz) continue;
        const w = a + b * nx + c * nx * ny;
        if (m.data[w] && !labels[w]) {
          labels[w] = next;
          stack.push(w);
        }
      }
    }
  }
  return labels;
}

/** Deterministic pseudo-random mask. */
function randomMask(dims: [number, number, number], density: number, seed: number, spacingMm?: Vec3): Mask {
  const m = maskOf(dims, [], spacingMm);
  let s = seed >>> 0;
  for (let v = 0; v < m.data.length; v++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    m.data[v] = s / 2 ** 32 < density ? 1 : 0;
  }
  return m;
}

/** Two labellings describe the same partition. */
function samePartition(a: Int32Array, b: Int32Array): boolean {
  const ab = new Map<number, number>();
  const ba = new Map<number, number>();
  for (let v = 0; v < a.length; v++) {
    if ((a[v] === 0) !== (b[v] === 0)) return false;
    if (a[v] === 0) continue;
    if ((ab.get(a[v]) ?? b[v]) !== b[v] || (ba.get(b[v]) ?? a[v]) !== a[v]) return false;
    ab.set(a[v], b[v]);
    ba.set(b[v], a[v]);
  }
  return true;
}

describe('connected components', () => {
  it('joins diagonal neighbours with 26-connectivity only', () => {
    const m = maskOf([4, 4, 4], [
      [0, 0, 0],
      [1, 1, 1],
      [3, 3, 3],
      [3, 3, 2],
    ]);
    const six = connectedComponents(m, 6);
    const twentySix = connectedComponents(m, 26);
    expect(six.count).toBe(3);
    expect(Array.from(six.sizes)).toEqual([0, 1, 1, 2]);
    expect(twentySix.count).toBe(2);
    expect(Array.from(twentySix.sizes)).toEqual([0, 2, 2]);
    expect(at({ grid: m.grid, data: Uint8Array.from(twentySix.labels) }, 1, 1, 1)).toBe(1);
  });

  it('matches a reference BFS labelling on random masks', () => {
    for (const [seed, density] of [
      [1, 0.25],
      [2, 0.4],
      [3, 0.55],
    ]) {
      const m = randomMask([13, 11, 7], density, seed);
      for (const c of [6, 26] as const) expect(samePartition(connectedComponents(m, c).labels, referenceComponents(m, c))).toBe(true);
    }
  });

  it('keeps the largest component and removes small ones', () => {
    const m = maskOf([6, 3, 1], [
      [0, 0, 0],
      [2, 0, 0],
      [3, 0, 0],
      [4, 0, 0],
      [0, 2, 0],
      [1, 2, 0],
    ]);
    expect(Array.from(keepLargestComponent(m, 6).data.slice(0, 6))).toEqual([0, 0, 1, 1, 1, 0]);
    const kept = removeSmallComponents(m, 2, 6);
    expect(kept.data.reduce((a, b) => a + b, 0)).toBe(5);
    expect(at(kept, 0, 0, 0)).toBe(0);
  });
});

describe('component selection', () => {
  // Three blobs in a 6x3x3 volume: A (3 voxels, slice 0), B (2 voxels, slices 1-2), C (1 voxel, slice 2).
  const blobs = () =>
    maskOf([6, 3, 3], [
      [0, 0, 0],
      [1, 0, 0],
      [2, 0, 0],
      [5, 2, 1],
      [5, 2, 2],
      [0, 2, 2],
    ]);

  it('labels the largest components by decreasing size', () => {
    const { labels, sizes } = largestComponentLabels(blobs(), 2, 6);
    expect(sizes).toEqual([3, 2]);
    const m = blobs();
    expect([at({ ...m, data: labels }, 1, 0, 0), at({ ...m, data: labels }, 5, 2, 2), at({ ...m, data: labels }, 0, 2, 2)]).toEqual([1, 2, 0]);
    const stats = labelStats(labels, m.grid, 2);
    expect(stats.voxels.slice(1)).toEqual([3, 2]);
    expect(stats.centroidMm[2]).toEqual([5, 2, 1.5]);
    expect(centroidMm(m)).toEqual([13 / 6, 1, 5 / 6]); // i: 0+1+2+5+5+0, k: 0+0+0+1+2+2
  });

  it('keeps the components inside another mask, or touching a slice', () => {
    const within = maskOf([6, 3, 3], []);
    within.data.fill(1);
    within.data[5 + 2 * 6 + 2 * 18] = 0; // B pokes out
    const inside = componentsInside(blobs(), within, 6);
    expect([at(inside, 0, 0, 0), at(inside, 5, 2, 1), at(inside, 0, 2, 2)]).toEqual([1, 0, 1]);
    const top = componentsTouchingSlice(blobs(), 2, 6);
    expect([at(top, 0, 0, 0), at(top, 5, 2, 1), at(top, 0, 2, 2)]).toEqual([0, 1, 1]);
  });
});

describe('hole filling', () => {
  /** A 7x7 square ring in every slice of a 9x9x5 volume: a tube open at both ends. */
  const tube = () => {
    const set: [number, number, number][] = [];
    for (let k = 0; k < 5; k++) for (let a = 1; a <= 7; a++) set.push([a, 1, k], [a, 7, k], [1, a, k], [7, a, k]);
    return maskOf([9, 9, 5], set);
  };

  it('fills per slice what is enclosed in the slice, but in 3-D only what is enclosed in the volume', () => {
    const perSlice = fillHolesPerSlice(tube());
    expect(at(perSlice, 4, 4, 0)).toBe(1);
    expect(at(perSlice, 4, 4, 2)).toBe(1);
    expect(at(perSlice, 0, 0, 2)).toBe(0);
    expect(at(fillHoles3d(tube()), 4, 4, 2)).toBe(0); // the tube is open at the volume's first and last slices

    const capped = tube();
    for (const k of [0, 4]) for (let j = 1; j <= 7; j++) for (let i = 1; i <= 7; i++) capped.data[i + j * 9 + k * 81] = 1;
    const filled = fillHoles3d(capped);
    expect(at(filled, 4, 4, 2)).toBe(1);
    expect(filled.data.reduce((a, b) => a + b, 0)).toBe(7 * 7 * 5);
  });

  it('treats an 8-connected outline as closed', () => {
    // A diamond: each step is diagonal, so the background inside is only 8-connected to the outside.
    const m = maskOf([7, 7, 1], [
      [3, 0, 0],
      [4, 1, 0],
      [5, 2, 0],
      [6, 3, 0],
      [5, 4, 0],
      [4, 5, 0],
      [3, 6, 0],
      [2, 5, 0],
      [1, 4, 0],
      [0, 3, 0],
      [1, 2, 0],
      [2, 1, 0],
    ]);
    const filled = fillHolesPerSlice(m);
    expect(at(filled, 3, 3, 0)).toBe(1);
    expect(filled.data.reduce((a, b) => a + b, 0)).toBe(25);
  });
});

describe('erosion and dilation', () => {
  const sum = (m: Mask) => m.data.reduce((a, b) => a + b, 0);
  const point = (spacingMm?: Vec3) => maskOf([7, 7, 7], [[3, 3, 3]], spacingMm);

  it('dilates a voxel into a ball or a box of the radius in mm', () => {
    expect(sum(dilate(point(), { radiusMm: 1 }))).toBe(7);
    expect(sum(dilate(point(), { radiusMm: 1.5 }))).toBe(19); // faces and edges, not corners
    expect(sum(dilate(point(), { radiusMm: 1.8 }))).toBe(27);
    expect(sum(dilate(point(), { radiusMm: 1, shape: 'box' }))).toBe(27);
    expect(sum(dilate(point(), { radiusMm: [2, 1, 0], shape: 'box' }))).toBe(15);
    // 2 mm slices: a 1.5 mm ball stays in its slice.
    expect(sum(dilate(point([1, 1, 2]), { radiusMm: 1.5 }))).toBe(9);
    expect(sum(dilate(point([0.5, 0.5, 1]), { radiusMm: 1 }))).toBe(13 + 2); // a disc of radius 2 voxels in-plane, 1 voxel along k
  });

  it('matches a brute-force ball dilation with anisotropic spacing', () => {
    const spacing: Vec3 = [0.8, 1.1, 2.5];
    const m = randomMask([15, 12, 9], 0.03, 7, spacing);
    const r = 3.1;
    const got = dilate(m, { radiusMm: r });
    const [nx, ny, nz] = m.grid.dims;
    for (let k = 0; k < nz; k++)
      for (let j = 0; j < ny; j++)
        for (let i = 0; i < nx; i++) {
          let hit = 0;
          for (let c = 0; c < nz && !hit; c++)
            for (let b = 0; b < ny && !hit; b++)
              for (let a = 0; a < nx && !hit; a++) {
                if (at(m, a, b, c) && ((a - i) * spacing[0]) ** 2 + ((b - j) * spacing[1]) ** 2 + ((c - k) * spacing[2]) ** 2 <= r * r) hit = 1;
              }
          expect(at(got, i, j, k)).toBe(hit);
        }
  });

  it('erodes a cube and leaves a full volume alone (the outside of the volume is ignored)', () => {
    const cube: [number, number, number][] = [];
    for (let k = 1; k <= 5; k++) for (let j = 1; j <= 5; j++) for (let i = 1; i <= 5; i++) cube.push([i, j, k]);
    expect(sum(erode(maskOf([7, 7, 7], cube), { radiusMm: 1 }))).toBe(27);
    expect(sum(erode(maskOf([7, 7, 7], cube), { radiusMm: 1, shape: 'box' }))).toBe(27);
    expect(sum(erode(maskOf([7, 7, 7], cube), { radiusMm: 2 }))).toBe(1);
    const full = maskOf([4, 4, 4], []);
    full.data.fill(1);
    expect(sum(erode(full, { radiusMm: 2 }))).toBe(64);
    expect(sum(close(full, { radiusMm: 2 }))).toBe(64);
  });

  it('opens away a thin spur and closes a one-voxel gap', () => {
    const set: [number, number, number][] = [];
    for (let j = 0; j < 5; j++) for (let i = 0; i < 5; i++) set.push([i, j, 0]);
    for (let i = 5; i < 9; i++) set.push([i, 2, 0]); // spur
    for (let j = 0; j < 5; j++) for (let i = 10; i < 14; i++) set.push([i, j, 0]); // block after a 1-voxel gap
    const m = maskOf([14, 5, 1], set);
    const opened = open(m, { radiusMm: 1, shape: 'box' });
    expect(at(opened, 7, 2, 0)).toBe(0);
    expect(at(opened, 2, 2, 0)).toBe(1);
    const closed = close(m, { radiusMm: 1, shape: 'box' });
    expect(at(closed, 9, 2, 0)).toBe(1);
    expect(at(closed, 9, 0, 0)).toBe(0); // the spur only bridges the middle row region
  });

  it('grows labels to the geodesically nearest seed', () => {
    const allowed = new Uint8Array(9).fill(1);
    allowed[4] = 0;
    const seeds = new Uint8Array(9);
    seeds[0] = 1;
    seeds[8] = 2;
    const grown = growLabels(seeds, allowed, [9, 1, 1]);
    expect(Array.from(grown)).toEqual([1, 1, 1, 1, 0, 2, 2, 2, 2]);
  });
});
