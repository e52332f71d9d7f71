// The CT series reader's two passes: headers first (geometry before pixels, slices handed out in
// order as they are read), and its own native dataset scan (long headers, truncated files).
import { createRequire } from 'node:module';
import { copyFile, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCtSeries, type CtSeriesResult } from '../src/dicom/ct-series-writer.js';
import { openCtSeries, readCtSeries } from '../src/dicom/ct-series-reader.js';

interface DcmjsData {
  DicomMessage: { readFile(buffer: ArrayBuffer): { dict: Record<string, { vr: string; Value: unknown[] }>; write(): ArrayBuffer } };
}
const { DicomMessage } = (createRequire(import.meta.url)('dcmjs') as { data: DcmjsData }).data;

const PHANTOM = { rows: 48, columns: 40, slices: 10, pixelSpacingMm: [4, 4] as [number, number], sliceThicknessMm: 5 };

let workDir: string;
let explicit: CtSeriesResult;
let implicit: CtSeriesResult;

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'ct-reader-'));
  const common = { patientId: 'RD01', patientName: 'Reader^Test', studyDate: '20240505', phantom: PHANTOM };
  explicit = await writeCtSeries(join(workDir, 'explicit'), common);
  implicit = await writeCtSeries(join(workDir, 'implicit'), { ...common, transferSyntax: 'implicit' });
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe('openCtSeries', () => {
  it('knows the grid and slice order before the pixels, and hands the slices out in order', async () => {
    const files = [...explicit.files].reverse();
    const reading = await openCtSeries(files);
    expect(reading.series.grid.dims).toEqual([40, 48, 10]);
    // The writer names each file CT.<SOP Instance UID>.dcm, in slice order.
    expect(reading.series.sliceSopInstanceUids).toEqual(explicit.files.map((f) => basename(f).slice(3, -4)));
    const order: number[] = [];
    const waits = [10, 1, 4, 7].map((k) => reading.slicesReady(k).then(() => order.push(k)));
    await reading.done;
    await Promise.all(waits);
    expect(order).toEqual([1, 4, 7, 10]);
    const plain = await readCtSeries(explicit.files);
    expect(Buffer.from(reading.series.data.buffer).equals(Buffer.from(plain.data.buffer))).toBe(true);
  });

  it('reads implicit and explicit VR files to the same volume', async () => {
    const [a, b] = await Promise.all([readCtSeries(explicit.files), readCtSeries(implicit.files)]);
    expect(b.grid).toEqual(a.grid);
    expect(Buffer.from(b.data.buffer).equals(Buffer.from(a.data.buffer))).toBe(true);
  });

  it('reads a slice whose header runs past the first bytes read', async () => {
    // A private block of 150 KB before the pixel data, as some scanners add: the header is read again, longer.
    const file = join(workDir, 'long-header.dcm');
    const bytes = await readFile(explicit.files[3]);
    const message = DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
    message.dict['00090010'] = { vr: 'LO', Value: ['RTPIPELINE TEST'] };
    message.dict['00091001'] = { vr: 'OB', Value: [new Uint8Array(150_000).fill(0x5a).buffer] };
    await writeFile(file, Buffer.from(message.write()));
    const files = explicit.files.map((f, n) => (n === 3 ? file : f));
    const [a, b] = await Promise.all([readCtSeries(explicit.files), readCtSeries(files)]);
    expect(Buffer.from(b.data.buffer).equals(Buffer.from(a.data.buffer))).toBe(true);
  });

  it('names the file when its pixel data is cut short or it cannot be opened', async () => {
    const cut = join(workDir, 'cut.dcm');
    await copyFile(explicit.files[5], cut);
    const size = (await readFile(cut)).length;
    await truncate(cut, size - 1000);
    const withCut = explicit.files.map((f, n) => (n === 5 ? cut : f));
    await expect(readCtSeries(withCut)).rejects.toThrow(/cut\.dcm \([\d.]+\): truncated: PixelData has \d+ of 3840 bytes/);
    const missing = join(workDir, 'missing.dcm');
    await expect(readCtSeries([...explicit.files, missing])).rejects.toThrow(/missing\.dcm: cannot open: ENOENT/);
  });

  it('rejects the waiters too when a slice cannot be read', async () => {
    const cut = join(workDir, 'cut-early.dcm');
    await copyFile(explicit.files[0], cut);
    await truncate(cut, (await readFile(cut)).length - 10);
    const reading = await openCtSeries(explicit.files.map((f, n) => (n === 0 ? cut : f)));
    await expect(reading.slicesReady(10)).rejects.toThrow(/truncated/);
    await expect(reading.done).rejects.toThrow(/truncated/);
  });
});
