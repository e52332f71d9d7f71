import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import dimse from 'dcmjs-dimse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCtSeries, type CtSeries } from '../src/dicom/ct-series-reader.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';
import { readPart10Meta } from '../src/dicom/header.js';
import { TS } from '../src/dicom/transfer-syntax.js';
import type { PhantomSpec } from '../src/phantom/thorax.js';

const { Dataset, Transcoding } = dimse;

const SPEC: PhantomSpec = { rows: 64, columns: 64, slices: 8, pixelSpacingMm: [2, 2], sliceThicknessMm: 3 };

let workDir: string;
let native: string[];
let reference: CtSeries;
let codecsLoadedByNativeRead: boolean;

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, (err, _stdout, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr || err.message}`)) : resolve()));
  });
}

/** Compresses every file of the series with a DCMTK tool into its own directory. */
async function compressAll(name: string, tool: string, args: string[] = []): Promise<string[]> {
  const dir = join(workDir, name);
  await mkdir(dir, { recursive: true });
  return Promise.all(
    native.map(async (file) => {
      const out = join(dir, basename(file));
      await run(tool, [...args, file, out]);
      return out;
    }),
  );
}

/** DCMTK has no JPEG 2000 encoder: those files are encoded by dcmjs-codecs itself. */
async function encodeAll(name: string, ts: string, opts: Record<string, unknown> = {}): Promise<string[]> {
  if (!Transcoding.isInitialized()) await Transcoding.initializeAsync();
  const dir = join(workDir, name);
  await mkdir(dir, { recursive: true });
  return native.map((file) => {
    const out = join(dir, basename(file));
    Transcoding.transcodeDataset(Dataset.fromFile(file)!, ts, opts).toFile(out);
    return out;
  });
}

async function transferSyntaxOf(file: string): Promise<string> {
  return readPart10Meta(await readFile(file)).transferSyntaxUid;
}

function expectSameVolume(actual: CtSeries): void {
  expect(actual.grid).toEqual(reference.grid);
  expect(actual.sliceSopInstanceUids).toEqual(reference.sliceSopInstanceUids);
  expect(actual.data.length).toBe(reference.data.length);
  expect(Buffer.from(actual.data.buffer).equals(Buffer.from(reference.data.buffer))).toBe(true);
}

function maxAbsDiff(a: Int16Array, b: Int16Array): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'ct-compressed-'));
  ({ files: native } = await writeCtSeries(join(workDir, 'native'), { patientId: 'PH002', patientName: 'PHANTOM^COMPRESSED', phantom: SPEC }));
  reference = await readCtSeries(native);
  codecsLoadedByNativeRead = Transcoding.isInitialized();
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe('readCtSeries on compressed CT', () => {
  it('does not load the codecs for an uncompressed series', () => {
    expect(codecsLoadedByNativeRead).toBe(false);
  });

  describe.each([
    { name: 'JPEG Lossless SV1', tool: 'dcmcjpeg', args: [], ts: TS.JpegLosslessSV1 },
    { name: 'JPEG Lossless, selection value 6', tool: 'dcmcjpeg', args: ['+el'], ts: TS.JpegLossless },
    { name: 'JPEG-LS lossless', tool: 'dcmcjpls', args: [], ts: TS.JpegLsLossless },
    { name: 'RLE', tool: 'dcmcrle', args: [], ts: TS.Rle },
    { name: 'JPEG Lossless SV1, 1 KiB fragments', tool: 'dcmcjpeg', args: ['+fs', '1', '-ot'], ts: TS.JpegLosslessSV1 },
  ])('$name ($ts) via $tool', ({ name, tool, args, ts }) => {
    it('gives exactly the volume of the uncompressed series', async () => {
      const files = await compressAll(name.replace(/\W+/g, '-'), tool, args);
      for (const file of files) expect(await transferSyntaxOf(file)).toBe(ts);
      expectSameVolume(await readCtSeries(files));
      expect(Transcoding.isInitialized()).toBe(true);
      expectSameVolume(await readCtSeries([...files].reverse()));
    });
  });

  it.each([
    { ts: TS.Jpeg2000Lossless, name: 'jpeg2000' },
    { ts: TS.HtJpeg2000Lossless, name: 'htj2k' },
    { ts: TS.HtJpeg2000LosslessRpcl, name: 'htj2k-rpcl' },
  ])('gives exactly the volume from lossless $name ($ts), encoded by dcmjs-codecs', async ({ ts, name }) => {
    const files = await encodeAll(name, ts);
    for (const file of files) expect(await transferSyntaxOf(file)).toBe(ts);
    expectSameVolume(await readCtSeries(files));
  });

  it('decodes JPEG-LS near-lossless (.81) within its maximum deviation', async () => {
    const files = await compressAll('jpls-near', 'dcmcjpls', ['+en', '+md', '2']);
    for (const file of files) expect(await transferSyntaxOf(file)).toBe(TS.JpegLsNearLossless);
    const lossy = await readCtSeries(files);
    expect(lossy.grid).toEqual(reference.grid);
    const diff = maxAbsDiff(lossy.data, reference.data);
    expect(diff).toBeGreaterThan(0);
    expect(diff).toBeLessThanOrEqual(2); // RescaleSlope 1: stored deviation = HU deviation
  });

  it('decodes lossy JPEG 2000 (.91) to the same grid with small error', async () => {
    const files = await encodeAll('jpeg2000-lossy', TS.Jpeg2000, { rate: 2 });
    for (const file of files) expect(await transferSyntaxOf(file)).toBe(TS.Jpeg2000);
    const lossy = await readCtSeries(files);
    expect(lossy.grid).toEqual(reference.grid);
    let sum = 0;
    for (let i = 0; i < lossy.data.length; i++) sum += Math.abs(lossy.data[i] - reference.data[i]);
    expect(sum / lossy.data.length).toBeLessThan(20);
  });

  it('reads a series mixing uncompressed and differently compressed slices', async () => {
    const sources = [native, await compressAll('mix-jpeg', 'dcmcjpeg'), await compressAll('mix-jpls', 'dcmcjpls'), await compressAll('mix-rle', 'dcmcrle')];
    // Slice n from source n % 4, handed over out of order.
    const mixed = native.map((_, n) => sources[n % sources.length][n]);
    const shuffled = [mixed[5], mixed[0], mixed[7], mixed[2], mixed[1], mixed[6], mixed[3], mixed[4]];
    expect(new Set(await Promise.all(shuffled.map(transferSyntaxOf)))).toEqual(new Set([TS.ExplicitVRLittleEndian, TS.JpegLosslessSV1, TS.JpegLsLossless, TS.Rle]));
    expectSameVolume(await readCtSeries(shuffled));
  });
});

describe('readCtSeries compressed refusals', () => {
  it('still refuses lossy JPEG extended (.51), naming the transfer syntax', async () => {
    const files = await compressAll('jpeg-extended', 'dcmcjpeg', ['+ee']);
    expect(await transferSyntaxOf(files[0])).toBe(TS.JpegExtended);
    await expect(readCtSeries(files)).rejects.toThrow(/compressed CT is not supported yet \(transfer syntax JpegExtended \(1\.2\.840\.10008\.1\.2\.4\.51\)\)/);
  });

  it('names the file and syntax when a frame cannot be decoded, and recovers for the next series', async () => {
    // A well-formed encapsulated file whose one fragment is raw pixels, not a JPEG-LS bitstream:
    // this makes the WebAssembly decoder trap, which must not poison later decodes.
    const bad = join(workDir, 'bad-jpls.dcm');
    new Dataset(Dataset.fromFile(native[3])!.getElements(), TS.JpegLsLossless).toFile(bad);
    expect(await transferSyntaxOf(bad)).toBe(TS.JpegLsLossless);
    const files = await compressAll('after-failure', 'dcmcjpls');
    const withBad = [...files.slice(0, 3), bad, ...files.slice(4)];
    await expect(readCtSeries(withBad)).rejects.toThrow(/bad-jpls\.dcm \([\d.]+\): cannot decode JpegLsLossless \(1\.2\.840\.10008\.1\.2\.4\.80\) pixel data: /);
    expectSameVolume(await readCtSeries(files));
  });

  it('refuses pixel data that is not encapsulated although the syntax says compressed', async () => {
    const bytes = await readFile(native[0]);
    const at = bytes.indexOf('1.2.840.10008.1.2.1\0', 132, 'latin1');
    bytes.write('1.2.840.10008.1.2.5\0', at, 'latin1');
    const path = join(workDir, 'fake-rle.dcm');
    await writeFile(path, bytes);
    await expect(readCtSeries([path, ...native.slice(1)])).rejects.toThrow(/fake-rle\.dcm .*cannot decode Rle \(1\.2\.840\.10008\.1\.2\.5\) pixel data/);
  });
});
