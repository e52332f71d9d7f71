/**
 * Shared pieces of the reliability tests (load, faults, hostile input) and of their long versions
 * in bench/soak: the scale (CI or soak, from the environment), the node's memory from /proc, what
 * storescu says was acknowledged, a check of the whole store, and where the figures go.
 */
import { appendFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { run } from './ports.js';

/** RTPIPELINE_SOAK=1 selects the long version; each figure can also be set on its own. */
export const SOAK = process.env.RTPIPELINE_SOAK === '1';

function envInt(name: string, ci: number, soak: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return SOAK ? soak : ci;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got "${v}"`);
  return n;
}

export const scale = {
  senders: envInt('RELIABILITY_SENDERS', 8, 8),
  perSender: envInt('RELIABILITY_PER_SENDER', 500, 500),
  kills: envInt('RELIABILITY_KILLS', 4, 10),
  fuzzCases: envInt('RELIABILITY_FUZZ_CASES', 500, 10_000),
  pacsDownSeconds: envInt('RELIABILITY_PACS_DOWN_S', 10, 60),
  seed: envInt('RELIABILITY_SEED', 20260311, 20260311),
};

/** Resident set of a process now and at its peak (VmRSS, VmHWM), in MB. */
export function memoryMb(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

/** Samples the node's peak RSS every `ms` until stopped (VmHWM survives between samples anyway). */
export function rssSampler(pid: number, ms = 250) {
  let peak = 0;
  const take = () => {
    try {
      peak = Math.max(peak, memoryMb(pid).hwm);
    } catch {
      /* the process is gone: keep the last figure */
    }
  };
  take();
  const t = setInterval(take, ms);
  return { stop: () => { take(); clearInterval(t); return peak; }, peak: () => peak };
}

/**
 * The files storescu got Success for, from its `-v` log: "Sending file: X" is followed by
 * "Received Store Response (Success)" for that file (storescu sends one at a time per association).
 */
export function acknowledgedFiles(log: string): string[] {
  const out: string[] = [];
  let current: string | undefined;
  for (const line of log.split('\n')) {
    const sending = /Sending file: (.+)$/.exec(line);
    if (sending) current = sending[1].trim();
    else if (/Received Store Response \(Success\)/.test(line) && current) {
      out.push(current);
      current = undefined;
    }
  }
  return out;
}

export interface StoreCheck {
  files: number;
  /** Files in store/ that dcmdump cannot parse completely. */
  unparsable: string[];
  /** Files in store/ with no index row, and index rows whose file is missing. */
  notIndexed: string[];
  missingFiles: string[];
  /** Leftover temp files (*.part) in incoming/. */
  partials: string[];
  indexedSopUids: Set<string>;
}

export function storedFiles(dataDir: string): string[] {
  const root = path.join(dataDir, 'store');
  return existsSync(root) ? readdirSync(root, { recursive: true }).map(String).filter((f) => f.endsWith('.dcm')).map((f) => path.join(root, f)) : [];
}

/** Every stored file parses (dcmdump, whole file) and is in the index; nothing half-written remains. */
export async function checkStore(dataDir: string): Promise<StoreCheck> {
  const files = storedFiles(dataDir);
  const unparsable: string[] = [];
  // dcmdump takes many files at once; a batch that fails is re-checked file by file.
  for (let i = 0; i < files.length; i += 200) {
    const batch = files.slice(i, i + 200);
    // dcmdump's default (-E): a damaged file is an error and a non-zero exit.
    const r = await run('dcmdump', ['-q', ...batch], { timeoutMs: 120_000 });
    if (r.code === 0) continue;
    for (const f of batch) {
      const one = await run('dcmdump', [f]);
      if (one.code !== 0) unparsable.push(`${f}: ${one.stderr.trim().split('\n')[0]}`);
    }
  }
  const db = new Database(path.join(dataDir, 'index.sqlite'), { readonly: true, fileMustExist: true });
  let rows: { sop_uid: string; path: string }[];
  try {
    rows = db.prepare('SELECT sop_uid, path FROM instances').all() as { sop_uid: string; path: string }[];
  } finally {
    db.close();
  }
  const indexed = new Set(rows.map((r) => path.resolve(r.path)));
  const onDisk = new Set(files.map((f) => path.resolve(f)));
  const incoming = path.join(dataDir, 'incoming');
  return {
    files: files.length,
    unparsable,
    notIndexed: files.filter((f) => !indexed.has(path.resolve(f))),
    missingFiles: rows.map((r) => r.path).filter((p) => !onDisk.has(path.resolve(p))),
    partials: existsSync(incoming) ? readdirSync(incoming).filter((f) => f.endsWith('.part')) : [],
    indexedSopUids: new Set(rows.map((r) => r.sop_uid)),
  };
}

/** Quarantined items of the node (<data>/quarantine/<name>.dcm) and whether each has its reason file. */
export function quarantined(dataDir: string): { items: number; withoutReason: string[]; reasons: string[] } {
  const dir = path.join(dataDir, 'quarantine');
  if (!existsSync(dir)) return { items: 0, withoutReason: [], reasons: [] };
  const names = readdirSync(dir);
  const items = names.filter((n) => n.endsWith('.dcm'));
  const reasons: string[] = [];
  const withoutReason: string[] = [];
  for (const n of items) {
    const json = path.join(dir, n.replace(/\.dcm$/, '.json'));
    if (!existsSync(json)) withoutReason.push(n);
    else reasons.push(String((JSON.parse(readFileSync(json, 'utf8')) as { reason?: string }).reason ?? ''));
  }
  return { items: items.length, withoutReason, reasons };
}

/** Error-level lines (pino level >= 50) of a node's log. */
export function errorEvents(events: Record<string, unknown>[]): Record<string, unknown>[] {
  return events.filter((e) => typeof e.level === 'number' && e.level >= 50);
}

/** Prints the figures of a scenario and, with RTPIPELINE_RELIABILITY_OUT set, appends them there (bench/soak reads them). */
export function reportFigures(scenario: string, figures: Record<string, unknown>): void {
  const line = JSON.stringify({ scenario, soak: SOAK, ...figures });
  console.log(`RELIABILITY ${line}`);
  const out = process.env.RTPIPELINE_RELIABILITY_OUT;
  if (out) appendFileSync(out, line + '\n');
}
