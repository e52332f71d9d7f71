import { describe, it, expect } from 'vitest';
import { createRequire } from 'node:module';
import { readHeader, readPart10Meta, NeedMoreBytes, HeaderError } from '../src/dicom/header.js';
import { part10Header } from '../src/dicom/part10.js';
import { PduGuard } from '../src/dicom/pdu-guard.js';
import { backoffSeconds } from '../src/node/outbound.js';
import { sanitizeId } from '../src/pipeline/course.js';

const dcmjs = createRequire(import.meta.url)('dcmjs');

/** A Part 10 RT Structure Set-like file with sequences (defined and undefined length) before the UIDs. */
function fileWithSequences(ts: string): Buffer {
  const { DicomDict, DicomMetaDictionary } = dcmjs.data;
  const dataset = {
    SpecificCharacterSet: 'ISO_IR 192',
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.481.3',
    SOPInstanceUID: '1.2.3.4.5',
    StudyDate: '20260102',
    Modality: 'RTSTRUCT',
    ReferencedStudySequence: [{ ReferencedSOPClassUID: '1.2.840.10008.3.1.2.3.1', ReferencedSOPInstanceUID: '9.8.7' }, { ReferencedSOPClassUID: '1.2', ReferencedSOPInstanceUID: '3.4' }],
    PatientName: 'Müller^Anna',
    PatientID: 'PID-1',
    StudyInstanceUID: '1.2.3.4',
    SeriesInstanceUID: '1.2.3.4.1',
    SeriesNumber: '7',
    FrameOfReferenceUID: '1.2.3.9',
  };
  const meta = { MediaStorageSOPClassUID: dataset.SOPClassUID, MediaStorageSOPInstanceUID: dataset.SOPInstanceUID, TransferSyntaxUID: ts, ImplementationClassUID: '1.2.3' };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(dataset);
  return Buffer.from(dict.write());
}

describe('DICOM header reader', () => {
  for (const ts of ['1.2.840.10008.1.2.1', '1.2.840.10008.1.2']) {
    it(`reads the identifying attributes past sequences (${ts})`, () => {
      const buf = fileWithSequences(ts);
      const meta = readPart10Meta(buf);
      expect(meta.transferSyntaxUid).toBe(ts);
      const h = readHeader(buf.subarray(meta.datasetOffset), ts !== '1.2.840.10008.1.2', true);
      expect(h).toMatchObject({ sopInstanceUid: '1.2.3.4.5', studyInstanceUid: '1.2.3.4', seriesInstanceUid: '1.2.3.4.1', patientId: 'PID-1', patientName: 'Müller^Anna', modality: 'RTSTRUCT', seriesNumber: 7, frameOfReferenceUid: '1.2.3.9', studyDate: '20260102' });
    });
  }

  it('asks for more bytes when a prefix ends early, and names a missing UID', () => {
    const buf = fileWithSequences('1.2.840.10008.1.2.1');
    const ds = buf.subarray(readPart10Meta(buf).datasetOffset);
    expect(() => readHeader(ds.subarray(0, 40), true, false)).toThrow(NeedMoreBytes);
    expect(() => readHeader(ds.subarray(0, 40), true, true)).toThrow(/(SOPClassUID|StudyInstanceUID|SOPInstanceUID) \(00[0-9]{2},[0-9A-F]{4}\) is missing/);
    expect(() => readHeader(Buffer.from('garbage that is not DICOM at all....'), true, true)).toThrow(HeaderError);
  });

  it('writes a Part 10 header that reads back', () => {
    const h = part10Header({ sopClassUid: '1.2.840.10008.5.1.4.1.1.2', sopInstanceUid: '1.2.3', transferSyntaxUid: '1.2.840.10008.1.2' });
    const meta = readPart10Meta(h);
    expect(meta).toMatchObject({ transferSyntaxUid: '1.2.840.10008.1.2', mediaStorageSopInstanceUid: '1.2.3', datasetOffset: h.length });
    expect(h.length % 2).toBe(0);
  });
});

describe('PDU guard', () => {
  const pdu = (type: number, len: number) => {
    const b = Buffer.alloc(6 + Math.min(len, 16));
    b[0] = type;
    b.writeUInt32BE(len, 2);
    return b.subarray(0, 6 + Math.min(len, 16));
  };
  it('passes PDUs within the limit split across chunks', () => {
    const g = new PduGuard(1000);
    const stream = Buffer.concat([pdu(1, 10), pdu(4, 10)]);
    for (let i = 0; i < stream.length; i += 3) expect(g.feed(stream.subarray(i, i + 3))).toBeUndefined();
  });
  it('flags oversized and unknown PDUs', () => {
    expect(new PduGuard(1000).feed(pdu(4, 5000))).toMatch(/announces 5000 bytes/);
    expect(new PduGuard(1000).feed(Buffer.from('GET / HTTP/1.1'))).toMatch(/unknown PDU type/);
  });
});

describe('small pure helpers', () => {
  it('backs off exponentially with bounded jitter', () => {
    expect(backoffSeconds(1, 5, 600, () => 0.5)).toBe(5);
    expect(backoffSeconds(3, 5, 600, () => 0.5)).toBe(20);
    expect(backoffSeconds(30, 5, 600, () => 0.5)).toBe(600);
    expect(backoffSeconds(2, 5, 600, () => 0)).toBeCloseTo(8);
    expect(backoffSeconds(2, 5, 600, () => 1)).toBeCloseTo(12);
  });
  it('sanitises identifiers used in paths', () => {
    expect(sanitizeId('../etc/passwd')).toBe('.._etc_passwd');
    expect(sanitizeId('..')).toBe('_');
    expect(sanitizeId('a\u0000b')).toBe('a_b');
    expect(sanitizeId('')).toBe('UNKNOWN');
  });
});
