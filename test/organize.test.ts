import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Grid, Vec3 } from '../src/geometry/types.js';
import { loadCourseDose } from '../src/organize/course-dose.js';
import { decideDoseRecipe, type DoseInput, type PlanInput } from '../src/organize/dose-recipe.js';
import { resampleTrilinear, sumDoses, unionGrid } from '../src/organize/dose-sum.js';
import { organizeTree, type OrganizeResult } from '../src/organize/organize.js';
import { scanFiles } from '../src/organize/scan.js';
import type { RtDoseRefs, RtPlanRefs } from '../src/organize/rt-refs.js';
import type { Uid } from '../src/dicom/uid.js';
import { DOSE_GRID, writeCtWithStructures, writeDose, writePlan, type CtCourseFixture, type WrittenObject } from './helpers/rt-objects.js';

const identity: [Vec3, Vec3, Vec3] = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
const grid = (dims: Vec3, spacingMm: Vec3, originMm: Vec3): Grid => ({ dims, spacingMm, originMm, direction: identity });
const fill = (g: Grid, f: (p: Vec3) => number): Float32Array => {
  const out = new Float32Array(g.dims[0] * g.dims[1] * g.dims[2]);
  for (let k = 0, n = 0; k < g.dims[2]; k++)
    for (let j = 0; j < g.dims[1]; j++)
      for (let i = 0; i < g.dims[0]; i++, n++) out[n] = f([g.originMm[0] + i * g.spacingMm[0], g.originMm[1] + j * g.spacingMm[1], g.originMm[2] + k * g.spacingMm[2]]);
  return out;
};

describe('dose-sum', () => {
  it('adds doses on the same grid voxel by voxel', () => {
    const g = grid([3, 2, 2], [2, 2, 2], [0, 0, 0]);
    const a = fill(g, (p) => p[0]);
    const b = fill(g, (p) => 10 + p[2]);
    const s = sumDoses([{ grid: g, doseGy: a }, { grid: g, doseGy: b }]);
    expect(s.method).toBe('added');
    expect(Array.from(s.doseGy)).toEqual(Array.from(a, (v, n) => v + b[n]));
  });

  it('resamples a linear field exactly (trilinear) and covers the union of the grids on the finest one', () => {
    const linear = (p: Vec3) => 1 + 0.1 * p[0] - 0.05 * p[1] + 0.2 * p[2];
    const coarse = grid([6, 6, 5], [5, 5, 5], [-12.5, -12.5, -10]);
    const fine = grid([5, 5, 5], [2, 2, 2.5], [-2, -4, -3]);
    const s = sumDoses([{ grid: coarse, doseGy: fill(coarse, linear) }, { grid: fine, doseGy: fill(fine, () => 3) }]);
    expect(s.method).toBe('resampled');
    expect(s.grid.spacingMm).toEqual([2, 2, 2.5]);
    // The union of the centres: x from -12.5 (snapped down onto the fine lattice) to 12.5.
    expect(s.grid.originMm[0]).toBeLessThanOrEqual(-12.5);
    expect(s.grid.originMm[0] + (s.grid.dims[0] - 1) * 2).toBeGreaterThanOrEqual(12.5);
    const at = (p: Vec3) => {
      const i = Math.round((p[0] - s.grid.originMm[0]) / 2);
      const j = Math.round((p[1] - s.grid.originMm[1]) / 2);
      const k = Math.round((p[2] - s.grid.originMm[2]) / 2.5);
      return s.doseGy[i + j * s.grid.dims[0] + k * s.grid.dims[0] * s.grid.dims[1]];
    };
    // Inside the boost: linear + 3; outside it: linear alone.
    expect(at([0, -2, 2])).toBeCloseTo(linear([0, -2, 2]) + 3, 4);
    expect(at([-10, 10, -8])).toBeCloseTo(linear([-10, 10, -8]), 4);
  });

  it('gives 0 beyond half a voxel outside the source and the edge value within it', () => {
    const src = grid([2, 1, 1], [10, 10, 10], [0, 0, 0]);
    const out = resampleTrilinear({ grid: src, doseGy: Float32Array.from([2, 4]) }, grid([5, 1, 1], [5, 1, 1], [-5, 0, 0]));
    // x = -5 (edge: half a voxel out), 0, 5, 10, 15 (half a voxel out).
    expect(Array.from(out)).toEqual([2, 2, 3, 4, 4]);
    const far = resampleTrilinear({ grid: src, doseGy: Float32Array.from([2, 4]) }, grid([1, 1, 1], [1, 1, 1], [-6, 0, 0]));
    expect(far[0]).toBe(0);
  });

  it('unionGrid keeps the reference lattice', () => {
    const ref = grid([4, 4, 4], [2, 2, 2], [0, 0, 0]);
    const u = unionGrid(ref, [ref, grid([2, 2, 2], [3, 3, 3], [-3, 1, 7])]);
    expect(u.originMm).toEqual([-4, 0, 0]);
    expect(u.dims).toEqual([6, 4, 6]);
  });
});

describe('dose-recipe', () => {
  const uid = (s: string) => `1.2.3.${s}` as Uid;
  const plan = (n: string, beams = [1, 2]): PlanInput => ({
    sopInstanceUid: uid(n),
    frameOfReferenceUid: uid('9'),
    refs: {
      kind: 'plan', label: `P${n}`, name: '', date: '20240101', geometry: 'PATIENT', approvalStatus: '', referencedStructureSetUids: [], referencedPlanUids: [],
      beams: [...beams.map((b) => ({ number: b, name: '', deliveryType: 'TREATMENT' })), { number: 99, name: 'setup', deliveryType: 'SETUP' }],
      fractionGroups: [{ number: 1, fractionsPlanned: 5, beams: [...beams.map((b) => ({ number: b, meterset: 100 })), { number: 99, meterset: 0 }] }],
      prescriptionGy: null,
    } satisfies RtPlanRefs,
  });
  const dose = (n: string, type: string, plans: string[], beams: number[] = [], frame = '9'): DoseInput => ({
    sopInstanceUid: uid(`7${n}`),
    file: `/d/${n}`,
    frameOfReferenceUid: uid(frame),
    refs: { kind: 'dose', summationType: type, doseType: 'PHYSICAL', doseUnits: 'GY', referencedPlanUids: plans.map(uid), referencedFractionGroupNumber: 1, referencedBeamNumbers: beams } satisfies RtDoseRefs,
  });

  it('uses a PLAN_SUM covering every plan as it is', () => {
    const r = decideDoseRecipe([plan('1'), plan('2')], [dose('1', 'PLAN', ['1']), dose('2', 'PLAN_SUM', ['1', '2'])], uid('9'));
    expect(r.recipe).toMatchObject({ kind: 'single', files: ['/d/2'], summationType: 'PLAN_SUM' });
    expect(r.notes.join()).toMatch(/not used/);
  });

  it('refuses two PLAN_SUMs, differing frames, a beam outside the plan, a dose in RELATIVE units', () => {
    const two = decideDoseRecipe([plan('1')], [dose('1', 'PLAN_SUM', ['1']), dose('2', 'MULTI_PLAN', ['1'])], null).recipe;
    expect(two).toMatchObject({ kind: 'skipped', skipped: expect.stringMatching(/ambiguous/) });
    const frames = decideDoseRecipe([plan('1'), plan('2')], [dose('1', 'PLAN', ['1']), dose('2', 'PLAN', ['2'], [], '8')], null).recipe;
    expect(frames).toMatchObject({ kind: 'skipped', skipped: expect.stringMatching(/different frames of reference/) });
    const extra = decideDoseRecipe([plan('1')], [dose('1', 'BEAM', ['1'], [1]), dose('2', 'BEAM', ['1'], [2]), dose('3', 'BEAM', ['1'], [5])], null).recipe;
    expect(extra).toMatchObject({ kind: 'skipped', skipped: expect.stringMatching(/beam 5, which is not a treatment beam/) });
    const relative = dose('1', 'PLAN', ['1']);
    relative.refs.doseUnits = 'RELATIVE';
    expect(decideDoseRecipe([plan('1')], [relative], null).recipe).toMatchObject({ kind: 'skipped', skipped: expect.stringMatching(/RELATIVE/) });
  });

  it('sums the beams of a plan, ignoring setup beams, and refuses a dose whose frame is not the structure set\'s', () => {
    const beams = [dose('2', 'BEAM', ['1'], [2]), dose('1', 'BEAM', ['1'], [1])];
    expect(decideDoseRecipe([plan('1')], beams, uid('9')).recipe).toMatchObject({ kind: 'sum-beams', beamNumbers: [1, 2], files: ['/d/1', '/d/2'] });
    expect(decideDoseRecipe([plan('1')], beams, uid('5')).recipe).toMatchObject({ kind: 'skipped', skipped: expect.stringMatching(/differs from the structure set/) });
  });
});

describe('organizeTree', () => {
  let work: string;
  let tree: string;
  let out: string;
  let result: OrganizeResult;
  const fx: Record<string, { ct: CtCourseFixture; plans: WrittenObject[]; doses: WrittenObject[] }> = {};

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'organize-'));
    tree = path.join(work, 'in');
    out = path.join(work, 'out');

    // PAT001: one plan, one PLAN dose; nested folders.
    {
      const ct = await writeCtWithStructures(path.join(tree, 'site-a', 'deep', 'er', 'PAT001'), { patientId: 'PAT001', studyDate: '20240301' });
      const p = await writePlan(path.join(tree, 'site-a', 'rt', 'plan.dcm'), ct, { label: 'PRIMARY', date: '20240315', prescriptionGy: 50 });
      const d = await writeDose(path.join(tree, 'site-a', 'rt', 'dose.dcm'), ct, { summationType: 'PLAN', planUid: p.sopInstanceUid, valueGy: 50 });
      fx.PAT001 = { ct, plans: [p], doses: [d] };
    }
    // PAT002: primary + boost on one CT (sum-plans, boost on a finer, smaller grid), and a second
    // course on a new CT planned in the same month (CourseID clash -> _2).
    {
      const ct = await writeCtWithStructures(path.join(tree, 'PAT002', 'ct1'), { patientId: 'PAT/002', studyDate: '20240428' });
      const primary = await writePlan(path.join(tree, 'PAT002', 'rt', 'primary.dcm'), ct, { label: 'PRIMARY', date: '20240502', prescriptionGy: 50 });
      const boost = await writePlan(path.join(tree, 'PAT002', 'rt', 'boost.dcm'), ct, { label: 'BOOST', date: '20240510', prescriptionGy: 10 });
      const d1 = await writeDose(path.join(tree, 'PAT002', 'rt', 'd1.dcm'), ct, { summationType: 'PLAN', planUid: primary.sopInstanceUid, gy: (p) => 40 + p[0] / 4 });
      const boostGrid: Grid = { dims: [5, 5, 3], spacingMm: [4, 4, 2.5], originMm: [-8, -8, -2.5], direction: DOSE_GRID.direction };
      const d2 = await writeDose(path.join(tree, 'PAT002', 'rt', 'd2.dcm'), ct, { summationType: 'PLAN', planUid: boost.sopInstanceUid, valueGy: 10, grid: boostGrid });
      const ct2 = await writeCtWithStructures(path.join(tree, 'PAT002', 'ct2'), { patientId: 'PAT/002', studyDate: '20240519' });
      const replan = await writePlan(path.join(tree, 'PAT002', 'rt2', 'replan.dcm'), ct2, { label: 'REPLAN', date: '20240520' });
      const d3 = await writeDose(path.join(tree, 'PAT002', 'rt2', 'd3.dcm'), ct2, { summationType: 'PLAN', planUid: replan.sopInstanceUid, valueGy: 2 });
      fx.PAT002 = { ct, plans: [primary, boost, replan], doses: [d1, d2, d3] };
    }
    // PAT003: BEAM doses (sum-beams); CT in implicit VR, the plan converted by DCMTK to implicit VR
    // with explicit-length sequences, one beam dose stored as a raw dataset (no preamble).
    {
      const ct = await writeCtWithStructures(path.join(tree, 'PAT003'), { patientId: 'PAT003', studyDate: '20230110', transferSyntax: 'implicit' });
      const p = await writePlan(path.join(work, 'tmp', 'plan3.dcm'), ct, { label: 'BEAMS', date: '20230112', beams: 3 });
      execFileSync('dcmconv', ['+ti', '+e', p.file, path.join(tree, 'PAT003', 'plan.dcm')]);
      const beams = [];
      for (const b of [1, 2, 3]) beams.push(await writeDose(path.join(tree, 'PAT003', `beam${b}.dcm`), ct, { summationType: 'BEAM', planUid: p.sopInstanceUid, beamNumber: b, valueGy: b }));
      execFileSync('dcmconv', ['-F', '+ti', beams[2].file, path.join(tree, 'PAT003', 'beam3.raw')]);
      await rm(beams[2].file);
      fx.PAT003 = { ct, plans: [p], doses: beams };
    }
    // PAT004: two PLAN doses for one plan -> ambiguous. PAT005: a BEAM dose missing.
    {
      const ct = await writeCtWithStructures(path.join(tree, 'PAT004'), { patientId: 'PAT004', studyDate: '20240601' });
      const p = await writePlan(path.join(tree, 'PAT004', 'plan.dcm'), ct, { label: 'P', date: '20240602' });
      await writeDose(path.join(tree, 'PAT004', 'a.dcm'), ct, { summationType: 'PLAN', planUid: p.sopInstanceUid, valueGy: 1 });
      await writeDose(path.join(tree, 'PAT004', 'b.dcm'), ct, { summationType: 'PLAN', planUid: p.sopInstanceUid, valueGy: 2 });
      const ct5 = await writeCtWithStructures(path.join(tree, 'PAT005'), { patientId: 'PAT005', studyDate: '20240701' });
      const p5 = await writePlan(path.join(tree, 'PAT005', 'plan.dcm'), ct5, { label: 'P', date: '20240702', beams: 3 });
      for (const b of [1, 2]) await writeDose(path.join(tree, 'PAT005', `b${b}.dcm`), ct5, { summationType: 'BEAM', planUid: p5.sopInstanceUid, beamNumber: b, valueGy: 1 });
    }
    // PAT006: a CT alone -> course named by the study date.
    await writeCtWithStructures(path.join(tree, 'PAT006'), { patientId: 'PAT006', studyDate: '20221224' });
    // Junk and oddities.
    await writeFile(path.join(tree, 'README.txt'), 'not dicom\n');
    await writeFile(path.join(tree, 'site-a', 'empty'), '');
    await writeFile(path.join(tree, 'site-a', 'picture.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]));
    const ctBytes = await readFile(fx.PAT001.ct.ctFiles[0]);
    await writeFile(path.join(tree, 'site-a', 'truncated.dcm'), ctBytes.subarray(0, 400));
    execFileSync('dcmconv', ['+tb', fx.PAT001.ct.ctFiles[1], path.join(tree, 'site-a', 'bigendian.dcm')]);
    await mkdir(path.join(tree, 'copies'));
    await copyFile(fx.PAT001.ct.ctFiles[0], path.join(tree, 'copies', 'dup.dcm'));

    result = await organizeTree({ dicomRoot: tree, outDir: out, concurrency: 4 });
  });

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  const course = (patientId: string, courseId: string) => {
    const c = result.courses.find((x) => x.patientId === patientId && x.courseId === courseId);
    if (!c) throw new Error(`no course ${patientId}/${courseId}; have ${result.courses.map((x) => `${x.patientId}/${x.courseId}`).join(', ')}`);
    return c;
  };
  const metadata = async (dir: string) => JSON.parse(await readFile(path.join(dir, 'case_metadata.json'), 'utf8'));

  it('finds every course of every patient, and only those', () => {
    expect(result.courses.map((c) => `${c.patientId}/${c.courseId}`).sort()).toEqual([
      'PAT/002/2024-05', 'PAT/002/2024-05_2', 'PAT001/2024-03', 'PAT003/2023-01', 'PAT004/2024-06', 'PAT005/2024-07', 'PAT006/2022-12-24',
    ]);
  });

  it('skips junk with a reason and never fails on it', () => {
    const reasons = Object.fromEntries(result.skippedFiles.map((s) => [path.relative(tree, s.path), s.reason]));
    expect(Object.keys(reasons).sort()).toEqual(['README.txt', 'site-a/bigendian.dcm', 'site-a/empty', 'site-a/picture.png', 'site-a/truncated.dcm']);
    expect(reasons['README.txt']).toMatch(/not DICOM/);
    expect(reasons['site-a/bigendian.dcm']).toMatch(/big endian/);
    expect(reasons['site-a/truncated.dcm']).toMatch(/truncated|ends/);
    expect(result.warnings.join('\n')).toMatch(/1 duplicate instance/);
  });

  it('one plan: links the whole chain, single PLAN dose, hard links, metadata', async () => {
    const c = course('PAT001', '2024-03');
    expect(c.files).toEqual({ CT: 4, RTSTRUCT: 1, RTPLAN: 1, RTDOSE: 1 });
    expect(c.doseRecipe).toMatchObject({ kind: 'single', summationType: 'PLAN', files: [path.join(c.dir, 'DICOM', 'RTDOSE', `${fx.PAT001.doses[0].sopInstanceUid}.dcm`)] });
    expect(c.prescriptionGy).toBe(50);
    const placed = await stat(path.join(c.dir, 'DICOM', 'RTPLAN', `${fx.PAT001.plans[0].sopInstanceUid}.dcm`));
    expect(placed.ino).toBe((await stat(fx.PAT001.plans[0].file)).ino);
    const m = await metadata(c.dir);
    expect(m.ct).toMatchObject({ seriesInstanceUid: fx.PAT001.ct.seriesInstanceUid, slices: 4, folder: 'DICOM/CT' });
    expect(m.links.doseToPlan).toEqual([{ dose: fx.PAT001.doses[0].sopInstanceUid, plan: fx.PAT001.plans[0].sopInstanceUid, found: true }]);
    expect(m.links.planToStructureSet).toEqual([{ plan: fx.PAT001.plans[0].sopInstanceUid, structureSet: fx.PAT001.ct.rtstructUid, found: true }]);
    expect(m.links.structureSetToSeries).toEqual([{ structureSet: fx.PAT001.ct.rtstructUid, series: fx.PAT001.ct.seriesInstanceUid, isCourseCt: true }]);
    expect(m.dvh).toEqual({ skipped: false, recipe: 'single' });
  });

  it('primary + boost: one course, sum-plans; the summed dose is primary + boost on the finer grid', async () => {
    const c = course('PAT/002', '2024-05');
    expect(c.dir).toBe(path.join(out, 'PAT_002', '2024-05'));
    expect(c.files).toMatchObject({ CT: 4, RTPLAN: 2, RTDOSE: 2 });
    expect(c.doseRecipe.kind).toBe('sum-plans');
    expect(c.prescriptionGy).toBe(60);
    const sum = await loadCourseDose(c.doseRecipe);
    expect(sum.method).toBe('resampled');
    expect(sum.grid.spacingMm).toEqual([4, 4, 2.5]);
    const at = (p: Vec3) => {
      const idx = [0, 1, 2].map((a) => Math.round((p[a] - sum.grid.originMm[a]) / sum.grid.spacingMm[a]));
      return sum.doseGy[idx[0] + idx[1] * sum.grid.dims[0] + idx[2] * sum.grid.dims[0] * sum.grid.dims[1]];
    };
    expect(at([0, 0, 0])).toBeCloseTo(40 + 0 + 10, 3);
    expect(at([-4, 4, 2.5])).toBeCloseTo(40 - 1 + 10, 3);
    expect(at([20, -20, -7.5])).toBeCloseTo(40 + 5, 3);
    const second = course('PAT/002', '2024-05_2');
    expect(second.doseRecipe.kind).toBe('single');
    expect(second.ctSeriesInstanceUid).not.toBe(c.ctSeriesInstanceUid);
  });

  it('BEAM doses of one plan: sum-beams, read from implicit VR and raw datasets', async () => {
    const c = course('PAT003', '2023-01');
    expect(c.doseRecipe).toMatchObject({ kind: 'sum-beams', beamNumbers: [1, 2, 3] });
    const sum = await loadCourseDose(c.doseRecipe);
    expect(sum.method).toBe('added');
    expect(sum.doseGy[0]).toBeCloseTo(6, 4);
  });

  it('ambiguous and incomplete doses: the DVH is skipped with the reason', async () => {
    const two = course('PAT004', '2024-06');
    expect(two.doseRecipe).toMatchObject({ kind: 'skipped', skipped: expect.stringMatching(/2 PLAN doses .*ambiguous/) });
    expect((await metadata(two.dir)).dvh).toMatchObject({ skipped: true, reason: expect.stringMatching(/ambiguous/) });
    const missing = course('PAT005', '2024-07');
    expect(missing.doseRecipe).toMatchObject({ kind: 'skipped', skipped: expect.stringMatching(/beam 3 has none/) });
  });

  it('a CT without a plan is a course named by its study date', () => {
    const c = course('PAT006', '2022-12-24');
    expect(c.files).toEqual({ CT: 4, RTSTRUCT: 1 });
    expect(c.doseRecipe).toMatchObject({ kind: 'skipped', skipped: 'no RTDOSE in the course' });
  });

  it('is idempotent: a second run gives the same folders and byte-identical metadata', async () => {
    const before = await Promise.all(result.courses.map((c) => readFile(path.join(c.dir, 'case_metadata.json'), 'utf8')));
    const again = await organizeTree({ dicomRoot: tree, outDir: out, concurrency: 2 });
    expect(again.courses.map((c) => c.dir)).toEqual(result.courses.map((c) => c.dir));
    expect(again.courses.every((c) => c.linked === 0 && c.copied === 0)).toBe(true);
    const after = await Promise.all(again.courses.map((c) => readFile(path.join(c.dir, 'case_metadata.json'), 'utf8')));
    expect(after).toEqual(before);
    expect((await readdir(path.join(out, 'PAT001', '2024-03', 'DICOM', 'CT'))).length).toBe(4);
  });

  it('an output folder inside the input tree is not indexed', async () => {
    const inside = path.join(tree, 'Data_Organized');
    const first = await organizeTree({ dicomRoot: tree, outDir: inside, concurrency: 2 });
    const second = await organizeTree({ dicomRoot: tree, outDir: inside, concurrency: 2 });
    expect(second.warnings).toEqual(first.warnings);
    expect(second.courses.map((c) => c.courseId)).toEqual(first.courses.map((c) => c.courseId));
    await rm(inside, { recursive: true });
  });

  it('scanFiles reads the RT references inside sequences', async () => {
    const { instances } = await scanFiles([path.join(tree, 'PAT003', 'plan.dcm'), path.join(tree, 'PAT003', 'beam3.raw'), fx.PAT001.ct.rtstructFile]);
    const [plan, dose, rs] = instances;
    expect(plan.rt).toMatchObject({ kind: 'plan', label: 'BEAMS', date: '20230112', referencedStructureSetUids: [fx.PAT003.ct.rtstructUid] });
    expect(plan.rt?.kind === 'plan' && plan.rt.fractionGroups[0].beams.map((b) => b.number)).toEqual([1, 2, 3]);
    expect(dose.rt).toMatchObject({ kind: 'dose', summationType: 'BEAM', referencedPlanUids: [fx.PAT003.plans[0].sopInstanceUid], referencedBeamNumbers: [3] });
    expect(rs.rt).toMatchObject({ kind: 'struct', referencedSeriesUids: [fx.PAT001.ct.seriesInstanceUid], referencedFrameOfReferenceUids: [fx.PAT001.ct.frameOfReferenceUid] });
  });
});
