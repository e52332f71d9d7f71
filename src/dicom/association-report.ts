import type { AuditSink } from '../audit/audit-log.js';
import type { Timeline } from '../store/timeline.js';
import type { Logger } from '../log.js';
import { recordReceived, type ReceiptTally } from '../audit/received.js';

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
export function reportAssociationClosed(a: ClosedAssociation, tally: ReceiptTally, sinks: { audit?: AuditSink; timeline?: Timeline; log: Logger }): void {
  recordReceived(tally.receipts(), { via: 'dimse', peer: a.peer, callingAet: a.callingAet, calledAet: a.calledAet, association: a.id, released: !!a.released }, sinks);
  sinks.audit?.record({ type: 'association.closed', outcome: 'success', association: a.id, peer: a.peer, callingAet: a.callingAet, calledAet: a.calledAet, stored: a.stored, failed: a.failed, bytes: a.bytes, ms: a.ms, released: !!a.released });
}
