/**
 * `node.max_study_mb`: the bytes stored per study, kept as a running count in memory so that a
 * C-STORE costs a map lookup, not a SUM over the study's instances. A study's count is seeded
 * from the index the first time it is seen (one query per study), and dropped after it has been
 * idle for a while, so that a purge or a deletion made elsewhere is picked up at the next seed.
 *
 * Bytes are counted when an instance is admitted, before it is filed: two associations storing
 * into the same study at once cannot both slip under the limit. A filing that then fails on a
 * disk error leaves its bytes counted until the study is seeded again (it errs towards refusing).
 */
interface Entry {
  bytes: number;
  touched: number;
}

const IDLE_MS = 10 * 60 * 1000;

export class StudyBudget {
  private readonly studies = new Map<string, Entry>();
  private lastSweep = 0;

  constructor(
    readonly limitBytes: number,
    /** The study's stored bytes according to the index. */
    private readonly seed: (studyUid: string) => number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts `bytes` into the study; or, when that would go over the limit, counts nothing and says why. */
  admit(studyUid: string, bytes: number): { refused: string } | undefined {
    const e = this.entry(studyUid);
    if (bytes > 0 && e.bytes + bytes > this.limitBytes) {
      const mb = (n: number) => (n / 1048576).toFixed(2);
      return { refused: `study over node.max_study_mb: ${mb(e.bytes)} MB stored + ${mb(bytes)} MB > ${mb(this.limitBytes)} MB` };
    }
    e.bytes += bytes;
    return undefined;
  }

  /** Bytes that left a study (an instance moved to another study). */
  subtract(studyUid: string, bytes: number): void {
    const e = this.studies.get(studyUid);
    if (e) e.bytes = Math.max(0, e.bytes - bytes);
  }

  /** Forget a study's count (it was purged or deleted): the next instance seeds it again. */
  forget(studyUid: string): void {
    this.studies.delete(studyUid);
  }

  /** The count as the budget sees it. */
  storedBytes(studyUid: string): number {
    return this.entry(studyUid).bytes;
  }

  private entry(studyUid: string): Entry {
    const now = this.now();
    if (now - this.lastSweep > IDLE_MS) {
      this.lastSweep = now;
      for (const [k, v] of this.studies) if (now - v.touched > IDLE_MS) this.studies.delete(k);
    }
    let e = this.studies.get(studyUid);
    if (!e) this.studies.set(studyUid, (e = { bytes: this.seed(studyUid), touched: now }));
    e.touched = now;
    return e;
  }
}
