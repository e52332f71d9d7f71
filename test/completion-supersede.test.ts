// The completion transaction on a real index: reason kept on the study, one job per generation,
// and a queued job of an older generation superseded by the newer one (never two jobs for a study).
import { describe, it, expect } from 'vitest';
import path from 'node:path';
import { IndexDb } from '../src/store/index-db.js';
import { tempDir } from './helpers/node.js';
import type { InstanceHeader } from '../src/dicom/header.js';
import type { Uid } from '../src/dicom/uid.js';

const header = (sop: string, series: string, z: number): InstanceHeader => ({
  sopClassUid: '1.2.840.10008.5.1.4.1.1.2' as Uid, sopInstanceUid: sop as Uid, studyInstanceUid: '1.2.3' as Uid, seriesInstanceUid: series as Uid,
  patientId: 'P', patientName: 'P^P', studyDate: '20260101', studyTime: '', studyDescription: '', seriesDescription: '', accessionNumber: '',
  modality: 'CT', seriesNumber: 1, instanceNumber: 1, frameOfReferenceUid: '1.2.9' as Uid,
  geometry: { imagePositionPatient: [0, 0, z], imageOrientationPatient: [1, 0, 0, 0, 1, 0], rows: 8, columns: 8, pixelSpacing: [1, 1], imagesInAcquisition: null, numberOfSlices: null },
});

describe('completion transaction', () => {
  it('keeps the reason, supersedes a queued older generation, and lists the late series', () => {
    const index = new IndexDb(path.join(tempDir(), 'index.sqlite'));
    try {
      const rec = (sop: string, series: string, z: number, at: number) =>
        index.recordInstance({ header: header(sop, series, z), transferSyntaxUid: '1.2.840.10008.1.2.1', path: `/x/${sop}`, size: 1, receivedAt: at, callingAet: 'CT1', callingHost: null });
      for (let k = 0; k < 4; k++) rec(`1.1.${k}`, '1.5', k * 2, 1000 + k);
      const facts = index.completion;
      expect(facts.seriesFacts('1.2.3')[0].geometry).toMatchObject({ status: 'continuous', slices: 4 });
      expect(facts.gapsOf('CT1')).toEqual([1, 1, 1]);
      const gen1 = facts.complete(index.getStudy('1.2.3')!, 'association_released', 'released', 'study', 2000)!;
      expect(index.getStudy('1.2.3')).toMatchObject({ state: 'complete', complete_reason: 'association_released', complete_detail: 'released' });
      expect(gen1.previous).toBeNull();
      // A late series before job 1 started: generation 2 supersedes the queued job 1.
      rec('1.1.9', '1.6', 0, 3000);
      const study = index.getStudy('1.2.3')!;
      expect(study).toMatchObject({ state: 'receiving', generation: 2 });
      const gen2 = facts.complete(study, 'quiet', 'q', 'study', 4000)!;
      expect(gen2.superseded).toEqual([{ id: gen1.jobId, generation: 1 }]);
      expect(index.getJob(gen1.jobId)).toMatchObject({ state: 'cancelled', error: 'superseded by generation 2' });
      expect(index.getJob(gen2.jobId)).toMatchObject({ state: 'queued', generation: 2 });
      expect(gen2.newSeries).toEqual([{ series_uid: '1.6', modality: 'CT', n: 1 }]);
      expect(facts.complete(study, 'quiet', 'q', 'study', 5000)).toBeUndefined(); // never twice
      // Storage commitment: covered once every instance is committed after its arrival.
      facts.commit(['1.1.0', '1.1.1', '1.1.2', '1.1.3'], '9.9', 'CT1', 5000);
      expect(facts.commitmentOf('1.2.3')).toBeNull();
      facts.commit(['1.1.9'], '9.9', 'CT1', 5000);
      expect(facts.commitmentOf('1.2.3')).toEqual({ transactionUid: '9.9' });
    } finally {
      index.close();
    }
  });
});
