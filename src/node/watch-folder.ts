import fs, { promises as fsp } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { watch, type FSWatcher } from 'chokidar';
import { NeedMoreBytes, readHeader, readPart10Meta } from '../dicom/header.js';
import { ACCEPTED_TRANSFER_SYNTAXES, isExplicitVr } from '../dicom/transfer-syntax.js';
import { isStorageSopClass } from '../dicom/sop-classes.js';
import type { StudyActivity } from '../dicom/scp.js';
import { StoreStatus, type IncomingMeta, type InstanceStore, type StoreOutcome } from '../store/instance-store.js';
import { writeFileAtomic } from '../store/durable-fs.js';
import type { Metrics } from '../metrics.js';
import type { Logger } from '../log.js';
import type { AuditSink } from '../audit/audit-log.js';
import type { Timeline } from '../store/timeline.js';
import { recordReceived, ReceiptTally } from '../audit/received.js';

/**
 * A file is taken once its size and mtime have not changed for this long. There is no config key:
 * copiers (cp, rsync, SMB/NFS clients) write continuously, and 2 s of silence is far longer than any
 * pause between their writes while short enough that a dropped folder starts at once.
 */
export const WATCH_STABLE_MS = 2000;
/** How often pending files are stat()ed. Chokidar tells us a file exists; polling tells us it is done. */
export const WATCH_POLL_MS = 500;
/** A transient failure (disk nearly full, I/O error) leaves the file in place and retries after this. */
export const WATCH_RETRY_MS = 30_000;

/** Subfolders of a watched folder that hold our own results and are never watched. */
export const PROCESSED_DIR = 'processed';
export const QUARANTINE_DIR = 'quarantine';

/** Bytes read to find the file meta and the identifying attributes (as the C-STORE path keeps 64 KiB). */
const HEAD_BYTES = 64 * 1024 + 4096;

export type WatchOutcome =
  | { kind: 'stored' | 'duplicate' | 'replaced'; studyUid: string; sopInstanceUid: string; movedTo: string }
  | { kind: 'quarantined'; reason: string; movedTo: string }
  | { kind: 'retry'; reason: string }
  | { kind: 'changed'; reason: string }
  | { kind: 'gone'; reason: string };

/** What the file meta says about a dataset, or why the file cannot go into the store. */
export type Part10Plan =
  | { ok: true; meta: Pick<IncomingMeta, 'sopClassUid' | 'sopInstanceUid' | 'transferSyntaxUid'>; datasetOffset: number }
  | { ok: false; reason: string };

/**
 * Decides from the first bytes of a file whether it can be ingested like a C-STORE, and how: the
 * dataset after the file meta is exactly what an SCU would send, and the file meta plays the part of
 * the C-STORE command (SOP class/instance, transfer syntax). The refusals mirror the association's.
 */
export function planPart10Ingest(head: Buffer, fileSize: number): Part10Plan {
  let fileMeta;
  try {
    fileMeta = readPart10Meta(head);
  } catch (e) {
    if (e instanceof NeedMoreBytes) return { ok: false, reason: `not a DICOM Part 10 file: only ${fileSize} bytes, the file meta information is incomplete` };
    return { ok: false, reason: `${(e as Error).message} (only DICOM Part 10 files are taken from a watched folder)` };
  }
  const ts = fileMeta.transferSyntaxUid;
  if (!ACCEPTED_TRANSFER_SYNTAXES.includes(ts)) {
    return { ok: false, reason: `transfer syntax ${ts} is not accepted (deflated and big endian are refused, as over DICOM); convert the file, e.g. with dcmconv +te` };
  }
  if (fileSize <= fileMeta.datasetOffset) return { ok: false, reason: 'the file has a file meta header but no dataset' };
  let sopClassUid = fileMeta.mediaStorageSopClassUid;
  let sopInstanceUid = fileMeta.mediaStorageSopInstanceUid;
  if (!sopClassUid || !sopInstanceUid) {
    // A file meta without (0002,0002)/(0002,0003): take the UIDs from the dataset itself.
    try {
      const h = readHeader(head.subarray(fileMeta.datasetOffset), isExplicitVr(ts), head.length >= fileSize);
      sopClassUid ??= h.sopClassUid;
      sopInstanceUid ??= h.sopInstanceUid;
    } catch (e) {
      const why = e instanceof NeedMoreBytes ? 'identifying attributes not found in the first 64 KiB' : (e as Error).message;
      return { ok: false, reason: `cannot identify the dataset: ${why}` };
    }
  }
  if (!isStorageSopClass(sopClassUid)) return { ok: false, reason: `SOP class ${sopClassUid} is not one the node stores (see src/dicom/sop-classes.ts)` };
  return { ok: true, meta: { sopClassUid, sopInstanceUid, transferSyntaxUid: ts }, datasetOffset: fileMeta.datasetOffset };
}

/** True for paths a watcher must not take: our processed/ and quarantine/ folders and dotfiles anywhere. */
export function isIgnoredPath(root: string, file: string): boolean {
  const rel = path.relative(root, file);
  if (rel === '') return false;
  const parts = rel.split(path.sep);
  if (parts[0] === PROCESSED_DIR || parts[0] === QUARANTINE_DIR) return true;
  return parts.some((p) => p.startsWith('.'));
}

export interface WatchFolderDeps {
  dir: string;
  store: InstanceStore;
  activity: StudyActivity;
  log: Logger;
  metrics: Metrics;
  /** 'instances.received' per study and batch of files. */
  audit?: AuditSink;
  /** A 'received' event (via: 'watch') per study and batch of files. */
  timeline?: Timeline;
  /** Overrides for tests of the module itself; the node uses the constants. */
  stableMs?: number;
  pollMs?: number;
  retryMs?: number;
}

interface Pending {
  size: number;
  mtimeMs: number;
  /** When size/mtime were last seen to change. */
  since: number;
  /** Not before this time (after a transient failure). */
  notBefore: number;
}

/**
 * One watched folder. Chokidar reports files; a poll takes those whose size and mtime have been
 * stable for WATCH_STABLE_MS and stores each exactly like a C-STORE (same InstanceStore: temp file,
 * fdatasync, identification, dedup, rename, index). Only once the instance is durable is the source
 * moved to processed/; what cannot be stored goes to quarantine/ with a reason file beside it.
 * While files are pending, the studies already taken from them count as busy in StudyActivity (as
 * an open association would), so a study copied in slowly completes once, after the last file.
 */
export class WatchFolder {
  readonly dir: string;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly pending = new Map<string, Pending>();
  private readonly busyStudies = new Set<string>();
  /** Instances stored per study since the folder last went quiet: one 'received' each then. */
  private readonly received = new ReceiptTally();
  private ticking: Promise<void> | undefined;
  private stopped = false;
  private readonly stableMs: number;
  private readonly pollMs: number;
  private readonly retryMs: number;

  constructor(private readonly deps: WatchFolderDeps) {
    this.dir = path.resolve(deps.dir);
    this.stableMs = deps.stableMs ?? WATCH_STABLE_MS;
    this.pollMs = deps.pollMs ?? WATCH_POLL_MS;
    this.retryMs = deps.retryMs ?? WATCH_RETRY_MS;
    deps.metrics.describe('rtpipeline_watch_files_total', 'Files taken from watched folders, by outcome');
  }

  /** Resolves once the initial scan is done: files already in the folder are pending by then. */
  async start(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true });
    const watcher = watch(this.dir, {
      ignored: (p: string) => isIgnoredPath(this.dir, p),
      ignoreInitial: false,
      followSymlinks: false,
      persistent: true,
    });
    this.watcher = watcher;
    const seen = (p: string) => {
      if (!this.stopped && !this.pending.has(p)) this.pending.set(p, { size: -1, mtimeMs: -1, since: Date.now(), notBefore: 0 });
    };
    watcher.on('add', seen);
    watcher.on('change', seen);
    watcher.on('unlink', (p: string) => this.pending.delete(p));
    watcher.on('error', (e: unknown) => this.deps.log.error({ dir: this.dir, err: (e as Error).message }, 'watched folder error'));
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
    this.timer = setInterval(() => void this.tick(), this.pollMs);
    this.deps.log.info({ dir: this.dir, stableSeconds: this.stableMs / 1000, files: this.pending.size }, 'watching folder');
  }

  /** Stops watching; a file being ingested is finished first. Pending files stay for the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.watcher?.close();
    await this.ticking;
    this.releaseStudies();
  }

  private tick(): Promise<void> {
    this.ticking ??= this.scan().finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private async scan(): Promise<void> {
    const now = Date.now();
    const ready: [string, Pending][] = [];
    for (const [file, p] of this.pending) {
      let st: fs.Stats;
      try {
        st = await fsp.lstat(file);
      } catch {
        this.pending.delete(file); // removed or renamed by someone else
        continue;
      }
      if (!st.isFile()) {
        this.pending.delete(file); // links and special files are never followed
        continue;
      }
      if (st.size !== p.size || st.mtimeMs !== p.mtimeMs) Object.assign(p, { size: st.size, mtimeMs: st.mtimeMs, since: now });
      else if (now - p.since >= this.stableMs && now >= p.notBefore) ready.push([file, p]);
    }
    for (const [file, p] of ready) {
      if (this.stopped) return;
      await this.take(file, p);
    }
    if (this.pending.size === 0) this.releaseStudies();
  }

  private async take(file: string, p: Pending): Promise<void> {
    const rel = path.relative(this.dir, file);
    let outcome: WatchOutcome;
    try {
      outcome = await this.ingest(file, rel, p);
    } catch (e) {
      outcome = { kind: 'retry', reason: `unexpected error: ${(e as Error).message}` };
    }
    const fields = { dir: this.dir, file: rel, outcome: outcome.kind };
    this.deps.metrics.inc('rtpipeline_watch_files_total', 1, { outcome: outcome.kind });
    switch (outcome.kind) {
      case 'stored':
      case 'replaced':
      case 'duplicate':
        this.pending.delete(file);
        this.deps.log.info({ ...fields, studyUid: outcome.studyUid, sopInstanceUid: outcome.sopInstanceUid, movedTo: outcome.movedTo }, 'watched file ingested');
        break;
      case 'quarantined':
        this.pending.delete(file);
        this.deps.log.warn({ ...fields, reason: outcome.reason, movedTo: outcome.movedTo }, 'watched file quarantined');
        break;
      case 'gone':
        this.pending.delete(file);
        this.deps.log.warn({ ...fields, reason: outcome.reason }, 'watched file not taken');
        break;
      case 'changed':
        this.deps.log.warn({ ...fields, reason: outcome.reason }, 'watched file left in place');
        break;
      case 'retry':
        p.notBefore = Date.now() + this.retryMs;
        this.deps.log.warn({ ...fields, reason: outcome.reason, retryInSeconds: this.retryMs / 1000 }, 'watched file left in place; will retry');
        break;
    }
  }

  private async ingest(file: string, rel: string, p: Pending): Promise<WatchOutcome> {
    const head = await readHead(file);
    const plan = planPart10Ingest(head, p.size);
    if (!plan.ok) return this.quarantine(file, rel, plan.reason);
    const meta: IncomingMeta = { ...plan.meta, callingAet: null, remoteAddress: null, associationId: `watch:${rel}` };
    const incoming = this.deps.store.begin(meta);
    try {
      await pipeline(fs.createReadStream(file, { start: plan.datasetOffset }), incoming);
    } catch (e) {
      await incoming.discard();
      return { kind: 'retry', reason: `cannot read the file: ${(e as Error).message}` };
    }
    const o: StoreOutcome = await incoming.outcome();
    if (!o.ok) {
      // Out of resources is the node's problem, not the file's: keep it and try again later.
      if (o.status === StoreStatus.OutOfResources) return { kind: 'retry', reason: o.reason };
      const where = o.quarantinedAs ? ` (a copy is in ${o.quarantinedAs})` : '';
      return this.quarantine(file, rel, `${o.reason}${where}`);
    }
    // Durable in store/ and in the index from here on: the source may move.
    this.markBusy(o.header.studyInstanceUid);
    this.received.add(o.header.studyInstanceUid, o.header.patientId, o.kind, o.size);
    const now = await fsp.lstat(file).catch(() => undefined);
    if (!now) return { kind: 'gone', reason: 'the file disappeared after it was stored (the stored copy is kept)' };
    if (now.size !== p.size || now.mtimeMs !== p.mtimeMs) {
      // Written to again while we read it: keep it pending; the next take replaces the stored copy.
      Object.assign(p, { size: now.size, mtimeMs: now.mtimeMs, since: Date.now() });
      return { kind: 'changed', reason: 'the file changed while it was being stored; it will be taken again when stable' };
    }
    const movedTo = await moveInto(file, path.join(this.dir, PROCESSED_DIR, rel));
    return { kind: o.kind, studyUid: o.header.studyInstanceUid, sopInstanceUid: o.header.sopInstanceUid, movedTo };
  }

  private async quarantine(file: string, rel: string, reason: string): Promise<WatchOutcome> {
    const movedTo = await moveInto(file, path.join(this.dir, QUARANTINE_DIR, rel));
    const text = `${reason}\n\nsource: ${path.join(this.dir, rel)}\nquarantined at: ${new Date().toISOString()}\n`;
    await writeFileAtomic(`${movedTo}.reason.txt`, text);
    return { kind: 'quarantined', reason, movedTo };
  }

  private markBusy(studyUid: string): void {
    if (this.busyStudies.has(studyUid)) return;
    this.busyStudies.add(studyUid);
    this.deps.activity.add(studyUid);
  }

  private releaseStudies(): void {
    recordReceived(this.received.receipts(), { via: 'watch', dir: this.dir }, this.deps);
    this.received.clear();
    for (const s of this.busyStudies) this.deps.activity.remove(s);
    this.busyStudies.clear();
  }
}

async function readHead(file: string): Promise<Buffer> {
  const h = await fsp.open(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(HEAD_BYTES);
    const { bytesRead } = await h.read(buf, 0, HEAD_BYTES, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await h.close();
  }
}

/**
 * Renames `file` to `dest`, creating folders; an existing file of that name is never overwritten
 * (the same name dropped twice keeps both, with a numbered suffix). Returns where it went.
 */
async function moveInto(file: string, dest: string): Promise<string> {
  await fsp.mkdir(path.dirname(dest), { recursive: true });
  const { dir, name, ext } = path.parse(dest);
  for (let n = 1; ; n++) {
    const candidate = n === 1 ? dest : path.join(dir, `${name}_${n}${ext}`);
    let linked = false;
    try {
      // link + unlink instead of rename: rename would silently replace an existing file.
      await fsp.link(file, candidate);
      linked = true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') continue;
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw e;
    }
    if (linked) {
      await fsp.unlink(file);
      return candidate;
    }
    // A file system without hard links (some SMB/FUSE mounts): check, then rename.
    if (fs.existsSync(candidate)) continue;
    await fsp.rename(file, candidate);
    return candidate;
  }
}
