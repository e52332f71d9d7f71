import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from './helpers/node.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';
import { autoSegment, type AutoSegmentInput } from '../src/pipeline/auto-segment.js';
import { readNifti } from '../src/io/nifti.js';

describe('autoSegment (the study job step)', () => {
  it('writes the same RS_auto.dcm bytes when the same job runs again (no second, different RTSTRUCT)', async () => {
    const s = await writeCtSeries(path.join(tempDir(), 'ct'), { patientId: 'DET', patientName: 'Det^Erministic', studyDate: '20260101', phantom: { rows: 96, columns: 96, slices: 30, pixelSpacingMm: [4, 4], sliceThicknessMm: 5 } });
    const input = (courseDir: string): AutoSegmentInput => ({
      ctFiles: [...s.files].reverse(), // order of the files must not matter
      courseDir,
      study: { studyInstanceUid: s.studyInstanceUid, seriesInstanceUid: s.seriesInstanceUid, frameOfReferenceUid: s.frameOfReferenceUid, patientId: 'DET', patientName: 'Det^Erministic', studyDate: '20260101', studyTime: '', accessionNumber: '' },
      seed: `test:${s.studyInstanceUid}:1`,
    });
    const a = await autoSegment(input(path.join(tempDir(), 'a')));
    const b = await autoSegment(input(path.join(tempDir(), 'b')));
    expect(readFileSync(a.rsAuto).equals(readFileSync(b.rsAuto))).toBe(true);
    expect(a.sopInstanceUid).toBe(b.sopInstanceUid);
    expect(a.rois.map((r) => r.name)).toEqual(['BODY', 'LUNG_L', 'LUNG_R', 'BONES']);
    for (const r of a.rois) expect(r.voxels, r.name).toBeGreaterThan(0);
    // The NIfTI masks sit on the CT grid.
    const ct = await readNifti(path.join(path.dirname(a.rsAuto), 'NIFTI', 'ct.nii.gz'));
    const body = await readNifti(path.join(path.dirname(a.rsAuto), 'Segmentation', 'builtin', 'BODY.nii.gz'));
    expect(body.grid.dims).toEqual(ct.grid.dims);
    expect(body.datatype).toBe('uint8');
  });
});
