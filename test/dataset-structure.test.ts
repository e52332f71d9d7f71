// The streaming structure check of incoming datasets: whole datasets pass in any chunking; truncated,
// overrunning, unclosed or invalid-VR ones are named.
import { describe, it, expect } from 'vitest';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { DatasetStructure } from '../src/dicom/dataset-structure.js';
import { readPart10Meta } from '../src/dicom/header.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';
import { writeCtWithStructures } from './helpers/rt-objects.js';
import { tempDir } from './helpers/node.js';

function check(bytes: Buffer, explicit = true, chunk = bytes.length || 1): string | undefined {
  const s = new DatasetStructure(explicit);
  for (let i = 0; i < bytes.length; i += chunk) s.feed(bytes.subarray(i, i + chunk));
  return s.end();
}
const dataset = (file: string) => { const b = readFileSync(file); return b.subarray(readPart10Meta(b).datasetOffset); };
const el = (g: number, e: number, vr: string, value: Buffer, long = false) => {
  const h = Buffer.alloc(long ? 12 : 8);
  h.writeUInt16LE(g, 0); h.writeUInt16LE(e, 2); h.write(vr, 4, 'latin1');
  if (long) h.writeUInt32LE(value.length === 0 ? 0xffffffff : value.length, 8); else h.writeUInt16LE(value.length, 6);
  return Buffer.concat([h, value]);
};
const raw = (tag: number, len: number) => { const b = Buffer.alloc(8); b.writeUInt16LE(tag >>> 16, 0); b.writeUInt16LE(tag & 0xffff, 2); b.writeUInt32LE(len >>> 0, 4); return b; };

describe('DatasetStructure', () => {
  it('accepts whole CT and RTSTRUCT datasets (explicit and implicit VR), fed in any chunk size', async () => {
    const dir = tempDir();
    const ex = await writeCtSeries(path.join(dir, 'ex'), { patientId: 'S', patientName: 'S^S', phantom: { rows: 8, columns: 8, slices: 1, pixelSpacingMm: [1, 1], sliceThicknessMm: 1 } });
    const im = await writeCtSeries(path.join(dir, 'im'), { patientId: 'S', patientName: 'S^S', transferSyntax: 'implicit', phantom: { rows: 8, columns: 8, slices: 1, pixelSpacingMm: [1, 1], sliceThicknessMm: 1 } });
    const rs = await writeCtWithStructures(path.join(dir, 'rs'), { patientId: 'S', studyDate: '20260101' });
    for (const chunk of [1, 3, 7, 64, 100000]) {
      expect(check(dataset(ex.files[0]), true, chunk)).toBeUndefined();
      expect(check(dataset(im.files[0]), false, chunk)).toBeUndefined();
      expect(check(dataset(rs.rtstructFile), true, chunk)).toBeUndefined();
    }
    // Truncated anywhere: named, never accepted.
    const ct = dataset(ex.files[0]);
    for (const cut of [1, 7, 8, 20, Math.floor(ct.length / 2), ct.length - 1]) expect(check(ct.subarray(0, cut), true, 5), String(cut)).toMatch(/truncated|runs past|never closed/);
    const rsd = dataset(rs.rtstructFile);
    expect(check(rsd.subarray(0, rsd.length - 4))).toMatch(/truncated|never closed/);
  });

  it('names invalid VRs, undefined lengths on plain elements, unclosed and over-deep sequences, items outside sequences', () => {
    expect(check(el(0x0008, 0x0060, 'ZZ', Buffer.from('CT')))).toMatch(/no valid VR/);
    expect(check(el(0x0008, 0x0060, 'CS', Buffer.from('CT')).subarray(0, 9))).toMatch(/truncated/);
    const undefinedLo = Buffer.concat([Buffer.from([0x10, 0, 0x20, 0]), Buffer.from('UT\0\0'), raw(0, 0).subarray(4)]);
    undefinedLo.writeUInt32LE(0xffffffff, 8);
    expect(check(undefinedLo)).toMatch(/undefined length, which only sequences/);
    const openSeq = Buffer.concat([el(0x0008, 0x1115, 'SQ', Buffer.alloc(0), true), raw(0xfffee000, 0xffffffff)]);
    expect(check(openSeq)).toMatch(/never closed/);
    const closedSeq = Buffer.concat([openSeq, raw(0xfffee00d, 0), raw(0xfffee0dd, 0)]);
    expect(check(closedSeq)).toBeUndefined();
    expect(check(Buffer.concat(Array.from({ length: 100 }, () => openSeq)))).toMatch(/deeper than 64/);
    expect(check(raw(0xfffee000, 0))).toMatch(/item outside a sequence/);
    // A defined-length sequence whose item runs past its end.
    const item = Buffer.concat([raw(0xfffee000, 6), el(0x0008, 0x0060, 'CS', Buffer.from('CT'))]);
    const seq = Buffer.concat([el(0x0008, 0x1115, 'SQ', item, true)]);
    expect(check(seq)).toMatch(/runs past|past the end/);
  });
});
