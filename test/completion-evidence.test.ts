// Pure tests of the completion evidence: slice geometry, the decision, the adaptive quiet time,
// storage commitment parsing/checking, and the header fields they read.
import { describe, it, expect } from 'vitest';
import { checkSeriesGeometry, describeGeometry, type SliceGeometry } from '../src/completion/geometry.js';
import { decideCompletion, percentile, senderQuiet, type SeriesFacts, type StudyFacts } from '../src/completion/evidence.js';
import { checkCommitment, parseCommitmentRequest, FailureReason } from '../src/dicom/storage-commitment.js';
import { ctSeriesInstances } from '../src/dicom/ct-series-writer.js';
import { readHeader, readPart10Meta } from '../src/dicom/header.js';
import { lineageSeriesUid, resultLineage } from '../src/rt/lineage.js';

const AXIAL = [1, 0, 0, 0, 1, 0];
function stack(zs: number[], over: Partial<SliceGeometry> = {}): SliceGeometry[] {
  return zs.map((z, i) => ({
    sopInstanceUid: `1.2.${i}`,
    imagePositionPatient: [-100, -100, z],
    imageOrientationPatient: AXIAL,
    rows: 512,
    columns: 512,
    pixelSpacing: [0.9, 0.9],
    frameOfReferenceUid: '1.2.3',
    ...over,
  }));
}
const range = (from: number, to: number, step = 2.5) => Array.from({ length: Math.round((to - from) / step) + 1 }, (_, i) => from + i * step);

describe('slice geometry', () => {
  it('finds a continuous stack whatever the arrival order', () => {
    const v = checkSeriesGeometry(stack(range(0, 97.5).reverse()));
    expect(v).toMatchObject({ status: 'continuous', slices: 40, spacingMm: 2.5, extentMm: [0, 97.5] });
  });

  it('names a gap in the positions: slices 1-20 and 31-40 of 40', () => {
    const zs = range(0, 97.5).filter((_, i) => i < 20 || i >= 30);
    const v = checkSeriesGeometry(stack(zs));
    expect(v.status).toBe('gap');
    if (v.status !== 'gap') return;
    expect(v.missing).toBe(10);
    expect(v.gaps).toEqual([{ fromMm: 47.5, toMm: 75, missingSlices: 10 }]);
    expect(describeGeometry(v)).toMatch(/10 slice\(s\) missing between 47.5 and 75 mm/);
  });

  it('measures along the normal of an oblique orientation', () => {
    const c = Math.SQRT1_2;
    const iop = [1, 0, 0, 0, c, -c]; // normal (0, c, c)
    const slices = [0, 1, 2, 4].map((k, i) => ({ ...stack([0])[0], sopInstanceUid: `s${i}`, imageOrientationPatient: iop, imagePositionPatient: [0, k * 3 * c, k * 3 * c] }));
    const v = checkSeriesGeometry(slices);
    expect(v).toMatchObject({ status: 'gap', spacingMm: 3, missing: 1 });
  });

  it('refuses slices that do not belong together', () => {
    const mixedFrame = stack(range(0, 10));
    mixedFrame[2] = { ...mixedFrame[2], frameOfReferenceUid: '9.9' };
    expect(checkSeriesGeometry(mixedFrame)).toMatchObject({ status: 'inconsistent', problem: expect.stringMatching(/2 frames of reference/) });
    const mixedMatrix = stack(range(0, 10));
    mixedMatrix[1] = { ...mixedMatrix[1], rows: 256 };
    expect(checkSeriesGeometry(mixedMatrix)).toMatchObject({ status: 'inconsistent', problem: expect.stringMatching(/matrix 256x512/) });
    const spacing = stack(range(0, 10));
    spacing[3] = { ...spacing[3], pixelSpacing: [0.8, 0.8] };
    expect(checkSeriesGeometry(spacing).status).toBe('inconsistent');
    expect(checkSeriesGeometry(stack([0, 2.5, 4, 7.5])).status).toBe('inconsistent'); // 1.5 mm step: not a multiple
    expect(checkSeriesGeometry(stack([0, 2.5, 2.5, 5])).status).toBe('inconsistent'); // two stacks
  });

  it('does not judge without facts', () => {
    expect(checkSeriesGeometry(stack([0])).status).toBe('unknown');
    expect(checkSeriesGeometry(stack([0, 2.5], { imagePositionPatient: null })).status).toBe('unknown');
  });
});

const ct = (zs: number[], hint: number | null = null): SeriesFacts => ({ seriesUid: '1.2.9', modality: 'CT', instances: zs.length, countHint: hint, geometry: checkSeriesGeometry(stack(zs)) });
const settings = { minQuietSeconds: 2, maxQuietSeconds: 300, requireGeometry: true };
const t0 = 1_000_000;
function facts(o: Partial<StudyFacts>): StudyFacts {
  return { now: t0 + 5000, lastReceivedAt: t0, busy: false, releasedAt: null, committed: null, quiet: { seconds: 30, source: 'fixed', detail: 'fixed 30 s' }, series: [ct(range(0, 97.5))], ...o };
}

describe('completion decision', () => {
  it('completes on release with continuous geometry after the minimum quiet time, not before', () => {
    expect(decideCompletion(facts({ releasedAt: t0 + 10, now: t0 + 1000 }), settings)).toMatchObject({ complete: false, recheckAt: t0 + 2000 });
    const v = decideCompletion(facts({ releasedAt: t0 + 10 }), settings);
    expect(v).toMatchObject({ complete: true, reason: 'association_released' });
    expect(v.detail).toMatch(/continuous: 40 slices/);
  });

  it('holds a CT with a gap until the maximum quiet time, then says which gap', () => {
    const gappy = [ct(range(0, 97.5).filter((_, i) => i < 20 || i >= 30))];
    const held = decideCompletion(facts({ series: gappy, releasedAt: t0 + 10, now: t0 + 60_000 }), settings);
    expect(held).toMatchObject({ complete: false, reason: null, recheckAt: t0 + 300_000 });
    expect(held.detail).toMatch(/^held: CT series .* gap: 10 slice/);
    const late = decideCompletion(facts({ series: gappy, now: t0 + 300_000 }), settings);
    expect(late).toMatchObject({ complete: true, reason: 'max_quiet' });
    expect(late.detail).toMatch(/waited 300 s for CT series .*missing between 47.5 and 75 mm/);
    // require_geometry off: the gap does not hold the study
    expect(decideCompletion(facts({ series: gappy, releasedAt: t0 + 10 }), { ...settings, requireGeometry: false }).reason).toBe('association_released');
  });

  it('completes by count hint when every image series reached its hint, and holds below it', () => {
    expect(decideCompletion(facts({ series: [ct(range(0, 97.5), 40)] }), settings)).toMatchObject({ complete: true, reason: 'count_hint' });
    expect(decideCompletion(facts({ series: [ct(range(0, 47.5), 40)] }), settings)).toMatchObject({ complete: false, detail: expect.stringMatching(/20 of 40 instances/) });
  });

  it('storage commitment wins over everything, an open association over the rest', () => {
    expect(decideCompletion(facts({ busy: true, now: t0 + 1, committed: { transactionUid: '1.2.5' } }), settings)).toMatchObject({ complete: true, reason: 'storage_commitment' });
    expect(decideCompletion(facts({ busy: true, now: t0 + 10_000_000 }), settings)).toMatchObject({ complete: false, recheckAt: null });
  });

  it('falls back to the sender quiet time', () => {
    expect(decideCompletion(facts({ now: t0 + 29_000 }), settings)).toMatchObject({ complete: false, recheckAt: t0 + 30_000 });
    expect(decideCompletion(facts({ now: t0 + 30_000 }), settings)).toMatchObject({ complete: true, reason: 'quiet' });
  });
});

describe('adaptive quiet time', () => {
  const q = { adaptive: true, gapFactor: 4, stableSeconds: 30, minQuietSeconds: 2, maxQuietSeconds: 300, minHistory: 20 };
  it('uses stable_seconds without history or when adaptation is off', () => {
    expect(senderQuiet('CT1', [5, 6], q)).toMatchObject({ seconds: 30, source: 'fixed' });
    expect(senderQuiet('CT1', Array(50).fill(10), { ...q, adaptive: false })).toMatchObject({ seconds: 30, source: 'fixed' });
    expect(senderQuiet(null, Array(50).fill(10), q)).toMatchObject({ seconds: 30, source: 'fixed' });
  });
  it('is gap_factor x p95 of the gaps, clamped to min/max', () => {
    expect(senderQuiet('FAST', Array(50).fill(10), q)).toMatchObject({ seconds: 2, source: 'adaptive' }); // 40 ms -> min
    const slow = [...Array(95).fill(1000), ...Array(5).fill(60_000)];
    expect(percentile(slow, 0.95)).toBe(1000);
    expect(senderQuiet('SLOW', slow, q).seconds).toBe(4);
    expect(senderQuiet('SLOWER', Array(30).fill(100_000), q).seconds).toBe(300);
  });
});

describe('storage commitment request', () => {
  it('parses the N-ACTION dataset and checks each reference against what is held', () => {
    const req = parseCommitmentRequest({
      TransactionUID: '1.2.3.4',
      ReferencedSOPSequence: [
        { ReferencedSOPClassUID: '1.2.840.10008.5.1.4.1.1.2', ReferencedSOPInstanceUID: '1.1' },
        { ReferencedSOPClassUID: '1.2.840.10008.5.1.4.1.1.2', ReferencedSOPInstanceUID: '1.2' },
        { ReferencedSOPClassUID: '1.2.840.10008.5.1.4.1.1.4', ReferencedSOPInstanceUID: '1.3' },
      ],
    });
    if ('error' in req) throw new Error(req.error);
    const held: Record<string, { sopClassUid: string }> = { '1.1': { sopClassUid: '1.2.840.10008.5.1.4.1.1.2' }, '1.3': { sopClassUid: '1.2.840.10008.5.1.4.1.1.2' } };
    const o = checkCommitment(req, (uid) => held[uid]);
    expect(o.committed.map((r) => r.sopInstanceUid)).toEqual(['1.1']);
    expect(o.failed).toEqual([
      { sopClassUid: '1.2.840.10008.5.1.4.1.1.2', sopInstanceUid: '1.2', reason: FailureReason.NoSuchObjectInstance },
      { sopClassUid: '1.2.840.10008.5.1.4.1.1.4', sopInstanceUid: '1.3', reason: FailureReason.ClassInstanceConflict },
    ]);
    expect(parseCommitmentRequest({ ReferencedSOPSequence: [] })).toEqual({ error: expect.stringMatching(/Transaction UID/) });
    expect(parseCommitmentRequest({ TransactionUID: '1.2' })).toEqual({ error: expect.stringMatching(/Referenced SOP Sequence/) });
  });
});

describe('header geometry and result lineage', () => {
  it('reads position, orientation, matrix and spacing of a CT slice from its header', () => {
    const first = ctSeriesInstances({ patientId: 'G', patientName: 'G^G', phantom: { rows: 16, columns: 16, slices: 2, pixelSpacingMm: [4, 4], sliceThicknessMm: 5 } }).next().value!;
    const meta = readPart10Meta(first.bytes);
    const h = readHeader(first.bytes.subarray(meta.datasetOffset), true, true);
    expect(h.geometry).toMatchObject({ rows: 16, columns: 16, pixelSpacing: [4, 4], imageOrientationPatient: [1, 0, 0, 0, 1, 0], imagesInAcquisition: null });
    expect(h.geometry!.imagePositionPatient).toHaveLength(3);
  });

  it('keeps one series per study and engine across generations', () => {
    const a = resultLineage('1.2.3', 'builtin', 1);
    const b = resultLineage('1.2.3', 'builtin', 2);
    expect(a.seriesInstanceUid).toBe(b.seriesInstanceUid);
    expect([a.instanceNumber, b.instanceNumber]).toEqual([1, 2]);
    expect(lineageSeriesUid('1.2.3', 'RS_auto:totalsegmentator')).not.toBe(a.seriesInstanceUid);
    expect(a.seriesInstanceUid).toMatch(/^2\.25\.\d+$/);
  });
});
