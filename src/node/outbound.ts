import type { IndexDb, OutboundRow } from '../store/index-db.js';
import type { Destination } from '../config/schema.js';
import { formatDestination, parseDestination } from '../config/destination.js';
import { isStoredStatus, sendFiles, type SendResult } from '../dicom/scu.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';

export interface OutboundOptions {
  callingAet: string;
  retryInitialSeconds: number;
  retryMaxSeconds: number;
  retryMaxAgeHours: number;
  /** The configured destinations, for their TLS and calling-AE settings. */
  destinations: Destination[];
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

  constructor(
    private readonly index: IndexDb,
    private readonly opts: OutboundOptions,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {
    metrics.describe('rtpipeline_outbound_attempts_total', 'Outbound associations attempted, by result');
    metrics.describe('rtpipeline_outbound_instances_total', 'Instances delivered to destinations');
  }

  start(): void {
    const requeued = this.index.requeueInterruptedOutbound(Date.now());
    if (requeued > 0) this.log.warn({ items: requeued }, 'outbound items interrupted by a restart are queued again');
    this.kick();
  }

  enqueue(dest: Destination, files: string[], source: string): number {
    const id = this.index.enqueueOutbound(formatDestination(dest), files, source, Date.now());
    this.log.info({ outboundId: id, destination: formatDestination(dest), files: files.length, source }, 'outbound item queued');
    this.kick();
    return id;
  }

  /** Looks for due items now and schedules the next look at the earliest due time. */
  kick(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    for (;;) {
      const item = this.index.claimDueOutbound(Date.now(), this.busy);
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

  private destinationFor(text: string): Destination {
    const parsed = parseDestination(text);
    return this.opts.destinations.find((d) => formatDestination(d) === text) ?? parsed;
  }

  private async deliver(item: OutboundRow): Promise<void> {
    const files: string[] = JSON.parse(item.files);
    const log = this.log.child({ outboundId: item.id, destination: item.destination, attempt: item.attempts });
    log.info({ files: files.length }, 'outbound attempt');
    let result: SendResult;
    try {
      result = await sendFiles(this.destinationFor(item.destination), files, { callingAet: this.opts.callingAet });
    } catch (e) {
      // Nothing is known to have arrived: every file is still to be sent.
      result = { associationError: (e as Error).message, results: files.map((file) => ({ file, status: undefined })) };
    }
    const now = Date.now();
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
      } else {
        this.index.finishOutbound(item.id, 'failed', now, { delivered, refused, error: `refused by destination: ${refused.join('; ')}` });
        this.metrics.inc('rtpipeline_outbound_attempts_total', 1, { result: 'refused' });
        log.error({ delivered, refused: refused.length, error: refused.join('; ') }, 'outbound item refused by the destination (not retried)');
      }
      return;
    }
    // Not everything was answered: the destination is down, busy or dropped us. Retry what is left.
    const error = result.associationError ?? `${unanswered.length} instance(s) not accepted (no matching presentation context?)`;
    const tooOld = now - item.created_at > this.opts.retryMaxAgeHours * 3600_000;
    // Associated fine but the peer accepted no context for these: retrying will not change that.
    const neverAcceptable = !result.associationError && item.attempts >= 3;
    if (tooOld || neverAcceptable) {
      this.index.finishOutbound(item.id, 'failed', now, { error: `gave up: ${error}`, delivered, refused });
      this.metrics.inc('rtpipeline_outbound_attempts_total', 1, { result: 'gave_up' });
      log.error({ error }, 'outbound item failed for good (dead letter)');
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
