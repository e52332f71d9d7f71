import Database from 'better-sqlite3';
import { addColumns } from './sqlite-columns.js';
import type { InstanceHeader } from '../dicom/header.js';
import { CompletionFacts } from '../completion/completion-facts.js';

/**
 * The persistent index of patients, studies, series, instances, jobs and the outbound queue.
 *
 * SQLite in WAL mode: each C-STORE is one small transaction that survives `kill -9` once committed
 * (the WAL is in the OS page cache). synchronous=NORMAL skips the per-commit fsync; a power cut can
 * lose the last commits, which is why the node reconciles the index with the files on disk at start
 * after an unclean stop (the fsynced files are the truth; see reindex.ts).
 */

export type StudyState = 'receiving' | 'complete';
export type JobState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';
/** 'failed' = a dead letter; 'held' = kept back before sending (an RTSTRUCT failed validation). */
export type OutboundState = 'pending' | 'sending' | 'done' | 'failed' | 'held';

export interface InstanceRow {
  sop_uid: string;
  series_uid: string;
  study_uid: string;
  sop_class_uid: string;
  transfer_syntax: string;
  instance_number: number | null;
  path: string;
  size: number;
  received_at: number;
  calling_aet: string | null;
}

export interface StudyRow {
  study_uid: string;
  patient_id: string;
  patient_name: string;
  study_date: string;
  study_time: string;
  description: string;
  accession: string;
  state: StudyState;
  generation: number;
  first_received_at: number;
  last_received_at: number;
  completed_at: number | null;
  calling_aet: string | null;
  calling_host: string | null;
  /** The AE title the sender called us by (return routing); null for uploads and older indexes. */
  called_aet?: string | null;
  /** Why the study was declared complete (src/completion/evidence.ts), null before or for old rows. */
  complete_reason?: string | null;
  complete_detail?: string | null;
}

export interface JobRow {
  id: number;
  study_uid: string;
  generation: number;
  kind: string;
  state: JobState;
  attempts: number;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  error: string | null;
  result: string | null;
  /** JSON of the job's options (e.g. {"forceRedo": ["segmentation"]} for a requested re-run), or null. */
  options: string | null;
  /** JSON of the job's live progress ({stage, stages: [{stage, status, ms}]}), null before it starts. */
  progress: string | null;
}

export interface OutboundRow {
  id: number;
  destination: string;
  files: string;
  state: OutboundState;
  attempts: number;
  next_attempt_at: number;
  created_at: number;
  updated_at: number;
  last_error: string | null;
  source: string;
  delivered: number;
  /** JSON array of "file: status" the destination refused (final, never retried). */
  refused: string | null;
  /** The study the item's files belong to (null for items queued before 0.4 or by hand). */
  study_uid: string | null;
  /** JSON of the destination's settings when queued (TLS, calling AE): a route's endpoint is not in node.destinations. */
  destination_settings?: string | null;
}

const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS patients (
  patient_id TEXT PRIMARY KEY, patient_name TEXT NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS studies (
  study_uid TEXT PRIMARY KEY, patient_id TEXT NOT NULL, patient_name TEXT NOT NULL, study_date TEXT NOT NULL,
  study_time TEXT NOT NULL, description TEXT NOT NULL, accession TEXT NOT NULL,
  state TEXT NOT NULL, generation INTEGER NOT NULL, first_received_at INTEGER NOT NULL,
  last_received_at INTEGER NOT NULL, completed_at INTEGER, calling_aet TEXT, calling_host TEXT);
CREATE INDEX IF NOT EXISTS studies_state ON studies(state, last_received_at);
CREATE TABLE IF NOT EXISTS series (
  series_uid TEXT PRIMARY KEY, study_uid TEXT NOT NULL, modality TEXT NOT NULL, number INTEGER,
  description TEXT NOT NULL, frame_of_reference_uid TEXT);
CREATE INDEX IF NOT EXISTS series_study ON series(study_uid);
CREATE TABLE IF NOT EXISTS instances (
  sop_uid TEXT PRIMARY KEY, series_uid TEXT NOT NULL, study_uid TEXT NOT NULL, sop_class_uid TEXT NOT NULL,
  transfer_syntax TEXT NOT NULL, instance_number INTEGER, path TEXT NOT NULL, size INTEGER NOT NULL,
  received_at INTEGER NOT NULL, calling_aet TEXT);
CREATE INDEX IF NOT EXISTS instances_study ON instances(study_uid);
CREATE INDEX IF NOT EXISTS instances_series ON instances(series_uid);
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY, study_uid TEXT NOT NULL, generation INTEGER NOT NULL, kind TEXT NOT NULL,
  state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,
  started_at INTEGER, finished_at INTEGER, error TEXT, result TEXT,
  UNIQUE (study_uid, generation, kind));
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, id);
CREATE TABLE IF NOT EXISTS outbound (
  id INTEGER PRIMARY KEY, destination TEXT NOT NULL, files TEXT NOT NULL, state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL, created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL, last_error TEXT, source TEXT NOT NULL, delivered INTEGER NOT NULL DEFAULT 0,
  refused TEXT);
CREATE INDEX IF NOT EXISTS outbound_due ON outbound(state, next_attempt_at);
`;

export interface RecordedInstance {
  header: InstanceHeader;
  transferSyntaxUid: string;
  path: string;
  size: number;
  receivedAt: number;
  callingAet: string | null;
  callingHost: string | null;
  /** The AE title the sender called (return routing); absent for uploads and watched folders. */
  calledAet?: string | null;
}

export class IndexDb {
  readonly db: Database.Database;
  /** Facts study completion decides from (geometry, sender gaps, commitments), same database. */
  readonly completion: CompletionFacts;
  private readonly stmts;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = OFF');
    this.db.exec(SCHEMA);
    const version = this.getMeta('schema_version');
    if (version === undefined) this.setMeta('schema_version', String(SCHEMA_VERSION));
    else if (Number(version) > SCHEMA_VERSION) {
      throw new Error(`index ${file} was written by a newer rtpipeline (schema ${version}); upgrade, or move it aside to rebuild it from the files`);
    }
    // Columns added after 0.1: older indexes get them here. Added before the completion facts,
    // which read studies' columns too.
    addColumns(this.db, 'jobs', { options: 'TEXT', progress: 'TEXT' }); // 0.2 re-run requests, 0.3 live progress
    addColumns(this.db, 'studies', { called_aet: 'TEXT' }); // 0.4 return routing matches on the called AE title
    addColumns(this.db, 'outbound', { study_uid: 'TEXT', destination_settings: 'TEXT' }); // 0.4 timeline, a route's TLS endpoint
    this.completion = new CompletionFacts(this.db);
    const db = this.db;
    this.stmts = {
      getInstance: db.prepare<[string], InstanceRow>('SELECT * FROM instances WHERE sop_uid = ?'),
      upsertInstance: db.prepare(`INSERT INTO instances
        (sop_uid, series_uid, study_uid, sop_class_uid, transfer_syntax, instance_number, path, size, received_at, calling_aet)
        VALUES (@sop_uid, @series_uid, @study_uid, @sop_class_uid, @transfer_syntax, @instance_number, @path, @size, @received_at, @calling_aet)
        ON CONFLICT(sop_uid) DO UPDATE SET series_uid=excluded.series_uid, study_uid=excluded.study_uid,
          sop_class_uid=excluded.sop_class_uid, transfer_syntax=excluded.transfer_syntax,
          instance_number=excluded.instance_number, path=excluded.path, size=excluded.size,
          received_at=excluded.received_at, calling_aet=excluded.calling_aet`),
      upsertSeries: db.prepare(`INSERT INTO series (series_uid, study_uid, modality, number, description, frame_of_reference_uid)
        VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(series_uid) DO NOTHING`),
      upsertPatient: db.prepare(`INSERT INTO patients (patient_id, patient_name, first_seen, last_seen) VALUES (?, ?, ?, ?)
        ON CONFLICT(patient_id) DO UPDATE SET last_seen = excluded.last_seen, patient_name = excluded.patient_name`),
      getStudy: db.prepare<[string], StudyRow>('SELECT * FROM studies WHERE study_uid = ?'),
      insertStudy: db.prepare(`INSERT INTO studies (study_uid, patient_id, patient_name, study_date, study_time, description,
        accession, state, generation, first_received_at, last_received_at, completed_at, calling_aet, calling_host, called_aet)
        VALUES (?, ?, ?, ?, ?, ?, ?, 'receiving', 1, ?, ?, NULL, ?, ?, ?)`),
      touchStudy: db.prepare(`UPDATE studies SET last_received_at = MAX(last_received_at, ?),
        generation = generation + (state = 'complete'), state = 'receiving', completed_at = NULL,
        calling_aet = COALESCE(?, calling_aet), calling_host = COALESCE(?, calling_host), called_aet = COALESCE(?, called_aet)
        WHERE study_uid = ?`),
    };
  }

  getMeta(key: string): string | undefined {
    const row = this.db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?').get(key);
    return row?.value;
  }

  /** Writes a meta value with a WAL fsync: for the clean-shutdown mark, which must not be lost
   *  to a power cut (a stale "clean" would skip the reconciliation that the cut made necessary). */
  setMetaDurable(key: string, value: string): void {
    this.db.pragma('synchronous = FULL');
    try {
      this.setMeta(key, value);
    } finally {
      this.db.pragma('synchronous = NORMAL');
    }
  }

  setMeta(key: string, value: string): void {
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  getInstance(sopUid: string): InstanceRow | undefined {
    return this.stmts.getInstance.get(sopUid);
  }

  /** Records a stored instance; reopens its study if it was complete (a new generation runs later).
   *  `reopen` is false for an identical re-send, which changes nothing the pipeline would see. */
  recordInstance(r: RecordedInstance, reopen = true): void {
    const h = r.header;
    this.db.transaction(() => {
      this.completion.recordInstance(r);
      this.stmts.upsertInstance.run({
        sop_uid: h.sopInstanceUid,
        series_uid: h.seriesInstanceUid,
        study_uid: h.studyInstanceUid,
        sop_class_uid: h.sopClassUid,
        transfer_syntax: r.transferSyntaxUid,
        instance_number: h.instanceNumber,
        path: r.path,
        size: r.size,
        received_at: r.receivedAt,
        calling_aet: r.callingAet,
      });
      this.stmts.upsertSeries.run(h.seriesInstanceUid, h.studyInstanceUid, h.modality, h.seriesNumber, h.seriesDescription, h.frameOfReferenceUid);
      this.stmts.upsertPatient.run(h.patientId, h.patientName, r.receivedAt, r.receivedAt);
      // The senders' AE titles and address: the latest sender's, kept when an upload (none) adds to the study.
      if (!this.stmts.getStudy.get(h.studyInstanceUid)) {
        this.stmts.insertStudy.run(h.studyInstanceUid, h.patientId, h.patientName, h.studyDate, h.studyTime, h.studyDescription,
          h.accessionNumber, r.receivedAt, r.receivedAt, r.callingAet, r.callingHost, r.calledAet ?? null);
      } else if (reopen) {
        this.stmts.touchStudy.run(r.receivedAt, r.callingAet, r.callingHost, r.calledAet ?? null, h.studyInstanceUid);
      }
    })();
  }

  getStudy(studyUid: string): StudyRow | undefined {
    return this.stmts.getStudy.get(studyUid);
  }


  /**
   * A requested re-run of a complete study: a new generation and its job, with `options`; in one
   * transaction. Undefined when the study is unknown or still receiving (its job comes anyway).
   */
  reprocessStudy(studyUid: string, kind: string, options: unknown, now: number): JobRow | undefined {
    return this.db.transaction(() => {
      const bumped = this.db.prepare(`UPDATE studies SET generation = generation + 1, completed_at = ? WHERE study_uid = ? AND state = 'complete'`).run(now, studyUid);
      if (bumped.changes !== 1) return undefined;
      const study = this.stmts.getStudy.get(studyUid)!;
      const id = this.db
        .prepare(`INSERT INTO jobs (study_uid, generation, kind, state, created_at, options) VALUES (?, ?, ?, 'queued', ?, ?)`)
        .run(studyUid, study.generation, kind, now, JSON.stringify(options)).lastInsertRowid;
      return this.getJob(Number(id));
    })();
  }

  listStudies(limit = 500): (StudyRow & { series_count: number; instance_count: number; bytes: number })[] {
    return this.db
      .prepare<[number], StudyRow & { series_count: number; instance_count: number; bytes: number }>(
        `SELECT s.*, (SELECT COUNT(*) FROM series WHERE study_uid = s.study_uid) AS series_count,
           COUNT(i.sop_uid) AS instance_count, COALESCE(SUM(i.size), 0) AS bytes
         FROM studies s LEFT JOIN instances i ON i.study_uid = s.study_uid
         GROUP BY s.study_uid ORDER BY s.last_received_at DESC LIMIT ?`,
      )
      .all(limit);
  }

  seriesOfStudy(studyUid: string): { series_uid: string; modality: string; number: number | null; description: string; frame_of_reference_uid: string | null; instance_count: number }[] {
    return this.db
      .prepare<[string], { series_uid: string; modality: string; number: number | null; description: string; frame_of_reference_uid: string | null; instance_count: number }>(
        `SELECT se.*, (SELECT COUNT(*) FROM instances WHERE series_uid = se.series_uid) AS instance_count
         FROM series se WHERE se.study_uid = ? ORDER BY se.number`,
      )
      .all(studyUid);
  }

  instancesOfStudy(studyUid: string): InstanceRow[] {
    return this.db.prepare<[string], InstanceRow>('SELECT * FROM instances WHERE study_uid = ? ORDER BY series_uid, instance_number').all(studyUid);
  }

  /** Bytes stored for a study (node.max_study_mb seeds its running count with this). */
  studyBytes(studyUid: string): number {
    return (this.db.prepare<[string], { n: number }>('SELECT COALESCE(SUM(size), 0) AS n FROM instances WHERE study_uid = ?').get(studyUid) as { n: number }).n;
  }

  countInstances(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM instances').get() as { n: number }).n;
  }

  // --- jobs -------------------------------------------------------------------------------

  /** Jobs left running by a process that died are queued again: nothing queued is ever lost. */
  requeueInterruptedJobs(): number {
    return this.db.prepare(`UPDATE jobs SET state = 'queued', started_at = NULL WHERE state = 'running'`).run().changes;
  }

  /** A job interrupted by a graceful stop goes back to the queue, to resume at the next start. */
  requeueJob(id: number): void {
    this.db.prepare(`UPDATE jobs SET state = 'queued', started_at = NULL WHERE id = ? AND state = 'running'`).run(id);
  }

  claimNextJob(now: number): JobRow | undefined {
    return this.db.transaction(() => {
      const job = this.db.prepare<[], JobRow>(`SELECT * FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1`).get();
      if (!job) return undefined;
      this.db.prepare(`UPDATE jobs SET state = 'running', started_at = ?, attempts = attempts + 1 WHERE id = ?`).run(now, job.id);
      return { ...job, state: 'running' as const, started_at: now, attempts: job.attempts + 1 };
    })();
  }

  finishJob(id: number, state: 'done' | 'failed' | 'cancelled', now: number, error: string | null, result: unknown): void {
    this.db
      .prepare(`UPDATE jobs SET state = ?, finished_at = ?, error = ?, result = ? WHERE id = ?`)
      .run(state, now, error, result === undefined ? null : JSON.stringify(result), id);
  }

  cancelJob(id: number, now: number): boolean {
    return this.db.prepare(`UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE id = ? AND state = 'queued'`).run(now, id).changes === 1;
  }

  /** The job's live progress (JSON), written by the running job at each stage start and end. */
  setJobProgress(id: number, progress: unknown): void {
    this.db.prepare('UPDATE jobs SET progress = ? WHERE id = ?').run(JSON.stringify(progress), id);
  }

  /**
   * Removes a finished job's row (its course folder stays). 'unfinished' for a queued or running
   * job (cancel it first), 'missing' for an unknown id.
   */
  deleteJob(id: number): 'deleted' | 'unfinished' | 'missing' {
    return this.db.transaction(() => {
      const job = this.getJob(id);
      if (!job) return 'missing' as const;
      if (job.state === 'queued' || job.state === 'running') return 'unfinished' as const;
      this.db.prepare('DELETE FROM jobs WHERE id = ?').run(id);
      return 'deleted' as const;
    })();
  }

  getJob(id: number): JobRow | undefined {
    return this.db.prepare<[number], JobRow>('SELECT * FROM jobs WHERE id = ?').get(id);
  }

  listJobs(limit = 500): JobRow[] {
    return this.db.prepare<[number], JobRow>('SELECT * FROM jobs ORDER BY id DESC LIMIT ?').all(limit);
  }

  countBy(table: 'jobs' | 'outbound' | 'studies'): Record<string, number> {
    const rows = this.db.prepare<[], { state: string; n: number }>(`SELECT state, COUNT(*) AS n FROM ${table} GROUP BY state`).all();
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  }

  // --- outbound queue -------------------------------------------------------------------------

  /** Idempotent per (destination, source): a job re-run after a crash does not queue a second copy. */
  enqueueOutbound(destination: string, files: string[], source: string, now: number, studyUid?: string, settings?: unknown): number {
    const existing = this.db.prepare<[string, string], { id: number }>('SELECT id FROM outbound WHERE destination = ? AND source = ?').get(destination, source);
    if (existing && !source.startsWith('manual')) return existing.id;
    return Number(
      this.db
        .prepare(`INSERT INTO outbound (destination, files, state, next_attempt_at, created_at, updated_at, source, study_uid, destination_settings) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?)`)
        .run(destination, JSON.stringify(files), now, now, now, source, studyUid ?? null, settings === undefined ? null : JSON.stringify(settings)).lastInsertRowid,
    );
  }

  /** Items whose send was interrupted by a crash are due again (the PACS de-duplicates by SOP Instance UID). */
  requeueInterruptedOutbound(now: number): number {
    return this.db.prepare(`UPDATE outbound SET state = 'pending', next_attempt_at = ? WHERE state = 'sending'`).run(now).changes;
  }

  claimDueOutbound(now: number, exclude: ReadonlySet<string>): OutboundRow | undefined {
    return this.db.transaction(() => {
      const rows = this.db.prepare<[number], OutboundRow>(`SELECT * FROM outbound WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY id`).all(now);
      const row = rows.find((r) => !exclude.has(r.destination));
      if (!row) return undefined;
      this.db.prepare(`UPDATE outbound SET state = 'sending', attempts = attempts + 1, updated_at = ? WHERE id = ?`).run(now, row.id);
      return { ...row, state: 'sending' as const, attempts: row.attempts + 1 };
    })();
  }

  finishOutbound(
    id: number,
    state: 'done' | 'failed' | 'pending' | 'held',
    now: number,
    opts: { error?: string | null; nextAttemptAt?: number; delivered?: number; refused?: string[]; files?: string[] },
  ): void {
    this.db
      .prepare(
        `UPDATE outbound SET state = ?, updated_at = ?, last_error = ?, next_attempt_at = COALESCE(?, next_attempt_at),
           delivered = COALESCE(?, delivered), refused = COALESCE(?, refused), files = COALESCE(?, files) WHERE id = ?`,
      )
      .run(state, now, opts.error ?? null, opts.nextAttemptAt ?? null, opts.delivered ?? null,
        opts.refused && opts.refused.length > 0 ? JSON.stringify(opts.refused) : null, opts.files ? JSON.stringify(opts.files) : null, id);
  }

  getOutbound(id: number): OutboundRow | undefined {
    return this.db.prepare<[number], OutboundRow>('SELECT * FROM outbound WHERE id = ?').get(id);
  }

  listOutbound(limit = 500): OutboundRow[] {
    return this.db.prepare<[number], OutboundRow>('SELECT * FROM outbound ORDER BY id DESC LIMIT ?').all(limit);
  }

  /** Items in the given states, newest first (the dead letters: failed and held). */
  listOutboundIn(states: readonly OutboundState[], limit = 500): OutboundRow[] {
    return this.db
      .prepare<unknown[], OutboundRow>(`SELECT * FROM outbound WHERE state IN (${states.map(() => '?').join(', ')}) ORDER BY id DESC LIMIT ?`)
      .all(...states, limit);
  }

  /** A dead letter (failed or held) queued again with its attempts reset; its files are what was
   *  not delivered. */
  retryOutbound(id: number, now: number): 'requeued' | 'missing' | 'not_failed' {
    const changed = this.db
      .prepare(`UPDATE outbound SET state = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ?, last_error = NULL, refused = NULL, created_at = ? WHERE id = ? AND state IN ('failed', 'held')`)
      .run(now, now, now, id).changes;
    if (changed > 0) return 'requeued';
    return this.getOutbound(id) ? 'not_failed' : 'missing';
  }

  nextOutboundDue(): number | undefined {
    const row = this.db.prepare<[], { t: number | null }>(`SELECT MIN(next_attempt_at) AS t FROM outbound WHERE state = 'pending'`).get();
    return row?.t ?? undefined;
  }

  close(): void {
    this.db.close();
  }
}
