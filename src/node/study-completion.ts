import type { IndexDb, StudyRow } from '../store/index-db.js';
import type { StudyActivity } from '../dicom/scp.js';
import type { Logger } from '../log.js';
import type { NodeConfig } from '../config/schema.js';
import type { Timeline } from '../store/timeline.js';
import type { Metrics } from '../metrics.js';
import { decideCompletion, senderQuiet, type EvidenceSettings, type QuietSettings, type Verdict } from '../completion/evidence.js';

/** Gaps a sender must have shown before its learned quiet time replaces stable_seconds. */
const MIN_HISTORY = 20;

export interface CompletionExtras {
  completion: NodeConfig['completion'];
  timeline?: Timeline;
  metrics?: Metrics;
}

/**
 * Decides when a study is complete, from evidence (src/completion/evidence.ts): storage commitment,
 * association release with continuous CT geometry, count hints, the sender's adaptive quiet time,
 * and at worst the maximum quiet time. State lives in the index (arrival times, generation, facts),
 * so after a restart the quiet window simply continues (a release seen before the restart is
 * forgotten: the quiet time decides then). A completed study that receives more instances reopens
 * with a new generation and gets a new job; a queued job of an older generation is superseded.
 */
export class StudyCompletion {
  private timer: NodeJS.Timeout | undefined;
  /** Study → when the last association that stored into it released normally. */
  private readonly releasedAt = new Map<string, number>();
  private readonly completion: NodeConfig['completion'];

  constructor(
    private readonly index: IndexDb,
    private readonly activity: StudyActivity,
    private readonly stableSeconds: number,
    private readonly jobKind: string,
    private readonly log: Logger,
    private readonly onComplete: (studies: StudyRow[]) => void,
    private readonly extras: Partial<CompletionExtras> = {},
  ) {
    this.completion = extras.completion ?? { min_quiet_seconds: 2, max_quiet_seconds: 300, adaptive: false, gap_factor: 4, require_geometry: true, storage_commitment: true };
    extras.metrics?.describe('rtpipeline_studies_completed_total', 'Studies declared complete, by reason');
    extras.metrics?.describe('rtpipeline_study_receive_to_complete_seconds', 'Seconds from the first instance of a generation to its completion (_sum/_count)');
  }

  start(): void {
    const period = Math.max(100, Math.min(1000, (this.stableSeconds * 1000) / 4));
    this.timer = setInterval(() => this.safeCheck(), period);
    this.check();
  }

  /** An association that stored into these studies released normally (not aborted). */
  released(studies: Iterable<string>, at = Date.now()): void {
    for (const s of studies) this.releasedAt.set(s, at);
    this.safeCheck();
  }

  safeCheck(): void {
    try {
      this.check();
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'study completion check failed; retrying');
    }
  }

  /** The settings in force: min capped by stable_seconds, max at least stable_seconds. */
  private settings(): { evidence: EvidenceSettings; quiet: QuietSettings } {
    const c = this.completion;
    const minQuietSeconds = Math.min(c.min_quiet_seconds, this.stableSeconds);
    const maxQuietSeconds = Math.max(c.max_quiet_seconds, this.stableSeconds);
    return {
      evidence: { minQuietSeconds, maxQuietSeconds, requireGeometry: c.require_geometry },
      quiet: { adaptive: c.adaptive, gapFactor: c.gap_factor, stableSeconds: this.stableSeconds, minQuietSeconds, maxQuietSeconds, minHistory: MIN_HISTORY },
    };
  }

  /** The verdict for one receiving study now (also for the API: why is it not complete yet?). */
  verdict(s: StudyRow, now = Date.now()): Verdict {
    const { evidence, quiet } = this.settings();
    const facts = this.index.completion;
    const released = this.releasedAt.get(s.study_uid);
    const busy = this.activity.isBusy(s.study_uid);
    const committed = this.completion.storage_commitment ? facts.commitmentOf(s.study_uid) : null;
    // A study still being sent to (and not committed) cannot complete: skip reading its series'
    // geometry, which for a large study arriving would be re-read on every tick.
    if (busy && !committed) return { complete: false, reason: null, detail: 'an association is still storing into the study', recheckAt: null };
    return decideCompletion(
      {
        now,
        lastReceivedAt: s.last_received_at,
        busy,
        releasedAt: released ?? null,
        committed,
        quiet: senderQuiet(s.calling_aet, s.calling_aet && quiet.adaptive ? facts.gapsOf(s.calling_aet) : [], quiet),
        series: facts.seriesFacts(s.study_uid),
      },
      evidence,
    );
  }

  check(now = Date.now()): StudyRow[] {
    const done: StudyRow[] = [];
    for (const s of this.index.completion.receivingStudies()) {
      const v = this.verdict(s, now);
      if (!v.complete || !v.reason) continue;
      const c = this.index.completion.complete(s, v.reason, v.detail, this.jobKind, now);
      if (!c) continue;
      this.releasedAt.delete(s.study_uid);
      done.push(c.study);
      const log = { studyUid: s.study_uid, patientId: s.patient_id, generation: s.generation, callingAet: s.calling_aet, jobId: c.jobId, reason: v.reason, detail: v.detail };
      if (v.reason === 'max_quiet') this.log.warn(log, `study complete after the maximum quiet time although a series looked incomplete: ${v.detail}`);
      this.log.info(log, 'study complete: job queued');
      const t = this.extras.timeline;
      t?.record(s.study_uid, 'complete', { reason: v.reason, detail: v.detail, generation: s.generation }, now);
      t?.record(s.study_uid, 'job', { jobId: c.jobId, state: 'queued', generation: s.generation }, now);
      for (const j of c.superseded) {
        t?.record(s.study_uid, 'job', { jobId: j.id, state: 'cancelled', generation: j.generation, superseded: true, reason: `superseded by generation ${s.generation}` }, now);
        this.log.info({ studyUid: s.study_uid, jobId: j.id, generation: j.generation }, `queued job superseded by generation ${s.generation}`);
      }
      if (c.previous) {
        const newSeries = c.newSeries.map((x) => ({ seriesUid: x.series_uid, modality: x.modality, instances: x.n }));
        t?.record(s.study_uid, 'amended', { generation: s.generation, previousGeneration: c.previous.generation, previousJobId: c.previous.id, newSeries }, now);
      }
      this.extras.metrics?.inc('rtpipeline_studies_completed_total', 1, { reason: v.reason });
      this.extras.metrics?.inc('rtpipeline_study_receive_to_complete_seconds_sum', Math.max(0, now - s.first_received_at) / 1000);
      this.extras.metrics?.inc('rtpipeline_study_receive_to_complete_seconds_count');
    }
    if (done.length > 0) this.onComplete(done);
    return done;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
