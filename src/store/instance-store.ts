import { Writable } from 'node:stream';
import fs, { promises as fsp } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { readHeader, HeaderError, NeedMoreBytes, type InstanceHeader } from '../dicom/header.js';
import { part10Header } from '../dicom/part10.js';
import { isExplicitVr } from '../dicom/transfer-syntax.js';
import type { IndexDb } from './index-db.js';
import { fsyncDirSync, mkdirDurable, sameContent, writeFileAtomic } from './durable-fs.js';
import { readPart10Meta } from '../dicom/header.js';
import { DatasetStructure } from '../dicom/dataset-structure.js';
import type { Logger } from '../log.js';
import { StudyBudget } from './study-budget.js';

/** C-STORE failure statuses (PS3.4 Table B.2-1). */
export const StoreStatus = {
  Success: 0x0000,
  OutOfResources: 0xa700,
  DataSetDoesNotMatchSopClass: 0xa900,
  CannotUnderstand: 0xc000,
} as const;

export type StoreOutcome =
  | { ok: true; kind: 'stored' | 'duplicate' | 'replaced'; header: InstanceHeader; path: string; size: number }
  | { ok: false; status: number; reason: string; quarantinedAs?: string };

/** What the association knows about an instance before its bytes arrive. */
export interface IncomingMeta {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  callingAet: string | null;
  remoteAddress: string | null;
  /** The AE title the sender called (DIMSE only): return routing matches on it. */
  calledAet?: string | null;
  associationId: string;
}

export interface StoreLayout {
  root: string;
  store: string;
  incoming: string;
  quarantine: string;
}

export function storeLayout(dataDir: string): StoreLayout {
  const root = path.resolve(dataDir);
  return { root, store: path.join(root, 'store'), incoming: path.join(root, 'incoming'), quarantine: path.join(root, 'quarantine') };
}

/** Where an instance lives: UIDs are digits and dots (validated), so they are safe path components. */
export function instancePath(layout: StoreLayout, h: Pick<InstanceHeader, 'studyInstanceUid' | 'seriesInstanceUid' | 'sopInstanceUid'>): string {
  return path.join(layout.store, h.studyInstanceUid, h.seriesInstanceUid, `${h.sopInstanceUid}.dcm`);
}

const HEADER_PREFIX_BYTES = 64 * 1024;
const PAUSE_ABOVE = 8 * 1024 * 1024;
const RESUME_BELOW = 1 * 1024 * 1024;

export interface StoreOptions {
  minFreeBytes: number;
  maxInstanceBytes: number;
}

export class InstanceStore {
  readonly layout: StoreLayout;
  private readonly knownDirs = new Set<string>();
  private freeBytesCache: { at: number; free: number } | undefined;
  /** Running per-study byte counts for node.max_study_mb (undefined: no limit). */
  private studyBudget: StudyBudget | undefined;
  /** Files renamed into store/ that the index failed to record: the next start must reconcile. */
  indexErrors = 0;

  constructor(
    dataDir: string,
    readonly index: IndexDb,
    private readonly opts: StoreOptions,
    private readonly log: Logger,
  ) {
    this.layout = storeLayout(dataDir);
  }

  /** Creates the folders and drops partial files of a previous run: they were never acknowledged. */
  async init(): Promise<void> {
    for (const d of [this.layout.store, this.layout.incoming, this.layout.quarantine]) await mkdirDurable(d, this.knownDirs);
    const leftovers = (await fsp.readdir(this.layout.incoming)).filter((f) => f.endsWith('.part'));
    for (const f of leftovers) await fsp.rm(path.join(this.layout.incoming, f), { force: true });
    if (leftovers.length > 0) this.log.warn({ count: leftovers.length }, 'removed partial files of unacknowledged C-STOREs from an earlier run');
  }

  /** Free bytes on the data volume, re-read at most once a second (statfs per instance is wasted
   *  work) and lowered by every instance stored in between. */
  freeBytes(): number {
    const now = Date.now();
    if (!this.freeBytesCache || now - this.freeBytesCache.at > 1000) {
      const s = fs.statfsSync(this.layout.root);
      this.freeBytesCache = { at: now, free: s.bavail * s.bsize };
    }
    return this.freeBytesCache.free;
  }

  hasSpace(): boolean {
    return this.freeBytes() >= this.opts.minFreeBytes;
  }

  /** An instance whose bytes will be read and dropped, answered with `status`. */
  refuse(meta: IncomingMeta, status: number, reason: string): IncomingInstance {
    return new IncomingInstance(this, meta, { status, reason });
  }

  begin(meta: IncomingMeta): IncomingInstance {
    if (!this.hasSpace()) {
      const free = Math.round(this.freeBytes() / 1048576);
      return new IncomingInstance(this, meta, { status: StoreStatus.OutOfResources, reason: `disk nearly full: ${free} MB free on ${this.layout.root}, below node.min_free_disk_mb` });
    }
    return new IncomingInstance(this, meta);
  }

  /** `node.max_study_mb` (bytes; 0 = unlimited): larger studies get Out of Resources. */
  limitStudySize(maxBytes: number): void {
    this.studyBudget = maxBytes > 0 ? new StudyBudget(maxBytes, (uid) => this.index.studyBytes(uid)) : undefined;
  }

  /** A study was purged or deleted: its size is read from the index again at its next instance. */
  forgetStudySize(studyUid: string): void {
    this.studyBudget?.forget(studyUid);
  }

  get maxInstanceBytes(): number {
    return this.opts.maxInstanceBytes;
  }

  /** Moves a file that cannot be stored aside, with the reason next to it, for a person to look at. */
  async quarantine(tmpPath: string, meta: Partial<IncomingMeta>, reason: string): Promise<string> {
    const name = `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(4).toString('hex')}`;
    const dest = path.join(this.layout.quarantine, `${name}.dcm`);
    await fsp.rename(tmpPath, dest);
    await writeFileAtomic(path.join(this.layout.quarantine, `${name}.json`), JSON.stringify({ reason, ...meta, quarantinedAt: new Date().toISOString() }, null, 2));
    this.log.warn({ file: dest, reason, callingAet: meta.callingAet, sopInstanceUid: meta.sopInstanceUid }, 'instance quarantined');
    return dest;
  }

  /**
   * Files a fully received, fsynced temp file: identifies it, de-duplicates, renames it into place,
   * fsyncs the directory and records it in the index. Only after this may Success be answered.
   */
  async commit(tmpPath: string, prefix: Buffer, datasetBytes: number, headerBytes: number, meta: IncomingMeta): Promise<StoreOutcome> {
    let header: InstanceHeader;
    try {
      header = await this.identify(tmpPath, prefix, datasetBytes, headerBytes, isExplicitVr(meta.transferSyntaxUid));
    } catch (e) {
      const reason = e instanceof HeaderError ? `cannot identify the dataset: ${e.message}` : `cannot read the dataset: ${(e as Error).message}`;
      const quarantinedAs = await this.quarantine(tmpPath, meta, reason);
      return { ok: false, status: StoreStatus.CannotUnderstand, reason, quarantinedAs };
    }
    if (header.sopInstanceUid !== meta.sopInstanceUid || header.sopClassUid !== meta.sopClassUid) {
      const reason = `dataset SOP Class/Instance UID (${header.sopClassUid} / ${header.sopInstanceUid}) differs from the C-STORE command (${meta.sopClassUid} / ${meta.sopInstanceUid})`;
      const quarantinedAs = await this.quarantine(tmpPath, meta, reason);
      return { ok: false, status: StoreStatus.DataSetDoesNotMatchSopClass, reason, quarantinedAs };
    }
    const finalPath = instancePath(this.layout, header);
    const size = headerBytes + datasetBytes;
    const existing = this.index.getInstance(header.sopInstanceUid);
    if (existing && existing.path === finalPath && (await sameDataset(existing.path, tmpPath, headerBytes).catch(() => false))) {
      await fsp.rm(tmpPath, { force: true });
      return { ok: true, kind: 'duplicate', header, path: finalPath, size };
    }
    // node.max_study_mb: checked once the study is known and before anything is filed.
    const overBudget = this.studyBudget?.admit(header.studyInstanceUid, size - (existing?.study_uid === header.studyInstanceUid ? existing.size : 0));
    if (overBudget) {
      await fsp.rm(tmpPath, { force: true });
      return { ok: false, status: StoreStatus.OutOfResources, reason: overBudget.refused };
    }
    if (existing && existing.study_uid !== header.studyInstanceUid) this.studyBudget?.subtract(existing.study_uid, existing.size);
    const dir = path.dirname(finalPath);
    await mkdirDurable(dir, this.knownDirs);
    // rename and the directory fsync are metadata operations of tens of microseconds: done
    // synchronously they cost less than two thread-pool round trips on the per-instance path.
    try {
      fs.renameSync(tmpPath, finalPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      // Someone removed the folder under a running node: forget the cached path and recreate it.
      this.knownDirs.clear();
      await mkdirDurable(dir, this.knownDirs);
      fs.renameSync(tmpPath, finalPath);
    }
    fsyncDirSync(dir);
    // The free-space figure is re-read once a second; in between, what we wrote counts against it,
    // so a fast sender cannot write past node.min_free_disk_mb within that second.
    if (this.freeBytesCache) this.freeBytesCache.free -= size;
    if (existing && existing.path !== finalPath) await fsp.rm(existing.path, { force: true });
    try {
      this.recordInstance(header, meta, finalPath, size);
    } catch (e) {
      // The file is durable in store/ but the index did not take it: keep the file (it may replace an
      // older copy) and make sure the next start reconciles the index with the files.
      this.indexErrors++;
      throw e;
    }
    if (existing) this.log.warn({ sopInstanceUid: header.sopInstanceUid, studyUid: header.studyInstanceUid }, 'instance re-sent with different content: stored copy replaced');
    return { ok: true, kind: existing ? 'replaced' : 'stored', header, path: finalPath, size };
  }

  private recordInstance(header: InstanceHeader, meta: IncomingMeta, finalPath: string, size: number): void {
    this.index.recordInstance({
      header,
      transferSyntaxUid: meta.transferSyntaxUid,
      path: finalPath,
      size,
      receivedAt: Date.now(),
      callingAet: meta.callingAet,
      callingHost: meta.remoteAddress,
      calledAet: meta.calledAet,
    });
  }

  private async identify(file: string, prefix: Buffer, datasetBytes: number, headerBytes: number, explicit: boolean): Promise<InstanceHeader> {
    try {
      return readHeader(prefix, explicit, prefix.length >= datasetBytes);
    } catch (e) {
      if (!(e instanceof NeedMoreBytes)) throw e;
    }
    // Long sequences before the identifying tags (rare): read further from the file, up to 64 MiB.
    const want = Math.min(datasetBytes, 64 * 1024 * 1024);
    const h = await fsp.open(file, 'r');
    try {
      const buf = Buffer.allocUnsafe(want);
      const { bytesRead } = await h.read(buf, 0, want, headerBytes);
      return readHeader(buf.subarray(0, bytesRead), explicit, bytesRead >= datasetBytes);
    } catch (e) {
      if (e instanceof NeedMoreBytes) throw new HeaderError('identifying attributes not found in the first 64 MiB');
      throw e;
    } finally {
      await h.close();
    }
  }
}

/**
 * The Writable that dcmjs-dimse pipes one C-STORE dataset into: the bytes go straight to a temp
 * file behind a Part 10 header (no parse, no re-encode), the first 64 KiB are kept to identify
 * the instance, and the socket is paused when the disk falls behind so memory stays bounded.
 */
export class IncomingInstance extends Writable {
  readonly tmpPath: string;
  private fd: number | undefined;
  private readonly prefixChunks: Buffer[] = [];
  private prefixBytes = 0;
  private datasetBytes = 0;
  private readonly headerBytes: number;
  private failure: { status: number; reason: string } | undefined;
  private outcomePromise: Promise<StoreOutcome> | undefined;
  private resolveFinished!: () => void;
  private readonly finished = new Promise<void>((r) => (this.resolveFinished = r));
  private settled = false;
  /** Set by the SCP: pause/resume the association's socket when the disk falls behind. */
  flowControl: { pause(): void; resume(): void } | undefined;
  private paused = false;
  private writing: Promise<void> | undefined;
  /** Follows the element structure as the bytes arrive: a truncated or malformed dataset is never filed. */
  private readonly structure: DatasetStructure;

  constructor(
    private readonly store: InstanceStore,
    readonly meta: IncomingMeta,
    refused?: { status: number; reason: string },
  ) {
    super({ highWaterMark: 64 * 1024 * 1024, decodeStrings: false });
    this.tmpPath = path.join(store.layout.incoming, `${Date.now()}-${randomBytes(6).toString('hex')}.part`);
    this.failure = refused;
    this.structure = new DatasetStructure(isExplicitVr(meta.transferSyntaxUid));
    // dcmjs-dimse attaches no 'error' listener; an unhandled one would crash the process.
    this.on('error', (e) => this.fail(StoreStatus.OutOfResources, `cannot write ${this.tmpPath}: ${e.message}`));
    const header = part10Header({ sopClassUid: meta.sopClassUid, sopInstanceUid: meta.sopInstanceUid, transferSyntaxUid: meta.transferSyntaxUid });
    this.headerBytes = header.length;
    if (!this.failure) {
      try {
        this.fd = fs.openSync(this.tmpPath, 'wx');
        fs.writeSync(this.fd, header);
      } catch (e) {
        this.fail(StoreStatus.OutOfResources, `cannot create ${this.tmpPath}: ${(e as Error).message}`);
      }
    }
    this.on('finish', () => this.resolveFinished());
  }

  private fail(status: number, reason: string): void {
    this.failure ??= { status, reason };
  }

  override write(chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
    const ok = super.write(chunk as Buffer, encoding as BufferEncoding, cb as (e?: Error | null) => void);
    if (!this.paused && this.writableLength > PAUSE_ABOVE && this.flowControl) {
      this.paused = true;
      this.flowControl.pause();
    }
    return ok;
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    const buffers = chunks.map((c) => c.chunk);
    let n = 0;
    for (const b of buffers) n += b.length;
    this.datasetBytes += n;
    if (this.prefixBytes < HEADER_PREFIX_BYTES) {
      for (const b of buffers) {
        if (this.prefixBytes >= HEADER_PREFIX_BYTES) break;
        this.prefixChunks.push(b);
        this.prefixBytes += b.length;
      }
    }
    if (this.datasetBytes > this.store.maxInstanceBytes) {
      this.fail(StoreStatus.OutOfResources, `dataset larger than node.max_instance_mb (${Math.round(this.store.maxInstanceBytes / 1048576)} MB)`);
    }
    if (this.failure || this.fd === undefined) return this.afterWrite(callback);
    for (const b of buffers) this.structure.feed(b);
    const fd = this.fd;
    this.writing = new Promise<void>((done) =>
      fs.writev(fd, buffers, (err) => {
        if (err) this.fail(StoreStatus.OutOfResources, `write failed: ${err.code === 'ENOSPC' ? 'disk full' : err.message}`);
        this.writing = undefined;
        done();
        this.afterWrite(callback);
      }),
    );
  }

  private afterWrite(callback: () => void): void {
    callback();
    if (this.paused && this.writableLength < RESUME_BELOW) {
      this.paused = false;
      this.flowControl?.resume();
    }
  }

  /** The result of storing this instance; waits for the last byte, then fsyncs and files it. */
  outcome(): Promise<StoreOutcome> {
    this.outcomePromise ??= this.finished.then(() => this.settle());
    return this.outcomePromise;
  }

  private async settle(): Promise<StoreOutcome> {
    if (this.settled) return { ok: false, ...(this.failure ?? { status: StoreStatus.CannotUnderstand, reason: 'already settled' }) };
    this.settled = true;
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) {
      try {
        if (!this.failure) await new Promise<void>((res, rej) => fs.fdatasync(fd, (e) => (e ? rej(e) : res())));
      } catch (e) {
        this.fail(StoreStatus.OutOfResources, `fsync failed: ${(e as Error).message}`);
      } finally {
        fs.closeSync(fd);
      }
    }
    if (this.failure) {
      await fsp.rm(this.tmpPath, { force: true });
      return { ok: false, ...this.failure };
    }
    if (this.datasetBytes === 0) {
      await fsp.rm(this.tmpPath, { force: true });
      return { ok: false, status: StoreStatus.CannotUnderstand, reason: 'empty dataset' };
    }
    const malformed = this.structure.end();
    if (malformed) {
      const reason = `malformed dataset: ${malformed}`;
      try {
        const quarantinedAs = await this.store.quarantine(this.tmpPath, this.meta, reason);
        return { ok: false, status: StoreStatus.CannotUnderstand, reason, quarantinedAs };
      } catch (e) {
        await fsp.rm(this.tmpPath, { force: true });
        return { ok: false, status: StoreStatus.CannotUnderstand, reason: `${reason} (could not quarantine it: ${(e as Error).message})` };
      }
    }
    const prefix = Buffer.concat(this.prefixChunks);
    try {
      return await this.store.commit(this.tmpPath, prefix, this.datasetBytes, this.headerBytes, this.meta);
    } catch (e) {
      await fsp.rm(this.tmpPath, { force: true });
      const err = e as NodeJS.ErrnoException;
      return { ok: false, status: StoreStatus.OutOfResources, reason: `cannot file the instance: ${err.code === 'ENOSPC' ? 'disk full' : err.message}` };
    }
  }

  /** The association ended before the dataset did: nothing of it may remain. */
  async discard(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    this.fail(StoreStatus.CannotUnderstand, 'association ended before the dataset was complete');
    // A write in flight must finish before its descriptor is closed (and perhaps reused).
    await this.writing;
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) fs.closeSync(fd);
    this.destroy();
    await fsp.rm(this.tmpPath, { force: true });
    // 'finish' will never come after destroy(): settle now, as a failure, so nobody waits forever.
    this.settled = false;
    this.resolveFinished();
  }
}

/** Same dataset bytes, whatever file meta header each copy carries (ours may change between versions). */
async function sameDataset(stored: string, tmp: string, tmpHeaderBytes: number): Promise<boolean> {
  const h = await fsp.open(stored, 'r');
  let storedOffset: number;
  try {
    const head = Buffer.alloc(4096);
    const { bytesRead } = await h.read(head, 0, head.length, 0);
    storedOffset = readPart10Meta(head.subarray(0, bytesRead)).datasetOffset;
  } finally {
    await h.close();
  }
  return sameContent(stored, tmp, storedOffset, tmpHeaderBytes);
}
