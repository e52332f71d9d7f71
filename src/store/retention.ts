import fs, { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { IndexDb } from './index-db.js';
import type { StoreLayout } from './instance-store.js';
import { Timeline } from './timeline.js';
import type { AuditSink } from '../audit/audit-log.js';
import type { Logger } from '../log.js';

/**
 * Retention: removes finished studies (their instance files, index rows, timeline and course
 * folder) by age or to fit a disk budget. Only a study that is complete, has no job queued or
 * running, no outbound item pending, sending or held back for its files, and no association, upload or watched
 * folder feeding it now, is ever purged.
 *
 * Crash safety, in two phases:
 *  1. one index transaction records the purge (with the list of files) in `retention_purges` and
 *     removes the study's rows; from then on the study is gone for the node;
 *  2. the files are deleted, then the purge is marked finished and audited.
 * A purge interrupted between the two (kill -9) is finished by the next pass, which the node also
 * runs at start *before* reindexing the store, so a reindex never brings a half-purged study back.
 * A file is deleted only if the index does not hold it again (the same instance re-sent after the
 * purge is a new arrival and stays).
 */
export interface RetentionPolicy {
  maxAgeDays: number | null;
  diskBudgetBytes: number | null;
  purgeOutputs: boolean;
}

export type PurgeReason = 'age' | 'disk_budget';

export interface PurgeRecord {
  id: number;
  studyUid: string;
  patientId: string;
  reason: PurgeReason;
  instances: number;
  bytes: number;
  files: string[];
  courseDirs: string[];
  markedAt: number;
  finishedAt: number | null;
}

/** A study retention may remove, with what it holds. */
export interface PurgeCandidate {
  studyUid: string;
  patientId: string;
  /** Latest of: last instance received, completion, end of its last job (ms). */
  lastActivity: number;
  instances: number;
  /** Bytes freed: its instance files, plus its course folders' files not shared with the store. */
  bytes: number;
  /** Of those, the instance files' (what is freed when outputs are kept). */
  instanceBytes: number;
  courseDirs: string[];
}

export interface RetentionDeps {
  index: IndexDb;
  layout: StoreLayout;
  outputDir: string;
  log: Logger;
  audit?: AuditSink;
  /** Studies an association, upload or watched folder is feeding right now are left alone. */
  isBusy?: (studyUid: string) => boolean;
  /** Told after a study's rows are gone (the store drops its per-study size count). */
  onPurged?: (studyUid: string) => void;
}

const SCHEMA = `CREATE TABLE IF NOT EXISTS retention_purges (
  id INTEGER PRIMARY KEY, study_uid TEXT NOT NULL, patient_id TEXT NOT NULL, reason TEXT NOT NULL,
  instances INTEGER NOT NULL, bytes INTEGER NOT NULL, files TEXT NOT NULL, course_dirs TEXT NOT NULL,
  marked_at INTEGER NOT NULL, finished_at INTEGER);
CREATE INDEX IF NOT EXISTS retention_purges_open ON retention_purges(finished_at);`;

interface PurgeRow {
  id: number;
  study_uid: string;
  patient_id: string;
  reason: PurgeReason;
  instances: number;
  bytes: number;
  files: string;
  course_dirs: string;
  marked_at: number;
  finished_at: number | null;
}

const toRecord = (r: PurgeRow): PurgeRecord => ({
  id: r.id,
  studyUid: r.study_uid,
  patientId: r.patient_id,
  reason: r.reason,
  instances: r.instances,
  bytes: r.bytes,
  files: JSON.parse(r.files) as string[],
  courseDirs: JSON.parse(r.course_dirs) as string[],
  markedAt: r.marked_at,
  finishedAt: r.finished_at,
});

/** Files deleted per event-loop turn: C-STOREs keep being answered during a large purge. */
const UNLINK_BATCH = 200;

export class Retention {
  private readonly timeline: Timeline;
  private running: Promise<PurgeRecord[]> | undefined;

  constructor(private readonly deps: RetentionDeps) {
    deps.index.db.exec(SCHEMA);
    // The timeline table is created by its owner; make sure it exists for the purge's DELETE.
    this.timeline = new Timeline(deps.index.db);
  }

  /** Purges recorded but not finished (a crash between the two phases). */
  unfinished(): PurgeRecord[] {
    return (this.deps.index.db.prepare('SELECT * FROM retention_purges WHERE finished_at IS NULL ORDER BY id').all() as PurgeRow[]).map(toRecord);
  }

  /** Finishes purges a crash interrupted. The node calls this at start, before reindexing store/. */
  async resumeInterrupted(): Promise<PurgeRecord[]> {
    const open = this.unfinished();
    for (const r of open) {
      this.deps.log.warn({ studyUid: r.studyUid, purgeId: r.id, files: r.files.length }, 'finishing a purge interrupted by a restart');
      await this.finish(r);
    }
    return open;
  }

  /** Studies that may be purged now, oldest activity first. */
  async candidates(): Promise<PurgeCandidate[]> {
    const db = this.deps.index.db;
    const rows = db
      .prepare(
        `SELECT s.study_uid, s.patient_id,
           MAX(s.last_received_at, COALESCE(s.completed_at, 0), COALESCE((SELECT MAX(finished_at) FROM jobs j WHERE j.study_uid = s.study_uid), 0)) AS last_activity,
           (SELECT COUNT(*) FROM instances i WHERE i.study_uid = s.study_uid) AS instances,
           (SELECT COALESCE(SUM(size), 0) FROM instances i WHERE i.study_uid = s.study_uid) AS bytes
         FROM studies s
         WHERE s.state = 'complete'
           AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.study_uid = s.study_uid AND j.state IN ('queued', 'running'))
         ORDER BY last_activity, s.study_uid`,
      )
      .all() as { study_uid: string; patient_id: string; last_activity: number; instances: number; bytes: number }[];
    const outbound = this.studiesWithOutboundInFlight();
    const out: PurgeCandidate[] = [];
    for (const r of rows) {
      if (outbound.has(r.study_uid) || this.deps.isBusy?.(r.study_uid)) continue;
      const courseDirs = this.courseDirsOf(r.study_uid);
      out.push({ studyUid: r.study_uid, patientId: r.patient_id, lastActivity: r.last_activity, instances: r.instances, bytes: r.bytes + (await ownBytes(courseDirs)), instanceBytes: r.bytes, courseDirs });
    }
    return out;
  }

  /** Studies whose files (instances or course folder) an outbound item still has to send. */
  private studiesWithOutboundInFlight(): Set<string> {
    const db = this.deps.index.db;
    const items = db.prepare(`SELECT files, source FROM outbound WHERE state IN ('pending', 'sending', 'held')`).all() as { files: string; source: string }[];
    const busy = new Set<string>();
    if (items.length === 0) return busy;
    const courseOwner = new Map<string, string>();
    for (const j of db.prepare(`SELECT study_uid, result FROM jobs WHERE result IS NOT NULL`).all() as { study_uid: string; result: string }[]) {
      const dir = courseDirOfResult(j.result);
      if (dir) courseOwner.set(path.resolve(dir), j.study_uid);
    }
    const jobStudy = db.prepare<[number], { study_uid: string }>('SELECT study_uid FROM jobs WHERE id = ?');
    for (const item of items) {
      // "job:<id>..." items belong to that job's study, whatever files they list.
      const m = /^job:(\d+)/.exec(item.source);
      const owner = m ? jobStudy.get(Number(m[1]))?.study_uid : undefined;
      if (owner) busy.add(owner);
      for (const f of JSON.parse(item.files) as string[]) {
        const abs = path.resolve(f);
        const rel = path.relative(this.deps.layout.store, abs);
        if (!rel.startsWith('..') && !path.isAbsolute(rel)) busy.add(rel.split(path.sep)[0]);
        for (let d = path.dirname(abs); d !== path.dirname(d); d = path.dirname(d)) {
          const s = courseOwner.get(d);
          if (s) busy.add(s);
        }
      }
    }
    return busy;
  }

  /** The course folders of a study's jobs that lie inside the output folder (never anything else). */
  private courseDirsOf(studyUid: string): string[] {
    const dirs = new Set<string>();
    const out = path.resolve(this.deps.outputDir);
    for (const j of this.deps.index.db.prepare('SELECT result FROM jobs WHERE study_uid = ? AND result IS NOT NULL').all(studyUid) as { result: string }[]) {
      const dir = courseDirOfResult(j.result);
      if (!dir) continue;
      const abs = path.resolve(dir);
      const rel = path.relative(out, abs);
      if (rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel)) dirs.add(abs);
    }
    return [...dirs];
  }

  /**
   * Phase 1: records the purge and removes the study's index rows, in one transaction; re-checks
   * that the study is still purgeable inside it. Undefined when it no longer is.
   */
  mark(c: PurgeCandidate, reason: PurgeReason, purgeOutputs: boolean, now = Date.now()): PurgeRecord | undefined {
    const db = this.deps.index.db;
    if (this.deps.isBusy?.(c.studyUid)) return undefined;
    const marked = db.transaction(() => {
      const still = db
        .prepare(
          `SELECT 1 FROM studies s WHERE s.study_uid = ? AND s.state = 'complete'
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.study_uid = s.study_uid AND j.state IN ('queued', 'running'))`,
        )
        .get(c.studyUid);
      if (!still) return undefined;
      const files = (db.prepare('SELECT path FROM instances WHERE study_uid = ?').all(c.studyUid) as { path: string }[]).map((r) => r.path);
      const courseDirs = purgeOutputs ? c.courseDirs : [];
      // What the purge frees: with the outputs kept, only the instance files.
      const freed = purgeOutputs ? c.bytes : c.instanceBytes;
      const id = Number(
        db
          .prepare(`INSERT INTO retention_purges (study_uid, patient_id, reason, instances, bytes, files, course_dirs, marked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
          .run(c.studyUid, c.patientId, reason, files.length, freed, JSON.stringify(files), JSON.stringify(courseDirs), now).lastInsertRowid,
      );
      // Completion facts of the instances (geometry, commitments) go with them.
      db.prepare('DELETE FROM instance_geometry WHERE sop_uid IN (SELECT sop_uid FROM instances WHERE study_uid = ?)').run(c.studyUid);
      db.prepare('DELETE FROM committed_instances WHERE sop_uid IN (SELECT sop_uid FROM instances WHERE study_uid = ?)').run(c.studyUid);
      db.prepare('DELETE FROM instances WHERE study_uid = ?').run(c.studyUid);
      db.prepare('DELETE FROM series WHERE study_uid = ?').run(c.studyUid);
      db.prepare('DELETE FROM studies WHERE study_uid = ?').run(c.studyUid);
      // The patient row holds the name: it goes with the patient's last study.
      db.prepare('DELETE FROM patients WHERE patient_id = ? AND NOT EXISTS (SELECT 1 FROM studies WHERE patient_id = ?)').run(c.patientId, c.patientId);
      // Jobs stay (the history of what ran) but say that their results are gone.
      db.prepare(
        `UPDATE jobs SET result = json_set(CASE WHEN json_valid(result) THEN result ELSE '{}' END, '$.purged', json_object('at', ?, 'reason', ?, 'outputs', json(?)))
         WHERE study_uid = ?`,
      ).run(now, reason, purgeOutputs ? 'true' : 'false', c.studyUid);
      this.timeline.forget(c.studyUid);
      return { id, studyUid: c.studyUid, patientId: c.patientId, reason, instances: files.length, bytes: freed, files, courseDirs, markedAt: now, finishedAt: null };
    })();
    if (marked) this.deps.onPurged?.(c.studyUid);
    return marked;
  }

  /** Phase 2: deletes the files, marks the purge finished, audits it. Safe to run again. */
  async finish(r: PurgeRecord, now = () => Date.now()): Promise<void> {
    const index = this.deps.index;
    const dirs = new Set<string>();
    for (let i = 0; i < r.files.length; i += UNLINK_BATCH) {
      // Check and unlink in one synchronous step: no C-STORE can file the same instance in between.
      for (const f of r.files.slice(i, i + UNLINK_BATCH)) {
        dirs.add(path.dirname(f));
        if (index.getInstance(path.basename(f, '.dcm'))?.path === f) continue; // re-sent since: a new arrival
        try {
          fs.unlinkSync(f);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        }
      }
      await new Promise((res) => setImmediate(res));
    }
    // Empty series and study folders go too (a folder a new arrival is using stays: ENOTEMPTY).
    for (const d of [...dirs, ...[...dirs].map((d) => path.dirname(d))]) {
      if (!isInside(this.deps.layout.store, d)) continue;
      try {
        fs.rmdirSync(d);
      } catch {
        /* not empty or already gone */
      }
    }
    // A course folder stays if its study came back in the meantime (its new job owns it now).
    if (!index.getStudy(r.studyUid)) {
      for (const dir of r.courseDirs) {
        if (!isInside(this.deps.outputDir, dir)) continue;
        await fsp.rm(dir, { recursive: true, force: true });
        await fsp.rmdir(path.dirname(dir)).catch(() => undefined); // the patient folder, when empty
      }
    }
    const finishedAt = now();
    index.db.prepare('UPDATE retention_purges SET finished_at = ? WHERE id = ?').run(finishedAt, r.id);
    r.finishedAt = finishedAt;
    this.deps.audit?.record({ type: 'retention.purged', outcome: 'success', studyUid: r.studyUid, patientId: r.patientId, instances: r.instances, bytes: r.bytes, reason: r.reason, outputs: r.courseDirs.length > 0 });
    this.deps.log.info({ studyUid: r.studyUid, patientId: r.patientId, instances: r.instances, bytes: r.bytes, reason: r.reason, courseDirs: r.courseDirs.length }, 'study purged by retention');
  }

  /**
   * One pass: finishes interrupted purges, then purges studies older than max_age_days, then the
   * oldest studies while store/ + output/ exceed the disk budget. One pass at a time.
   */
  run(policy: RetentionPolicy, now = Date.now()): Promise<PurgeRecord[]> {
    this.running ??= this.pass(policy, now).finally(() => (this.running = undefined));
    return this.running;
  }

  /** Waits for a pass in progress (the node's stop). */
  async idle(): Promise<void> {
    await this.running?.catch(() => undefined);
  }

  /** Bytes of the instance files, from the index (a walk of store/ would stat every file). */
  private storeBytes(): number {
    return (this.deps.index.db.prepare('SELECT COALESCE(SUM(size), 0) AS n FROM instances').get() as { n: number }).n;
  }

  private async pass(policy: RetentionPolicy, now: number): Promise<PurgeRecord[]> {
    const done: PurgeRecord[] = [...(await this.resumeInterrupted())];
    let candidates = await this.candidates();
    if (policy.maxAgeDays !== null) {
      const cutoff = now - policy.maxAgeDays * 86_400_000;
      for (const c of candidates.filter((x) => x.lastActivity < cutoff)) {
        const r = this.mark(c, 'age', policy.purgeOutputs, now);
        if (r) {
          await this.finish(r);
          done.push(r);
        }
      }
      candidates = candidates.filter((x) => x.lastActivity >= cutoff);
    }
    if (policy.diskBudgetBytes !== null) {
      let used = this.storeBytes() + (await ownBytes([this.deps.outputDir]));
      for (const c of candidates) {
        if (used <= policy.diskBudgetBytes) break;
        const r = this.mark(c, 'disk_budget', policy.purgeOutputs, now);
        if (!r) continue;
        await this.finish(r);
        done.push(r);
        used -= r.bytes;
      }
      if (used > policy.diskBudgetBytes) {
        this.deps.log.warn({ usedBytes: used, budgetBytes: policy.diskBudgetBytes }, 'store and outputs are over node.retention.disk_budget_gb, and no further study may be purged now (unfinished jobs or sends, or studies still receiving)');
      }
    }
    return done;
  }
}

function courseDirOfResult(result: string): string | undefined {
  try {
    const dir = (JSON.parse(result) as { courseDir?: unknown }).courseDir;
    return typeof dir === 'string' ? dir : undefined;
  } catch {
    return undefined;
  }
}

function isInside(root: string, p: string): boolean {
  const rel = path.relative(path.resolve(root), path.resolve(p));
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/**
 * Bytes of the regular files under `dirs` that are not hard links (the course folders' DICOM/
 * objects are links into store/, counted there), each inode once.
 */
export async function ownBytes(dirs: string[]): Promise<number> {
  const seen = new Set<string>();
  let n = 0;
  for (const d of dirs) {
    await walk(d, (st) => {
      const key = `${st.dev}:${st.ino}`;
      if (st.nlink > 1 || seen.has(key)) return;
      seen.add(key);
      n += st.size;
    });
  }
  return n;
}

async function walk(dir: string, onFile: (st: fs.Stats) => void): Promise<void> {
  const entries = await fsp.readdir(dir, { withFileTypes: true }).catch(() => [] as fs.Dirent[]);
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await walk(p, onFile);
    else if (e.isFile()) {
      const st = await fsp.lstat(p).catch(() => undefined);
      if (st) onFile(st);
    }
  }
}
