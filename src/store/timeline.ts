import type Database from 'better-sqlite3';

/**
 * The per-study timeline: what happened to a study and when, from the first instance to the
 * PACS's acknowledgement of our result. Kept in the index (same SQLite file, own table) so it
 * survives restarts and is served by GET /api/studies/:uid/timeline and drawn by the web UI.
 *
 * Events are coarse on purpose (one `received` per association or upload, not per instance).
 */
export type TimelineEventKind =
  /** Instances arrived: {count, bytes, callingAet, calledAet, peer, via: 'dimse'|'watch'|'upload', association?} */
  | 'received'
  /** The study was declared complete: {reason, generation, detail} */
  | 'complete'
  /** The study was not processed: {reason} (an input constraint, routing) */
  | 'skipped'
  /** A job was queued / started / finished: {jobId, state, error?} */
  | 'job'
  /** A pipeline stage ran: {jobId, stage, status, ms} */
  | 'stage'
  /** A result was queued for / sent to a destination: {outboundId, destination, files} */
  | 'sent'
  /** The destination answered Success for everything: {outboundId, destination, delivered} */
  | 'acknowledged'
  /** A result was held back (validation failed, dry run): {reason} */
  | 'held'
  /** A delivery failed for good (dead letter) or a job failed: {reason} */
  | 'failed'
  /** A late series amended a completed study's result: {generation, series} */
  | 'amended'
  /** Storage commitment requested / answered: {transactionUid, instances} */
  | 'commitment';

export interface TimelineEntry {
  id: number;
  study_uid: string;
  at: number;
  event: TimelineEventKind;
  detail: Record<string, unknown>;
}

export class Timeline {
  private readonly insert: Database.Statement;
  private readonly select: Database.Statement<[string, number]>;

  constructor(private readonly db: Database.Database) {
    db.exec(`CREATE TABLE IF NOT EXISTS timeline (
      id INTEGER PRIMARY KEY, study_uid TEXT NOT NULL, at INTEGER NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS timeline_study ON timeline(study_uid, id);`);
    this.insert = db.prepare('INSERT INTO timeline (study_uid, at, event, detail) VALUES (?, ?, ?, ?)');
    this.select = db.prepare('SELECT * FROM timeline WHERE study_uid = ? ORDER BY id LIMIT ?');
  }

  record(studyUid: string, event: TimelineEventKind, detail: Record<string, unknown> = {}, at = Date.now()): void {
    this.insert.run(studyUid, at, event, JSON.stringify(detail));
  }

  list(studyUid: string, limit = 10_000): TimelineEntry[] {
    return (this.select.all(studyUid, limit) as (Omit<TimelineEntry, 'detail'> & { detail: string })[]).map((r) => ({ ...r, detail: JSON.parse(r.detail) as Record<string, unknown> }));
  }

  /** Removes a study's timeline (retention purges the study itself). */
  forget(studyUid: string): void {
    this.db.prepare('DELETE FROM timeline WHERE study_uid = ?').run(studyUid);
  }
}
