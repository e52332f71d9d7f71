// The NIfTI writer's block-parallel gzip (one gzip member made of blocks deflated on the threadpool),
// its slice sources and its progressive input, checked with zlib, gzip(1) and our reader.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Grid } from '../src/geometry/types.js';
import { readNifti, writeNifti, writeNiftiSlices } from '../src/io/nifti.js';

let workDir: string;
beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'nifti-blocks-'));
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

function grid(dims: [number, number, number]): Grid {
  return { dims, spacingMm: [0.75, 0.75, 2], originMm: [-100, -90, 30], direction: [[1, 0, 0], [0, 1, 0], [0, 0, 1]] };
}

/** CT-like int16: noise around a few levels, so that deflate finds some matches and not others. */
function ctLike(n: number): Int16Array {
  const data = new Int16Array(n);
  let s = 12345;
  for (let v = 0; v < n; v++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    data[v] = (v % 700 < 300 ? -1000 : 40) + ((s >> 16) % 25);
  }
  return data;
}

function gzipTest(file: string): Promise<string> {
  return new Promise((resolve) => execFile('gzip', ['-t', '-v', file], (e, stdout, stderr) => resolve(e ? `FAILED ${stderr}` : stdout + stderr)));
}

// 160x160x90 int16 is 4.6 MB: three 2 MiB blocks, the last one short.
const G = grid([160, 160, 90]);
const CT = ctLike(160 * 160 * 90);

describe('block-parallel gzip of NIfTI files', () => {
  it('writes one valid gzip stream, whatever the concurrency, with the same bytes', async () => {
    const files = await Promise.all(
      [1, 2, 5].map(async (gzipConcurrency) => {
        const file = join(workDir, `ct-${gzipConcurrency}.nii.gz`);
        await writeNifti(file, { grid: G, data: CT }, { gzipLevel: 1, gzipConcurrency });
        return file;
      }),
    );
    const bytes = await Promise.all(files.map((f) => readFile(f)));
    expect(bytes[1].equals(bytes[0])).toBe(true);
    expect(bytes[2].equals(bytes[0])).toBe(true);
    expect(await gzipTest(files[0])).toMatch(/OK/);
    // One member: gunzip of the whole file is the header plus the voxels, byte for byte.
    const raw = gunzipSync(bytes[0]);
    expect(raw.length).toBe(352 + CT.byteLength);
    expect(raw.subarray(352).equals(Buffer.from(CT.buffer))).toBe(true);
    // The blocks share their dictionaries: about as small as one serial level-1 stream.
    const { gzipSync } = await import('node:zlib');
    expect(bytes[0].length).toBeLessThan(gzipSync(raw, { level: 1 }).length * 1.01);
    const back = await readNifti(files[0]);
    expect(back.grid).toEqual(G);
    expect(Buffer.from(back.data.buffer).equals(Buffer.from(CT.buffer))).toBe(true);
  });

  it('waits for slices that are still arriving', async () => {
    const data = new Int16Array(CT.length);
    const sliceLength = 160 * 160;
    let filled = 0;
    const waiters: { k: number; resolve: () => void }[] = [];
    const slicesReady = (k: number) => (k <= filled ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ k, resolve })));
    const file = join(workDir, 'arriving.nii.gz');
    const writing = writeNifti(file, { grid: G, data }, { gzipLevel: 1, slicesReady });
    // Slices arrive one at a time, each on a later turn of the event loop.
    for (let k = 0; k < 90; k++) {
      await new Promise((r) => setImmediate(r));
      data.set(CT.subarray(k * sliceLength, (k + 1) * sliceLength), k * sliceLength);
      filled = k + 1;
      for (const w of waiters.splice(0)) (w.k <= filled ? w.resolve : () => waiters.push(w))();
    }
    await writing;
    expect(gunzipSync(await readFile(file)).subarray(352).equals(Buffer.from(CT.buffer))).toBe(true);
  });

  it('fails when the slices never come', async () => {
    const file = join(workDir, 'failed.nii.gz');
    const slicesReady = (k: number) => (k <= 10 ? Promise.resolve() : Promise.reject(new Error('slice 10 is unreadable')));
    await expect(writeNifti(file, { grid: G, data: CT }, { gzipLevel: 1, slicesReady })).rejects.toThrow(/slice 10 is unreadable/);
  });

  it('writes a mask from a slice source, in blocks that reuse their buffers', async () => {
    const g = grid([97, 61, 700]); // uint8: 4.1 MB, several blocks, a ring of buffers
    const mask = new Uint8Array(97 * 61 * 700).map((_, v) => ((v * 7) % 1000 < 300 ? 1 : 0));
    const plane = 97 * 61;
    const slice = (k: number, out: Uint8Array) => out.set(mask.subarray(k * plane, (k + 1) * plane));
    const fromSource = join(workDir, 'mask-source.nii.gz');
    const fromArray = join(workDir, 'mask-array.nii.gz');
    await writeNiftiSlices(fromSource, { grid: g, datatype: 'uint8', slice }, { gzipLevel: 1, gzipStrategy: 'rle', gzipConcurrency: 2 });
    await writeNifti(fromArray, { grid: g, data: mask }, { gzipLevel: 1, gzipStrategy: 'rle', gzipConcurrency: 2 });
    expect((await readFile(fromSource)).equals(await readFile(fromArray))).toBe(true);
    expect(await gzipTest(fromSource)).toMatch(/OK/);
    const back = await readNifti(fromSource);
    expect(back.datatype).toBe('uint8');
    expect(Buffer.from(back.data.buffer).equals(Buffer.from(mask.buffer))).toBe(true);
  });

  it('writes the same voxels uncompressed to a .nii', async () => {
    const file = join(workDir, 'plain.nii');
    await writeNifti(file, { grid: G, data: CT });
    const raw = await readFile(file);
    expect(raw.length).toBe(352 + CT.byteLength);
    expect(raw.subarray(352).equals(Buffer.from(CT.buffer))).toBe(true);
  });
});
