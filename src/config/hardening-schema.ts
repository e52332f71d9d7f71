import { z } from 'zod';

/**
 * Config sections of the node's audit trail, retention and PHI handling in ordinary logs
 * (issue 11). Kept out of schema.ts so that file only gains the keys that use them.
 */

/** RFC 5424 facility names and their codes (§6.2.1). */
export const SYSLOG_FACILITIES = {
  kern: 0, user: 1, mail: 2, daemon: 3, auth: 4, syslog: 5, lpr: 6, news: 7, uucp: 8, cron: 9,
  authpriv: 10, ftp: 11, ntp: 12, audit: 13, alert: 14, clock: 15,
  local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23,
} as const;
export type SyslogFacility = keyof typeof SYSLOG_FACILITIES;

export const syslogSchema = z
  .object({
    host: z.string().min(1).describe('Syslog collector host name or address'),
    port: z.number().int().min(1, 'a TCP/UDP port is 1..65535').max(65535, 'a TCP/UDP port is 1..65535').default(514).describe('Syslog collector port'),
    protocol: z.enum(['udp', 'tcp']).default('udp').describe('udp: one datagram per event; tcp: octet-counted frames (RFC 6587)'),
    facility: z
      .enum(Object.keys(SYSLOG_FACILITIES) as [SyslogFacility, ...SyslogFacility[]])
      .default('authpriv')
      .describe('RFC 5424 facility name (authpriv = 10, local0..local7 = 16..23)'),
    app_name: z.string().min(1).max(48).regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces (RFC 5424 APP-NAME)').default('rtpipeline').describe('RFC 5424 APP-NAME of the messages'),
  })
  .strict();

export const auditSchema = z
  .object({
    file: z.string().min(1).nullable().default(null).describe('The audit trail (JSON lines, append-only); null = <data_dir>/audit/audit.jsonl'),
    syslog: syslogSchema.nullable().default(null).describe('Also forward each audit event to a syslog collector (RFC 5424); null = file only'),
    mask_patient_ids: z.boolean().default(false).describe('Audit events carry a salted SHA-256 prefix of patient ids instead of the ids (salt in <data_dir>/audit/salt)'),
  })
  .strict();

export const retentionSchema = z
  .object({
    max_age_days: z.number().positive().nullable().default(null).describe('Purge finished studies whose last activity (arrival, completion, job end) is older than this; null = keep'),
    disk_budget_gb: z.number().positive().nullable().default(null).describe('Purge the oldest finished studies until store/ + output/ fit in this; null = no budget'),
    interval_minutes: z.number().positive().default(60).describe('How often the retention pass runs (POST /api/retention/run runs one now)'),
    purge_outputs: z.boolean().default(true).describe('Also remove a purged study\'s course folder under output/'),
  })
  .strict();

/** What ordinary (non-audit) logs may say about patients. */
export const logPhiSchema = z
  .enum(['full', 'masked', 'none'])
  .default('full')
  .describe('Patient ids in ordinary logs: full, masked (salted hash, as in the audit trail) or none; patient names are never logged. Hospital nodes: masked');
export type LogPhi = z.output<typeof logPhiSchema>;
