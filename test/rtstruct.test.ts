import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMha, resampleToGrid } from './helpers/mha.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';
import { SOP_CLASS } from '../src/dicom/sop-classes.js';
import { dice, patientToVoxel, voxelCount, voxelToPatient, type Grid, type Mask } from '../src/geometry/types.js';
import { gridOriginMm, thoraxSlices, type PhantomSpec } from '../src/phantom/thorax.js';
import { buildRtStruct, formatDs, readRtStruct, type RtStructCtSlice, type RtStructInput, type RtStructRoiInput } from '../src/rt/rtstruct.js';

const SPEC: PhantomSpec = { rows: 64, columns: 64, slices: 12, pixelSpacingMm: [2, 2], sliceThicknessMm: 3 };
const CIRCLE_RADIUS_MM = 50;
const CIRCLE_POINTS = 64;
// Square edges at even mm fall halfway between voxel centres (odd mm), so no centre lies on an edge.
const OUTER: [number, number, number, number] = [-10, -24, 30, 16];
const HOLE: [number, number, number, number] = [2, -12, 18, 4];
const SQUARE_SLICES = [3, 4, 5, 6, 7, 8];

let workDir: string;
let ctDir: string;
let rsPath: string;
let input: RtStructInput;
let rs: Buffer;
let grid: Grid;

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'rtstruct-'));
  ctDir = join(workDir, 'ct');
  const ct = await writeCtSeries(ctDir, { patientId: 'RS001', patientName: 'PHANTOM^RTSTRUCT', studyDate: '20240315', phantom: SPEC });
  const zs = Array.from(thoraxSlices(SPEC), (s) => s.zMm);
  // The writer names each file CT.<SOP Instance UID>.dcm, in slice order.
  const slices = ct.files.map((f, k) => ({ sopInstanceUid: basename(f).slice(3, -4), sopClassUid: SOP_CLASS.CtImage, zMm: zs[k] }));
  const ctRef = { ...ct, patientId: 'RS001', patientName: 'PHANTOM^RTSTRUCT', studyDate: '20240315', studyTime: '101500', studyId: '1', slices };
  input = { ct: ctRef, rois: [bodyRoi(slices), holedSquareRoi(slices)], seriesNumber: 2, seriesDescription: 'Auto contours', deterministic: { seed: 'test' } };
  rs = buildRtStruct(input);
  rsPath = join(workDir, 'RS.dcm');
  await writeFile(rsPath, rs);
  const [x0, y0] = gridOriginMm(SPEC);
  grid = { dims: [SPEC.columns, SPEC.rows, SPEC.slices], spacingMm: [2, 2, 3], originMm: [x0, y0, zs[0]], direction: [[1, 0, 0], [0, 1, 0], [0, 0, 1]] };
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

function bodyRoi(slices: RtStructCtSlice[]): RtStructRoiInput {
  const contours = slices.map((s) => ({ points: circle(CIRCLE_RADIUS_MM, s.zMm), sopInstanceUid: s.sopInstanceUid }));
  return { number: 1, name: 'BODY', color: [0, 255, 0], interpretedType: 'EXTERNAL', algorithm: 'AUTOMATIC', contours };
}

/** The hole runs the other way round and names no slice: the writer must place it by its z. */
function holedSquareRoi(slices: RtStructCtSlice[]): RtStructRoiInput {
  const contours = SQUARE_SLICES.flatMap((k) => [
    { points: rectangle(OUTER, slices[k].zMm, false), sopInstanceUid: slices[k].sopInstanceUid },
    { points: rectangle(HOLE, slices[k].zMm, true) },
  ]);
  return { number: 7, name: 'HOLED_SQUARE', color: [255, 128, 0], interpretedType: 'ORGAN', algorithm: 'AUTOMATIC', contours };
}

function circle(radius: number, z: number): Float64Array {
  const p = new Float64Array(CIRCLE_POINTS * 3);
  for (let i = 0; i < CIRCLE_POINTS; i++) {
    const a = (2 * Math.PI * i) / CIRCLE_POINTS;
    p.set([radius * Math.cos(a), radius * Math.sin(a), z], i * 3);
  }
  return p;
}

function rectangle([x0, y0, x1, y1]: [number, number, number, number], z: number, reverse: boolean): Float64Array {
  const corners = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
  if (reverse) corners.reverse();
  return Float64Array.from(corners.flatMap(([x, y]) => [x, y, z]));
}

/** Runs a tool to completion; validators exit non-zero on findings, which we assert on instead. */
function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile(cmd, args, { maxBuffer: 16 << 20 }, (_err, stdout, stderr) => resolve(stdout + stderr));
  });
}

// ------------------------------------------------------------------ reference rasterisation

/** Voxel centre inside the ROI by even-odd over all its contours in that slice's plane. */
function rasterise(roi: RtStructRoiInput, g: Grid): Mask {
  const data = new Uint8Array(voxelCount(g));
  const [nx, ny] = g.dims;
  for (const c of roi.contours) {
    const k = Math.round(patientToVoxel(g, [c.points[0], c.points[1], c.points[2]])[2]);
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const [x, y] = voxelToPatient(g, i, j, k);
        if (insidePolygon(c.points, x, y)) data[i + j * nx + k * nx * ny] ^= 1;
      }
    }
  }
  return { grid: g, data };
}

function insidePolygon(p: Float64Array, x: number, y: number): boolean {
  let inside = false;
  const n = p.length / 3;
  for (let a = 0, b = n - 1; a < n; b = a++) {
    const [xa, ya, xb, yb] = [p[a * 3], p[a * 3 + 1], p[b * 3], p[b * 3 + 1]];
    if (ya > y !== yb > y && x < ((xb - xa) * (y - ya)) / (yb - ya) + xa) inside = !inside;
  }
  return inside;
}

// ---------------------------------------------------------------------------- MetaImage reader

/** Reads a 3-D MET_UCHAR .mha (text header, then raw or zlib data after "ElementDataFile = LOCAL"). */
function count(a: Uint8Array): number {
  return a.reduce((n, v) => n + v, 0);
}

// ------------------------------------------------------------------------------------- tests

describe('RT Structure Set writer', () => {
  it('passes dciodvfy with no errors', async () => {
    const out = await run('dciodvfy', [rsPath]);
    const findings = out.split('\n').filter((l) => /^(Error|Warning)/.test(l));
    if (findings.length > 0) console.log(`dciodvfy RS.dcm:\n${findings.join('\n')}`);
    expect(out).toContain('RTStructureSet');
    expect(findings.filter((l) => l.startsWith('Error'))).toEqual([]);
  });

  it('round-trips through readRtStruct', () => {
    const read = readRtStruct(rs);
    expect(read.studyInstanceUid).toBe(input.ct.studyInstanceUid);
    expect(read.patientId).toBe('RS001');
    expect(read.referencedFrameOfReferenceUid).toBe(input.ct.frameOfReferenceUid);
    expect(read.referencedStudyInstanceUid).toBe(input.ct.studyInstanceUid);
    expect(read.referencedSeriesInstanceUid).toBe(input.ct.seriesInstanceUid);
    expect(read.referencedSopInstanceUids).toEqual(input.ct.slices.map((s) => s.sopInstanceUid));
    expect(read.rois.map((r) => [r.number, r.name, r.color, r.interpretedType, r.algorithm])).toEqual([
      [1, 'BODY', [0, 255, 0], 'EXTERNAL', 'AUTOMATIC'],
      [7, 'HOLED_SQUARE', [255, 128, 0], 'ORGAN', 'AUTOMATIC'],
    ]);
    input.rois.forEach((roi, r) => {
      const contours = read.rois[r].contours;
      expect(contours.length).toBe(roi.contours.length);
      roi.contours.forEach((c, i) => {
        expect(contours[i].geometricType).toBe('CLOSED_PLANAR');
        expect(contours[i].sopClassUid).toBe(SOP_CLASS.CtImage);
        expect(contours[i].points.length).toBe(c.points.length);
        const maxError = Math.max(...c.points.map((v, n) => Math.abs(v - contours[i].points[n])));
        expect(maxError).toBeLessThan(1e-6);
      });
    });
  });

  it('places a contour that names no slice on the slice in its plane', () => {
    const square = readRtStruct(rs).rois[1];
    for (const [n, k] of SQUARE_SLICES.entries()) {
      expect(square.contours[2 * n].sopInstanceUid).toBe(input.ct.slices[k].sopInstanceUid);
      expect(square.contours[2 * n + 1].sopInstanceUid).toBe(input.ct.slices[k].sopInstanceUid);
    }
  });

  it('is byte-identical for the same input and seed, and not otherwise', () => {
    expect(buildRtStruct(input).equals(rs)).toBe(true);
    expect(buildRtStruct(structuredClone(input)).equals(rs)).toBe(true);
    const other = readRtStruct(buildRtStruct({ ...input, deterministic: { seed: 'other' } }));
    expect(other.sopInstanceUid).not.toBe(readRtStruct(rs).sopInstanceUid);
    const random = [buildRtStruct({ ...input, deterministic: undefined }), buildRtStruct({ ...input, deterministic: undefined })];
    expect(readRtStruct(random[0]).sopInstanceUid).not.toBe(readRtStruct(random[1]).sopInstanceUid);
  });

  it('formats DS values within 16 characters', () => {
    for (const v of [-123456.123456789, 1e-9, -0, 12345678901234567, -9.87654321e-7, Math.PI * 1e13]) {
      const s = formatDs(v);
      expect(s.length).toBeLessThanOrEqual(16);
      expect(Math.abs(Number(s) - v)).toBeLessThanOrEqual(Math.abs(v) * 1e-9 + 1e-6);
    }
    expect(formatDs(-0)).toBe('0');
  });

  it('rasterises in plastimatch like the reference, holes included', async () => {
    const outDir = join(workDir, 'plastimatch');
    // Without --xor-contours plastimatch unions a slice's contours, which fills holes.
    const args = ['convert', '--input', rsPath, '--referenced-ct', ctDir, '--output-prefix', outDir, '--prefix-format', 'mha', '--xor-contours'];
    const log = await run('plastimatch', args);
    for (const roi of input.rois) {
      const theirs = resampleToGrid(readMha(await readFile(join(outDir, `${roi.name}.mha`)).catch(() => { throw new Error(log); })), grid);
      const ours = rasterise(roi, grid).data;
      const d = dice(ours, theirs);
      console.log(`${roi.name}: reference ${count(ours)} voxels, plastimatch ${count(theirs)}, Dice ${d.toFixed(4)}`);
      expect(d).toBeGreaterThanOrEqual(0.95);
    }
    const square = resampleToGrid(readMha(await readFile(join(outDir, 'HOLED_SQUARE.mha'))), grid);
    const hole = holeVoxels(square);
    expect(hole.total).toBe(SQUARE_SLICES.length * 8 * 8);
    expect(hole.filled).toBe(0);
  });
});

/** Voxels whose centres lie inside the hole on the square's slices, and how many of them `mask` sets. */
function holeVoxels(mask: Uint8Array): { total: number; filled: number } {
  let total = 0;
  let filled = 0;
  const [nx, ny] = grid.dims;
  for (const k of SQUARE_SLICES) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const [x, y] = voxelToPatient(grid, i, j, k);
        if (x > HOLE[0] && x < HOLE[2] && y > HOLE[1] && y < HOLE[3]) {
          total++;
          filled += mask[i + j * nx + k * nx * ny];
        }
      }
    }
  }
  return { total, filled };
}
