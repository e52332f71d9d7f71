import type { IndexDb, StudyRow } from '../store/index-db.js';
import type { StudyActivity } from '../dicom/scp.js';
import type { Logger } from '../log.js';

/**
 * Decides when a study is complete: no instance for `stableSeconds` and no open association still
 * sending to it. State lives in the index (last arrival time, generation), so after a restart the
 * quiet window simply continues; a completed study that receives more instances reopens with a new
 * generation and gets a new job.
 */
export class StudyCompletion {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly index: IndexDb,
    private readonly activity: StudyActivity,
    private readonly stableSeconds: number,
    private readonly jobKind: string,
    private readonly log: Logger,
    private readonly onComplete: (studies: StudyRow[]) => void,
  ) {}

  start(): void {
    const period = Math.max(100, Math.min(1000, (this.stableSeconds * 1000) / 4));
    this.timer = setInterval(() => {
      try {
        this.check();
      } catch (e) {
        this.log.error({ err: (e as Error).message }, 'study completion check failed; retrying');
      }
    }, period);
    this.check();
  }

  check(now = Date.now()): StudyRow[] {
    const done = this.index.completeQuietStudies(now - this.stableSeconds * 1000, now, this.jobKind, (uid) => this.activity.isBusy(uid));
    for (const s of done) {
      this.log.info({ studyUid: s.study_uid, patientId: s.patient_id, generation: s.generation, callingAet: s.calling_aet }, 'study complete: job queued');
    }
    if (done.length > 0) this.onComplete(done);
    return done;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
