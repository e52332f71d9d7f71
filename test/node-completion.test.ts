// Study completion from evidence in the real node, with real DIMSE senders (DCMTK storescu and a
// dcmjs-dimse Client): a CT sent in two associations with a gap is not split; count hints,
// association release, the adaptive quiet time and storage commitment each complete a study long
// before the fixed quiet time; a late series amends the result in the same RTSTRUCT lineage; and
// the timeline shows received -> complete(reason) -> job -> stages.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import path from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import dimse from 'dcmjs-dimse';
import { startNode, tempDir, type NodeHandle } from './helpers/node.js';
import { storescu, dcmdump } from './helpers/dcmtk.js';
import { run, sleep } from './helpers/ports.js';
import { writeCtSeries, type CtSeriesResult } from '../src/dicom/ct-series-writer.js';
import { newUid } from '../src/dicom/uid.js';

const { Client, Dataset } = dimse;
dimse.log.setLevel('silent'); // the client's PDU log on stdout
const { CStoreRequest, NActionRequest } = dimse.requests;
const { NEventReportResponse } = dimse.responses;
const { Status } = dimse.constants;

/** 40 slices of 16x16, 2.5 mm apart: small on disk, enough to leave a hole in. */
const SMALL = { rows: 16, columns: 16, slices: 40, pixelSpacingMm: [10, 10] as [number, number], sliceThicknessMm: 2.5, seed: 3 };

const ct = (patientId: string, slices = 40, extra: Partial<Parameters<typeof writeCtSeries>[1]> = {}) =>
  writeCtSeries(path.join(tempDir('rtp-compl-'), 'ct'), { patientId, patientName: `COMPL^${patientId}`, phantom: { ...SMALL, slices }, ...extra });

const study = async (node: NodeHandle, uid: string) => (await node.api(`/api/studies/${uid}`)).body as Record<string, any>;
const timeline = async (node: NodeHandle, uid: string) => (await node.api(`/api/studies/${uid}/timeline`)).body as { study: Record<string, any>; events: { event: string; at: number; detail: Record<string, any> }[] };
const jobsOf = async (node: NodeHandle, uid: string) => ((await node.api('/api/jobs')).body as any[]).filter((j) => j.study_uid === uid);
const completeStudy = (node: NodeHandle, uid: string, ms = 20_000) =>
  node.waitFor(async () => {
    const s = await study(node, uid);
    return s.state === 'complete' ? s : undefined;
  }, ms, `study ${uid} complete`);

/** C-STOREs with a dcmjs-dimse Client; then either an abort, or an N-ACTION storage commitment request. */
async function dimseSend(node: NodeHandle, callingAet: string, files: string[], end: 'abort' | 'commit'): Promise<{ eventType?: number; committed?: number; failed?: number }> {
  const client = new Client();
  const requests = files.map((f) => new CStoreRequest(f));
  for (const r of requests) client.addRequest(r);
  const report: { eventType?: number; committed?: number; failed?: number } = {};
  if (end === 'commit') {
    const action = new NActionRequest('1.2.840.10008.1.20.1', '1.2.840.10008.1.20.1.1', 1);
    const refs = files.map((f) => {
      const ds = Dataset.fromFile(f)!;
      return { ReferencedSOPClassUID: ds.getElement('SOPClassUID'), ReferencedSOPInstanceUID: ds.getElement('SOPInstanceUID') };
    });
    // one instance we never sent: it must come back in the Failed SOP Sequence
    refs.push({ ReferencedSOPClassUID: '1.2.840.10008.5.1.4.1.1.2', ReferencedSOPInstanceUID: newUid() });
    action.setDataset(new Dataset({ TransactionUID: newUid(), ReferencedSOPSequence: refs }, '1.2.840.10008.1.2'));
    client.addRequest(action);
  }
  client.on('nEventReportRequest', (rq: dimse.requests.NEventReportRequest, callback: (r: dimse.responses.NEventReportResponse) => void) => {
    const ds = rq.getDataset()?.getElements() as Record<string, unknown[]> | undefined;
    report.eventType = rq.getEventTypeId();
    report.committed = ds?.ReferencedSOPSequence?.length ?? 0;
    report.failed = ds?.FailedSOPSequence?.length ?? 0;
    const rsp = NEventReportResponse.fromRequest(rq);
    rsp.setStatus(Status.Success);
    callback(rsp);
  });
  let answered = 0;
  const statuses: number[] = [];
  await new Promise<void>((resolve, reject) => {
    for (const r of requests) {
      r.on('response', (rsp: dimse.responses.CStoreResponse) => {
        statuses.push(rsp.getStatus());
        if (++answered === requests.length && end === 'abort') client.abort();
      });
    }
    client.on('closed', () => resolve());
    client.on('networkError', (e: Error) => (end === 'abort' ? resolve() : reject(e)));
    // the linger keeps the association open for the storage commitment report
    client.send('127.0.0.1', node.dicomPort, callingAet, node.aet, { associationLingerTimeout: end === 'commit' ? 3000 : 60_000 });
  });
  expect(statuses.filter((s) => s !== Status.Success)).toEqual([]);
  expect(statuses).toHaveLength(files.length);
  return report;
}

describe('study completion from evidence (long fixed quiet time, adaptive on)', () => {
  let node: NodeHandle;
  beforeAll(async () => {
    node = await startNode({
      configYaml: 'node:\n  stable_seconds: 60\n  completion:\n    min_quiet_seconds: 1\n    max_quiet_seconds: 120\n',
    });
  });
  afterAll(async () => {
    expect(await node?.stop()).toBe(0);
  });

  it('does not split a CT sent as two associations when the first left a gap in the slice positions', async () => {
    const s = await ct('SPLIT');
    const first = s.files.filter((_, i) => i < 20 || i >= 30);
    const second = s.files.slice(20, 30);
    expect((await storescu({ port: node.dicomPort, calledAet: node.aet, callingAet: 'SPLITTER', files: first })).code).toBe(0);
    // Longer than this sender's learned quiet time (29 gaps of a few ms: the 1 s minimum) and than min_quiet.
    await sleep(4000);
    const waiting = await timeline(node, s.studyInstanceUid);
    expect(waiting.study.state).toBe('receiving');
    expect(waiting.study.waiting.detail).toMatch(/held: CT series .* gap: 10 slice\(s\) missing between -1\.25 and 26\.25 mm \(spacing 2\.5 mm\)/);
    expect(waiting.events.map((e) => e.event)).toEqual(['received']);
    expect(await jobsOf(node, s.studyInstanceUid)).toHaveLength(0);

    const t = Date.now();
    expect((await storescu({ port: node.dicomPort, calledAet: node.aet, callingAet: 'SPLITTER', files: second })).code).toBe(0);
    const done = await completeStudy(node, s.studyInstanceUid);
    expect(Date.now() - t).toBeLessThan(10_000);
    expect(done.complete_reason).toBe('association_released');
    expect(done.complete_detail).toMatch(/continuous: 40 slices every 2\.5 mm/);
    expect(done.generation).toBe(1);
    await sleep(1500);
    const jobs = await jobsOf(node, s.studyInstanceUid);
    expect(jobs).toHaveLength(1);
    expect(jobs[0].generation).toBe(1);
    const tl = await timeline(node, s.studyInstanceUid);
    expect(tl.events.map((e) => e.event).slice(0, 4)).toEqual(['received', 'received', 'complete', 'job']);
    expect(tl.events[0].detail).toMatchObject({ count: 30, callingAet: 'SPLITTER', via: 'dimse', released: true });
    expect(tl.events[2].detail).toMatchObject({ reason: 'association_released', generation: 1 });
  });

  it('completes by count hint (ImagesInAcquisition) at once despite a 60 s quiet time', async () => {
    const s = await ct('HINT', 12);
    const mod = await run('dcmodify', ['-nb', '-i', '(0020,1002)=12', ...s.files]);
    expect(mod.code, mod.stderr).toBe(0);
    const t = Date.now();
    expect((await storescu({ port: node.dicomPort, calledAet: node.aet, callingAet: 'HINTER', files: s.files })).code).toBe(0);
    const done = await completeStudy(node, s.studyInstanceUid);
    expect(Date.now() - t).toBeLessThan(10_000);
    expect(done.complete_reason).toBe('count_hint');
    expect(done.complete_detail).toMatch(/CT .*: 12\/12/);
  });

  it('completes on association release with continuous geometry, far before the maximum quiet time', async () => {
    const s = await ct('RELEASE', 12);
    const t = Date.now();
    expect((await storescu({ port: node.dicomPort, calledAet: node.aet, callingAet: 'RELEASER', files: s.files })).code).toBe(0);
    const done = await completeStudy(node, s.studyInstanceUid);
    expect(Date.now() - t).toBeLessThan(10_000); // max_quiet_seconds is 120, stable_seconds 60
    expect(done.complete_reason).toBe('association_released');
  });

  it('learns a fast sender\'s quiet time: an aborted association still completes within seconds', async () => {
    const s = await ct('ADAPTIVE', 24);
    const t = Date.now();
    await dimseSend(node, 'FASTCT', s.files, 'abort');
    const done = await completeStudy(node, s.studyInstanceUid);
    expect(Date.now() - t).toBeLessThan(15_000); // the fixed quiet time would be 60 s
    expect(done.complete_reason).toBe('quiet');
    // Learned from this association's 23 gaps: the 1 s minimum on an idle machine, a little more under load.
    const learned = /adaptive quiet time ([\d.]+) s for FASTCT \(4 × p95 gap \d+ ms over 23 gaps/.exec(done.complete_detail);
    expect(learned, done.complete_detail).not.toBeNull();
    expect(Number(learned![1])).toBeLessThan(10);
  });

  it('takes a storage commitment N-ACTION as the done signal and reports it with N-EVENT-REPORT', async () => {
    const s = await ct('COMMIT', 8);
    const report = await dimseSend(node, 'COMMITTER', s.files, 'commit');
    expect(report).toEqual({ eventType: 2, committed: 8, failed: 1 }); // one reference we never received
    const done = await completeStudy(node, s.studyInstanceUid, 5000);
    expect(done.complete_reason).toBe('storage_commitment');
    const tl = await timeline(node, s.studyInstanceUid);
    expect(tl.events.find((e) => e.event === 'commitment')?.detail).toMatchObject({ instances: 8, failed: 1, callingAet: 'COMMITTER' });
    const metrics = (await node.api('/metrics')).body as string;
    expect(metrics).toMatch(/rtpipeline_studies_completed_total\{reason="storage_commitment"\} 1/);
    expect(metrics).toMatch(/rtpipeline_studies_completed_total\{reason="count_hint"\} 1/);
    expect(metrics).toMatch(/rtpipeline_study_receive_to_complete_seconds_count 5/);
    expect((await node.api('/api/studies/1.2.3.4.5/timeline')).status).toBe(404);
  });
});

describe('a late series amends the result', () => {
  it('gives generation 2, one new job, and an RS_auto in the same series with InstanceNumber 2', async () => {
    const node = await startNode({ args: ['--stable-seconds', '1'] });
    try {
      const s: CtSeriesResult = await writeCtSeries(path.join(tempDir('rtp-late-'), 'ct'), {
        patientId: 'LATE', patientName: 'LATE^SERIES', studyDate: '20260301',
        phantom: { rows: 48, columns: 48, slices: 12, pixelSpacingMm: [8, 8], sliceThicknessMm: 10 },
      });
      expect((await storescu({ port: node.dicomPort, calledAet: node.aet, files: s.files })).code).toBe(0);
      const job1 = await node.waitFor(async () => (await jobsOf(node, s.studyInstanceUid)).find((j) => j.state === 'done' || j.state === 'failed'), 60_000, 'first job');
      expect(job1.state, job1.error).toBe('done');
      const rs = job1.result.segmentation.rsAuto as string;
      const tag = async (t: string) => (await dcmdump(rs, ['+P', t])).stdout.match(/\[([^\]]*)\]/)?.[1];
      const series1 = await tag('0020,000e');
      const sop1 = await tag('0008,0018');
      expect(await tag('0020,0013')).toBe('1');

      // A second, short CT series of the same study arrives after the result was made.
      const late = await writeCtSeries(path.join(tempDir('rtp-late-'), 'ct2'), {
        patientId: 'LATE', patientName: 'LATE^SERIES', studyDate: '20260301', studyInstanceUid: s.studyInstanceUid,
        phantom: { rows: 48, columns: 48, slices: 3, pixelSpacingMm: [8, 8], sliceThicknessMm: 10 },
      });
      expect((await storescu({ port: node.dicomPort, calledAet: node.aet, files: late.files })).code).toBe(0);
      const job2 = await node.waitFor(async () => (await jobsOf(node, s.studyInstanceUid)).find((j) => j.generation === 2 && (j.state === 'done' || j.state === 'failed')), 60_000, 'second job');
      expect(job2.state, job2.error).toBe('done');
      expect(job2.result.segmentation.rsAuto).toBe(rs);
      expect(await tag('0020,000e')).toBe(series1);
      expect(await tag('0020,0013')).toBe('2');
      expect(await tag('0008,0018')).not.toBe(sop1);
      expect(await tag('3006,0002')).toBe('RS_auto');
      expect(await jobsOf(node, s.studyInstanceUid)).toHaveLength(2);

      const tl = await timeline(node, s.studyInstanceUid);
      const kinds = tl.events.map((e) => e.event);
      // received -> complete(reason) -> job queued/started -> stages -> job done, then the amendment
      expect(kinds.slice(0, 4)).toEqual(['received', 'complete', 'job', 'job']);
      expect(tl.events[1].detail.reason).toBe('association_released');
      expect(tl.events.filter((e) => e.event === 'stage').map((e) => `${e.detail.stage}:${e.detail.status}`)).toEqual(
        expect.arrayContaining(['organize:done', 'segmentation:running', 'segmentation:done']),
      );
      const amended = tl.events.find((e) => e.event === 'amended');
      expect(amended?.detail).toMatchObject({ generation: 2, previousGeneration: 1, newSeries: [{ seriesUid: late.seriesInstanceUid, modality: 'CT', instances: 3 }] });
      expect(kinds.indexOf('amended')).toBeGreaterThan(kinds.indexOf('complete'));
      expect(existsSync(rs) && readFileSync(rs).length > 0).toBe(true);
    } finally {
      expect(await node.stop()).toBe(0);
    }
  });
});
