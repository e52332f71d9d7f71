import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { formatDestination } from '../config/destination.js';
import type { Logger } from '../log.js';
import type { LogPhiOptions } from '../log.js';
import { AuditLog, type AuditEvent } from './audit-log.js';
import { loadOrCreateSalt, patientIdMasker, saltFile } from './phi-mask.js';
import { SyslogForwarder } from './syslog.js';

/** The node's audit trail as configured (node.audit): its file, syslog forwarding and masking. */
export function openAuditLog(config: Config, log: Logger): AuditLog {
  const a = config.node.audit;
  const dataDir = path.resolve(config.node.data_dir);
  const file = a.file ? path.resolve(a.file) : path.join(dataDir, 'audit', 'audit.jsonl');
  const syslog = a.syslog ? new SyslogForwarder(a.syslog, log.child({ component: 'audit-syslog' })) : undefined;
  const mask = a.mask_patient_ids ? patientIdMasker(loadOrCreateSalt(saltFile(dataDir))) : undefined;
  return new AuditLog(file, { syslog, mask });
}

/**
 * `log_phi` for the logger: for 'masked', the same salted hash as the audit trail (the salt in
 * `saltDir`, the node's <data_dir>/audit, created once), so one patient has one token in both.
 */
export function logPhiOptions(config: Config, saltDir: string): LogPhiOptions {
  if (config.log_phi !== 'masked') return { phi: config.log_phi };
  return { phi: 'masked', mask: patientIdMasker(loadOrCreateSalt(path.join(saltDir, 'salt'))) };
}

/** SHA-256 of the effective configuration (defaults, file, variables and flags merged): an auditor
 *  compares it between starts to see that the configuration changed, then diffs the files. */
export function configDigest(config: Config): string {
  return createHash('sha256').update(stableJson(config)).digest('hex');
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** The 'node.start' event: what the node exposes and to whom, and which configuration it runs. */
export function nodeStartEvent(config: Config, o: { configFile: string | undefined; dicomPort: number; httpPort: number; apiKeySet: boolean }): AuditEvent {
  const n = config.node;
  return {
    type: 'node.start',
    outcome: 'success',
    aet: n.aet,
    ports: { dicom: o.dicomPort, http: o.httpPort },
    bind: { dicom: n.bind_address, http: n.http_bind_address },
    tls: n.tls ? { client_cert_required: n.tls.require_client_cert, ca: n.tls.ca ?? null } : null,
    destinations: n.destinations.map((d) => ({ destination: formatDestination(d), tls: d.tls })),
    allowed_callers: n.allowed_callers,
    api_key_set: o.apiKeySet,
    config_file: o.configFile ? path.resolve(o.configFile) : null,
    config_sha256: configDigest(config),
    retention: n.retention,
    log_phi: config.log_phi,
    mask_patient_ids: n.audit.mask_patient_ids,
    syslog: n.audit.syslog ? `${n.audit.syslog.protocol}://${n.audit.syslog.host}:${n.audit.syslog.port}` : null,
    pid: process.pid,
  };
}
