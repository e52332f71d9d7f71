import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCtSeries, type PatientPosition } from '../src/dicom/ct-series-writer.js';
import { readCtSeries } from '../src/dicom/ct-series-reader.js';
import { buildCtVolume, CtSeriesError, type CtSliceInput } from '../src/geometry/ct-volume.js';
import { patientToVoxel, voxelToPatient, type Grid, type Mask, type Vec3, type Volume } from '../src/geometry/types.js';
import { affineToQuatern, gridToRasAffine, quaternToAffine, readNifti, writeNifti, type Affine, type NiftiImage } from '../src/io/nifti.js';
import { gridOriginMm, NOISE_AMPLITUDE_HU, thoraxAnatomy, thoraxSlices, type PhantomSpec } from '../src/phantom/thorax.js';

// Rows != columns and anisotropic pixels, so a transposed or mis-flipped axis cannot go unnoticed.
const SPEC: PhantomSpec = { rows: 48, columns: 64, slices: 10, pixelSpacingMm: [10, 7.8125], sliceThicknessMm: 5 };
const POSITIONS: PatientPosition[] = ['HFS', 'FFS', 'HFP', 'FFP'];

let workDir: string;
beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'ct-volume-'));
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// buildCtVolume (pure)

const AXIAL = [1, 0, 0, 0, 1, 0];

/** n axial 2x3 slices, 2.5 mm apart from z = -10; slice k's pixels hold 100*k + p (stored). */
function slices(n: number, overrides: (k: number) => Partial<CtSliceInput> = () => ({})): CtSliceInput[] {
  return Array.from({ length: n }, (_, k) => ({
    sopInstanceUid: `1.2.3.${k}`,
    imagePositionPatient: [-5, -3, -10 + 2.5 * k] as Vec3,
    imageOrientationPatient: AXIAL,
    pixelSpacing: [2, 3] as [number, number],
    rows: 2,
    columns: 3,
    rescaleSlope: 1,
    rescaleIntercept: 0,
    pixels: Int16Array.from({ length: 6 }, (_, p) => 100 * k + p),
    pixelRepresentation: 1 as const,
    ...overrides(k),
  }));
}

function shuffled<T>(items: readonly T[], seed = 7): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

function errorOf(fn: () => unknown): CtSeriesError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CtSeriesError);
    return e as CtSeriesError;
  }
  throw new Error('expected a CtSeriesError');
}

describe('buildCtVolume', () => {
  it('sorts shuffled slices by position along the normal, not by input order', () => {
    const input = slices(7);
    const mixed = shuffled(input);
    expect(mixed.map((s) => s.sopInstanceUid)).not.toEqual(input.map((s) => s.sopInstanceUid));
    const { grid, data } = buildCtVolume(mixed);
    expect(grid.dims).toEqual([3, 2, 7]);
    expect(grid.spacingMm).toEqual([3, 2, 2.5]);
    expect(grid.originMm).toEqual([-5, -3, -10]);
    expect(grid.direction).toEqual([[1, 0, 0], [0, 1, 0], [0, 0, 1]]);
    expect(Array.from(data)).toEqual(input.flatMap((s) => Array.from(s.pixels)));
  });

  it('orders a feet-first stack (normal towards -z) from its most superior slice', () => {
    // Row cosine -x, column cosine +y: the normal is -z, so k grows towards the feet.
    const input = slices(4, () => ({ imageOrientationPatient: [-1, 0, 0, 0, 1, 0] }));
    const { grid, data } = buildCtVolume(shuffled(input, 3));
    expect(grid.direction[2]).toEqual([0, 0, -1]);
    expect(grid.originMm).toEqual([-5, -3, -2.5]);
    expect(Array.from(data.subarray(0, 6))).toEqual(Array.from(input[3].pixels));
    expect(voxelToPatient(grid, 0, 0, 3)).toEqual([-5, -3, -10]);
  });

  it('refuses a missing slice, naming the slices either side of the gap', () => {
    const input = slices(6).filter((s) => s.sopInstanceUid !== '1.2.3.3');
    const e = errorOf(() => buildCtVolume(shuffled(input)));
    expect(e.message).toMatch(/1 missing slice/);
    expect(e.message).toContain('1.2.3.2');
    expect(e.message).toContain('1.2.3.4');
  });

  it('refuses uneven spacing and duplicate positions', () => {
    const uneven = slices(5, (k) => ({ imagePositionPatient: [-5, -3, k === 4 ? 0.3 : -10 + 2.5 * k] }));
    expect(errorOf(() => buildCtVolume(uneven)).message).toMatch(/uneven spacing.*1\.2\.3\.3 and 1\.2\.3\.4/);
    const duplicate = [...slices(3), ...slices(1, () => ({ sopInstanceUid: '9.9' }))];
    expect(errorOf(() => buildCtVolume(duplicate)).message).toMatch(/same position: 1\.2\.3\.0 and 9\.9|same position: 9\.9 and 1\.2\.3\.0/);
  });

  it('refuses gantry tilt (positions drifting in-plane), listing the offending slices', () => {
    // 10 degrees of tilt: y shifts by tan(10 deg) per mm of z.
    const tilted = slices(4, (k) => ({ imagePositionPatient: [-5, -3 + 2.5 * k * Math.tan(Math.PI / 18), -10 + 2.5 * k] }));
    const e = errorOf(() => buildCtVolume(tilted));
    expect(e.message).toMatch(/gantry tilt/);
    expect(e.message).toContain('1.2.3.1, 1.2.3.2, 1.2.3.3');
    expect(e.message).not.toContain('1.2.3.0,');
  });

  it('refuses mixed orientations and mixed matrices', () => {
    const rotated = slices(4, (k) => (k === 2 ? { imageOrientationPatient: [0, 1, 0, -1, 0, 0] } : {}));
    expect(errorOf(() => buildCtVolume(rotated)).message).toMatch(/mixes image orientations: 1\.2\.3\.2 differ/);
    const resized = slices(4, (k) => (k === 1 ? { pixelSpacing: [2, 3.5] } : {}));
    expect(errorOf(() => buildCtVolume(resized)).message).toMatch(/pixel spacings: 1\.2\.3\.1 differ/);
  });

  it('applies rescale slope and intercept, reading stored values by PixelRepresentation, clamped to int16', () => {
    const signed = slices(1, () => ({ sliceThickness: 3, rescaleSlope: 2, rescaleIntercept: -1000.4, pixels: Int16Array.from([-5, 0, 1, 400, 20000, -20000]) }));
    expect(Array.from(buildCtVolume(signed).data)).toEqual([-1010, -1000, -998, -200, 32767, -32768]);
    const unsigned = slices(1, () => ({
      sliceThickness: 3,
      rescaleIntercept: -1024,
      pixelRepresentation: 0,
      pixels: Uint16Array.from([0, 1024, 4095, 40000, 65535, 1]),
    }));
    expect(Array.from(buildCtVolume(unsigned).data)).toEqual([-1024, 0, 3071, 32767, 32767, -1023]);
    // The same bits in an Int16Array are still read as unsigned when PixelRepresentation is 0.
    const reinterpreted = { ...unsigned[0], pixels: new Int16Array(unsigned[0].pixels.buffer) };
    expect(Array.from(buildCtVolume([reinterpreted]).data)).toEqual([-1024, 0, 3071, 32767, 32767, -1023]);
  });

  it('takes the slice spacing of a single slice from SliceThickness, and refuses one without it', () => {
    expect(buildCtVolume(slices(1, () => ({ sliceThickness: 3 }))).grid.spacingMm).toEqual([3, 2, 3]);
    expect(errorOf(() => buildCtVolume(slices(1))).message).toMatch(/SliceThickness/);
  });
});

// ---------------------------------------------------------------------------------------------
// readCtSeries on synthetic series

interface Series {
  dir: string;
  files: string[];
  volume: Volume<Int16Array>;
}
const series = new Map<PatientPosition, Series>();

beforeAll(async () => {
  for (const patientPosition of POSITIONS) {
    const dir = join(workDir, patientPosition, 'dicom');
    // Implicit VR for one position so both encodings go through the reader.
    const transferSyntax = patientPosition === 'HFP' ? 'implicit' : 'explicit';
    const { files } = await writeCtSeries(dir, { patientId: 'PH001', patientName: 'PHANTOM^THORAX', transferSyntax, patientPosition, phantom: SPEC });
    series.set(patientPosition, { dir, files, volume: await readCtSeries(files) });
  }
});

function huAt(volume: Volume<Int16Array>, p: Vec3): number {
  const [i, j, k] = patientToVoxel(volume.grid, p).map(Math.round);
  const [nx, ny, nz] = volume.grid.dims;
  if (i < 0 || j < 0 || k < 0 || i >= nx || j >= ny || k >= nz) throw new Error(`point ${p} is outside the volume`);
  return volume.data[i + j * nx + k * nx * ny];
}

describe.each(POSITIONS)('readCtSeries, %s', (position) => {
  it('finds each structure at its anatomical position (lookup through patientToVoxel)', () => {
    const { volume } = series.get(position)!;
    const anatomy = thoraxAnatomy(SPEC);
    const centre = (name: string) => anatomy.find((e) => e.name === name)!;
    const near = (hu: number, expected: number) => expect(Math.abs(hu - expected)).toBeLessThanOrEqual(NOISE_AMPLITUDE_HU + 1);
    near(huAt(volume, centre('lung_right').centreMm), -850);
    near(huAt(volume, centre('lung_left').centreMm), -850);
    near(huAt(volume, centre('spine').centreMm), 700);
    // The heart reaches further to the patient's left: a mirrored volume would put lung here.
    const heart = centre('heart');
    near(huAt(volume, [heart.centreMm[0] + 0.8 * heart.radiiMm[0], heart.centreMm[1], heart.centreMm[2]]), 50);
  });

  it('holds exactly the phantom HU at every voxel', () => {
    const { volume } = series.get(position)!;
    const [x0, y0] = gridOriginMm(SPEC);
    const [rowSpacing, colSpacing] = SPEC.pixelSpacingMm;
    const [nx, ny] = volume.grid.dims;
    let mismatches = 0;
    for (const slice of thoraxSlices(SPEC)) {
      for (let row = 0; row < SPEC.rows; row++) {
        for (let col = 0; col < SPEC.columns; col++) {
          const p: Vec3 = [x0 + col * colSpacing, y0 + row * rowSpacing, slice.zMm];
          const [i, j, k] = patientToVoxel(volume.grid, p).map((v) => Math.round(v));
          if (volume.data[i + j * nx + k * nx * ny] !== slice.hu[row * SPEC.columns + col]) mismatches++;
        }
      }
    }
    expect(mismatches).toBe(0);
  });

  it('gives the same volume whatever order the files come in', async () => {
    const { files, volume } = series.get(position)!;
    for (const order of [[...files].reverse(), shuffled(files, 11)]) {
      const again = await readCtSeries(order);
      expect(again.grid).toEqual(volume.grid);
      expect(Buffer.from(again.data.buffer).equals(Buffer.from(volume.data.buffer))).toBe(true);
    }
  });
});

describe('readCtSeries refusals', () => {
  it('names the file and transfer syntax when compressed pixel data cannot be decoded', async () => {
    const { files } = series.get('HFS')!;
    const bytes = await readFile(files[0]);
    // Same length as the explicit VR LE UID, so the meta group length stays right.
    const at = bytes.indexOf('1.2.840.10008.1.2.1\0', 132, 'latin1');
    expect(at).toBeGreaterThan(0);
    bytes.write('1.2.840.10008.1.2.5\0', at, 'latin1');
    const path = join(workDir, 'rle.dcm');
    await writeFile(path, bytes);
    await expect(readCtSeries([path, ...files.slice(1)])).rejects.toThrow(/rle\.dcm.*cannot decode Rle \(1\.2\.840\.10008\.1\.2\.5\) pixel data/);
  });

  it('refuses a series with a slice missing', async () => {
    const { files } = series.get('FFS')!;
    await expect(readCtSeries(files.filter((_, n) => n !== 4))).rejects.toThrow(/missing slice/);
  });
});

// ---------------------------------------------------------------------------------------------
// NIfTI

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, (err, stdout, stderr) => (err ? reject(new Error(`${cmd} failed: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

function multiply(a: Affine, b: Affine): Affine {
  return a.map((row) => b[0].map((_, c) => row.reduce((sum, v, k) => sum + v * b[k][c], 0)));
}

/** Inverse of a 4x4 affine (last row 0 0 0 1), via the 3x3 adjugate. */
function invert(m: Affine): Affine {
  const [[a, b, c], [d, e, f], [g, h, i]] = m;
  const det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
  const r = [
    [e * i - f * h, c * h - b * i, b * f - c * e],
    [f * g - d * i, a * i - c * g, c * d - a * f],
    [d * h - e * g, b * g - a * h, a * e - b * d],
  ].map((row) => row.map((v) => v / det));
  const t = [0, 1, 2].map((row) => -(r[row][0] * m[0][3] + r[row][1] * m[1][3] + r[row][2] * m[2][3]));
  return [...r.map((row, n) => [...row, t[n]]), [0, 0, 0, 1]];
}

function apply(m: Affine, v: readonly number[]): Vec3 {
  return [0, 1, 2].map((r) => m[r][0] * v[0] + m[r][1] * v[1] + m[r][2] * v[2] + m[r][3]) as Vec3;
}

function expectGridClose(actual: Grid, expected: Grid, tolerance = 1e-4): void {
  expect(actual.dims).toEqual(expected.dims);
  const flat = (g: Grid) => [...g.spacingMm, ...g.originMm, ...g.direction.flat()];
  flat(actual).forEach((v, n) => expect(Math.abs(v - flat(expected)[n])).toBeLessThanOrEqual(tolerance));
}

/**
 * Compares two images in patient space: every voxel of `mine` is mapped through its voxel->RAS affine
 * and back through `theirs`' inverse affine, must land on a voxel centre of `theirs` (so the lattices
 * coincide, whatever axis order or flips each uses), and must hold the same real value there.
 */
function expectSameImage(mine: NiftiImage, theirs: NiftiImage): void {
  const A = gridToRasAffine(mine.grid);
  const B = gridToRasAffine(theirs.grid);
  const toTheirs = multiply(invert(B), A);
  // A lattice map between same-size grids is a signed permutation with an integer offset.
  for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) expect(Math.abs(toTheirs[r][c] - Math.round(toTheirs[r][c]))).toBeLessThan(1e-4);
  for (let r = 0; r < 3; r++) expect(toTheirs[r].slice(0, 3).map((v) => Math.abs(Math.round(v))).sort()).toEqual([0, 0, 1]);
  const M = toTheirs.map((row) => row.map(Math.round));
  const [nx, ny, nz] = mine.grid.dims;
  const [tx, ty] = theirs.grid.dims;
  // Corners of the lattice: the same RAS position within 1e-3 mm under both affines.
  for (const corner of [0, 1, 2, 3, 4, 5, 6, 7]) {
    const v = [corner & 1 ? nx - 1 : 0, corner & 2 ? ny - 1 : 0, corner & 4 ? nz - 1 : 0];
    const a = apply(A, v);
    const b = apply(B, apply(M, v));
    a.forEach((x, n) => expect(Math.abs(x - b[n])).toBeLessThan(1e-3));
  }
  expect([...theirs.grid.dims].sort((p, q) => p - q)).toEqual([...mine.grid.dims].sort((p, q) => p - q));
  let mismatches = 0;
  let outside = 0;
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const [ti, tj, tk] = apply(M, [i, j, k]);
        if (ti < 0 || tj < 0 || tk < 0 || ti >= tx || tj >= ty || tk >= theirs.grid.dims[2]) {
          outside++;
          continue;
        }
        const value = (img: NiftiImage, n: number) => img.data[n] * img.sclSlope + img.sclInter;
        if (value(mine, i + j * nx + k * nx * ny) !== value(theirs, ti + tj * tx + tk * tx * ty)) mismatches++;
      }
    }
  }
  expect({ outside, mismatches }).toEqual({ outside: 0, mismatches: 0 });
}

describe.each(POSITIONS)('NIfTI of the %s series against dcm2niix', (position) => {
  let mine: NiftiImage;
  let theirs: NiftiImage;
  let volume: Volume<Int16Array>;

  beforeAll(async () => {
    const s = series.get(position)!;
    volume = s.volume;
    const outDir = join(workDir, position, 'dcm2niix');
    await mkdir(outDir, { recursive: true });
    await run('dcm2niix', ['-z', 'n', '-b', 'n', '-f', 'ct', '-o', outDir, s.dir]);
    expect(await readdir(outDir)).toEqual(['ct.nii']);
    theirs = await readNifti(join(outDir, 'ct.nii'));
    const minePath = join(workDir, position, 'mine.nii');
    await writeNifti(minePath, volume, { description: `rtpipeline ${position}` });
    mine = await readNifti(minePath);
  });

  it('reads back our own file exactly', () => {
    expect(mine.datatype).toBe('int16');
    expect([mine.sclSlope, mine.sclInter]).toEqual([1, 0]);
    expectGridClose(mine.grid, volume.grid);
    expect(Buffer.from(mine.data.buffer).equals(Buffer.from(volume.data.buffer))).toBe(true);
  });

  it('matches dcm2niix voxel for voxel in patient space', () => {
    expectSameImage(mine, theirs);
  });
});

describe('NIfTI round trips', () => {
  /** An oblique grid (rotated about an oblique axis), so no matrix entry is 0 or 1 by accident. */
  function obliqueGrid(leftHanded = false): Grid {
    const [a, b] = [0.3, 0.5];
    const row: Vec3 = [Math.cos(a), Math.sin(a), 0];
    const column: Vec3 = [-Math.sin(a) * Math.cos(b), Math.cos(a) * Math.cos(b), Math.sin(b)];
    const normal: Vec3 = [row[1] * column[2] - row[2] * column[1], row[2] * column[0] - row[0] * column[2], row[0] * column[1] - row[1] * column[0]];
    return {
      dims: [13, 7, 5],
      spacingMm: [0.9765625, 1.25, 3],
      originMm: [-123.456, 78.9, -300.125],
      direction: [row, column, leftHanded ? (normal.map((v) => -v) as Vec3) : normal],
    };
  }

  it('writes and reads a Mask as uint8 .nii.gz', async () => {
    const grid = obliqueGrid();
    const mask: Mask = { grid, data: Uint8Array.from({ length: 13 * 7 * 5 }, (_, n) => ((n * 2654435761) >>> 28) & 1) };
    const path = join(workDir, 'mask.nii.gz');
    await writeNifti(path, mask);
    const raw = gunzipSync(await readFile(path));
    expect(raw.length).toBe(352 + mask.data.length);
    expect(raw.readInt16LE(70)).toBe(2); // DT_UINT8
    const back = await readNifti(path);
    expect(back.datatype).toBe('uint8');
    expectGridClose(back.grid, grid);
    expect(Array.from(back.data)).toEqual(Array.from(mask.data));
  });

  it('round-trips float32 and reads a qform-only file to the same grid', async () => {
    for (const grid of [obliqueGrid(), obliqueGrid(true), series.get('HFS')!.volume.grid, series.get('FFP')!.volume.grid]) {
      const n = grid.dims[0] * grid.dims[1] * grid.dims[2];
      const data = Float32Array.from({ length: n }, (_, v) => v * 0.25 - 7);
      const path = join(workDir, 'float.nii');
      await writeNifti(path, { grid, data });
      const back = await readNifti(path);
      expect(back.datatype).toBe('float32');
      expectGridClose(back.grid, grid);
      expect(Buffer.from(back.data.buffer).equals(Buffer.from(data.buffer))).toBe(true);
      // Drop the sform: the reader must fall back to the quaternion and get the same geometry.
      const bytes = await readFile(path);
      bytes.writeInt16LE(0, 254);
      await writeFile(path, bytes);
      expectGridClose((await readNifti(path)).grid, grid);
    }
  });

  it('converts affines to quaternions and back', () => {
    for (const grid of [obliqueGrid(), obliqueGrid(true)]) {
      const affine = gridToRasAffine(grid);
      const q = affineToQuatern(affine);
      const again = quaternToAffine(q, grid.spacingMm, [affine[0][3], affine[1][3], affine[2][3]]);
      again.flat().forEach((v, n) => expect(Math.abs(v - affine.flat()[n])).toBeLessThan(1e-9));
    }
  });
});
