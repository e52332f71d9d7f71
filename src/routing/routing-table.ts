import { createHash } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { routingSchema, type Destination, type NodeConfig } from '../config/schema.js';
import { writeFileAtomic } from '../store/durable-fs.js';
import type { AuditSink } from '../audit/audit-log.js';
import type { Logger } from '../log.js';
import { describeIssues, type RoutingDocument } from './schema.js';
import type { RoutingRules } from './rules.js';

/** The rules in force and where they came from. Immutable: a job keeps the snapshot it started with. */
export interface RoutingSnapshot extends RoutingRules {
  /** 'config': node.routes of the config file; 'file': <data_dir>/routing.json (PUT /api/routing). */
  source: 'config' | 'file';
  /** Short hash of the effective rules (the audit trail names before and after). */
  hash: string;
  appliedAt: string;
}

export type Validation = { ok: true; document: RoutingDocument } | { ok: false; error: string; issues: { path: string; message: string }[] };

/**
 * The routing rules of a running node, editable through the API. A change is validated with the
 * config's own schema, written to <data_dir>/routing.json (atomically, fsynced), and only then
 * swapped in memory; changes are applied one at a time, so the file and memory never disagree.
 * At start the file, when present, overrides node.routes of the config (the operator's last edit
 * wins over a config file that was not changed with it).
 */
export class RoutingTable {
  private snapshot: RoutingSnapshot;
  private applying: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly file: string,
    private readonly config: NodeConfig,
    private readonly audit: AuditSink,
    private readonly log: Logger,
    initial: RoutingSnapshot,
  ) {
    this.snapshot = initial;
  }

  static async load(dataDir: string, config: NodeConfig, audit: AuditSink, log: Logger): Promise<RoutingTable> {
    const file = path.join(dataDir, 'routing.json');
    const fromConfig: RoutingDocument = { routes: config.routes, result_branding: config.result_branding };
    let snapshot = snapshotOf(fromConfig, config, 'config');
    if (existsSync(file)) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(await fsp.readFile(file, 'utf8'));
      } catch (e) {
        throw new Error(`${file} is not valid JSON (${(e as Error).message}): fix it, or remove it to use node.routes of the config`);
      }
      const v = validateRouting(parsed);
      if (!v.ok) throw new Error(`${file}: ${v.error}: fix it (or PUT /api/routing on a node started without it), or remove it to use node.routes of the config`);
      snapshot = snapshotOf(v.document, config, 'file');
      log.info({ file, routes: snapshot.routes.map((r) => r.name), hash: snapshot.hash, configRoutes: config.routes.length }, 'routing rules from routing.json (edited through the API) override node.routes of the config');
    } else {
      log.info({ routes: snapshot.routes.map((r) => r.name), hash: snapshot.hash }, 'routing rules from the config (node.routes)');
    }
    return new RoutingTable(file, config, audit, log, snapshot);
  }

  /** The rules in force now. */
  current(): RoutingSnapshot {
    return this.snapshot;
  }

  /** Validates and applies new rules; `remote` (the client's address) goes into the audit trail. */
  replace(body: unknown, remote: string | undefined): Promise<Validation & { snapshot?: RoutingSnapshot }> {
    const next = this.applying.then(async () => {
      const v = validateRouting(body);
      const before = this.snapshot.hash;
      if (!v.ok) {
        this.audit.record({ type: 'routing.changed', outcome: 'failure', before, remote, reason: v.error });
        this.log.warn({ remote, error: v.error }, 'routing change refused: invalid rules');
        return v;
      }
      await writeFileAtomic(this.file, JSON.stringify(v.document, null, 2) + '\n');
      const snapshot = snapshotOf(v.document, this.config, 'file');
      this.snapshot = snapshot;
      this.audit.record({ type: 'routing.changed', outcome: 'success', before, after: snapshot.hash, remote, routes: snapshot.routes.map((r) => r.name), file: this.file });
      this.log.info({ remote, before, after: snapshot.hash, routes: snapshot.routes.map((r) => r.name) }, 'routing rules changed');
      return { ...v, snapshot };
    });
    this.applying = next.catch(() => undefined);
    return next;
  }

  /** GET /api/routing: the effective rules, their origin, and the fixed fallback destinations. */
  view(): Record<string, unknown> {
    const s = this.snapshot;
    return {
      source: s.source,
      file: s.source === 'file' ? this.file : null,
      hash: s.hash,
      applied_at: s.appliedAt,
      routes: s.routes,
      result_branding: s.resultBranding,
      fallback_destinations: this.config.destinations satisfies Destination[],
    };
  }
}

/** Checks a routing document (the PUT body) against the config's schema, naming the bad fields. */
export function validateRouting(body: unknown): Validation {
  const r = routingSchema.document.safeParse(body);
  if (r.success) return { ok: true, document: r.data };
  const issues = describeIssues(r.error);
  return { ok: false, error: `invalid routing rules: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, issues };
}

function snapshotOf(doc: RoutingDocument, config: NodeConfig, source: RoutingSnapshot['source']): RoutingSnapshot {
  const resultBranding = doc.result_branding !== undefined ? doc.result_branding : config.result_branding;
  const rules = { routes: doc.routes, result_branding: resultBranding };
  const hash = createHash('sha256').update(JSON.stringify(rules)).digest('hex').slice(0, 12);
  return Object.freeze({ routes: Object.freeze([...doc.routes]), resultBranding, source, hash, appliedAt: new Date().toISOString() });
}
