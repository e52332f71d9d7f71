import dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import { SYSLOG_FACILITIES, type SyslogFacility } from '../config/hardening-schema.js';

/**
 * Audit events forwarded to a syslog collector (a SIEM) in RFC 5424 format: one message per
 * event, MSGID = the event type, MSG = the event as JSON. UDP sends one datagram per message
 * (RFC 5426); TCP frames each message with octet counting (RFC 6587 §3.4.1: "LEN SP MSG").
 *
 * The collector is best effort, never a dependency: the audit file is the record. A collector that
 * is down costs one warning per outage; messages wait in a bounded queue while TCP reconnects (the
 * oldest are dropped beyond it, and the count is logged), and nothing here throws or blocks.
 */
export interface SyslogTarget {
  host: string;
  port: number;
  protocol: 'udp' | 'tcp';
  facility: SyslogFacility;
  app_name: string;
}

export interface SyslogWarn {
  warn(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
}

/** RFC 5424 severities used: notice for what went as asked, warning for refusals and failures. */
const SEVERITY = { success: 5, failure: 4 } as const;

/** Printable US-ASCII, at most `max` characters, '-' when empty (RFC 5424 header fields). */
function headerField(s: string, max: number): string {
  const clean = s.replace(/[^\x21-\x7e]/g, '').slice(0, max);
  return clean === '' ? '-' : clean;
}

/** One RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG` (no structured data). */
export function formatRfc5424(
  event: { type: string; outcome: 'success' | 'failure'; time?: string } & Record<string, unknown>,
  o: { facility: SyslogFacility; appName: string; hostname?: string; procId?: number },
): string {
  const pri = SYSLOG_FACILITIES[o.facility] * 8 + SEVERITY[event.outcome];
  const time = typeof event.time === 'string' ? event.time : new Date().toISOString();
  const host = headerField(o.hostname ?? os.hostname(), 255);
  return `<${pri}>1 ${time} ${host} ${headerField(o.appName, 48)} ${o.procId ?? process.pid} ${headerField(event.type, 32)} - ${JSON.stringify(event)}`;
}

/** Frames one message for TCP: its length in octets, a space, the message (RFC 6587 octet counting). */
export function octetCounted(message: string): Buffer {
  const body = Buffer.from(message, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length} `, 'ascii'), body]);
}

const MAX_QUEUE = 1000;
const RECONNECT_MS = [1000, 5000, 30_000];
/** A UDP datagram larger than this is truncated by many collectors; keep events below it. */
const MAX_UDP_BYTES = 8192;

export class SyslogForwarder {
  private udp: dgram.Socket | undefined;
  private tcp: net.Socket | undefined;
  private connected = false;
  private readonly queue: Buffer[] = [];
  private dropped = 0;
  private down = false;
  private attempts = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    readonly target: SyslogTarget,
    private readonly log: SyslogWarn,
  ) {
    if (target.protocol === 'udp') {
      this.udp = dgram.createSocket(target.host.includes(':') ? 'udp6' : 'udp4');
      this.udp.on('error', (e) => this.outage(e));
      this.udp.unref();
    } else {
      this.connect();
    }
  }

  send(event: { type: string; outcome: 'success' | 'failure' } & Record<string, unknown>): void {
    if (this.closed) return;
    const message = formatRfc5424(event, { facility: this.target.facility, appName: this.target.app_name });
    try {
      if (this.udp) {
        let bytes = Buffer.from(message, 'utf8');
        if (bytes.length > MAX_UDP_BYTES) bytes = bytes.subarray(0, MAX_UDP_BYTES);
        this.udp.send(bytes, this.target.port, this.target.host, (e) => (e ? this.outage(e) : this.recovered()));
        return;
      }
      this.enqueue(octetCounted(message));
      this.flush();
    } catch (e) {
      this.outage(e as Error);
    }
  }

  private enqueue(frame: Buffer): void {
    this.queue.push(frame);
    if (this.queue.length > MAX_QUEUE) {
      this.queue.shift();
      this.dropped++;
    }
  }

  private flush(): void {
    if (!this.connected || !this.tcp) return;
    // A collector that reads too slowly must not grow our memory: keep the rest queued (bounded).
    while (this.queue.length > 0 && this.tcp.writableLength < 1 << 20) this.tcp.write(this.queue.shift()!);
  }

  private connect(): void {
    if (this.closed) return;
    const socket = net.connect({ host: this.target.host, port: this.target.port });
    this.tcp = socket;
    socket.setKeepAlive(true, 30_000);
    socket.unref();
    socket.on('connect', () => {
      this.connected = true;
      this.attempts = 0;
      this.recovered();
      this.flush();
    });
    socket.on('drain', () => this.flush());
    socket.on('error', (e) => this.outage(e));
    socket.on('close', () => {
      this.connected = false;
      if (this.tcp === socket) this.tcp = undefined;
      if (this.closed) return;
      this.outage(new Error('connection closed by the collector'));
      const delay = RECONNECT_MS[Math.min(this.attempts++, RECONNECT_MS.length - 1)];
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.connect(), delay);
      this.timer.unref();
    });
  }

  private outage(e: Error): void {
    if (this.down || this.closed) return;
    this.down = true;
    this.log.warn(
      { collector: `${this.target.protocol}://${this.target.host}:${this.target.port}`, err: e.message },
      'syslog collector unreachable: audit events still go to the audit file; forwarding resumes when it is back',
    );
  }

  private recovered(): void {
    if (!this.down) return;
    this.down = false;
    this.log.info({ collector: `${this.target.protocol}://${this.target.host}:${this.target.port}`, dropped: this.dropped }, 'syslog collector reachable again');
    this.dropped = 0;
  }

  /** Sends what is queued if connected (briefly), then closes. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.udp?.close();
    const tcp = this.tcp;
    if (tcp && this.connected) {
      this.flush();
      await new Promise<void>((r) => {
        const t = setTimeout(() => (tcp.destroy(), r()), 1000);
        tcp.end(() => (clearTimeout(t), r()));
      });
    } else tcp?.destroy();
  }
}
