import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRtDose, parseRtDose, readRtDose, type RtDoseInput } from '../src/dicom/rt-dose.js';
import { buildRtPlan, readRtPlanSummary } from '../src/dicom/rt-plan.js';
import { axialGrid, sampleDose } from '../src/dvh/synthetic-plan.js';
import type { Grid } from '../src/geometry/types.js';

function dciodvfy(file: string): Promise<string> {
  return new Promise((resolve) => execFile('dciodvfy', [file], (_e, stdout, stderr) => resolve(stdout + stderr)));
}
const errors = (out: string) => out.split('\n').filter((l) => /^Error/.test(l));

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rtdose-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const GRID = axialGrid([-20, -15, -10], [2.5, 2, 3], [9, 7, 5]);
const field = (x: number, y: number, z: number) => 30 + 0.3 * x - 0.2 * y + 0.5 * z;
const BASE: RtDoseInput = {
  patientId: 'RD1', patientName: 'DOSE^TEST', studyInstanceUid: '2.25.11', frameOfReferenceUid: '2.25.12',
  grid: GRID, doseGy: sampleDose(GRID, field), summationType: 'PLAN', referencedPlan: { sopInstanceUid: '2.25.13' },
};

describe('RT Dose', () => {
  it('writes a dciodvfy-clean PLAN dose and reads back grid, links and dose (relative offsets, 16 bit)', async () => {
    const file = join(dir, 'plan.dcm');
    await writeFile(file, buildRtDose(BASE));
    const out = await dciodvfy(file);
    expect(out).toMatch(/RTDose/);
    expect(errors(out)).toEqual([]);
    const d = await readRtDose(file);
    expect(d.grid).toEqual(GRID);
    expect(Array.from(d.frameOffsetsMm)).toEqual([0, 3, 6, 9, 12]);
    expect(d).toMatchObject({ summationType: 'PLAN', doseType: 'PHYSICAL', doseUnits: 'GY', frameOfReferenceUid: '2.25.12', referencedPlanSopInstanceUid: '2.25.13', uniformFrames: true });
    const max = Math.max(...BASE.doseGy);
    for (let n = 0; n < d.doseGy.length; n++) expect(Math.abs(d.doseGy[n] - BASE.doseGy[n])).toBeLessThanOrEqual(max / 65535);
  });

  it('BEAM dose with absolute offsets and 32-bit pixels keeps the beam link and the dose', async () => {
    const bytes = buildRtDose({ ...BASE, summationType: 'BEAM', referencedPlan: { sopInstanceUid: '2.25.13', beamNumber: 2 }, frameOffsetForm: 'absolute', bitsAllocated: 32 });
    const d = parseRtDose(bytes);
    expect(d.referencedBeamNumber).toBe(2);
    expect(d.referencedFractionGroupNumber).toBe(1);
    expect(d.grid).toEqual(GRID);
    for (let n = 0; n < d.doseGy.length; n++) expect(d.doseGy[n]).toBeCloseTo(BASE.doseGy[n], 5);
    expect(() => buildRtDose({ ...BASE, summationType: 'BEAM' })).toThrow(/beamNumber/);
  });

  it('is deterministic: the same input gives the same bytes and UIDs', () => {
    expect(buildRtDose(BASE).equals(buildRtDose(BASE))).toBe(true);
    const other = buildRtDose({ ...BASE, doseGy: BASE.doseGy.map((v) => v + 1) });
    expect(parseRtDose(other).sopInstanceUid).not.toBe(parseRtDose(buildRtDose(BASE)).sopInstanceUid);
  });

  it('reads any orientation and decreasing offsets onto the right patient positions', async () => {
    // Feet-first-like: rows along -x, frames written against the normal (decreasing offsets).
    const grid: Grid = { dims: [6, 5, 4], spacingMm: [2, 2.5, 3], originMm: [30, -10, 40], direction: [[-1, 0, 0], [0, 1, 0], [0, 0, 1]] };
    const bytes = buildRtDose({ ...BASE, grid, doseGy: sampleDose(grid, field) });
    const file = join(dir, 'ffs.dcm');
    await writeFile(file, bytes);
    expect(errors(await dciodvfy(file))).toEqual([]);
    const d = parseRtDose(bytes);
    // row x column = -z, so the relative offsets run 0, -3, -6, -9 and the k axis is +z again.
    expect(d.grid.direction[2]).toEqual([0, 0, 1]);
    expect(d.grid.originMm).toEqual([30, -10, 40]);
    expect(d.grid.spacingMm).toEqual([2, 2.5, 3]);
    for (let n = 0; n < d.doseGy.length; n++) expect(Math.abs(d.doseGy[n] - sampleDose(grid, field)[n])).toBeLessThan(1e-3);
    // Sagittal: an oblique-free but non-axial grid reads with relative offsets.
    const sagittal: Grid = { dims: [4, 4, 3], spacingMm: [2, 2, 2], originMm: [0, -3, 5], direction: [[0, 1, 0], [0, 0, -1], [-1, 0, 0]] };
    expect(parseRtDose(buildRtDose({ ...BASE, grid: sagittal, doseGy: sampleDose(sagittal, field) })).grid).toEqual(sagittal);
  });

  it('refuses unequal frame spacing unless asked, then keeps each frame\'s position', () => {
    const offsets = [0, 3, 6, 10, 14];
    const bytes = buildRtDose({ ...BASE, frameOffsetsMm: offsets, doseGy: sampleDose(GRID, field, offsets) });
    expect(() => parseRtDose(bytes)).toThrow(/unequally spaced.*3, 4 mm/);
    const d = parseRtDose(bytes, { allowNonUniformFrames: true });
    expect(d.uniformFrames).toBe(false);
    expect(Array.from(d.frameOffsetsMm)).toEqual(offsets);
  });

  it('names what is wrong in a file that is not an RT Dose', async () => {
    const file = join(dir, 'plan-as-dose.dcm');
    await writeFile(file, buildRtPlan({ patientId: 'RD1', patientName: 'X', studyInstanceUid: '2.25.11', label: 'P', date: '20240101', referencedStructureSetUid: '2.25.14' }));
    await expect(readRtDose(file)).rejects.toThrow(/plan-as-dose\.dcm: not an RT Dose: SOP class 1\.2\.840\.10008\.5\.1\.4\.1\.1\.481\.5/);
  });
});

describe('RT Plan', () => {
  it('writes dciodvfy-clean plans, with and without beams, and reads their summary', async () => {
    const base = {
      patientId: 'RP1', patientName: 'PLAN^TEST', studyInstanceUid: '2.25.21', frameOfReferenceUid: '2.25.22',
      label: 'PROSTATE', name: 'Primary', date: '20240305', referencedStructureSetUid: '2.25.23', fractions: 39,
    };
    const withRx = join(dir, 'rp1.dcm');
    const withBeams = join(dir, 'rp2.dcm');
    await writeFile(withRx, buildRtPlan({ ...base, prescriptionGy: 78 }));
    await writeFile(withBeams, buildRtPlan({ ...base, beams: [{ number: 1, name: 'AP', beamDoseGy: 1 }, { number: 2, name: 'PA', gantryAngleDeg: 180, beamDoseGy: 1 }] }));
    for (const file of [withRx, withBeams]) {
      const out = await dciodvfy(file);
      expect(out).toMatch(/RTPlan/);
      expect(errors(out)).toEqual([]);
    }
    expect(await readRtPlanSummary(withRx)).toMatchObject({
      label: 'PROSTATE', name: 'Primary', date: '20240305', referencedStructureSetUid: '2.25.23', prescriptionGy: 78,
      prescriptionSource: 'TargetPrescriptionDose', fractions: 39, frameOfReferenceUid: '2.25.22', beamNumbers: [],
    });
    expect(await readRtPlanSummary(withBeams)).toMatchObject({ prescriptionGy: 78, prescriptionSource: 'BeamDose', beamNumbers: [1, 2] });
    expect(() => buildRtPlan({ ...base, date: '2024-03-05' })).toThrow(/YYYYMMDD/);
  });
});
