// kill -9 and SIGTERM against the real node: acknowledged instances and queued jobs survive.
import { describe, it, expect } from 'vitest';
import { readdirSync, existsSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { startNode, tempDir, CLI } from './helpers/node.js';
import { storescu } from './helpers/dcmtk.js';
import { freePort, sleep, track, exited } from './helpers/ports.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';

const phantom = { rows: 128, columns: 128, slices: 12, pixelSpacingMm: [2, 2] as [number, number], sliceThicknessMm: 3 };

function countStored(dataDir: string): number {
  const root = path.join(dataDir, 'store');
  return existsSync(root) ? readdirSync(root, { recursive: true }).filter((f) => String(f).endsWith('.dcm')).length : 0;
}

describe('durability', () => {
  it('loses nothing acknowledged on kill -9 and runs the study job exactly once after restart', async () => {
    const dataDir = path.join(tempDir(), 'data');
    const dicomPort = await freePort();
    const httpPort = await freePort();
    const s = await writeCtSeries(path.join(tempDir(), 'ct'), { patientId: 'KILL9', patientName: 'Kill^Nine', phantom });
    let node = await startNode({ dataDir, dicomPort, httpPort, args: ['--stable-seconds', '2'] });
    const r = await storescu({ port: node.dicomPort, calledAet: 'RTPIPELINE', files: s.files });
    expect(r.code, r.stderr).toBe(0); // every instance was answered Success
    await node.kill9(); // right after the acknowledgement, before the study is complete
    expect(countStored(dataDir)).toBe(12);

    node = await startNode({ dataDir, dicomPort, httpPort, args: ['--stable-seconds', '2'] });
    try {
      const job = await node.waitFor(async () => ((await node.api('/api/jobs')).body as any[]).find((j) => j.state === 'done'), 20_000, 'job after restart');
      expect(job.study_uid).toBe(s.studyInstanceUid);
      expect(job.result.instances).toBe(12);
      await sleep(3000); // the quiet window again: no second job may appear
      const jobs = (await node.api('/api/jobs')).body as any[];
      expect(jobs.filter((j) => j.study_uid === s.studyInstanceUid)).toHaveLength(1);
      expect(node.logs()).toMatch(/index checked against the stored files/); // unclean stop → reconciliation
    } finally {
      expect(await node.stop()).toBe(0);
    }
  });

  it('resumes a job that was queued or running when the node was killed', async () => {
    const dataDir = path.join(tempDir(), 'data');
    const s = await writeCtSeries(path.join(tempDir(), 'ct'), { patientId: 'KILLJOB', patientName: 'Kill^Job', phantom: { ...phantom, slices: 3 } });
    let node = await startNode({ dataDir, args: ['--stable-seconds', '0.5'], configYaml: 'node:\n  max_concurrent_jobs: 1\n' });
    await storescu({ port: node.dicomPort, calledAet: 'RTPIPELINE', files: s.files });
    // Kill as soon as the study is complete (its job queued or running).
    await node.waitFor(() => node.events().find((e) => e.msg === 'study complete: job queued'), 10_000, 'study completion');
    await node.kill9();
    node = await startNode({ dataDir });
    try {
      const jobs = await node.waitFor(async () => {
        const all = (await node.api('/api/jobs')).body as any[];
        return all.length > 0 && all.every((j) => j.state === 'done') ? all : undefined;
      }, 15_000, 'resumed job');
      expect(jobs).toHaveLength(1);
    } finally {
      await node.stop();
    }
  });

  it('rebuilds a lost index from the stored files without re-running old studies', async () => {
    const dataDir = path.join(tempDir(), 'data');
    const s = await writeCtSeries(path.join(tempDir(), 'ct'), { patientId: 'REBUILD', patientName: 'Re^Build', phantom: { ...phantom, slices: 4 } });
    let node = await startNode({ dataDir });
    await storescu({ port: node.dicomPort, calledAet: 'RTPIPELINE', files: s.files });
    await node.stop();
    for (const f of readdirSync(dataDir).filter((n) => n.startsWith('index.sqlite'))) unlinkSync(path.join(dataDir, f));
    node = await startNode({ dataDir, args: ['--stable-seconds', '0.5'] });
    try {
      const studies = (await node.api('/api/studies')).body as any[];
      expect(studies).toHaveLength(1);
      expect(studies[0].instance_count).toBe(4);
      expect(studies[0].patient_id).toBe('REBUILD');
      expect(studies[0].state).toBe('complete');
      await sleep(1500);
      expect((await node.api('/api/jobs')).body).toEqual([]);
    } finally {
      await node.stop();
    }
  });

  it('stops gracefully on SIGTERM within 10 s, finishing the store in flight, exit code 0', async () => {
    const s = await writeCtSeries(path.join(tempDir(), 'ct'), { patientId: 'TERM', patientName: 'Sig^Term', phantom: { rows: 512, columns: 512, slices: 30, pixelSpacingMm: [1, 1], sliceThicknessMm: 1 } });
    const node = await startNode();
    const sending = storescu({ port: node.dicomPort, calledAet: 'RTPIPELINE', files: s.files, extraArgs: ['-v'] });
    await node.waitFor(() => node.events().some((e) => e.msg === 'association accepted') || undefined, 10_000, 'association');
    await sleep(100);
    const t0 = Date.now();
    const code = await node.stop();
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    const r = await sending;
    // Whatever the sender got acknowledged is on disk; nothing half-written remains.
    const acked = (r.stdout + r.stderr).match(/Received Store Response \(Success\)/g)?.length ?? 0;
    expect(acked).toBeGreaterThan(0);
    expect(readdirSync(path.join(node.dataDir, 'incoming'))).toEqual([]);
    expect(countStored(node.dataDir)).toBeGreaterThanOrEqual(acked);
    expect(node.logs()).toMatch(/"msg":"stopped"/);
  });

  it('refuses to start with a broken config: exit code 2 and the key and line named', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'bad.yaml');
    (await import('node:fs')).writeFileSync(file, 'node:\n  aet: RTP\n  dicom_prot: 104\n');
    const proc = track(spawn(process.execPath, [CLI, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let err = '';
    proc.stderr!.on('data', (d) => (err += d));
    await exited(proc);
    expect(proc.exitCode).toBe(2);
    expect(err).toMatch(/line 3: unknown key "node.dicom_prot"/);
  });
});
