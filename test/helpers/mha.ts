// A minimal MetaImage (.mha) reader for plastimatch's structure masks, and nearest-voxel resampling.
import { inflateSync } from 'node:zlib';
import { patientToVoxel, voxelCount, voxelToPatient, type Grid, type Mask, type Vec3 } from '../../src/geometry/types.js';

export function readMha(buf: Buffer): Mask {
  const marker = 'ElementDataFile = LOCAL';
  const end = buf.indexOf(marker);
  if (end < 0) throw new Error('not a single-file MetaImage');
  const header = new Map(
    buf
      .subarray(0, end)
      .toString('latin1')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => {
        const [k, v] = l.split('=');
        return [k.trim(), v.trim()] as const;
      }),
  );
  if (header.get('ElementType') !== 'MET_UCHAR') throw new Error(`unexpected MetaImage element type ${header.get('ElementType')}`);
  const nums = (key: string) => (header.get(key) ?? '').split(/\s+/).map(Number);
  const dataStart = buf.indexOf('\n', end) + 1;
  const raw = buf.subarray(dataStart);
  const data = new Uint8Array(header.get('CompressedData') === 'True' ? inflateSync(raw) : raw);
  // MetaIO writes the direction of axis i as the first three TransformMatrix values, and so on.
  const m = nums('TransformMatrix');
  const g: Grid = {
    dims: nums('DimSize') as Vec3,
    spacingMm: nums('ElementSpacing') as Vec3,
    originMm: nums('Offset') as Vec3,
    direction: [m.slice(0, 3) as Vec3, m.slice(3, 6) as Vec3, m.slice(6, 9) as Vec3],
  };
  if (data.length !== voxelCount(g)) throw new Error(`MetaImage has ${data.length} voxels, header says ${voxelCount(g)}`);
  return { grid: g, data };
}

/** Nearest-voxel resampling of `m` onto `g` (identity when plastimatch used the CT grid). */
export function resampleToGrid(m: Mask, g: Grid): Uint8Array {
  const out = new Uint8Array(voxelCount(g));
  const [nx, ny, nz] = g.dims;
  const [mx, my, mz] = m.grid.dims;
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const [a, b, c] = patientToVoxel(m.grid, voxelToPatient(g, i, j, k)).map(Math.round);
        if (a >= 0 && b >= 0 && c >= 0 && a < mx && b < my && c < mz) out[i + j * nx + k * nx * ny] = m.data[a + b * mx + c * mx * my] ? 1 : 0;
      }
    }
  }
  return out;
}
