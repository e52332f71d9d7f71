// Load: 8 concurrent DCMTK storescu senders while a pipeline job runs. Every instance acknowledged,
// on disk and in the index, no error in the node's log, and the node's peak RSS bounded.
// 8 x 500 small CT slices (64x64) in CI too: about 30 s on 2 cores. bench/soak runs the same at RTPIPELINE_SOAK=1.
import { describe, it, expect, afterAll } from 'vitest';
import path from 'node:path';
import { startNode, tempDir, type NodeHandle } from './helpers/node.js';
import { storescu } from './helpers/dcmtk.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';
import { checkStore, errorEvents, reportFigures, rssSampler, scale } from './helpers/reliability.js';

const PEAK_RSS_BOUND_MB = 1024;

describe('load', () => {
  let node: NodeHandle | undefined;
  afterAll(async () => {
    await node?.stop();
  });

  it(`${scale.senders} senders x ${scale.perSender} instances while a segmentation job runs: all acknowledged and stored, RSS bounded`, async () => {
    const work = tempDir('rtp-load-');
    const slice = { rows: 64, columns: 64, pixelSpacingMm: [6, 6] as [number, number], sliceThicknessMm: 2 };
    const t0 = Date.now();
    const real = await writeCtSeries(path.join(work, 'real'), { patientId: 'LOAD-JOB', patientName: 'Load^Job', phantom: { rows: 192, columns: 192, slices: 60, pixelSpacingMm: [2, 2], sliceThicknessMm: 3 } });
    const series = [];
    for (let i = 0; i < scale.senders; i++) {
      series.push(await writeCtSeries(path.join(work, `s${i}`), { patientId: `LOAD-${i}`, patientName: `Load^${i}`, phantom: { ...slice, slices: scale.perSender } }));
    }
    const prepMs = Date.now() - t0;

    // Every sender here comes from 127.0.0.1: the per-peer cap is for distinct hosts.
    node = await startNode({ args: ['--stable-seconds', '2'], configYaml: 'node:\n  max_associations_per_peer: 16\n' });
    const rss = rssSampler(node.proc.pid!);
    expect((await storescu({ port: node.dicomPort, calledAet: 'RTPIPELINE', files: real.files })).code).toBe(0);
    const job = await node.waitFor(async () => ((await node!.api('/api/jobs')).body as any[]).find((j) => j.state === 'running'), 30_000, 'the study job to run');

    const loadStart = Date.now();
    const results = await Promise.all(
      series.map((s, i) => storescu({ port: node!.dicomPort, calledAet: 'RTPIPELINE', callingAet: `SENDER${i}`, files: path.dirname(s.files[0]), timeoutMs: 600_000 })),
    );
    const loadMs = Date.now() - loadStart;
    const jobDuring = (await node.api(`/api/jobs/${job.id}`)).body;
    // The job was running when the load started and was still running or finished during it.
    const jobOverlapped = jobDuring.state === 'running' || (jobDuring.finished_at ?? 0) > loadStart;

    for (const [i, r] of results.entries()) expect(r.code, `sender ${i}: ${r.stderr.slice(-2000)}`).toBe(0);
    const total = scale.senders * scale.perSender + real.files.length;
    const studies = (await node.api('/api/studies')).body as any[];
    for (const s of series) expect(studies.find((x) => x.study_uid === s.studyInstanceUid)?.instance_count).toBe(scale.perSender);
    const store = await checkStore(node.dataDir);
    expect(store.files).toBe(total);
    expect(store.indexedSopUids.size).toBe(total);
    expect(store.unparsable).toEqual([]);
    expect(store.notIndexed).toEqual([]);
    expect(store.partials).toEqual([]);
    expect(errorEvents(node.events()).map((e) => `${e.msg} ${e.err ?? ''}`)).toEqual([]);
    const peak = rss.stop();
    expect(jobOverlapped).toBe(true);
    expect(peak).toBeLessThan(PEAK_RSS_BOUND_MB);
    reportFigures('load', {
      senders: scale.senders,
      perSender: scale.perSender,
      instances: scale.senders * scale.perSender,
      acknowledged: results.filter((r) => r.code === 0).length * scale.perSender,
      stored: store.files - real.files.length,
      loadSeconds: Math.round(loadMs / 100) / 10,
      instancesPerSecond: Math.round((scale.senders * scale.perSender) / (loadMs / 1000)),
      jobDuringLoad: jobDuring.state,
      peakRssMb: Math.round(peak),
      prepSeconds: Math.round(prepMs / 100) / 10,
    });
  }, SOAK_TIMEOUT());
});

function SOAK_TIMEOUT(): number {
  return Math.max(180_000, scale.senders * scale.perSender * 150);
}
