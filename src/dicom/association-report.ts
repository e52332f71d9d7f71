import type { AuditSink } from '../audit/audit-log.js';
import type { Timeline } from '../store/timeline.js';
import type { Logger } from '../log.js';

/** What one association brought to one study. */
export interface StudyReceipt {
  studyUid: string;
  patientId: string;
  /** Instances stored (new or replacing an older copy). */
  count: number;
  bytes: number;
  /** Identical copies of instances already stored (acknowledged, nothing written). */
  duplicates: number;
}

/** Per-study counts of one association, kept as its C-STOREs are answered. */
export class AssociationTally {
  private readonly studies = new Map<string, StudyReceipt>();

  add(studyUid: string, patientId: string, kind: 'stored' | 'replaced' | 'duplicate', bytes: number): void {
    let r = this.studies.get(studyUid);
    if (!r) this.studies.set(studyUid, (r = { studyUid, patientId, count: 0, bytes: 0, duplicates: 0 }));
    if (kind === 'duplicate') r.duplicates++;
    else {
      r.count++;
      r.bytes += bytes;
    }
  }

  receipts(): StudyReceipt[] {
    return [...this.studies.values()];
  }
}

export interface ClosedAssociation {
  id: string;
  peer: string;
  callingAet: string;
  calledAet: string;
  stored: number;
  failed: number;
  bytes: number;
  ms: number;
  /** The peer released normally (A-RELEASE), rather than aborting or dropping the connection. */
  released?: boolean;
}

/**
 * At the end of an accepted association: one audit 'instances.received' and one timeline
 * 'received' per study it stored into, then the audit 'association.closed'. A failure to write
 * the timeline (index closing under a stopping node) is logged and does not hide the audit.
 */
export function reportAssociationClosed(a: ClosedAssociation, tally: AssociationTally, sinks: { audit?: AuditSink; timeline?: Timeline; log: Logger }): void {
  for (const r of tally.receipts()) {
    sinks.audit?.record({ type: 'instances.received', outcome: 'success', studyUid: r.studyUid, patientId: r.patientId, count: r.count, bytes: r.bytes, duplicates: r.duplicates, callingAet: a.callingAet, calledAet: a.calledAet, peer: a.peer, association: a.id });
    try {
      sinks.timeline?.record(r.studyUid, 'received', { count: r.count, bytes: r.bytes, duplicates: r.duplicates, callingAet: a.callingAet, calledAet: a.calledAet, peer: a.peer, via: 'dimse', association: a.id, released: !!a.released });
    } catch (e) {
      sinks.log.error({ studyUid: r.studyUid, err: (e as Error).message }, 'cannot record the study timeline');
    }
  }
  sinks.audit?.record({ type: 'association.closed', outcome: 'success', association: a.id, peer: a.peer, callingAet: a.callingAet, calledAet: a.calledAet, stored: a.stored, failed: a.failed, bytes: a.bytes, ms: a.ms, released: !!a.released });
}
