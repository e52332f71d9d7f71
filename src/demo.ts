import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { configSchema } from './config/schema.js';
import { RtNode } from './node/node.js';
import { writeCtSeries } from './dicom/ct-series-writer.js';
import { sendFiles, isStoredStatus } from './dicom/scu.js';
import type { Logger } from './log.js';

export interface DemoOptions {
  dataDir?: string;
  slices?: number;
  size?: number;
  log: Logger;
  out: (line: string) => void;
}

/**
 * The first run for a new user: a node on free loopback ports, a synthetic thorax CT sent to it
 * over DICOM, and the results of its job. Needs nothing but Node.js.
 */
export async function runDemo(o: DemoOptions): Promise<number> {
  const dataDir = path.resolve(o.dataDir ?? 'rtpipeline-demo');
  const config = configSchema.parse({
    node: { aet: 'RTPIPELINE', dicom_port: 1, http_port: 1, bind_address: '127.0.0.1', http_bind_address: '127.0.0.1', data_dir: dataDir, stable_seconds: 2 },
  });
  // Port 0 = any free port; the schema insists on 1..65535 for users, so set it after validation.
  config.node.dicom_port = 0;
  config.node.http_port = 0;
  const node = new RtNode(config, o.log);
  const ctDir = mkdtempSync(path.join(tmpdir(), 'rtpipeline-demo-ct-'));
  try {
    await node.start();
    o.out(`node ${config.node.aet} listening on DICOM 127.0.0.1:${node.dicom.port}, HTTP http://127.0.0.1:${node.httpPort}`);
    const size = o.size ?? 256;
    const slices = o.slices ?? 100;
    let t = performance.now();
    const series = await writeCtSeries(ctDir, {
      patientId: 'DEMO-THORAX',
      patientName: 'Demo^Thorax',
      studyDate: new Date().toISOString().slice(0, 10).replace(/-/g, ''),
      phantom: { rows: size, columns: size, slices, pixelSpacingMm: [500 / size, 500 / size], sliceThicknessMm: 3 },
    });
    o.out(`synthetic thorax CT: ${slices} slices of ${size}x${size} written in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    t = performance.now();
    const sent = await sendFiles({ aet: config.node.aet, host: '127.0.0.1', port: node.dicom.port, tls: false }, series.files, { callingAet: 'DEMO' });
    const stored = sent.results.filter((r) => isStoredStatus(r.status)).length;
    if (stored !== series.files.length) throw new Error(`only ${stored} of ${series.files.length} instances were stored: ${sent.associationError ?? ''}`);
    const sentAt = performance.now();
    o.out(`sent over DICOM (C-STORE) in ${((sentAt - t) / 1000).toFixed(1)} s; waiting ${config.node.stable_seconds} s for the study to be complete`);
    const job = await waitForJob(node, series.studyInstanceUid, 300_000);
    const total = (performance.now() - sentAt) / 1000;
    if (job.state !== 'done') {
      o.out(`the study job failed: ${job.error}`);
      return 1;
    }
    const result = JSON.parse(job.result ?? '{}') as { courseDir: string; segmentation: { rsAuto?: string; rois?: { name: string; volumeCm3: number }[]; timingsMs?: Record<string, number>; skipped?: string } };
    o.out(`study complete and processed ${total.toFixed(1)} s after the last instance (stable window ${config.node.stable_seconds} s included)`);
    o.out(`results in ${result.courseDir}:`);
    o.out(`  RS_auto.dcm                  ${result.segmentation.rsAuto ?? result.segmentation.skipped}`);
    o.out(`  NIFTI/ct.nii.gz, Segmentation/builtin/<ROI>.nii.gz, case_metadata.json`);
    for (const r of result.segmentation.rois ?? []) o.out(`  ${r.name.padEnd(8)} ${r.volumeCm3.toFixed(1).padStart(9)} cm³`);
    if (result.segmentation.timingsMs) o.out(`  timings (ms): ${JSON.stringify(result.segmentation.timingsMs)}`);
    return 0;
  } finally {
    await node.stop(2000).catch(() => undefined);
    rmSync(ctDir, { recursive: true, force: true });
  }
}

async function waitForJob(node: RtNode, studyUid: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = node.index.listJobs(50).find((j) => j.study_uid === studyUid && (j.state === 'done' || j.state === 'failed'));
    if (job) return job;
    if (Date.now() > deadline) throw new Error(`no result for the demo study after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
