// Retention over a real store folder and SQLite index: finished studies older than max_age_days are
// purged (files, index rows, timeline, course folder; job rows kept and marked), a study with a
// queued/running job, a pending outbound item or an open association is never purged, the disk
// budget purges oldest first, every purge is audited, and a purge interrupted after its index
// transaction finishes on the next pass. Against the real node: POST /api/retention/run, and an
// interrupted purge plus a kill -9 is finished at start before the reindex, which must not bring
// the study back.
import { describe, it, expect, afterAll } from 'vitest';
import { existsSync, linkSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { IndexDb } from '../src/store/index-db.js';
import { instancePath, storeLayout } from '../src/store/instance-store.js';
import { Retention } from '../src/store/retention.js';
import { Timeline } from '../src/store/timeline.js';
import { AuditLog, readAudit } from '../src/audit/audit-log.js';
import { createLogger } from '../src/log.js';
import type { Uid } from '../src/dicom/uid.js';
import { startNode, tempDir, type NodeHandle } from './helpers/node.js';
import { storescu, writeTestDicom, newUid } from './helpers/dcmtk.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 5, 1);

function setup() {
  const dataDir = tempDir('rtp-retention-');
  const index = new IndexDb(path.join(dataDir, 'index.sqlite'));
  const layout = storeLayout(dataDir);
  mkdirSync(layout.store, { recursive: true });
  const outputDir = path.join(dataDir, 'output');
  const auditFile = path.join(dataDir, 'audit', 'audit.jsonl');
  const audit = new AuditLog(auditFile);
  const busy = new Set<string>();
  const timeline = new Timeline(index.db);
  const retention = new Retention({ index, layout, outputDir, log: createLogger({ level: 'silent' }), audit, isBusy: (u) => busy.has(u) });

  /** A complete study of `n` instances of `size` bytes, last active `ageDays` ago, with one job and a course folder. */
  function addStudy(o: { patientId: string; ageDays: number; n?: number; size?: number; jobState?: 'done' | 'failed' | 'queued' | 'running' }) {
    const study = newUid() as Uid;
    const series = newUid() as Uid;
    const t = NOW - o.ageDays * DAY;
    const files: string[] = [];
    for (let i = 0; i < (o.n ?? 3); i++) {
      const sop = newUid() as Uid;
      const file = instancePath(layout, { studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop });
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, Buffer.alloc(o.size ?? 1000, i));
      files.push(file);
      index.recordInstance({
        header: { sopClassUid: '1.2.840.10008.5.1.4.1.1.2' as Uid, sopInstanceUid: sop, studyInstanceUid: study, seriesInstanceUid: series, patientId: o.patientId, patientName: `Name^${o.patientId}`, studyDate: '20260101', studyTime: '', studyDescription: '', seriesDescription: '', accessionNumber: '', modality: 'CT', seriesNumber: 1, instanceNumber: i + 1, frameOfReferenceUid: null },
        transferSyntaxUid: '1.2.840.10008.1.2.1', path: file, size: o.size ?? 1000, receivedAt: t, callingAet: 'CT', callingHost: '127.0.0.1',
      });
    }
    index.db.prepare(`UPDATE studies SET state = 'complete', completed_at = ? WHERE study_uid = ?`).run(t, study);
    const courseDir = path.join(outputDir, o.patientId, `course-${study.slice(-6)}`);
    mkdirSync(path.join(courseDir, 'DICOM', 'CT'), { recursive: true });
    writeFileSync(path.join(courseDir, 'RS_auto.dcm'), Buffer.alloc(500));
    linkSync(files[0], path.join(courseDir, 'DICOM', 'CT', path.basename(files[0])));
    const state = o.jobState ?? 'done';
    const jobId = Number(index.db.prepare(`INSERT INTO jobs (study_uid, generation, kind, state, created_at, finished_at, result) VALUES (?, 1, 'study', ?, ?, ?, ?)`)
      .run(study, state, t, state === 'done' || state === 'failed' ? t : null, JSON.stringify({ courseDir })).lastInsertRowid);
    timeline.record(study, 'received', { count: files.length }, t);
    return { study, files, courseDir, jobId };
  }
  const policy = (p: Partial<{ maxAgeDays: number | null; diskBudgetBytes: number | null; purgeOutputs: boolean }>) => ({ maxAgeDays: null, diskBudgetBytes: null, purgeOutputs: true, ...p });
  return { dataDir, index, layout, retention, audit, auditFile, busy, timeline, addStudy, policy };
}

describe('retention', () => {
  const nodes: NodeHandle[] = [];
  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
  });

  it('purges finished studies older than max_age_days, never one with unfinished work, and audits each purge', async () => {
    const s = setup();
    const old = s.addStudy({ patientId: 'OLD', ageDays: 40 });
    const oldFailed = s.addStudy({ patientId: 'OLDF', ageDays: 35, jobState: 'failed' });
    const recent = s.addStudy({ patientId: 'NEW', ageDays: 5 });
    const queued = s.addStudy({ patientId: 'Q', ageDays: 50, jobState: 'queued' });
    const running = s.addStudy({ patientId: 'R', ageDays: 50, jobState: 'running' });
    const sending = s.addStudy({ patientId: 'S', ageDays: 50 });
    s.index.enqueueOutbound('PACS@127.0.0.1:104', [path.join(sending.courseDir, 'RS_auto.dcm')], 'manual:x', NOW);
    const sendingStore = s.addStudy({ patientId: 'S2', ageDays: 50 });
    s.index.enqueueOutbound('PACS@127.0.0.1:104', sendingStore.files, 'manual:y', NOW);
    s.index.db.prepare(`UPDATE outbound SET state = 'sending' WHERE source = 'manual:y'`).run();
    const busy = s.addStudy({ patientId: 'B', ageDays: 50 });
    s.busy.add(busy.study);
    const receiving = s.addStudy({ patientId: 'RCV', ageDays: 50 });
    s.index.db.prepare(`UPDATE studies SET state = 'receiving' WHERE study_uid = ?`).run(receiving.study);
    const delivered = s.addStudy({ patientId: 'D', ageDays: 45 });
    const deliveredItem = s.index.enqueueOutbound('PACS@127.0.0.1:104', [path.join(delivered.courseDir, 'RS_auto.dcm')], `job:${delivered.jobId}:rs_auto`, NOW);
    s.index.finishOutbound(deliveredItem, 'done', NOW, { delivered: 1 });

    const purged = await s.retention.run(s.policy({ maxAgeDays: 30 }), NOW);
    expect(purged.map((p) => p.studyUid).sort()).toEqual([old.study, oldFailed.study, delivered.study].sort());
    for (const p of [old, oldFailed, delivered]) {
      expect(p.files.some(existsSync)).toBe(false);
      expect(existsSync(path.dirname(p.files[0]))).toBe(false); // empty series/study folders go too
      expect(existsSync(p.courseDir)).toBe(false);
      expect(s.index.getStudy(p.study)).toBeUndefined();
      expect(s.index.instancesOfStudy(p.study)).toEqual([]);
      expect(s.index.seriesOfStudy(p.study)).toEqual([]);
      expect(s.timeline.list(p.study)).toEqual([]);
      const job = s.index.getJob(p.jobId)!;
      expect(JSON.parse(job.result!)).toMatchObject({ courseDir: p.courseDir, purged: { at: NOW, reason: 'age', outputs: true } });
    }
    expect(s.index.db.prepare(`SELECT COUNT(*) AS n FROM patients WHERE patient_id IN ('OLD', 'OLDF', 'D')`).get()).toEqual({ n: 0 });
    for (const k of [recent, queued, running, sending, sendingStore, busy, receiving]) {
      expect(k.files.every(existsSync)).toBe(true);
      expect(existsSync(k.courseDir)).toBe(true);
      expect(s.index.getStudy(k.study)).toBeDefined();
    }
    const audited = readAudit(s.auditFile).filter((e) => e.type === 'retention.purged');
    expect(audited).toHaveLength(3);
    expect(audited.find((e) => e.studyUid === old.study)).toMatchObject({ outcome: 'success', patientId: 'OLD', instances: 3, bytes: 3000 + 500, reason: 'age' });
    // A second pass finds nothing more; unfinished work becomes purgeable once it is finished.
    expect(await s.retention.run(s.policy({ maxAgeDays: 30 }), NOW)).toEqual([]);
    s.index.finishJob(queued.jobId, 'done', NOW - 40 * DAY, null, { courseDir: queued.courseDir });
    expect((await s.retention.run(s.policy({ maxAgeDays: 30 }), NOW)).map((p) => p.studyUid)).toEqual([queued.study]);
  });

  it('keeps store + output under the disk budget by purging the oldest finished studies first', async () => {
    const s = setup();
    const studies = [30, 10, 20, 1].map((ageDays, i) => ({ ageDays, ...s.addStudy({ patientId: `P${i}`, ageDays, n: 4, size: 100_000 }) }));
    // Each study: 400 kB of instances + 0.5 kB RS_auto (the DICOM/ hard link counts once).
    const purged = await s.retention.run(s.policy({ diskBudgetBytes: 500_000 }), NOW);
    const byAge = [...studies].sort((a, b) => b.ageDays - a.ageDays);
    expect(purged.map((p) => p.studyUid)).toEqual(byAge.slice(0, 3).map((x) => x.study));
    expect(purged.every((p) => p.reason === 'disk_budget' && p.bytes === 400_500)).toBe(true);
    expect(studies.find((x) => x.ageDays === 1)!.files.every(existsSync)).toBe(true);
    expect(readAudit(s.auditFile).filter((e) => e.type === 'retention.purged' && e.reason === 'disk_budget')).toHaveLength(3);
    // Under the budget already: nothing more goes.
    expect(await s.retention.run(s.policy({ diskBudgetBytes: 1_000_000 }), NOW)).toEqual([]);
  });

  it('finishes a purge interrupted between its index transaction and the file deletion', async () => {
    const s = setup();
    const a = s.addStudy({ patientId: 'A', ageDays: 90 });
    const [candidate] = (await s.retention.candidates()).filter((c) => c.studyUid === a.study);
    // Phase 1 only, then the "crash": the rows are gone, the files still there.
    const rec = s.retention.mark(candidate, 'age', true, NOW)!;
    expect(rec.files).toHaveLength(3);
    expect(s.index.getStudy(a.study)).toBeUndefined();
    expect(a.files.every(existsSync)).toBe(true);
    s.index.close();
    const index = new IndexDb(path.join(s.dataDir, 'index.sqlite'));
    const again = new Retention({ index, layout: s.layout, outputDir: path.join(s.dataDir, 'output'), log: createLogger({ level: 'silent' }), audit: new AuditLog(s.auditFile) });
    expect(again.unfinished().map((r) => r.studyUid)).toEqual([a.study]);
    const done = await again.run({ maxAgeDays: null, diskBudgetBytes: null, purgeOutputs: true }, NOW);
    expect(done.map((r) => r.studyUid)).toEqual([a.study]);
    expect(a.files.some(existsSync)).toBe(false);
    expect(existsSync(a.courseDir)).toBe(false);
    expect(again.unfinished()).toEqual([]);
    expect(readAudit(s.auditFile).filter((e) => e.type === 'retention.purged')).toHaveLength(1);
  });

  it('on the node: POST /api/retention/run purges; a purge interrupted by kill -9 is finished at start, before the reindex', async () => {
    const dataDir = path.join(tempDir(), 'data');
    const cfg = 'node:\n  stable_seconds: 1\n  retention:\n    max_age_days: 30\n';
    const node = await startNode({ dataDir, configYaml: cfg });
    nodes.push(node);
    const work = tempDir();
    const a = await writeTestDicom(path.join(work, 'a.dcm'), { patientId: 'RET-A' });
    const b = await writeTestDicom(path.join(work, 'b.dcm'), { patientId: 'RET-B' });
    expect((await storescu({ port: node.dicomPort, calledAet: node.aet, files: [a.file, b.file] })).code).toBe(0);
    const jobs = await node.waitFor(async () => {
      const j = (await node.api('/api/jobs')).body as { state: string; study_uid: string }[];
      return j.length === 2 && j.every((x) => x.state === 'done' || x.state === 'failed') ? j : undefined;
    }, 60_000, 'both jobs finished');
    expect(jobs).toHaveLength(2);
    // Nothing is old yet: the pass purges nothing.
    expect((await node.api('/api/retention/run', { method: 'POST' })).body.purged).toEqual([]);
    await node.kill9();

    // Age both studies, and leave B half-purged: the index transaction done, the files not deleted.
    const index = new IndexDb(path.join(dataDir, 'index.sqlite'));
    for (const sql of ['UPDATE studies SET last_received_at = ?, completed_at = ?', 'UPDATE jobs SET finished_at = ?, created_at = ?']) index.db.prepare(sql).run(NOW - 100 * DAY, NOW - 100 * DAY);
    const r = new Retention({ index, layout: storeLayout(dataDir), outputDir: path.join(dataDir, 'output'), log: createLogger({ level: 'silent' }) });
    const candidate = (await r.candidates()).find((c) => c.studyUid === b.studyInstanceUid)!;
    expect(r.mark(candidate, 'age', true)).toBeDefined();
    index.close();
    expect(existsSync(path.join(dataDir, 'store', b.studyInstanceUid))).toBe(true);

    const node2 = await startNode({ dataDir, configYaml: cfg, dicomPort: node.dicomPort, httpPort: node.httpPort });
    nodes.push(node2);
    // Unclean stop: the node reconciled the index with store/, after finishing B's purge.
    expect(node2.events().some((e) => e.msg === 'finishing a purge interrupted by a restart')).toBe(true);
    expect(node2.events().find((e) => e.msg === 'index checked against the stored files')).toMatchObject({ mode: 'reconcile', added: 0 });
    expect(existsSync(path.join(dataDir, 'store', b.studyInstanceUid))).toBe(false);
    expect((await node2.api(`/api/studies/${b.studyInstanceUid}`)).status).toBe(404);
    // A is due now: the API runs a pass and says what went.
    const run = await node2.api('/api/retention/run', { method: 'POST' });
    expect(run.status).toBe(200);
    expect(run.body.purged).toEqual([expect.objectContaining({ studyUid: a.studyInstanceUid, patientId: 'RET-A', reason: 'age', instances: 1 })]);
    expect(readdirSync(path.join(dataDir, 'store'))).toEqual([]);
    expect((await node2.api('/api/studies')).body).toEqual([]);
    const trail = readAudit(path.join(dataDir, 'audit', 'audit.jsonl'));
    expect(trail.filter((e) => e.type === 'retention.purged').map((e) => e.studyUid).sort()).toEqual([a.studyInstanceUid, b.studyInstanceUid].sort());
    expect(trail.some((e) => e.type === 'http.request' && e.action === 'retention.run')).toBe(true);
    // The jobs stay, marked; their downloads say the results are gone.
    const job = ((await node2.api('/api/jobs')).body as { id: number; study_uid: string; result: { purged?: unknown } }[]).find((j) => j.study_uid === a.studyInstanceUid)!;
    expect(job.result.purged).toMatchObject({ reason: 'age' });
    if (job.result && 'courseDir' in job.result) expect((await node2.api(`/api/jobs/${job.id}/download`)).status).toBe(410);
  });
});
