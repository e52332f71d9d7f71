import type Database from 'better-sqlite3';
import type { RecordedInstance, StudyRow } from '../store/index-db.js';
import { addColumns } from '../store/sqlite-columns.js';
import { checkSeriesGeometry, type SliceGeometry } from './geometry.js';
import type { CompletionReason, SeriesFacts } from './evidence.js';

/** Recent gaps kept per sender: enough for a stable 95th percentile, small enough to follow change. */
const GAPS_KEPT = 256;
/** A pause longer than this between two instances of one study is a new sending session (a late
 *  series, a user re-sending), not the sender's rhythm: it is not learned. */
const MAX_LEARNED_GAP_MS = 15 * 60_000;

/**
 * The facts study completion decides from, kept in the index (own tables, same SQLite file):
 * - instance_geometry: image plane and count hints of each instance (from its header);
 * - sender_gaps: recent inter-arrival gaps per calling AE, for its adaptive quiet time;
 * - committed_instances: instances a sender asked us to commit (Storage Commitment N-ACTION);
 * - studies.complete_reason / complete_detail: why the study was declared complete.
 * And the transaction that declares a study complete and queues its one job.
 */
export class CompletionFacts {
  /** Last arrival per (calling AE, study), to measure gaps without a query per instance. */
  private readonly lastArrival = new Map<string, number>();
  private readonly stmts;

  constructor(private readonly db: Database.Database) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS instance_geometry (
        sop_uid TEXT PRIMARY KEY, study_uid TEXT NOT NULL, series_uid TEXT NOT NULL,
        ipp TEXT, iop TEXT, rows INTEGER, columns INTEGER, pixel_spacing TEXT, frame_uid TEXT,
        images_in_acquisition INTEGER, number_of_slices INTEGER);
      CREATE INDEX IF NOT EXISTS instance_geometry_series ON instance_geometry(series_uid);
      CREATE TABLE IF NOT EXISTS sender_gaps (id INTEGER PRIMARY KEY, calling_aet TEXT NOT NULL, gap_ms INTEGER NOT NULL, at INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS sender_gaps_aet ON sender_gaps(calling_aet, id);
      CREATE TABLE IF NOT EXISTS committed_instances (sop_uid TEXT PRIMARY KEY, transaction_uid TEXT NOT NULL, calling_aet TEXT, at INTEGER NOT NULL);`);
    // Added in 0.4 (completion from evidence): why a study was declared complete.
    addColumns(db, 'studies', { complete_reason: 'TEXT', complete_detail: 'TEXT' });
    this.stmts = {
      geometry: db.prepare(`INSERT INTO instance_geometry (sop_uid, study_uid, series_uid, ipp, iop, rows, columns, pixel_spacing, frame_uid, images_in_acquisition, number_of_slices)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(sop_uid) DO UPDATE SET study_uid = excluded.study_uid, series_uid = excluded.series_uid,
          ipp = excluded.ipp, iop = excluded.iop, rows = excluded.rows, columns = excluded.columns, pixel_spacing = excluded.pixel_spacing,
          frame_uid = excluded.frame_uid, images_in_acquisition = excluded.images_in_acquisition, number_of_slices = excluded.number_of_slices`),
      gap: db.prepare('INSERT INTO sender_gaps (calling_aet, gap_ms, at) VALUES (?, ?, ?)'),
      pruneGaps: db.prepare(`DELETE FROM sender_gaps WHERE calling_aet = ? AND id <= (SELECT id FROM sender_gaps WHERE calling_aet = ? ORDER BY id DESC LIMIT 1 OFFSET ${GAPS_KEPT})`),
      gaps: db.prepare<[string], { gap_ms: number }>(`SELECT gap_ms FROM sender_gaps WHERE calling_aet = ? ORDER BY id DESC LIMIT ${GAPS_KEPT}`),
      seriesSlices: db.prepare<[string], { sop_uid: string; ipp: string | null; iop: string | null; rows: number | null; columns: number | null; pixel_spacing: string | null; frame_uid: string | null }>(
        'SELECT g.* FROM instance_geometry g JOIN instances i ON i.sop_uid = g.sop_uid WHERE i.series_uid = ?'),
      seriesOfStudy: db.prepare<[string], { series_uid: string; modality: string; n: number; hint: number | null; slices_hint: number | null }>(
        `SELECT se.series_uid, se.modality, COUNT(i.sop_uid) AS n, MAX(g.images_in_acquisition) AS hint, MAX(g.number_of_slices) AS slices_hint
         FROM series se JOIN instances i ON i.series_uid = se.series_uid LEFT JOIN instance_geometry g ON g.sop_uid = i.sop_uid
         WHERE se.study_uid = ? GROUP BY se.series_uid`),
      commit: db.prepare(`INSERT INTO committed_instances (sop_uid, transaction_uid, calling_aet, at) VALUES (?, ?, ?, ?)
        ON CONFLICT(sop_uid) DO UPDATE SET transaction_uid = excluded.transaction_uid, calling_aet = excluded.calling_aet, at = excluded.at`),
      uncommitted: db.prepare<[string], { n: number; total: number; tx: string | null }>(
        `SELECT SUM(c.sop_uid IS NULL OR c.at < i.received_at) AS n, COUNT(*) AS total, MAX(c.transaction_uid) AS tx
         FROM instances i LEFT JOIN committed_instances c ON c.sop_uid = i.sop_uid WHERE i.study_uid = ?`),
      receiving: db.prepare<[], StudyRow>(`SELECT * FROM studies WHERE state = 'receiving'`),
      completeStudy: db.prepare(`UPDATE studies SET state = 'complete', completed_at = ?, complete_reason = ?, complete_detail = ?
        WHERE study_uid = ? AND generation = ? AND state = 'receiving'`),
      insertJob: db.prepare(`INSERT INTO jobs (study_uid, generation, kind, state, created_at) VALUES (?, ?, ?, 'queued', ?)
        ON CONFLICT(study_uid, generation, kind) DO NOTHING`),
      jobOf: db.prepare<[string, number, string], { id: number }>('SELECT id FROM jobs WHERE study_uid = ? AND generation = ? AND kind = ?'),
      olderQueued: db.prepare<[string, number], { id: number; generation: number }>(`SELECT id, generation FROM jobs WHERE study_uid = ? AND generation < ? AND state = 'queued'`),
      supersede: db.prepare(`UPDATE jobs SET state = 'cancelled', finished_at = ?, error = ? WHERE id = ? AND state = 'queued'`),
      previousJob: db.prepare<[string, number], { id: number; generation: number; created_at: number; state: string }>(
        'SELECT id, generation, created_at, state FROM jobs WHERE study_uid = ? AND generation < ? ORDER BY generation DESC, id DESC LIMIT 1'),
      seriesSince: db.prepare<[string, number], { series_uid: string; modality: string; n: number }>(
        `SELECT se.series_uid, se.modality, COUNT(*) AS n FROM series se JOIN instances i ON i.series_uid = se.series_uid
         WHERE se.study_uid = ? GROUP BY se.series_uid HAVING MIN(i.received_at) > ?`),
    };
  }

  /** Called in the transaction that records the instance (C-STORE, upload, watched folder, reindex). */
  recordInstance(r: RecordedInstance): void {
    const h = r.header;
    const g = h.geometry;
    if (g) {
      const json = (v: number[] | null) => (v ? JSON.stringify(v) : null);
      this.stmts.geometry.run(h.sopInstanceUid, h.studyInstanceUid, h.seriesInstanceUid, json(g.imagePositionPatient), json(g.imageOrientationPatient),
        g.rows, g.columns, json(g.pixelSpacing), h.frameOfReferenceUid, g.imagesInAcquisition, g.numberOfSlices);
    }
    if (r.callingAet) {
      const key = `${r.callingAet}\n${h.studyInstanceUid}`;
      const last = this.lastArrival.get(key);
      this.lastArrival.set(key, r.receivedAt);
      if (last !== undefined && r.receivedAt >= last && r.receivedAt - last <= MAX_LEARNED_GAP_MS) {
        this.stmts.gap.run(r.callingAet, r.receivedAt - last, r.receivedAt);
        this.stmts.pruneGaps.run(r.callingAet, r.callingAet);
      }
      if (this.lastArrival.size > 10_000) this.lastArrival.clear(); // bounded: a lost entry only skips one gap
    }
  }

  /** The sender's recent inter-arrival gaps (ms), newest first. */
  gapsOf(callingAet: string): number[] {
    return this.stmts.gaps.all(callingAet).map((r) => r.gap_ms);
  }

  receivingStudies(): StudyRow[] {
    return this.stmts.receiving.all();
  }

  /** Per series of the study: instance count, count hint, and (CT) slice-geometry continuity. */
  seriesFacts(studyUid: string): SeriesFacts[] {
    return this.stmts.seriesOfStudy.all(studyUid).map((s) => {
      const hint = s.modality === 'PT' || s.modality === 'NM' ? (s.slices_hint ?? s.hint) : s.hint;
      return {
        seriesUid: s.series_uid,
        modality: s.modality,
        instances: s.n,
        countHint: hint !== null && hint > 0 ? hint : null,
        geometry: s.modality === 'CT' ? checkSeriesGeometry(this.slices(s.series_uid)) : null,
      };
    });
  }

  private slices(seriesUid: string): SliceGeometry[] {
    const parse = (v: string | null) => (v ? (JSON.parse(v) as number[]) : null);
    return this.stmts.seriesSlices.all(seriesUid).map((r) => ({
      sopInstanceUid: r.sop_uid,
      imagePositionPatient: parse(r.ipp),
      imageOrientationPatient: parse(r.iop),
      rows: r.rows,
      columns: r.columns,
      pixelSpacing: parse(r.pixel_spacing),
      frameOfReferenceUid: r.frame_uid,
    }));
  }

  /** Records a storage commitment request for instances we hold. */
  commit(sopUids: readonly string[], transactionUid: string, callingAet: string | null, at: number): void {
    this.db.transaction(() => {
      for (const uid of sopUids) this.stmts.commit.run(uid, transactionUid, callingAet, at);
    })();
  }

  /** The commitment that covers every instance of the study as it is now, or null. */
  commitmentOf(studyUid: string): { transactionUid: string } | null {
    const r = this.stmts.uncommitted.get(studyUid);
    return r && r.total > 0 && r.n === 0 && r.tx ? { transactionUid: r.tx } : null;
  }

  /**
   * Declares (study, generation) complete with its reason and queues its one job, superseding any
   * job of an older generation that has not started (it would process an incomplete study). One
   * transaction: a crash never leaves a complete study without its job.
   */
  complete(study: StudyRow, reason: CompletionReason, detail: string, kind: string, now: number): CompletedStudy | undefined {
    return this.db.transaction((): CompletedStudy | undefined => {
      if (this.stmts.completeStudy.run(now, reason, detail, study.study_uid, study.generation).changes !== 1) return undefined;
      const previous = this.stmts.previousJob.get(study.study_uid, study.generation);
      this.stmts.insertJob.run(study.study_uid, study.generation, kind, now);
      const jobId = this.stmts.jobOf.get(study.study_uid, study.generation, kind)!.id;
      const superseded: { id: number; generation: number }[] = [];
      for (const j of this.stmts.olderQueued.all(study.study_uid, study.generation)) {
        if (this.stmts.supersede.run(now, `superseded by generation ${study.generation}`, j.id).changes === 1) superseded.push(j);
      }
      const newSeries = previous ? this.stmts.seriesSince.all(study.study_uid, previous.created_at) : [];
      return { study: { ...study, state: 'complete', completed_at: now }, jobId, superseded, previous: previous ?? null, newSeries };
    })();
  }
}

export interface CompletedStudy {
  study: StudyRow;
  jobId: number;
  /** Queued jobs of older generations, cancelled in favour of this one. */
  superseded: { id: number; generation: number }[];
  /** The study's job of the previous generation (an amendment when there is one). */
  previous: { id: number; generation: number; created_at: number; state: string } | null;
  /** Series whose first instance arrived after the previous generation was declared complete. */
  newSeries: { series_uid: string; modality: string; n: number }[];
}
