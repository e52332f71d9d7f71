import type { IndexDb, OutboundRow } from '../store/index-db.js';
import type { Destination } from '../config/schema.js';
import { formatDestination, parseDestination } from '../config/destination.js';
import { fileIdentity, isStoredStatus, sendFiles, type SendResult } from '../dicom/scu.js';
import { SOP_CLASS } from '../dicom/sop-classes.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { AuditSink } from '../audit/audit-log.js';
import type { Timeline } from '../store/timeline.js';
import { CircuitBreaker, type CircuitSnapshot, type CircuitState } from './circuit-breaker.js';
import { validateOutgoingRtStruct } from './result-validation.js';

export interface OutboundOptions {
  callingAet: string;
  retryInitialSeconds: number;
  retryMaxSeconds: number;
  retryMaxAgeHours: number;
  /** The configured destinations, for their TLS and calling-AE settings. */
  destinations: Destination[];
}

/** What the queue reports to besides its logs and metrics, and its circuit breaker settings. */
export interface OutboundExtras {
  timeline?: Timeline;
  audit?: AuditSink;
  /** node.circuit_breaker (defaults: 5 failures, 60 s open). */
  circuitBreaker?: { failures: number; open_seconds: number };
}

export interface DestinationCircuit extends CircuitSnapshot {
  destination: string;
}

/** Exponential backoff with ±20 % jitter, so a PACS coming back is not hit by every item at once. */
export function backoffSeconds(attempt: number, initial: number, max: number, random = Math.random): number {
  const base = Math.min(max, initial * 2 ** Math.max(0, attempt - 1));
  return base * (0.8 + 0.4 * random());
}

/**
 * The persistent outbound queue: each item is a set of files for one destination, sent over one
 * association. While the destination is down the item waits with exponential backoff; after a
 * crash an interrupted item is sent again, which the PACS sees as the same SOP Instances (so the
 * user sees one copy: "exactly once" from their point of view). Failures the PACS answers for a
 * specific instance (e.g. 0xA900) are permanent and not retried.
 */
export class OutboundQueue {
  private timer: NodeJS.Timeout | undefined;
  private readonly busy = new Set<string>();
  private readonly running = new Set<Promise<void>>();
  private stopped = false;
  /** One breaker per destination (AE@HOST:PORT), in memory: a restart starts them closed. */
  private readonly breakers = new Map<string, CircuitBreaker>();
  private readonly lastState = new Map<string, CircuitState>();

  constructor(
    private readonly index: IndexDb,
    private readonly opts: OutboundOptions,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly extras: OutboundExtras = {},
  ) {
    metrics.describe('rtpipeline_outbound_attempts_total', 'Outbound associations attempted, by result');
    metrics.describe('rtpipeline_outbound_instances_total', 'Instances delivered to destinations');
    metrics.describe('rtpipeline_outbound_held_total', 'Outbound items held back because an RTSTRUCT failed validation');
    for (const d of opts.destinations) this.breaker(formatDestination(d));
  }

  private breaker(destination: string): CircuitBreaker {
    let b = this.breakers.get(destination);
    if (!b) {
      const cb = this.extras.circuitBreaker ?? { failures: 5, open_seconds: 60 };
      b = new CircuitBreaker({ failures: cb.failures, openMs: cb.open_seconds * 1000 });
      this.breakers.set(destination, b);
      this.lastState.set(destination, 'closed');
    }
    return b;
  }

  /** Logs a destination's circuit when its state changed since last looked at. */
  private noteCircuit(destination: string, now = Date.now()): CircuitState {
    const snap = this.breaker(destination).snapshot(now);
    const before = this.lastState.get(destination);
    if (before !== snap.state) {
      this.lastState.set(destination, snap.state);
      const fields = { destination, from: before, to: snap.state, consecutiveFailures: snap.consecutiveFailures, retryAt: snap.retryAt && new Date(snap.retryAt).toISOString() };
      if (snap.state === 'open') this.log.warn(fields, 'destination circuit open: no association attempts until the open time has passed');
      else if (snap.state === 'half-open') this.log.info(fields, 'destination circuit half-open: one trial association');
      else this.log.info(fields, 'destination circuit closed');
    }
    return snap.state;
  }

  /** Every destination's circuit (configured ones and any an item names). */
  circuits(now = Date.now()): DestinationCircuit[] {
    return [...this.breakers.keys()].map((destination) => ({ destination, ...this.breaker(destination).snapshot(now) }));
  }

  /** Re-queues a dead letter (failed or held) with its attempts reset; a held RTSTRUCT is validated again. */
  retry(id: number): 'requeued' | 'missing' | 'not_failed' {
    const before = this.index.getOutbound(id);
    const outcome = this.index.retryOutbound(id, Date.now());
    if (outcome === 'requeued' && before) {
      const files = (JSON.parse(before.files) as string[]).length;
      this.log.info({ outboundId: id, destination: before.destination, studyUid: before.study_uid, was: before.state, files }, 'dead letter queued again');
      if (before.study_uid) this.extras.timeline?.record(before.study_uid, 'sent', { outboundId: id, destination: before.destination, files, retry: true });
      this.kick();
    }
    return outcome;
  }

  start(): void {
    const requeued = this.index.requeueInterruptedOutbound(Date.now());
    if (requeued > 0) this.log.warn({ items: requeued }, 'outbound items interrupted by a restart are queued again');
    this.kick();
  }

  enqueue(dest: Destination, files: string[], source: string, opts: { studyUid?: string } = {}): number {
    const now = Date.now();
    const destination = formatDestination(dest);
    const id = this.index.enqueueOutbound(destination, files, source, now, opts.studyUid, dest);
    // enqueueOutbound is idempotent: an item found again (a resumed job) was already on the timeline.
    const fresh = this.index.getOutbound(id)?.created_at === now;
    this.log.info({ outboundId: id, destination, files: files.length, source, studyUid: opts.studyUid, fresh }, 'outbound item queued');
    if (fresh && opts.studyUid) this.extras.timeline?.record(opts.studyUid, 'sent', { outboundId: id, destination, files: files.length });
    this.kick();
    return id;
  }

  /** Looks for due items now and schedules the next look at the earliest due time. */
  kick(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    for (;;) {
      const now = Date.now();
      // Destinations whose circuit is open are skipped like busy ones: their items wait uncounted.
      const exclude = new Set(this.busy);
      for (const [destination, b] of this.breakers) {
        this.noteCircuit(destination, now);
        if (!b.canAttempt(now)) exclude.add(destination);
      }
      const item = this.index.claimDueOutbound(now, exclude);
      if (!item) break;
      this.busy.add(item.destination);
      const p = this.deliver(item)
        .catch((e: Error) => this.log.error({ outboundId: item.id, err: e.message }, 'outbound delivery crashed; the item stays queued for the next start'))
        .finally(() => {
        this.busy.delete(item.destination);
        this.running.delete(p);
        this.kick();
      });
      this.running.add(p);
    }
    const next = this.index.nextOutboundDue();
    // Items already due are waiting for a busy destination: its delivery kicks again when it ends.
    if (next !== undefined) this.timer = setTimeout(() => this.kick(), next <= Date.now() ? 1000 : Math.max(50, Math.min(next - Date.now(), 60_000)));
  }

  /** The settings the item was queued with (a route's endpoint keeps its TLS); older items: by name. */
  private destinationFor(item: OutboundRow): Destination {
    if (item.destination_settings) return JSON.parse(item.destination_settings) as Destination;
    return this.opts.destinations.find((d) => formatDestination(d) === item.destination) ?? parseDestination(item.destination);
  }

  /** Validates every RTSTRUCT of the item; returns the failures (empty: it may go). */
  private async heldBack(item: OutboundRow, files: string[]): Promise<string[]> {
    const failures: string[] = [];
    // A forwarded study's files are indexed instances: their SOP class is known without reading
    // them (sendFiles reads each file once, as it sends it). Our own results are read here.
    const indexed = new Map(item.study_uid ? this.index.instancesOfStudy(item.study_uid).map((i) => [i.path, i.sop_class_uid]) : []);
    for (const file of files) {
      const known = indexed.get(file);
      if (known !== undefined && known !== SOP_CLASS.RtStructureSet) continue;
      const id = await fileIdentity(file).catch(() => undefined); // unreadable: sendFiles reports it
      if (id?.sopClassUid !== SOP_CLASS.RtStructureSet) continue;
      for (const f of await validateOutgoingRtStruct(file, this.index, item.study_uid)) failures.push(`${id.sopInstanceUid}: ${f}`);
    }
    return failures;
  }

  private async deliver(item: OutboundRow): Promise<void> {
    const files: string[] = JSON.parse(item.files);
    const log = this.log.child({ outboundId: item.id, destination: item.destination, attempt: item.attempts, studyUid: item.study_uid ?? undefined });
    const held = await this.heldBack(item, files);
    if (held.length > 0) {
      const reason = `RTSTRUCT failed validation: ${held.join('; ')}`;
      this.index.finishOutbound(item.id, 'held', Date.now(), { error: reason });
      this.metrics.inc('rtpipeline_outbound_held_total');
      log.error({ reason }, 'outbound item held back: nothing sent (fix the cause, then POST /api/outbound/:id/retry)');
      if (item.study_uid) this.extras.timeline?.record(item.study_uid, 'held', { outboundId: item.id, destination: item.destination, reason });
      this.extras.audit?.record({ type: 'result.held', outcome: 'failure', studyUid: item.study_uid, destination: item.destination, outboundId: item.id, reason });
      return;
    }
    log.info({ files: files.length }, 'outbound attempt');
    const breaker = this.breaker(item.destination);
    breaker.attemptStarted(Date.now());
    let result: SendResult;
    try {
      result = await sendFiles(this.destinationFor(item), files, { callingAet: this.opts.callingAet });
    } catch (e) {
      // Nothing is known to have arrived: every file is still to be sent.
      result = { associationError: (e as Error).message, results: files.map((file) => ({ file, status: undefined })) };
    }
    const now = Date.now();
    // Only the association decides the circuit: a PACS refusing one instance is up.
    if (result.associationError) breaker.failed(now);
    else breaker.succeeded();
    this.noteCircuit(item.destination, now);
    this.extras.audit?.record({
      type: 'result.sent',
      outcome: !result.associationError && result.results.every((r) => isStoredStatus(r.status)) ? 'success' : 'failure',
      studyUid: item.study_uid,
      destination: item.destination,
      outboundId: item.id,
      attempt: item.attempts,
      sopInstanceUids: result.results.filter((r) => isStoredStatus(r.status)).map((r) => r.sopInstanceUid ?? r.file),
      error: result.associationError,
    });
    const stored = result.results.filter((r) => isStoredStatus(r.status));
    const unanswered = result.results.filter((r) => r.status === undefined).map((r) => r.file);
    // Refusals are final; they are kept across attempts so the item can never end "done" without them.
    const refused = [
      ...(item.refused ? (JSON.parse(item.refused) as string[]) : []),
      ...result.results.filter((r) => r.status !== undefined && !isStoredStatus(r.status)).map((r) => `${r.file}: status 0x${r.status!.toString(16)}${r.comment ? ` (${r.comment})` : ''}`),
    ];
    const delivered = item.delivered + stored.length;
    this.metrics.inc('rtpipeline_outbound_instances_total', stored.length);

    if (unanswered.length === 0) {
      if (refused.length === 0) {
        this.index.finishOutbound(item.id, 'done', now, { delivered });
        this.metrics.inc('rtpipeline_outbound_attempts_total', 1, { result: 'done' });
        log.info({ delivered }, 'outbound item delivered');
        if (item.study_uid) this.extras.timeline?.record(item.study_uid, 'acknowledged', { outboundId: item.id, destination: item.destination, delivered });
      } else {
        // The item keeps the files that did not arrive: a retry from the dead letters sends only those.
        const notStored = result.results.filter((r) => !isStoredStatus(r.status)).map((r) => r.file);
        const error = `refused by destination: ${refused.join('; ')}`;
        this.index.finishOutbound(item.id, 'failed', now, { delivered, refused, error, files: notStored.length > 0 ? notStored : undefined });
        this.metrics.inc('rtpipeline_outbound_attempts_total', 1, { result: 'refused' });
        log.error({ delivered, refused: refused.length, error: refused.join('; ') }, 'outbound item refused by the destination (not retried)');
        if (item.study_uid) this.extras.timeline?.record(item.study_uid, 'failed', { outboundId: item.id, destination: item.destination, reason: error });
      }
      return;
    }
    // Not everything was answered: the destination is down, busy or dropped us. Retry what is left.
    const error = result.associationError ?? `${unanswered.length} instance(s) not accepted (no matching presentation context?)`;
    const tooOld = now - item.created_at > this.opts.retryMaxAgeHours * 3600_000;
    // Associated fine but the peer accepted no context for these: retrying will not change that.
    const neverAcceptable = !result.associationError && item.attempts >= 3;
    if (tooOld || neverAcceptable) {
      this.index.finishOutbound(item.id, 'failed', now, { error: `gave up: ${error}`, delivered, refused, files: unanswered });
      this.metrics.inc('rtpipeline_outbound_attempts_total', 1, { result: 'gave_up' });
      log.error({ error }, 'outbound item failed for good (dead letter)');
      if (item.study_uid) this.extras.timeline?.record(item.study_uid, 'failed', { outboundId: item.id, destination: item.destination, reason: `gave up: ${error}` });
      return;
    }
    const delay = backoffSeconds(item.attempts, this.opts.retryInitialSeconds, this.opts.retryMaxSeconds);
    this.index.finishOutbound(item.id, 'pending', now, { error, nextAttemptAt: now + delay * 1000, delivered, refused, files: unanswered });
    this.metrics.inc('rtpipeline_outbound_attempts_total', 1, { result: 'retry' });
    log.warn({ error, retryInSeconds: Math.round(delay * 10) / 10, remaining: unanswered.length }, 'outbound attempt failed; will retry');
  }

  /** Stops scheduling. A send still in flight is left to finish or die with the process: its item
   *  stays 'sending' in the index and is queued again at the next start. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  get inFlight(): number {
    return this.running.size;
  }
}
