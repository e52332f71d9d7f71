// Pure parts of the outbound path: the per-destination circuit breaker and the RTSTRUCT validation
// run before a result leaves (on a real CT series written by our writer, read back by our readers).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../src/node/circuit-breaker.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';
import { readCtSliceHeaders } from '../src/dicom/ct-series-reader.js';
import { SOP_CLASS } from '../src/dicom/sop-classes.js';
import { thoraxSlices } from '../src/phantom/thorax.js';
import { buildRtStruct, readRtStruct, type RtStructRoiInput } from '../src/rt/rtstruct.js';
import { validateRtStruct, type RtStructValidationContext } from '../src/rt/rtstruct-validate.js';
import { TINY_PHANTOM } from './helpers/rt-objects.js';
import { newUid } from '../src/dicom/uid.js';

describe('circuit breaker', () => {
  it('opens after N consecutive association failures, allows no attempt while open, one trial when half-open', () => {
    const b = new CircuitBreaker({ failures: 3, openMs: 1000 });
    expect(b.state(0)).toBe('closed');
    b.failed(10);
    b.failed(20);
    expect(b.canAttempt(21)).toBe(true);
    b.succeeded(); // a success in between resets the count
    b.failed(30);
    b.failed(40);
    expect(b.state(41)).toBe('closed');
    b.failed(50);
    expect(b.state(51)).toBe('open');
    expect(b.canAttempt(51)).toBe(false);
    expect(b.canAttempt(1049)).toBe(false);
    expect(b.snapshot(100)).toEqual({ state: 'open', consecutiveFailures: 3, openedAt: 50, retryAt: 1050 });
    expect(b.state(1050)).toBe('half-open');
    expect(b.canAttempt(1050)).toBe(true);
    b.attemptStarted(1050);
    expect(b.canAttempt(1051)).toBe(false); // one trial at a time
    b.failed(1100); // the trial failed: open again for the full time
    expect(b.state(1101)).toBe('open');
    expect(b.state(2099)).toBe('open');
    expect(b.state(2100)).toBe('half-open');
    b.attemptStarted(2100);
    b.succeeded();
    expect(b.state(2101)).toBe('closed');
    expect(b.snapshot(2101)).toEqual({ state: 'closed', consecutiveFailures: 0, openedAt: null, retryAt: null });
  });

  it('refuses nonsense settings', () => {
    expect(() => new CircuitBreaker({ failures: 0, openMs: 1000 })).toThrow(/at least 1/);
    expect(() => new CircuitBreaker({ failures: 1, openMs: 0 })).toThrow(/positive/);
  });
});

describe('RTSTRUCT validation', () => {
  let dir: string;
  let ct: Awaited<ReturnType<typeof writeCtSeries>>;
  let sliceUids: string[];
  let zs: number[];
  let ctx: RtStructValidationContext;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'rs-validate-'));
    ct = await writeCtSeries(path.join(dir, 'CT'), { patientId: 'VAL', patientName: 'VAL^X', studyDate: '20240101', phantom: TINY_PHANTOM });
    sliceUids = ct.files.map((f) => path.basename(f).replace(/^CT\./, '').replace(/\.dcm$/, ''));
    zs = [...thoraxSlices(TINY_PHANTOM)].map((s) => s.zMm);
    ctx = {
      instances: sliceUids.map((sopInstanceUid) => ({ sopInstanceUid, sopClassUid: SOP_CLASS.CtImage, seriesInstanceUid: ct.seriesInstanceUid })),
      ctSeries: { seriesInstanceUid: ct.seriesInstanceUid, frameOfReferenceUid: ct.frameOfReferenceUid, slices: readCtSliceHeaders(ct.files) },
    };
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  /** A structure set on the CT with one ROI per entry; each contour is a square of half-size h at (cx, cy) on slice k (or at z). */
  const structureSet = (rois: { number: number; contours: { h: number; cx?: number; cy?: number; k: number; z?: number }[] }[], uids = sliceUids) =>
    readRtStruct(
      buildRtStruct({
        ct: {
          studyInstanceUid: ct.studyInstanceUid,
          seriesInstanceUid: ct.seriesInstanceUid,
          frameOfReferenceUid: ct.frameOfReferenceUid,
          patientId: 'VAL',
          patientName: 'VAL^X',
          slices: uids.map((sopInstanceUid, k) => ({ sopInstanceUid, sopClassUid: SOP_CLASS.CtImage, zMm: zs[k] })),
        },
        rois: rois.map(
          (r): RtStructRoiInput => ({
            number: r.number,
            name: `ROI${r.number}`,
            color: [255, 0, 0],
            interpretedType: 'ORGAN',
            algorithm: 'AUTOMATIC',
            contours: r.contours.map((c) => {
              const z = c.z ?? zs[c.k];
              const [x, y] = [c.cx ?? 0, c.cy ?? 0];
              return { points: Float64Array.from([x - c.h, y - c.h, z, x + c.h, y - c.h, z, x + c.h, y + c.h, z, x - c.h, y + c.h, z]), sopInstanceUid: uids[c.k] };
            }),
          }),
        ),
      }),
    );

  it('passes a structure set whose contours lie within the stack (up to half a voxel beyond the last centres)', () => {
    // TINY_PHANTOM: 16x16 pixels of 4 mm (centres -30..30) and 4 slices of 5 mm (centres -7.5..7.5).
    const rs = structureSet([{ number: 1, contours: [{ h: 10, k: 0 }, { h: 31.9, k: 1 }, { h: 2, k: 3, z: zs[3] + 2.4 }] }, { number: 2, contours: [{ h: 5, k: 2 }] }]);
    expect(validateRtStruct(rs, ctx)).toEqual([]);
  });

  it('finds a contour point outside the grid in-plane and beyond the slice range', () => {
    const inPlane = validateRtStruct(structureSet([{ number: 1, contours: [{ h: 5, cx: 30, k: 0 }] }]), ctx);
    expect(inPlane).toHaveLength(1);
    expect(inPlane[0]).toMatch(/ROI 1 "ROI1": 2 contour point\(s\) outside the CT image stack.*16x16 image grid/);
    const beyond = validateRtStruct(structureSet([{ number: 1, contours: [{ h: 5, k: 3, z: zs[3] + 2.6 }] }]), ctx);
    expect(beyond.join('\n')).toMatch(/4 contour point\(s\) outside.*along the slice normal, outside the slices' -10\.\.10 mm/);
  });

  it('finds a dangling Contour Image reference, a wrong frame of reference and a missing CT series', () => {
    const ghost = newUid();
    // Slice 0 replaced by an instance the study does not have (listed once, however often referenced).
    const dangling = validateRtStruct(structureSet([{ number: 1, contours: [{ h: 5, k: 0 }] }], [ghost, ...sliceUids.slice(1)]), ctx);
    expect(dangling).toEqual([`the Contour Image Sequence of the referenced series references SOP instance ${ghost}, which is not an instance of the study`]);
    const rs = structureSet([{ number: 1, contours: [{ h: 5, k: 0 }] }]);
    const otherFor = validateRtStruct(rs, { ...ctx, ctSeries: { ...ctx.ctSeries!, frameOfReferenceUid: '1.2.3' } });
    expect(otherFor.join('\n')).toMatch(/Referenced Frame of Reference .* does not match the CT series' Frame of Reference 1\.2\.3/);
    const noCt = validateRtStruct(rs, { instances: [], ctSeries: undefined });
    expect(noCt.join('\n')).toMatch(/not a CT series of the study/);
    expect(noCt.join('\n')).toMatch(/not an instance of the study/);
  });

  it('finds duplicate ROI numbers and ROI Contour items without a Structure Set ROI', () => {
    const rs = structureSet([{ number: 1, contours: [{ h: 5, k: 0 }] }, { number: 2, contours: [{ h: 5, k: 1 }] }]);
    expect(rs.roiContourReferences).toEqual([1, 2]);
    const broken = { ...rs, rois: [rs.rois[0], { ...rs.rois[1], number: 1 }], roiContourReferences: [1, 2, 9] };
    const failures = validateRtStruct(broken, ctx);
    expect(failures).toContain('ROI number 1 is used by more than one Structure Set ROI ("ROI2")');
    expect(failures).toContain('an ROI Contour item references ROI number 2, which no Structure Set ROI defines');
    expect(failures).toContain('an ROI Contour item references ROI number 9, which no Structure Set ROI defines');
  });
});
