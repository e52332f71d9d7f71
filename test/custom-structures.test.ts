import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMha, resampleToGrid } from './helpers/mha.js';
import { ConfigError } from '../src/config/load.js';
import { readCtSeries } from '../src/dicom/ct-series-reader.js';
import { writeCtSeries, type PatientPosition } from '../src/dicom/ct-series-writer.js';
import { dice, voxelCount, voxelToPatient, type Grid, type Mask, type Vec3 } from '../src/geometry/types.js';
import {
  buildRsCustom,
  computeCustomStructures,
  dependencyOrder,
  loadCustomStructures,
  matchStructureName,
  parseCustomStructures,
  type CustomStructureDefinition,
} from '../src/rt/custom-structures.js';
import { buildRtStruct, readRtStruct } from '../src/rt/rtstruct.js';
import { ctReference, maskContours } from '../src/rt/structure-set.js';
import { applyMargin, marginElement, uniformMargin, type DirectionalMargin } from '../src/segment/margin.js';

// ------------------------------------------------------------------------------------ helpers

type Box = [[number, number], [number, number], [number, number]]; // half-open voxel ranges per axis

const identity: Grid['direction'] = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];

function grid(dims: Vec3, spacingMm: Vec3 = [1, 1, 1], direction: Grid['direction'] = identity, originMm: Vec3 = [0, 0, 0]): Grid {
  return { dims, spacingMm, originMm, direction };
}

function boxMask(g: Grid, b: Box): Mask {
  return shapeMask(g, (i, j, k) => [i, j, k].every((v, a) => v >= b[a][0] && v < b[a][1]));
}

/** Voxels for which `inside(i, j, k, patient mm)` holds. */
function shapeMask(g: Grid, inside: (i: number, j: number, k: number, p: Vec3) => boolean): Mask {
  const [nx, ny, nz] = g.dims;
  const data = new Uint8Array(voxelCount(g));
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
    if (inside(i, j, k, voxelToPatient(g, i, j, k))) data[i + nx * (j + ny * k)] = 1;
  }
  return { grid: g, data };
}

const count = (a: Uint8Array): number => a.reduce((n, v) => n + (v ? 1 : 0), 0);
const boxVolume = (b: Box): number => b.reduce((n, [lo, hi]) => n * Math.max(0, hi - lo), 1);
const overlap = (...boxes: Box[]): Box =>
  [0, 1, 2].map((a) => [Math.max(...boxes.map((b) => b[a][0])), Math.min(...boxes.map((b) => b[a][1]))]) as Box;

/** Extent of the mask's voxel centres in patient mm: [min, max] along x, y, z. */
function patientExtent(m: Mask): [number, number][] {
  const ext: [number, number][] = [[Infinity, -Infinity], [Infinity, -Infinity], [Infinity, -Infinity]];
  const [nx, ny, nz] = m.grid.dims;
  for (let k = 0; k < nz; k++) for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) {
    if (!m.data[i + nx * (j + ny * k)]) continue;
    voxelToPatient(m.grid, i, j, k).forEach((v, a) => {
      ext[a][0] = Math.min(ext[a][0], v);
      ext[a][1] = Math.max(ext[a][1], v);
    });
  }
  return ext;
}

/** Patient position of every voxel centre, and of those set in `m`. */
function centres(m: Mask): { all: Vec3[]; set: number[] } {
  const [nx, ny] = m.grid.dims;
  const all = Array.from(m.data, (_, v) => voxelToPatient(m.grid, v % nx, Math.floor(v / nx) % ny, Math.floor(v / (nx * ny))));
  return { all, set: [...m.data.keys()].filter((v) => m.data[v]) };
}

/** Reference dilation: p is set iff some set q has p - q in the per-octant ellipsoid (patient mm). */
function bruteDilate(m: Mask, margin: DirectionalMargin): Uint8Array {
  const { all, set } = centres(m);
  return Uint8Array.from(all, (p) => (set.some((q) => inEllipsoid(sub(p, all[q]), margin)) ? 1 : 0));
}

/** Reference erosion: set p stays iff no background voxel q (in the volume) has q - p in the ellipsoid. */
function bruteErode(m: Mask, margin: DirectionalMargin): Uint8Array {
  const { all, set } = centres(m);
  const out = new Uint8Array(m.data.length);
  for (const p of set) out[p] = all.some((q, v) => !m.data[v] && inEllipsoid(sub(q, all[p]), margin)) ? 0 : 1;
  return out;
}

const sub = (a: Vec3, b: Vec3): Vec3 => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];

function inEllipsoid(d: Vec3, m: DirectionalMargin): boolean {
  const semi = [[m.right, m.left], [m.anterior, m.posterior], [m.inferior, m.superior]];
  let s = 0;
  for (let a = 0; a < 3; a++) {
    if (Math.abs(d[a]) < 1e-6) continue;
    const r = semi[a][d[a] > 0 ? 1 : 0];
    if (r === 0) return false;
    s += (d[a] / r) ** 2;
  }
  return s <= 1 + 1e-9;
}

/** Deterministic pseudo-random blobs, so the run machinery sees several runs per row and holes. */
function blobs(g: Grid, seed: number): Mask {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const centres = Array.from({ length: 5 }, () => [rnd() * g.dims[0], rnd() * g.dims[1], rnd() * g.dims[2], 1 + rnd() * 3]);
  return shapeMask(g, (i, j, k) => centres.some(([x, y, z, r]) => (i - x) ** 2 + (j - y) ** 2 + ((k - z) * 1.5) ** 2 <= r * r));
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve) => execFile(cmd, args, { maxBuffer: 16 << 20 }, (_e, out, err) => resolve(out + err)));
}

const def = (name: string, operation: CustomStructureDefinition['operation'], sourceStructures: string[], margin?: DirectionalMargin): CustomStructureDefinition => ({
  name,
  operation,
  sourceStructures,
  ...(margin ? { margin } : {}),
});

const zero = uniformMargin(0);

// ---------------------------------------------------------------------------------- operations

describe('boolean operations', () => {
  const g = grid([20, 20, 10]);
  const A: Box = [[2, 10], [2, 10], [2, 6]];
  const B: Box = [[6, 14], [4, 12], [3, 8]];
  const C: Box = [[0, 4], [0, 20], [0, 10]];
  const available = new Map([['A', boxMask(g, A)], ['B', boxMask(g, B)], ['C', boxMask(g, C)]]);
  const v = boxVolume;

  it('gives the exact voxel counts of union, intersection, subtract and xor', () => {
    const defs = [
      def('AuB', 'union', ['A', 'B']),
      def('AnB', 'intersection', ['A', 'B']),
      def('AnBnC', 'intersection', ['A', 'B', 'C']),
      def('A-B-C', 'subtract', ['A', 'B', 'C']),
      def('AxBxC', 'xor', ['A', 'B', 'C']),
    ];
    const r = computeCustomStructures(defs, available, g);
    const counts = Object.fromEntries(r.structures.map((s) => [s.name, count(s.mask.data)]));
    const ab = v(overlap(A, B)), ac = v(overlap(A, C)), bc = v(overlap(B, C)), abc = v(overlap(A, B, C));
    expect(ab).toBeGreaterThan(0);
    expect(ac).toBeGreaterThan(0);
    expect(counts).toEqual({
      AuB: v(A) + v(B) - ab,
      AnB: ab,
      AnBnC: abc,
      'A-B-C': v(A) - ab - ac + abc,
      // Odd membership: inclusion-exclusion with weights 1, -2, 4.
      AxBxC: v(A) + v(B) + v(C) - 2 * (ab + ac + bc) + 4 * abc,
    });
    expect(r.structures.find((s) => s.name === 'AnBnC')!.voxels).toBe(0);
    expect(r.warnings.some((w) => w.includes('"AnBnC" is empty'))).toBe(true);
    expect(r.missing).toEqual([]);
  });

  it('builds from other custom structures in dependency order, whatever the file order', () => {
    const defs = [def('ring', 'subtract', ['A_grown', 'A']), def('A_grown', 'union', ['A'], uniformMargin(1))];
    const r = computeCustomStructures(defs, available, g);
    expect(r.structures.map((s) => s.name)).toEqual(['A_grown', 'ring']);
    const grown = boxMask(g, [[1, 11], [1, 11], [1, 7]]);
    // A 1 mm ball on a 1 mm grid is the 6-neighbourhood: the grown box minus its 12 edges (no corners).
    const edges = 4 * (10 - 2) + 4 * (10 - 2) + 4 * (6 - 2) + 8;
    expect(count(r.structures[0].mask.data)).toBe(count(grown.data) - edges);
    expect(count(r.structures[1].mask.data)).toBe(count(r.structures[0].mask.data) - v(A));
    expect(r.structures[1].baseSources).toEqual(['A']);
  });

  it('reports missing sources and skips only the structures that need them', () => {
    const defs = [def('ok', 'union', ['a', 'b']), def('needs_cord', 'union', ['A', 'SpinalCord']), def('needs_needs', 'subtract', ['A', 'needs_cord'])];
    const r = computeCustomStructures(defs, available, g);
    expect(r.structures.map((s) => s.name)).toEqual(['ok']);
    expect(r.warnings).toContain('custom structure "ok": source "a" matched "A" (case-insensitive)');
    expect(r.missing.map((m) => [m.name, m.missingSources])).toEqual([['needs_cord', ['SpinalCord']], ['needs_needs', ['needs_cord']]]);
    expect(r.missing[0].reasons[0]).toMatch(/no structure of that name/);
    expect(r.missing[1].reasons[0]).toMatch(/"needs_cord" was not built: missing sources "SpinalCord"/);
  });

  it('reports cycles and goes on with the rest', () => {
    const defs = [def('X', 'union', ['Y']), def('Y', 'union', ['A', 'X']), def('Z', 'union', ['Z']), def('fine', 'union', ['A'])];
    const r = computeCustomStructures(defs, available, g);
    expect(r.structures.map((s) => s.name)).toEqual(['fine']);
    expect(r.skipped.map((s) => s.name).sort()).toEqual(['X', 'Y', 'Z']);
    expect(r.skipped.find((s) => s.name === 'X')!.reason).toMatch(/cycle: X -> Y -> X/);
    expect(r.skipped.find((s) => s.name === 'Z')!.reason).toMatch(/its own sources/);
  });

  it('finds every structure on a cycle, also one closed through an already finished structure', () => {
    // Depth first from A meets the back edge B -> A first; C -> B closes C's cycle through finished B.
    const deps = new Map([['A', ['B', 'C']], ['B', ['A']], ['C', ['B']], ['D', ['C']], ['E', []]]);
    expect(dependencyOrder(['A', 'B', 'C', 'D', 'E'], deps)).toEqual({ order: ['D', 'E'], cycles: [['A', 'B', 'C']] });
    const chain = new Map([['top', ['mid', 'x']], ['mid', ['low']], ['low', []]]);
    expect(dependencyOrder(['top', 'mid', 'low'], chain)).toEqual({ order: ['low', 'mid', 'top'], cycles: [] });
  });

  it('skips a custom structure whose name is taken by an existing one, or defined twice', () => {
    const r = computeCustomStructures([def('b', 'union', ['A']), def('AB', 'union', ['A', 'B']), def('ab', 'intersection', ['A', 'B'])], available, g);
    expect(r.structures.map((s) => [s.name, s.definition.operation])).toEqual([['AB', 'union']]);
    expect(r.skipped).toEqual([
      { name: 'b', reason: expect.stringContaining('already taken by the structure "B"') },
      { name: 'ab', reason: expect.stringContaining('defined more than once') },
    ]);
  });

  it('matches names exactly, then case-insensitively, then on letters and digits, and refuses ambiguity', () => {
    const names = ['Lung_L', 'LUNG_L', 'Heart', 'Spinal Cord'];
    expect(matchStructureName('LUNG_L', names)).toEqual({ kind: 'found', name: 'LUNG_L', how: 'exact' });
    expect(matchStructureName('lung_l', names)).toEqual({ kind: 'ambiguous', candidates: ['Lung_L', 'LUNG_L'] });
    expect(matchStructureName('HEART', names)).toEqual({ kind: 'found', name: 'Heart', how: 'case-insensitive' });
    expect(matchStructureName('spinal_cord', names)).toEqual({ kind: 'found', name: 'Spinal Cord', how: 'normalized' });
    expect(matchStructureName('Cord', names)).toEqual({ kind: 'none' });
  });
});

// ------------------------------------------------------------------------------------- margins

/** Patient axis directions of the four standard positions (row, column cosines as the writer sets them). */
const POSITIONS: Record<PatientPosition, Grid['direction']> = {
  HFS: [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
  FFS: [[-1, 0, 0], [0, 1, 0], [0, 0, -1]],
  HFP: [[-1, 0, 0], [0, -1, 0], [0, 0, 1]],
  FFP: [[1, 0, 0], [0, -1, 0], [0, 0, -1]],
};

describe.each(Object.keys(POSITIONS) as PatientPosition[])('directional margins on a %s grid', (position) => {
  const spacing: Vec3 = [2, 1.5, 3];
  const g = grid([30, 36, 16], spacing, POSITIONS[position], [position === 'HFS' || position === 'FFP' ? -29 : 29, 0, 0]);
  // A patient-space box: x in [-8, 8], y in [20, 30] mm, z in [-10, 10]; its voxel extent depends on the grid.
  const centre = voxelToPatient(g, 15, 18, 8);
  const box = shapeMask(g, (_i, _j, _k, p) => Math.abs(p[0] - centre[0]) <= 8 && Math.abs(p[1] - centre[1]) <= 5 && Math.abs(p[2] - centre[2]) <= 9);
  const before = patientExtent(box);
  // Per patient axis x, y, z: [axis, direction towards -, direction towards +], spacing along it.
  const axes: [number, keyof DirectionalMargin, keyof DirectionalMargin][] = [[0, 'right', 'left'], [1, 'anterior', 'posterior'], [2, 'inferior', 'superior']];
  const spacingAlong = (axis: number) => spacing[g.direction.findIndex((d) => Math.abs(d[axis]) > 0.5)];

  it('grows only the requested directions, by the requested mm within a voxel', () => {
    const margin: DirectionalMargin = { anterior: 6, posterior: 0, left: 4.5, right: 0, superior: 9, inferior: 2 };
    const after = patientExtent(applyMargin(box, margin));
    for (const [a, minus, plus] of axes) {
      const grewMinus = before[a][0] - after[a][0];
      const grewPlus = after[a][1] - before[a][1];
      expect(Math.abs(grewMinus - margin[minus]), `${minus}`).toBeLessThan(spacingAlong(a) + 1e-9);
      expect(Math.abs(grewPlus - margin[plus]), `${plus}`).toBeLessThan(spacingAlong(a) + 1e-9);
      if (margin[minus] === 0) expect(grewMinus, `${minus}`).toBeCloseTo(0, 9);
      if (margin[plus] === 0) expect(grewPlus, `${plus}`).toBeCloseTo(0, 9);
      expect(grewMinus, `${minus}`).toBeLessThanOrEqual(margin[minus] + 1e-9);
      expect(grewPlus, `${plus}`).toBeLessThanOrEqual(margin[plus] + 1e-9);
    }
  });

  it('shrinks with negative margins, only in those directions', () => {
    const margin: DirectionalMargin = { anterior: -3, posterior: 0, left: 0, right: -4, superior: 0, inferior: -6 };
    const shrunk = applyMargin(box, margin);
    const after = patientExtent(shrunk);
    for (const [a, minus, plus] of axes) {
      const movedMinus = after[a][0] - before[a][0];
      const movedPlus = before[a][1] - after[a][1];
      expect(Math.abs(movedMinus + margin[minus]), `${minus}`).toBeLessThan(spacingAlong(a) + 1e-9);
      if (margin[plus] === 0) expect(movedPlus, `${plus}`).toBeCloseTo(0, 9);
    }
    expect(count(shrunk.data)).toBeLessThan(count(box.data));
    for (let v = 0; v < box.data.length; v++) if (shrunk.data[v]) expect(box.data[v]).toBe(1);
  });

  it('equals a brute-force per-octant ellipsoid dilation and erosion', () => {
    const m = blobs({ ...g, dims: [20, 24, 12] }, 7);
    const margin: DirectionalMargin = { anterior: 4.5, posterior: 1.5, left: 6, right: 2, superior: 6, inferior: 0 };
    expect(count(m.data)).toBeGreaterThan(50);
    expect(Array.from(applyMargin(m, margin).data)).toEqual(Array.from(bruteDilate(m, margin)));
    const expected = bruteErode(m, margin);
    expect(count(expected)).toBeGreaterThan(0);
    const negative = Object.fromEntries(Object.entries(margin).map(([k, x]) => [k, -x])) as unknown as DirectionalMargin;
    expect(Array.from(applyMargin(m, negative).data)).toEqual(Array.from(expected));
  });
});

describe('margin element and speed', () => {
  it('has no extent in a direction with a zero margin', () => {
    const e = marginElement(grid([10, 10, 10], [1, 1, 1], POSITIONS.FFS), { ...zero, left: 3, superior: 2 });
    // FFS: +i is patient right, +k is inferior; left and superior are the negative voxel directions.
    expect(Math.max(...e.rows.map((r) => r.hi))).toBe(0);
    expect(Math.min(...e.rows.map((r) => r.lo))).toBe(-3);
    expect(Math.max(...e.rows.map((r) => r.dk))).toBe(0);
    expect(Math.min(...e.rows.map((r) => r.dk))).toBe(-2);
    expect(e.rows.every((r) => r.dj === 0)).toBe(true);
  });

  it('expands a 256x256x100 body by 10 mm in well under the time budget', () => {
    const g = grid([256, 256, 100], [1.5, 1.5, 2.5]);
    const body = { grid: g, data: new Uint8Array(voxelCount(g)) };
    for (let v = 0; v < body.data.length; v++) body.data[v] = (((v % 256) - 128) / 110) ** 2 + (((Math.floor(v / 256) % 256) - 128) / 80) ** 2 <= 1 ? 1 : 0;
    const t0 = performance.now();
    const grown = applyMargin(body, uniformMargin(10));
    const shrunk = applyMargin(body, uniformMargin(-10));
    const ms = performance.now() - t0;
    console.log(`10 mm expansion + contraction of a ${count(body.data)}-voxel body: ${ms.toFixed(0)} ms`);
    expect(count(grown.data)).toBeGreaterThan(count(body.data));
    expect(count(shrunk.data)).toBeLessThan(count(body.data));
    expect(ms).toBeLessThan(3000);
  });
});

// ---------------------------------------------------------------------------------------- YAML

describe('custom structures YAML', () => {
  const load = (text: string) => parseCustomStructures(text, 'cs.yaml');
  const errorOf = (text: string): ConfigError => {
    try {
      load(text);
    } catch (e) {
      return e as ConfigError;
    }
    throw new Error('expected a ConfigError');
  };

  it("accepts the original rtpipeline's format", () => {
    const defs = load(`
custom_structures:
  - name: "PTV_5mm"
    operation: "union"
    source_structures: ["PTV"]
    margin: 5
    description: "PTV with 5mm uniform margin"
  - name: "GTV_asymmetric"
    source_structures: ["GTV"]
    margin:
      anterior_mm: 10
      posterior_mm: 5
      left_mm: 7
      right_mm: 7
      superior_mm: 15
      inferior_mm: 5
  - name: heart_PRV
    source_structures: [Heart]
    margin: { anterior: 5, uniform: 2 }
    type: avoidance
    color: [1, 2, 3]
`);
    expect(defs).toEqual([
      { name: 'PTV_5mm', operation: 'union', sourceStructures: ['PTV'], margin: uniformMargin(5), description: 'PTV with 5mm uniform margin' },
      { name: 'GTV_asymmetric', operation: 'union', sourceStructures: ['GTV'], margin: { anterior: 10, posterior: 5, left: 7, right: 7, superior: 15, inferior: 5 } },
      { name: 'heart_PRV', operation: 'union', sourceStructures: ['Heart'], margin: { ...uniformMargin(2), anterior: 5 }, type: 'AVOIDANCE', color: [1, 2, 3] },
    ]);
  });

  it('loads config/custom_structures.example.yaml', async () => {
    const defs = await loadCustomStructures(join(import.meta.dirname, '..', 'config', 'custom_structures.example.yaml'));
    expect(defs.length).toBeGreaterThan(5);
    expect(defs.find((d) => d.name === 'Heart_PRV')!.margin).toEqual({ anterior: 5, posterior: 3, left: 5, right: 5, superior: 10, inferior: 10 });
  });

  it('names the file, line, entry and key of a mistake', () => {
    const e = errorOf(`custom_structures:
  - name: ok
    source_structures: [A]
  - name: PTV_x
    source_structures: [PTV]
    margin:
      anterir: 5
    operation: substract
`);
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.exitCode).toBe(2);
    expect(e.message).toContain('cs.yaml: line 7: custom_structures[1] "PTV_x": margin.anterir: unknown key (allowed here: anterior, anterior_mm');
    expect(e.message).toContain('cs.yaml: line 8: custom_structures[1] "PTV_x": operation: must be one of union, intersection, subtract, xor');
  });

  it.each([
    ['a subtract of one structure', '  - name: X\n    operation: subtract\n    source_structures: [A]\n', 'custom_structures[0] "X": source_structures: subtract needs at least two'],
    ['a margin given twice', '  - name: X\n    source_structures: [A]\n    margin: { left: 1, left_mm: 2 }\n', 'custom_structures[0] "X": margin.left_mm: give either left or left_mm'],
    ['a margin that is text', '  - name: X\n    source_structures: [A]\n    margin: 5mm\n', 'custom_structures[0] "X": margin: must be a number of mm or a mapping'],
    ['no sources', '  - name: X\n    source_structures: []\n', 'custom_structures[0] "X": source_structures: must name at least one structure'],
    ['a missing name', '  - source_structures: [A]\n', 'cs.yaml: line 2: custom_structures[0]: name: must be a text'],
    ['an unknown entry key', '  - name: X\n    sources: [A]\n', 'line 3: custom_structures[0] "X": sources: unknown key'],
    ['a duplicate name', '  - name: X\n    source_structures: [A]\n  - name: x\n    source_structures: [B]\n', 'line 4: custom_structures[1] "x": name: "x" is already defined by custom_structures[0] "X"'],
    ['a cycle', '  - name: X\n    source_structures: [Y]\n  - name: Y\n    source_structures: [x]\n', 'custom_structures[0] "X": source_structures: "X" is part of a cycle: X -> Y -> X'],
    ['a bad type', '  - name: X\n    source_structures: [A]\n    type: TUMOUR\n', 'custom_structures[0] "X": type: must be one of EXTERNAL, PTV'],
  ])('refuses %s', (_what, entries, message) => {
    expect(errorOf(`custom_structures:\n${entries}`).message).toContain(message);
  });

  it('refuses unknown top-level keys and YAML syntax errors', () => {
    expect(errorOf('custom_structure: []\n').message).toContain('cs.yaml: line 1: custom_structure: unknown key (allowed here: custom_structures)');
    expect(errorOf('custom_structures:\n  - name: [\n').message).toMatch(/cs\.yaml: line \d+, column \d+: YAML syntax error/);
  });

  it('says which file could not be read', async () => {
    await expect(loadCustomStructures('/nonexistent/cs.yaml')).rejects.toThrow(/cannot read custom structures file \/nonexistent\/cs\.yaml: ENOENT/);
  });
});

// ----------------------------------------------------------------------------------- RS_custom

describe.each(['HFS', 'FFS'] as PatientPosition[])('RS_custom on a %s CT', (position) => {
  let work: string;
  let ctDir: string;
  let rsPath: string;
  let ctGrid: Grid;
  let built: ReturnType<typeof buildRsCustom>;
  let input: Parameters<typeof buildRsCustom>[0];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'rs-custom-'));
    ctDir = join(work, 'ct');
    const phantom = { rows: 40, columns: 44, slices: 10, pixelSpacingMm: [2.5, 2.5] as [number, number], sliceThicknessMm: 3 };
    const series = await writeCtSeries(ctDir, { patientId: 'RSC01', patientName: 'PHANTOM^CUSTOM', studyDate: '20240501', patientPosition: position, phantom });
    const ct = await readCtSeries(series.files);
    ctGrid = ct.grid;
    const { files: _files, ...uids } = series;
    const study = { ...uids, patientId: 'RSC01', patientName: 'PHANTOM^CUSTOM', studyDate: '20240501', studyTime: '120000', accessionNumber: '' };
    // Patient-space shapes: a spherical PTV (drawn "by hand" in the planning RTSTRUCT), and auto masks.
    const sphere = (c: Vec3, r: number) => shapeMask(ctGrid, (_i, _j, _k, p) => (p[0] - c[0]) ** 2 + (p[1] - c[1]) ** 2 + (p[2] - c[2]) ** 2 <= r * r);
    const ptv = sphere([8, -4, 0], 14);
    const body = shapeMask(ctGrid, (_i, _j, _k, p) => (p[0] / 48) ** 2 + (p[1] / 38) ** 2 <= 1);
    const lungL = shapeMask(ctGrid, (_i, _j, _k, p) => p[0] > 4 && p[0] < 36 && Math.abs(p[1]) < 22 && Math.abs(p[2]) < 10);
    const lungR = shapeMask(ctGrid, (_i, _j, _k, p) => p[0] < -4 && p[0] > -36 && Math.abs(p[1]) < 22 && Math.abs(p[2]) < 10);
    const ctRef = ctReference(ctGrid, ct.sliceSopInstanceUids, study);
    const manual = buildRtStruct({
      ct: ctRef,
      rois: [{ number: 4, name: 'PTV', color: [255, 0, 0], interpretedType: 'PTV', algorithm: 'MANUAL', contours: maskContours(ptv, ct.sliceSopInstanceUids) }],
      deterministic: { seed: 'manual' },
    });
    const definitions = parseCustomStructures(
      `custom_structures:
  - name: ring_PTV
    operation: subtract
    source_structures: [ptv_5mm, PTV]
  - name: PTV_5mm
    source_structures: [PTV]
    margin: 5
  - name: LUNGS_minus_PTV
    operation: subtract
    source_structures: [LUNGS, PTV]
  - name: LUNGS
    source_structures: [LUNG_L, LUNG_R]
  - name: LUNG_L_PRV
    source_structures: [LUNG_L]
    margin: { anterior: 5, left: 7.5 }
  - name: Cord_PRV
    source_structures: [SpinalCord]
    margin: 5
`,
      'test.yaml',
    );
    input = {
      ct: { grid: ctGrid, sliceSopInstanceUids: ct.sliceSopInstanceUids, study },
      manual,
      auto: [
        { name: 'BODY', mask: body, color: [0, 255, 0] },
        { name: 'LUNG_L', mask: lungL },
        { name: 'LUNG_R', mask: lungR },
        { name: 'ptv', mask: ptv },
      ],
      definitions,
      seed: 'course-1',
    };
    built = buildRsCustom(input);
    rsPath = join(work, 'RS_custom.dcm');
    await writeFile(rsPath, built.rtstruct);
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('passes dciodvfy with no errors', async () => {
    const out = await run('dciodvfy', [rsPath]);
    const findings = out.split('\n').filter((l) => /^(Error|Warning)/.test(l));
    if (findings.length > 0) console.log(`dciodvfy RS_custom.dcm:\n${findings.join('\n')}`);
    expect(out).toContain('RTStructureSet');
    expect(findings.filter((l) => l.startsWith('Error'))).toEqual([]);
  });

  it('reads back with every ROI: manual, auto (renamed on a clash), custom; missing ones reported', () => {
    const rs = readRtStruct(built.rtstruct);
    const rows = rs.rois.map((r) => [r.name, r.algorithm, r.interpretedType]);
    expect(rows).toEqual([
      ['PTV', 'MANUAL', 'PTV'],
      ['BODY', 'AUTOMATIC', 'EXTERNAL'],
      ['LUNG_L', 'AUTOMATIC', 'ORGAN'],
      ['LUNG_R', 'AUTOMATIC', 'ORGAN'],
      ['ptv_auto', 'AUTOMATIC', 'ORGAN'],
      ['PTV_5mm', 'SEMIAUTOMATIC', 'PTV'],
      ['ring_PTV', 'SEMIAUTOMATIC', 'CONTROL'],
      ['LUNGS', 'AUTOMATIC', 'ORGAN'],
      ['LUNGS_minus_PTV', 'SEMIAUTOMATIC', 'ORGAN'],
      ['LUNG_L_PRV', 'AUTOMATIC', 'AVOIDANCE'],
    ]);
    expect(rs.rois.map((r) => r.number)).toEqual(rows.map((_, i) => i + 1));
    expect(rs.rois.every((r) => r.contours.length > 0 && r.frameOfReferenceUid === input.ct.study.frameOfReferenceUid)).toBe(true);
    expect(rs.referencedSopInstanceUids).toEqual(input.ct.sliceSopInstanceUids);
    expect(built.report.missing).toEqual([{ name: 'Cord_PRV', missingSources: ['SpinalCord'], reasons: ['"SpinalCord": no structure of that name'] }]);
    expect(built.report.warnings).toContain('auto ROI "ptv" is written as "ptv_auto": the name is already used');
    // "ptv_5mm" in ring_PTV's sources names the custom PTV_5mm.
    expect(built.custom.find((s) => s.name === 'ring_PTV')!.resolvedSources).toEqual(['PTV_5mm', 'PTV']);
    expect(buildRsCustom(input).rtstruct.equals(built.rtstruct)).toBe(true);
  });

  it('rasterises in plastimatch like our masks (Dice >= 0.98)', async () => {
    const out = join(work, 'plastimatch');
    const log = await run('plastimatch', ['convert', '--input', rsPath, '--referenced-ct', ctDir, '--output-prefix', out, '--prefix-format', 'mha', '--xor-contours']);
    for (const name of ['ring_PTV', 'LUNGS_minus_PTV', 'LUNG_L_PRV']) {
      const ours = built.custom.find((s) => s.name === name)!.mask.data;
      const mha = await readFile(join(out, `${name}.mha`)).catch(() => {
        throw new Error(`plastimatch wrote no ${name}.mha:\n${log}`);
      });
      const theirs = resampleToGrid(readMha(mha), ctGrid);
      const d = dice(ours, theirs);
      console.log(`${position} ${name}: ours ${count(ours)} voxels, plastimatch ${count(theirs)}, Dice ${d.toFixed(4)}`);
      expect(count(ours)).toBeGreaterThan(100);
      expect(d).toBeGreaterThanOrEqual(0.98);
    }
  });

  it('grows the PRV towards the patient left and anterior only', () => {
    const lung = input.auto.find((a) => a.name === 'LUNG_L')!.mask;
    const prv = built.custom.find((s) => s.name === 'LUNG_L_PRV')!.mask;
    const [b, a] = [patientExtent(lung), patientExtent(prv)];
    expect(a[0][1] - b[0][1]).toBeCloseTo(7.5, 0); // left (+x): 3 voxels of 2.5 mm
    expect(b[1][0] - a[1][0]).toBeCloseTo(5, 0); // anterior (-y): 2 voxels of 2.5 mm
    expect([a[0][0] - b[0][0], a[1][1] - b[1][1], a[2][0] - b[2][0], a[2][1] - b[2][1]]).toEqual([0, 0, 0, 0]);
  });
});
