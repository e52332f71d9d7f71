import type http from 'node:http';
import type { AuditEventType, AuditSink } from '../audit/audit-log.js';

/** The peer of an HTTP request as the audit trail names it (the socket's address; proxies are not trusted). */
export function remoteOf(req: http.IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}

/**
 * Audits one web request that reads patient data out, changes state or deletes: who (remote
 * address), what (method, path) and the outcome, derived from the HTTP status it was answered with.
 */
export function auditWeb(audit: AuditSink | undefined, req: http.IncomingMessage, type: AuditEventType, status: number, fields: Record<string, unknown> = {}): void {
  audit?.record({ type, outcome: status < 400 ? 'success' : 'failure', remote: remoteOf(req), method: req.method, path: (req.url ?? '').split('?')[0], status, ...fields });
}
