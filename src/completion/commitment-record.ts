import type { IndexDb } from '../store/index-db.js';
import type { Timeline } from '../store/timeline.js';
import type { Logger } from '../log.js';
import type { CommitmentDeps } from '../dicom/storage-commitment.js';

/**
 * What the node does with a storage commitment request: the instances are looked up in the index,
 * the committed ones recorded (study completion reads them), one 'commitment' timeline entry per
 * study, then a completion check (a fully committed study is complete at once).
 */
export function storageCommitmentDeps(index: IndexDb, timeline: Timeline, log: Logger, recheck: () => void): CommitmentDeps {
  return {
    lookup: (sopUid) => {
      const i = index.getInstance(sopUid);
      return i && { sopClassUid: i.sop_class_uid, studyUid: i.study_uid };
    },
    onCommitted: (o) => {
      const now = Date.now();
      index.completion.commit(o.committed.map((r) => r.sopInstanceUid), o.transactionUid, o.callingAet || null, now);
      for (const study of o.studies) {
        const mine = o.committed.filter((r) => index.getInstance(r.sopInstanceUid)?.study_uid === study).length;
        timeline.record(study, 'commitment', { transactionUid: o.transactionUid, instances: mine, failed: o.failed.length, callingAet: o.callingAet }, now);
      }
      if (o.failed.length > 0) {
        log.warn({ transactionUid: o.transactionUid, failed: o.failed.slice(0, 20).map((f) => `${f.sopInstanceUid}: 0x${f.reason.toString(16)}`) }, `storage commitment: ${o.failed.length} instance(s) not held here`);
      }
      recheck();
    },
  };
}
