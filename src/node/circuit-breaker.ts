/**
 * A circuit breaker for one outbound destination. Pure: it is told the time and the outcomes and
 * answers whether an association may be attempted; it knows nothing of sockets or timers.
 *
 * closed    associations are attempted; `failures` consecutive association failures open it.
 * open      nothing is attempted (queued items wait, their attempts are not counted) until
 *           `openMs` have passed since it opened; then it is half-open.
 * half-open one trial association is allowed; its success closes the circuit, its failure opens
 *           it again for another `openMs`.
 *
 * Only association failures count (refused, rejected, dropped, timed out). A destination that
 * answers with a failure status for some instance is up, so that closes the circuit like a success.
 */
export type CircuitState = 'closed' | 'open' | 'half-open';

/** /metrics value of rtpipeline_destination_circuit_state. */
export const CIRCUIT_STATE_VALUE: Record<CircuitState, number> = { closed: 0, open: 1, 'half-open': 2 };

export interface CircuitBreakerOptions {
  /** Consecutive association failures that open the circuit (>= 1). */
  failures: number;
  /** How long the circuit stays open before a trial, in ms. */
  openMs: number;
}

export interface CircuitSnapshot {
  state: CircuitState;
  consecutiveFailures: number;
  /** When it last opened (epoch ms), or null. */
  openedAt: number | null;
  /** When an open circuit allows its trial (epoch ms), or null when not open. */
  retryAt: number | null;
}

export class CircuitBreaker {
  private failures = 0;
  private openedAt: number | null = null;
  private trialRunning = false;

  constructor(private readonly opts: CircuitBreakerOptions) {
    if (!(opts.failures >= 1)) throw new Error(`circuit breaker: failures must be at least 1, got ${opts.failures}`);
    if (!(opts.openMs > 0)) throw new Error(`circuit breaker: open time must be positive, got ${opts.openMs} ms`);
  }

  state(now: number): CircuitState {
    if (this.openedAt === null) return 'closed';
    return now - this.openedAt >= this.opts.openMs ? 'half-open' : 'open';
  }

  /** Whether an attempt may start now: always when closed, never when open, one trial when half-open. */
  canAttempt(now: number): boolean {
    const s = this.state(now);
    return s === 'closed' || (s === 'half-open' && !this.trialRunning);
  }

  /** An attempt starts (call only after canAttempt said yes). In half-open it is the trial. */
  attemptStarted(now: number): void {
    if (this.state(now) === 'half-open') this.trialRunning = true;
  }

  /** The association worked: the circuit closes. */
  succeeded(): void {
    this.failures = 0;
    this.openedAt = null;
    this.trialRunning = false;
  }

  /** The association failed: a failed trial, or the N-th consecutive failure, opens the circuit. */
  failed(now: number): void {
    this.failures += 1;
    const trial = this.trialRunning || this.openedAt !== null;
    this.trialRunning = false;
    if (trial || this.failures >= this.opts.failures) this.openedAt = now;
  }

  snapshot(now: number): CircuitSnapshot {
    const state = this.state(now);
    return {
      state,
      consecutiveFailures: this.failures,
      openedAt: this.openedAt,
      retryAt: state === 'open' && this.openedAt !== null ? this.openedAt + this.opts.openMs : null,
    };
  }
}
