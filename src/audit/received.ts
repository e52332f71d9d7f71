import type { AuditSink } from './audit-log.js';
import type { Timeline } from '../store/timeline.js';
import type { Logger } from '../log.js';

/** What one association, upload or batch of watched files brought to one study. */
export interface StudyReceipt {
  studyUid: string;
  patientId: string;
  /** Instances stored (new or replacing an older copy). */
  count: number;
  bytes: number;
  /** Identical copies of instances already stored (acknowledged, nothing written). */
  duplicates: number;
}

/** Per-study counts of one intake (association, upload, watch batch), kept as instances are stored. */
export class ReceiptTally {
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

  clear(): void {
    this.studies.clear();
  }
}

/** How the instances came: the way in, and who sent them (as much as that way knows). */
export interface Intake {
  via: 'dimse' | 'upload' | 'watch';
  /** The peer's address (association, upload). */
  peer?: string;
  /** The watched folder. */
  dir?: string;
  callingAet?: string;
  calledAet?: string;
  association?: string;
  /** The association ended with a normal release (completion evidence). */
  released?: boolean;
}

/**
 * One timeline 'received' and one audit 'instances.received' per study: coarse on purpose (per
 * association, upload or watch batch), never per instance. A study that got only duplicates is
 * recorded by an association (the sender did send it) but not by an upload or watch batch. A
 * failure to write the timeline (index closing under a stopping node) is logged and does not hide
 * the audit.
 */
export function recordReceived(receipts: readonly StudyReceipt[], intake: Intake, sinks: { audit?: AuditSink; timeline?: Timeline; log?: Logger }): void {
  for (const r of receipts) {
    if (r.count === 0 && intake.via !== 'dimse') continue;
    const detail = { count: r.count, bytes: r.bytes, duplicates: r.duplicates, ...intake };
    sinks.audit?.record({ type: 'instances.received', outcome: 'success', studyUid: r.studyUid, patientId: r.patientId, ...detail });
    try {
      sinks.timeline?.record(r.studyUid, 'received', detail);
    } catch (e) {
      sinks.log?.error({ studyUid: r.studyUid, err: (e as Error).message }, 'cannot record the study timeline');
    }
  }
}
