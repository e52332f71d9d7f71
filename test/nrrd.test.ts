import { IBSI_DIR } from './helpers/ibsi.js';
/** NRRD reader: pyradiomics' baseline files (gzip, short/int), and synthetic raw files (endianness, RAS). */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { voxelToPatient } from '../src/geometry/types.js';
import { readNrrd } from '../src/io/nrrd.js';

const BASE = `${IBSI_DIR}/pyradiomics_baseline`;
const tmp = mkdtempSync(join(tmpdir(), 'nrrd-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('readNrrd', () => {
  it('reads brain1 image and label (gzip, short and int) with their LPS geometry', () => {
    const img = readNrrd(join(BASE, 'brain1_image.nrrd'));
    expect(img.data).toBeInstanceOf(Int16Array);
    expect(img.grid.dims).toEqual([256, 256, 25]);
    expect(img.grid.spacingMm[0]).toBeCloseTo(0.78125, 10);
    expect(img.grid.spacingMm[2]).toBeCloseTo(6.5, 10);
    expect(img.grid.direction).toEqual([[1, 0, 0], [0, -1, 0], [0, 0, 1]]);
    expect(img.grid.originMm).toEqual([-99.609374999999986, 99.609374999999986, -77.999999999999957]);
    // pyradiomics diagnostics of brain1: image mean 385.656, maximum 3057.
    let sum = 0, max = -Infinity;
    for (const v of img.data) (sum += v), (max = Math.max(max, v));
    expect(sum / img.data.length).toBeCloseTo(385.6564080810547, 9);
    expect(max).toBe(3057);
    const lab = readNrrd(join(BASE, 'brain1_label.nrrd'));
    expect(lab.data).toBeInstanceOf(Int32Array);
    // Diagnostics: 4137 voxels of label 1, bounding box starting at index (162, 84, 11), size 47x70x7.
    let n = 0;
    const lo = [Infinity, Infinity, Infinity], hi = [-1, -1, -1];
    lab.data.forEach((v, p) => {
      if (v !== 1) return;
      n++;
      const ijk = [p % 256, Math.floor(p / 256) % 256, Math.floor(p / 65536)];
      ijk.forEach((c, a) => ((lo[a] = Math.min(lo[a], c)), (hi[a] = Math.max(hi[a], c))));
    });
    expect(n).toBe(4137);
    expect(lo).toEqual([162, 84, 11]);
    expect(hi.map((h, a) => h - lo[a] + 1)).toEqual([47, 70, 7]);
  });

  it('reads breast1 and places voxels where the header says', () => {
    const img = readNrrd(join(BASE, 'breast1_image.nrrd'));
    expect(img.grid.dims).toEqual([45, 120, 21]);
    const p = voxelToPatient(img.grid, 1, 2, 3);
    expect(p[0]).toBeCloseTo(-116.54304 + 0.664062, 6);
    expect(p[1]).toBeCloseTo(-48.14465400000001 + 2 * 0.664062, 6);
    expect(p[2]).toBeCloseTo(9.45 + 3 * 2.1, 6);
  });

  it('reads raw big-endian float data in RAS space, converting the geometry to LPS', () => {
    const values = Float32Array.from({ length: 2 * 3 * 4 }, (_, i) => i * 1.5 - 7);
    const body = Buffer.alloc(values.length * 4);
    values.forEach((v, i) => body.writeFloatBE(v, i * 4));
    const header = 'NRRD0004\n# test\ntype: float\ndimension: 3\nspace: right-anterior-superior\nsizes: 2 3 4\n' +
      'space directions: (2,0,0) (0,3,0) (0,0,4)\nendian: big\nencoding: raw\nspace origin: (10,20,30)\n\n';
    const file = join(tmp, 'ras.nrrd');
    writeFileSync(file, Buffer.concat([Buffer.from(header, 'latin1'), body]));
    const v = readNrrd(file);
    expect(Array.from(v.data)).toEqual(Array.from(values));
    expect(v.grid.originMm).toEqual([-10, -20, 30]);
    expect(v.grid.direction).toEqual([[-1, 0, 0], [0, -1, 0], [0, 0, 1]]);
    expect(v.grid.spacingMm).toEqual([2, 3, 4]);
  });

  it('reads a detached gzip data file (.nhdr) and rejects truncated data with the file named', () => {
    const values = Uint16Array.from({ length: 8 }, (_, i) => 1000 + i);
    writeFileSync(join(tmp, 'd.raw.gz'), gzipSync(Buffer.from(values.buffer)));
    const nhdr = join(tmp, 'd.nhdr');
    writeFileSync(nhdr, 'NRRD0004\ntype: ushort\ndimension: 3\nsizes: 2 2 2\nspacings: 1 1 2\nendian: little\nencoding: gzip\ndata file: d.raw.gz\n');
    const v = readNrrd(nhdr);
    expect(Array.from(v.data)).toEqual(Array.from(values));
    expect(v.grid.spacingMm).toEqual([1, 1, 2]);
    const bad = join(tmp, 'bad.nrrd');
    writeFileSync(bad, 'NRRD0004\ntype: short\ndimension: 3\nsizes: 4 4 4\nencoding: raw\n\n\x01\x02');
    expect(() => readNrrd(bad)).toThrow(/bad\.nrrd: data has \d+ bytes, 4x4x4 short needs 128/);
  });
});
