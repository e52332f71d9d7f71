import { destinationSchema, type Destination } from './schema.js';

/** Parses `AE@HOST:PORT` (the contract's destination syntax; IPv6 hosts in brackets). */
export function parseDestination(text: string): Destination {
  const m = /^([^@]+)@(\[[^\]]+\]|[^:@]+):(\d+)$/.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a destination: write AE@HOST:PORT, e.g. PACS@10.0.0.5:104`);
  const host = m[2].replace(/^\[(.*)\]$/, '$1');
  const parsed = destinationSchema.safeParse({ aet: m[1], host, port: Number(m[3]) });
  if (!parsed.success) throw new Error(`"${text}": ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

export function formatDestination(d: Pick<Destination, 'aet' | 'host' | 'port'>): string {
  return `${d.aet}@${d.host.includes(':') ? `[${d.host}]` : d.host}:${d.port}`;
}
