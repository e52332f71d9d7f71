// The explicit VR little endian encoder behind the RTSTRUCT writer, checked against dcmjs (which must
// read it, and re-encode it to the very same bytes) and DCMTK's dcmdump.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetWriter } from '../src/dicom/dataset-writer.js';
import { part10Header } from '../src/dicom/part10.js';
import { SOP_CLASS } from '../src/dicom/sop-classes.js';
import { TS } from '../src/dicom/transfer-syntax.js';
import { encodeRtStruct, readRtStruct, type RtStructInput } from '../src/rt/rtstruct.js';

interface DcmjsData {
  DicomMessage: { readFile(buffer: ArrayBuffer): { dict: Record<string, { vr: string; Value?: unknown[] }>; write(): ArrayBuffer } };
}
const { DicomMessage } = (createRequire(import.meta.url)('dcmjs') as { data: DcmjsData }).data;

function arrayBuffer(b: Buffer): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/** dcmjs re-encodes what it read; it always declares UTF-8 on the way out, so that one value is put back. */
function reencodedByDcmjs(file: Buffer): Buffer {
  const out = Buffer.from(DicomMessage.readFile(arrayBuffer(file)).write());
  const at = out.indexOf('ISO_IR 192');
  if (at >= 0) out.write('ISO_IR 100', at, 'latin1');
  return out;
}

let workDir: string;
beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'dataset-writer-'));
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

function dcmdump(file: string): Promise<string> {
  return new Promise((resolve) => execFile('dcmdump', ['+L', file], (_e, stdout, stderr) => resolve(stdout + stderr)));
}

describe('DatasetWriter', () => {
  it('pads text to even length (NUL for UI, space otherwise) and nests sequences of undefined length', async () => {
    const w = new DatasetWriter(16); // tiny, so that the buffer has to grow
    w.text(0x00080016, 'UI', '1.2.3')
      .text(0x00080060, 'CS', 'CT')
      .text(0x00100010, 'PN', 'Doe^J')
      .text(0x00280030, 'DS', ['0.5', '0.75'])
      .sequence(0x30060010, ['a', 'b'], (item, s) =>
        item.text(0x00200052, 'UI', `1.2.${s === 'a' ? 4 : 56}`).sequence(0x30060012, [s], (inner, t) => inner.text(0x00081150, 'UI', `9.${t.charCodeAt(0)}`)),
      )
      .sequence(0x30060020, [], () => undefined);
    const dataset = w.take();
    const file = Buffer.concat([part10Header({ sopClassUid: SOP_CLASS.RtStructureSet, sopInstanceUid: '1.2.3', transferSyntaxUid: TS.ExplicitVRLittleEndian }), dataset]);
    // UI "1.2.3" is 5 characters: stored as 6 with a NUL; PN "Doe^J" with a space.
    expect(dataset.subarray(8, 14).toString('latin1')).toBe('1.2.3\0');
    const dict = DicomMessage.readFile(arrayBuffer(file)).dict;
    expect(dict['00100010'].Value).toEqual([{ Alphabetic: 'Doe^J' }]);
    expect(dict['00280030'].Value).toEqual([0.5, 0.75]);
    const items = dict['30060010'].Value as Record<string, { Value: unknown[] }>[];
    expect(items.map((i) => i['00200052'].Value[0])).toEqual(['1.2.4', '1.2.56']);
    expect(reencodedByDcmjs(file).equals(file)).toBe(true);
    const path = join(workDir, 'small.dcm');
    await writeFile(path, file);
    const dump = await dcmdump(path);
    expect(dump).toContain('(3006,0010) SQ (Sequence with undefined length #=2)');
    expect(dump).toContain('(3006,0020) SQ (Sequence with undefined length #=0)');
    expect(dump).not.toMatch(/^E:/m);
  });

  it('refuses tags out of order at any level, and values too long for a 16-bit length', () => {
    expect(() => new DatasetWriter().text(0x00100020, 'LO', 'a').text(0x00100010, 'PN', 'b')).toThrow(/\(0010,0010\) written after \(0010,0020\)/);
    expect(() => new DatasetWriter().sequence(0x30060010, [1], (item) => item.text(0x00200052, 'UI', '1').text(0x00080016, 'UI', '2'))).toThrow(/tags must ascend/);
    // Each item is a dataset of its own: the same tag again in the next item is fine.
    expect(() => new DatasetWriter().sequence(0x30060010, [1, 2], (item) => item.text(0x00200052, 'UI', '1'))).not.toThrow();
    expect(() => new DatasetWriter().text(0x30060050, 'DS', 'x'.repeat(0xffff))).toThrow(/\(3006,0050\) DS: value of 65535 bytes does not fit a 16-bit length/);
  });
});

describe('RTSTRUCT encoding', () => {
  const square = (z: number) => Float64Array.from([-10.5, -10.5, z, 10.25, -10.5, z, 10.25, 7.125, z, -10.5, 7.125, z]);
  const input: RtStructInput = {
    ct: {
      studyInstanceUid: '1.2.826.0.1.3680043.10.1.1',
      seriesInstanceUid: '1.2.826.0.1.3680043.10.1.2',
      frameOfReferenceUid: '1.2.826.0.1.3680043.10.1.3',
      patientId: 'ENC01',
      patientName: 'Encoder^Test',
      studyDate: '20240102',
      studyTime: '030405',
      slices: [0, 1, 2].map((k) => ({ sopInstanceUid: `1.2.826.0.1.3680043.10.1.${10 + k}`, sopClassUid: SOP_CLASS.CtImage, zMm: k * 2.5 })),
    },
    rois: [
      { number: 1, name: 'BODY', color: [0, 255, 0], interpretedType: 'EXTERNAL', algorithm: 'AUTOMATIC', contours: [0, 1, 2].map((k) => ({ points: square(k * 2.5) })) },
      { number: 2, name: 'EMPTY', color: [1, 2, 3], interpretedType: 'ORGAN', algorithm: 'AUTOMATIC', contours: [], description: 'nothing found' },
    ],
    seriesNumber: 7,
    deterministic: { seed: 'encoder-test' },
  };

  it('writes what dcmjs reads back and re-encodes to the same bytes', () => {
    const { bytes, sopInstanceUid } = encodeRtStruct(input);
    expect(reencodedByDcmjs(bytes).equals(bytes)).toBe(true);
    const read = readRtStruct(bytes);
    expect(read.sopInstanceUid).toBe(sopInstanceUid);
    expect(read.rois.map((r) => [r.name, r.contours.length])).toEqual([['BODY', 3], ['EMPTY', 0]]);
    expect(Array.from(read.rois[0].contours[1].points)).toEqual(Array.from(square(2.5)));
    expect(read.rois[0].contours.map((c) => c.sopInstanceUid)).toEqual(input.ct.slices.map((s) => s.sopInstanceUid));
  });

  it('derives both UIDs from the content: any change to what the file says changes them', () => {
    const a = encodeRtStruct(input);
    const moved = encodeRtStruct({ ...input, rois: [{ ...input.rois[0], contours: [{ points: square(5) }] }, input.rois[1]] });
    const renamed = encodeRtStruct({ ...input, ct: { ...input.ct, patientName: 'Encoder^Other' } });
    for (const b of [moved, renamed]) {
      expect(b.sopInstanceUid).not.toBe(a.sopInstanceUid);
      expect(b.seriesInstanceUid).not.toBe(a.seriesInstanceUid);
    }
    expect(encodeRtStruct(structuredClone(input)).bytes.equals(a.bytes)).toBe(true);
  });

  it('falls back to fewer decimals when a contour would not fit one value', () => {
    // 2,200 points of 3 coordinates at "-123.456789" (11 characters) need ~79 KB at 6 decimals.
    const points = new Float64Array(2200 * 3).map((_, n) => -123.456789 - (n % 3) * 0.000001 - Math.floor(n / 3) * 1e-4);
    const big = encodeRtStruct({ ...input, rois: [{ ...input.rois[0], contours: [{ points }] }] });
    const read = readRtStruct(big.bytes).rois[0].contours[0].points;
    expect(read.length).toBe(points.length);
    const maxError = Math.max(...read.map((v, n) => Math.abs(v - points[n])));
    expect(maxError).toBeGreaterThan(1e-6); // rounded to fewer places...
    expect(maxError).toBeLessThanOrEqual(0.00005 + 1e-9); // ...but no coarser than 4
  });
});
