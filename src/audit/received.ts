import type { AuditSink } from './audit-log.js';
import type { Timeline } from '../store/timeline.js';

/** Instances of one study that arrived through one upload or one batch of watched files. */
export interface ReceivedTally {
  studyUid: string;
  patientId: string;
  count: number;
  bytes: number;
}

/**
 * One timeline 'received' event and one audit 'instances.received' per study: coarse on purpose
 * (per upload or watch batch, as the SCP does per association), never per instance.
 */
export function recordReceived(
  tallies: readonly ReceivedTally[],
  how: { via: 'upload' | 'watch'; remote?: string; dir?: string },
  sinks: { audit?: AuditSink; timeline?: Timeline },
): void {
  for (const t of tallies) {
    if (t.count === 0) continue;
    sinks.timeline?.record(t.studyUid, 'received', { count: t.count, bytes: t.bytes, via: how.via, peer: how.remote ?? null, dir: how.dir });
    sinks.audit?.record({ type: 'instances.received', outcome: 'success', studyUid: t.studyUid, patientId: t.patientId, count: t.count, bytes: t.bytes, via: how.via, remote: how.remote, dir: how.dir });
  }
}
