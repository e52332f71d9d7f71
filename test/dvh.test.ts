import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRtDose, parseRtDose } from '../src/dicom/rt-dose.js';
import { SOP_CLASS } from '../src/dicom/sop-classes.js';
import { computeDvh, computeDvhs, dvhOutputName, prepareDoseField, type DvhRoi } from '../src/dvh/dvh.js';
import { dvhMetricColumns, dvhMetrics } from '../src/dvh/metrics.js';
import {
  axialGrid, boxContours, cylinderContours, gaussian, keyholeRingContours, planes, ringContours, sampleDose, sphereContours,
} from '../src/dvh/synthetic-plan.js';
import type { Grid, Vec3 } from '../src/geometry/types.js';
import { buildRtStruct, readRtStruct, type RtStructRoiInput } from '../src/rt/rtstruct.js';

const SYSTEM_PYTHON = '/usr/bin/python3';
const REFERENCE_SCRIPT = join(import.meta.dirname, 'fixtures', 'dvh_reference.py');

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

const near = (actual: number | null, expected: number, tol: number) => {
  expect(actual).not.toBeNull();
  expect(Math.abs(actual! - expected)).toBeLessThanOrEqual(tol);
};

// A 100 x 100 x 100 mm dose grid of 2.5 mm voxels centred on the origin.
const GRID = axialGrid([-50, -50, -50], [2.5, 2.5, 2.5], [41, 41, 41]);

describe('DVH: analytic cases', () => {
  it('uniform dose: every Dx, the mean, min and max equal the dose; Vx steps at it', () => {
    const field = prepareDoseField({ grid: GRID, doseGy: sampleDose(GRID, () => 2) });
    const dvh = computeDvh(field, { number: 1, name: 'SPHERE', contours: sphereContours([3, -2, 1], 20, planes(-19, 21, 2)) });
    const m = dvhMetrics(dvh);
    for (const key of ['DmeanGy', 'DminGy', 'DmaxGy', 'D95Gy', 'D98Gy', 'D2Gy', 'D50Gy', 'D1ccGy', 'D0.1ccGy']) near(m[key], 2, 1e-5);
    expect(m.HI).toBeCloseTo(0, 6);
    expect(m['V1Gy (%)']).toBeCloseTo(100, 9);
    expect(m['V2Gy (%)']).toBeCloseTo(100, 9);
    expect(m['V3Gy (cm³)']).toBe(0);
    expect(m.IntegralDose_Gycm3).toBeCloseTo(2 * dvh.volumeCm3, 5);
    expect(dvh.partial).toBe(false);
  });

  it('linear gradient along x through a box: Dmean and D50 at the centre, D95/D5 at 5 % from the ends', () => {
    const [x0, x1] = [-13.3, 17.9];
    const dose = (x: number) => 30 + 0.5 * x;
    const field = prepareDoseField({ grid: GRID, doseGy: sampleDose(GRID, (x) => dose(x)) });
    const zs = planes(-10, 10, 2);
    const dvh = computeDvh(field, { number: 2, name: 'BOX', contours: boxContours([x0, -7.1, x1, 12.2], zs) });
    const m = dvhMetrics(dvh);
    // Slab convention: 11 planes x 2 mm.
    const volume = ((x1 - x0) * (12.2 + 7.1) * zs.length * 2) / 1000;
    expect(Math.abs(dvh.volumeCm3 / volume - 1)).toBeLessThan(0.01);
    near(m.DmeanGy, dose((x0 + x1) / 2), 1e-3);
    // Each sub-sample cell (2.5/3 mm) carries one dose, so along a gradient that every row shares,
    // the curve is a staircase of 0.5 Gy/mm x 0.83 mm steps: Dx is exact to half a step.
    const halfStep = (0.5 * 2.5) / 3 / 2;
    near(m.D50Gy, dose((x0 + x1) / 2), halfStep);
    near(m.D95Gy, dose(x0 + 0.05 * (x1 - x0)), halfStep);
    near(m.D2Gy, dose(x0 + 0.98 * (x1 - x0)), halfStep);
    near(m.DminGy, dose(x0), 0.25);
    near(m.DmaxGy, dose(x1), 0.25);
    // V{x}Gy of a uniform spread: the share of the box beyond the x where the dose is x Gy.
    const share = (gy: number) => Math.min(1, Math.max(0, (x1 - (gy - 30) / 0.5) / (x1 - x0)));
    // ... to one sub-sample cell across the gradient.
    for (const gy of [25, 30, 35]) near(m[`V${gy}Gy (%)`], 100 * share(gy), (100 * 2.5) / 3 / (x1 - x0));
    near(m.HI, (dose(x0 + 0.98 * 31.2) - dose(x0 + 0.02 * 31.2)) / dose((x0 + x1) / 2), 0.002);
  });

  it('sphere in a Gaussian field: volume, Dmean, D50, D95 as integrated analytically', () => {
    const [peak, sigma, radius] = [60, 15, 20];
    const centre: Vec3 = [2.5, -1.25, 0.7];
    const field = prepareDoseField({ grid: GRID, doseGy: sampleDose(GRID, gaussian(centre, peak, sigma)) });
    const dvh = computeDvh(field, { number: 3, name: 'SPHERE', contours: sphereContours(centre, radius, planes(-19.3, 20.7, 1)) });
    const m = dvhMetrics(dvh);
    const atRadius = (r: number) => peak * Math.exp(-(r * r) / (2 * sigma * sigma));
    // Mean over the ball: (3/R³) ∫ D(r) r² dr, by the midpoint rule on 10^5 shells.
    let integral = 0;
    const steps = 100_000;
    for (let s = 0; s < steps; s++) {
      const r = ((s + 0.5) / steps) * radius;
      integral += atRadius(r) * r * r * (radius / steps);
    }
    expect(Math.abs(dvh.volumeCm3 / ((4 / 3) * Math.PI * radius ** 3 / 1000) - 1)).toBeLessThan(0.01);
    near(m.DmeanGy, (3 / radius ** 3) * integral, 0.3);
    // D_x: the dose at the radius enclosing (100 - x) % of the ball.
    near(m.D50Gy, atRadius(radius * Math.cbrt(0.5)), 0.3);
    near(m.D95Gy, atRadius(radius * Math.cbrt(0.95)), 0.3);
    // Near the peak the trilinear interpolation of the 2.5 mm grid falls short of the Gaussian
    // (by 0.37 Gy at the centre), which is the grid's limit, not the DVH's.
    near(m.D2Gy, atRadius(radius * Math.cbrt(0.02)), 0.4);
  });

  it('holes, keyholes and islands follow the even-odd rule', () => {
    const field = prepareDoseField({ grid: GRID, doseGy: sampleDose(GRID, gaussian([0, 0, 0], 50, 20)) });
    const zs = planes(-6, 6, 1.5);
    const ring = computeDvh(field, { number: 1, name: 'RING', contours: ringContours([1, 2], 22, 11, zs) });
    const keyhole = computeDvh(field, { number: 2, name: 'KEYHOLE', contours: keyholeRingContours([1, 2], 22, 11, zs) });
    const polygonArea = (r: number) => 0.5 * 64 * r * r * Math.sin((2 * Math.PI) / 64);
    const ringVolume = ((polygonArea(22) - polygonArea(11)) * zs.length * 1.5) / 1000;
    expect(Math.abs(ring.volumeCm3 / ringVolume - 1)).toBeLessThan(0.005);
    expect(keyhole.volumeCm3).toBeCloseTo(ring.volumeCm3, 6);
    expect(keyhole.meanGy).toBeCloseTo(ring.meanGy, 6);
    // The hole is the high-dose centre: the ring's maximum stays below the dose where the hole's
    // polygon (inscribed radius 11 cos(π/64)) comes closest to the field's centre, √5 mm away.
    const nearest = 11 * Math.cos(Math.PI / 64) - Math.sqrt(5);
    expect(ring.maxGy).toBeLessThan(50 * Math.exp(-(nearest ** 2) / 800));
    expect(ring.maxGy).toBeGreaterThan(50 * Math.exp(-((nearest + 0.5) ** 2) / 800));
    const one = computeDvh(field, { number: 3, name: 'ONE', contours: cylinderContours([-25, 0], 10, zs) });
    const two = computeDvh(field, { number: 4, name: 'TWO', contours: [...cylinderContours([-25, 0], 10, zs), ...cylinderContours([25, 0], 10, zs)] });
    expect(two.volumeCm3).toBeCloseTo(2 * one.volumeCm3, 2);
    // Symmetric field, mirrored islands: the same mean.
    expect(two.meanGy).toBeCloseTo(one.meanGy, 2);
  });

  it('contour planes between dose planes use the dose interpolated between them', () => {
    const f = (_x: number, _y: number, z: number) => 20 + 0.4 * z;
    const field = prepareDoseField({ grid: GRID, doseGy: sampleDose(GRID, f) });
    // Planes at dose plane + 1.25 mm (mid-way) and + 0.6 mm.
    for (const offset of [1.25, 0.6]) {
      const zs = planes(-20 + offset, 20 + offset, 2.5);
      const dvh = computeDvh(field, { number: 1, name: 'CYL', contours: cylinderContours([0, 0], 15, zs) });
      const meanZ = zs.reduce((a, b) => a + b, 0) / zs.length;
      expect(dvh.meanGy).toBeCloseTo(20 + 0.4 * meanZ, 4);
      expect(dvh.minGy).toBeCloseTo(20 + 0.4 * zs[0], 4);
      expect(dvh.maxGy).toBeCloseTo(20 + 0.4 * zs[zs.length - 1], 4);
    }
  });

  it('non-uniform frame spacing: frames are placed by frameOffsetsMm', () => {
    const offsets = Float64Array.from([0, 2, 4, 7, 10, 15, 20, 30, 40, 60, 80, 100]);
    const grid = axialGrid([-50, -50, -50], [2.5, 2.5, 10], [41, 41, offsets.length]);
    const f = (_x: number, _y: number, z: number) => 30 + 0.2 * z;
    const field = prepareDoseField({ grid, doseGy: sampleDose(grid, f, offsets), frameOffsetsMm: offsets });
    const zs = planes(-47, 0, 1);
    const dvh = computeDvh(field, { number: 1, name: 'CYL', contours: cylinderContours([0, 0], 12, zs) });
    expect(dvh.meanGy).toBeCloseTo(30 + 0.2 * (zs[0] + zs[zs.length - 1]) / 2, 4);
  });

  it('a rotated and flipped dose grid gives the same DVH as the axis-aligned one', () => {
    const f = gaussian([4, -3, 2], 40, 18);
    const roi: DvhRoi = { number: 1, name: 'SPHERE', contours: sphereContours([0, 0, 0], 22, planes(-21, 21, 1.5)) };
    const reference = computeDvh(prepareDoseField({ grid: GRID, doseGy: sampleDose(GRID, f) }), roi);
    // Rows along patient y, columns along -x, frames along -z (prone-like, decreasing offsets).
    const rotated: Grid = { dims: [41, 41, 41], spacingMm: [2.5, 2.5, 2.5], originMm: [50, -50, 50], direction: [[0, 1, 0], [-1, 0, 0], [0, 0, -1]] };
    const dvh = computeDvh(prepareDoseField({ grid: rotated, doseGy: sampleDose(rotated, f) }), roi);
    expect(dvh.volumeCm3).toBeCloseTo(reference.volumeCm3, 1);
    expect(dvh.meanGy).toBeCloseTo(reference.meanGy, 1);
    expect(dvhMetrics(dvh).D50Gy!).toBeCloseTo(dvhMetrics(reference).D50Gy!, 1);
  });

  it('an ROI partly outside the dose grid is flagged and keeps its whole volume', () => {
    const field = prepareDoseField({ grid: GRID, doseGy: sampleDose(GRID, () => 10) });
    const zs = planes(30, 70, 2); // the grid ends at z = 51.25
    const dvh = computeDvh(field, { number: 9, name: 'CORD', contours: cylinderContours([0, 0], 8, zs) });
    expect(dvh.partial).toBe(true);
    expect(dvhOutputName(dvh)).toBe('CORD__partial');
    expect(dvh.inGridFraction).toBeCloseTo(11 / 21, 6);
    const area = 0.5 * 64 * 64 * Math.sin((2 * Math.PI) / 64);
    expect(Math.abs(dvh.volumeCm3 / ((area * 21 * 2) / 1000) - 1)).toBeLessThan(0.005);
    expect(dvh.cumulativeCm3[0]).toBeCloseTo(dvh.volumeCm3, 9);
    // In-plane overflow too: a box sticking out of the grid's side.
    const side = computeDvh(field, { number: 10, name: 'SIDE', contours: boxContours([40, -5, 60, 5], planes(-4, 4, 2)) });
    expect(side.partial).toBe(true);
    expect(side.inGridFraction).toBeCloseTo((51.25 - 40) / 20, 2);
    const inside = computeDvh(field, { number: 11, name: 'IN', contours: boxContours([30, -5, 50, 5], planes(-4, 4, 2)) });
    expect(inside.partial).toBe(false);
    expect(dvhOutputName(inside)).toBe('IN');
  });

  it('metric columns are the contract\'s, in order, with Rx metrics only when a prescription is known', () => {
    const field = prepareDoseField({ grid: GRID, doseGy: sampleDose(GRID, (x) => 30 + 0.5 * x) });
    const dvh = computeDvh(field, { number: 1, name: 'BOX', contours: boxContours([-20, -10, 20, 10], planes(-10, 10, 2)) });
    const cols = dvhMetricColumns(false);
    expect(cols.slice(0, 12)).toEqual(['Volume (cm³)', 'DmeanGy', 'DmaxGy', 'DminGy', 'D95Gy', 'D98Gy', 'D2Gy', 'D50Gy', 'HI', 'D1ccGy', 'D0.1ccGy', 'IntegralDose_Gycm3']);
    expect(cols).toContain('V60Gy (%)');
    expect(cols).toHaveLength(12 + 120);
    expect(Object.keys(dvhMetrics(dvh))).toEqual(cols);
    const withRx = dvhMetrics(dvh, { prescriptionGy: 30 });
    expect(Object.keys(withRx)).toEqual(dvhMetricColumns(true));
    // V100%Rx of a linear field: the share of the box with x >= 0; each sub-sample cell is a point
    // dose, so V(D) across a gradient resolves to one cell (2.5/3 mm of the 40 mm box).
    const cellShare = (100 * 2.5) / 3 / 40;
    near(withRx['V100%Rx (%)'], 50, cellShare);
    near(withRx['V95%Rx (%)'], 100 * (20 + 3) / 40, cellShare);
    // D1cc is undefined for an ROI under 1 cm³.
    const tiny = dvhMetrics(computeDvh(field, { number: 2, name: 'TINY', contours: boxContours([0, 0, 4, 4], planes(0, 4, 2)) }));
    expect(tiny.D1ccGy).toBeNull();
    expect(tiny['D0.1ccGy']).not.toBeNull();
  });
});

describe('DVH against dicompyler-core', () => {
  let dir: string;
  let ours: Map<number, { name: string; partial: boolean; m: Record<string, number | null> }>;
  let reference: { number: number; name: string; volume: number; mean: number; D95: number; D50: number; D2: number; notes: string | null }[];
  const dciodvfy: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dvh-'));
    // Dose: 2 mm in-plane, 2.5 mm frames from z = -52.5 to 52.5.
    const grid = axialGrid([-100, -100, -52.5], [2, 2, 2.5], [101, 101, 43]);
    const field = (x: number, y: number, z: number) => gaussian([5, -5, 0], 58, 38)(x, y, z) + 2 + 0.03 * x;
    const doseGy = sampleDose(grid, field);
    const frameOfReferenceUid = '2.25.1001';
    const ctZ = planes(-60, 60, 2);
    const slices = ctZ.map((z, k) => ({ sopInstanceUid: `2.25.2000${k}`, sopClassUid: SOP_CLASS.CtImage, zMm: z }));
    const roi = (number: number, name: string, contours: RtStructRoiInput['contours']): RtStructRoiInput => ({
      number, name, color: [255, 0, 0], interpretedType: 'ORGAN', algorithm: 'MANUAL', contours,
    });
    const rois = [
      roi(1, 'SPHERE', sphereContours([0, 0, 0], 25, ctZ)),
      roi(2, 'BOX', boxContours([-41, 9, -9, 41], planes(-20, 20, 2))),
      roi(3, 'RING', ringContours([10, 0], 35, 18, planes(-10, 10, 2))),
      roi(4, 'ISLANDS', [...cylinderContours([-55, -45], 18, planes(-8, 8, 2)), ...cylinderContours([55, -45], 18, planes(-8, 8, 2))]),
      roi(5, 'PARTIAL', cylinderContours([0, 55], 20, planes(30, 70, 2))),
      roi(6, 'BETWEEN', cylinderContours([-40, -40], 25, planes(-18.75, 18.75, 2.5))),
    ];
    const rs = buildRtStruct({
      ct: { studyInstanceUid: '2.25.3', seriesInstanceUid: '2.25.4', frameOfReferenceUid, patientId: 'DVH1', patientName: 'DVH^TEST', slices },
      rois, deterministic: { seed: 'dvh-test' },
    });
    const rd = buildRtDose({
      patientId: 'DVH1', patientName: 'DVH^TEST', studyInstanceUid: '2.25.3', frameOfReferenceUid, grid, doseGy,
      summationType: 'PLAN', referencedPlan: { sopInstanceUid: '2.25.5' },
    });
    const rsPath = join(dir, 'RS.dcm');
    const rdPath = join(dir, 'RD.dcm');
    await writeFile(rsPath, rs);
    await writeFile(rdPath, rd);
    dciodvfy.push((await run('dciodvfy', [rdPath])).stderr);

    const dose = parseRtDose(rd);
    const structure = readRtStruct(rs);
    const dvhs = computeDvhs(dose, structure.rois.map((r) => ({ number: r.number, name: r.name, contours: r.contours })));
    ours = new Map(dvhs.map((d) => [d.roiNumber, { name: dvhOutputName(d), partial: d.partial, m: dvhMetrics(d) }]));
    const py = await run(SYSTEM_PYTHON, [REFERENCE_SCRIPT, rsPath, rdPath]);
    if (py.code !== 0) throw new Error(`dvh_reference.py failed: ${py.stderr}`);
    reference = JSON.parse(py.stdout).rois;
  }, 60_000);
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the RTDOSE written for it passes dciodvfy', () => {
    expect(dciodvfy[0]).toMatch(/RTDose/);
    expect(dciodvfy[0].split('\n').filter((l) => /^Error/.test(l))).toEqual([]);
  });

  it('every ROI agrees on volume, Dmean, D95, D50 and D2 within 2 % or 0.2 Gy', () => {
    expect(reference.map((r) => r.number)).toEqual([1, 2, 3, 4, 5, 6]);
    const rows: string[] = [];
    const failures: string[] = [];
    for (const ref of reference) {
      const m = ours.get(ref.number)!.m;
      const pairs: [string, number | null, number][] = [
        ['volume', m['Volume (cm³)'], ref.volume],
        ['Dmean', m.DmeanGy, ref.mean],
        ['D95', m.D95Gy, ref.D95],
        ['D50', m.D50Gy, ref.D50],
        ['D2', m.D2Gy, ref.D2],
      ];
      for (const [what, a, b] of pairs) {
        const ok = a !== null && (Math.abs(a - b) <= 0.02 * Math.abs(b) || (what !== 'volume' && Math.abs(a - b) <= 0.2));
        rows.push(`${ref.name.padEnd(8)} ${what.padEnd(6)} ours ${a?.toFixed(3)} dicompyler ${b.toFixed(3)}${ok ? '' : '  <-- off'}`);
        if (!ok) failures.push(`${ref.name} ${what}`);
      }
    }
    if (failures.length || process.env.DVH_TEST_VERBOSE) console.log(rows.join('\n'));
    expect(failures).toEqual([]);
  });

  it('flags only the ROI beyond the dose grid as partial, as dicompyler-core notes it', () => {
    const flagged = [...ours.values()].filter((o) => o.partial).map((o) => o.name);
    expect(flagged).toEqual(['PARTIAL__partial']);
    expect(reference.find((r) => r.number === 5)!.notes).toMatch(/does not encompass/);
  });
});
