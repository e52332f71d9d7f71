import fs from 'node:fs';
import path from 'node:path';
import { scrubPhi, type IdMasker } from './phi-mask.js';
import type { SyslogForwarder } from './syslog.js';

/**
 * The audit trail: security-relevant events, one JSON object per line, appended to a file that
 * the node only ever appends to (O_APPEND). Separate from the ordinary logs: an auditor reads who
 * connected, what was refused and why, what left the node, and what was deleted, without the
 * noise of processing logs, and the ordinary logs can be kept short-lived.
 *
 * Each event is written with one write(2) on an O_APPEND descriptor, so concurrent writers
 * never interleave inside a line, and fdatasync'd: an event the node acted on is not lost to a
 * crash.
 */
export type AuditEventType =
  | 'node.start'
  | 'node.stop'
  | 'association.accepted'
  | 'association.rejected'
  | 'association.closed'
  | 'instances.received'
  | 'instance.refused'
  | 'result.sent'
  | 'result.held'
  | 'http.auth_failed'
  | 'http.upload'
  | 'http.download'
  | 'http.delete'
  | 'http.request'
  | 'routing.changed'
  | 'retention.purged'
  | 'config.loaded';

export interface AuditEvent {
  type: AuditEventType;
  outcome: 'success' | 'failure';
  /** Free-form, but never pixel data; patient ids only where the event is about a patient. */
  [field: string]: unknown;
}

export interface AuditSink {
  record(event: AuditEvent): void;
}

/** An audit sink that drops everything (tests of parts that do not audit, the batch command). */
export const NO_AUDIT: AuditSink = { record: () => undefined };

export interface AuditLogOptions {
  /** Also forward each event to a syslog collector (node.audit.syslog). */
  syslog?: SyslogForwarder;
  /** node.audit.mask_patient_ids: patient ids become this salted hash in the trail. */
  mask?: IdMasker;
}

export class AuditLog implements AuditSink {
  private fd: number | undefined;

  constructor(
    readonly file: string,
    private readonly opts: AuditLogOptions = {},
  ) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    // 0o640: the trail names peers and patients; it is not world-readable.
    this.fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o640);
  }

  record(event: AuditEvent): void {
    if (this.fd === undefined) return;
    // Patient names are never needed to audit access; ids are kept, or masked when configured.
    const entry = scrubPhi({ time: new Date().toISOString(), ...event }, this.opts.mask ? 'masked' : 'full', this.opts.mask);
    const line = JSON.stringify(entry) + '\n';
    fs.writeSync(this.fd, line);
    fs.fdatasyncSync(this.fd);
    this.opts.syslog?.send(entry);
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
    void this.opts.syslog?.close();
  }
}

/** Reads an audit file back (tests, the API). */
export function readAudit(file: string): (AuditEvent & { time: string })[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as AuditEvent & { time: string });
}
