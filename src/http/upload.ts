/**
 * POST /api/upload: DICOM files, folders and .zip/.tar.gz archives from the browser, stored
 * through the same InstanceStore path as C-STORE and watched folders (planPart10Ingest, then
 * store.begin → temp file, fsync, identify, dedup, rename, index). Studies touched by an upload
 * count as busy in StudyActivity until the request ends, so a study completes once, after it.
 */
import type http from 'node:http';
import { once } from 'node:events';
import { createWriteStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';
import { planPart10Ingest } from '../node/watch-folder.js';
import { StoreStatus, type IncomingMeta, type InstanceStore } from '../store/instance-store.js';
import type { IndexDb } from '../store/index-db.js';
import type { StudyActivity } from '../dicom/scp.js';
import type { Logger } from '../log.js';
import { tarGzEntries, zipEntries, type ArchiveEntry } from './archive.js';
import type { HttpReply } from './server.js';
import type { AuditSink } from '../audit/audit-log.js';
import type { Timeline } from '../store/timeline.js';
import { remoteOf } from './web-audit.js';
import { recordReceived, ReceiptTally } from '../audit/received.js';

/** Default upload limits (node.max_upload_mb, node.max_upload_files): the web UI is for studies,
 *  not for bulk migration (use C-STORE). */
export const MAX_UPLOAD_BYTES = 2 * 1024 * 1024 * 1024;
export const MAX_UPLOAD_FILES = 10_000;
/** Bytes looked at to tell DICOM from archives and to plan the ingest (as the watcher reads). */
const HEAD_BYTES = 64 * 1024 + 4096;

export interface UploadDeps {
  store: InstanceStore;
  index: IndexDb;
  activity: StudyActivity;
  /** Free bytes the node keeps (node.min_free_disk_mb): an upload must leave them free. */
  minFreeBytes: number;
  /** Where zip parts wait for extraction (read at the end of the file); emptied at start. */
  tmpDir: string;
  log: Logger;
  /** node.max_upload_mb in bytes (default MAX_UPLOAD_BYTES): the request body and what archives expand to. */
  maxBytes?: number;
  /** node.max_upload_files (default MAX_UPLOAD_FILES): files, archive entries included. */
  maxFiles?: number;
  /** 'http.upload' and 'instances.received' per study. */
  audit?: AuditSink;
  /** A 'received' event per study touched, with via: 'upload'. */
  timeline?: Timeline;
}

export interface UploadSummary {
  patients: {
    patientId: string;
    patientName: string;
    studies: { studyInstanceUid: string; studyDate: string; modalities: Record<string, number>; instances: number }[];
  }[];
  warnings: string[];
}

export interface UploadResult {
  stored: number;
  duplicates: number;
  refused: { name: string; reason: string }[];
  summary: UploadSummary;
}

class UploadError extends Error {
  constructor(
    readonly status: 400 | 413 | 507,
    message: string,
  ) {
    super(message);
  }
}

interface TakenInstance {
  sopInstanceUid: string;
  patientId: string;
  patientName: string;
  studyUid: string;
  studyDate: string;
  modality: string;
  /** Bytes stored (0 for a duplicate). */
  size: number;
}

/** One upload request: counts, refusals, and the studies it marked busy. */
class UploadSession {
  stored = 0;
  duplicates = 0;
  files = 0;
  bytesIn = 0;
  bytesExtracted = 0;
  readonly refused: { name: string; reason: string }[] = [];
  readonly taken: TakenInstance[] = [];
  private readonly busy = new Set<string>();
  readonly maxBytes: number;
  readonly maxFiles: number;

  constructor(private readonly deps: UploadDeps) {
    this.maxBytes = deps.maxBytes ?? MAX_UPLOAD_BYTES;
    this.maxFiles = deps.maxFiles ?? MAX_UPLOAD_FILES;
  }

  countFile(): void {
    if (++this.files > this.maxFiles) throw new UploadError(413, `more than ${this.maxFiles} files in one upload (archive entries count too; node.max_upload_files); upload in parts, or send with C-STORE`);
  }

  countExtracted(n: number): void {
    this.bytesExtracted += n;
    if (this.bytesExtracted > this.maxBytes) throw new UploadError(413, `the archives expand to more than ${mb(this.maxBytes)} (node.max_upload_mb); upload in parts`);
  }

  checkDisk(): void {
    const free = this.deps.store.freeBytes();
    if (free < this.deps.minFreeBytes) {
      throw new UploadError(507, `disk nearly full: ${Math.round(free / 1048576)} MB free on the node's data volume, below node.min_free_disk_mb; free space, then upload again`);
    }
  }

  refuse(name: string, reason: string): void {
    this.refused.push({ name, reason });
  }

  /** Stores one Part 10 file given as its first bytes and the rest of its stream. */
  async ingest(name: string, head: Buffer, rest: AsyncIterable<Buffer> | Iterable<Buffer>, size: number | undefined): Promise<void> {
    const plan = planPart10Ingest(head, size ?? Number.MAX_SAFE_INTEGER);
    if (!plan.ok) {
      for await (const _ of rest); // drain: the next part follows in the same request
      return this.refuse(name, plan.reason.replace('taken from a watched folder', 'taken from an upload'));
    }
    this.checkDisk();
    const meta: IncomingMeta = { ...plan.meta, callingAet: null, remoteAddress: null, associationId: `upload:${name}` };
    const incoming = this.deps.store.begin(meta);
    try {
      incoming.write(head.subarray(plan.datasetOffset));
      for await (const chunk of rest) if (!incoming.write(chunk)) await once(incoming, 'drain');
      incoming.end();
    } catch (e) {
      await incoming.discard();
      throw e;
    }
    const o = await incoming.outcome();
    if (!o.ok) {
      if (o.status === StoreStatus.OutOfResources && !this.deps.store.hasSpace()) throw new UploadError(507, `${o.reason}; free space, then upload again`);
      return this.refuse(name, o.quarantinedAs ? `${o.reason} (kept in the node's quarantine for inspection)` : o.reason);
    }
    if (o.kind === 'duplicate') this.duplicates++;
    else this.stored++;
    const h = o.header;
    this.markBusy(h.studyInstanceUid);
    this.taken.push({ sopInstanceUid: h.sopInstanceUid, patientId: h.patientId, patientName: h.patientName, studyUid: h.studyInstanceUid, studyDate: h.studyDate, modality: h.modality, size: o.kind === 'duplicate' ? 0 : o.size });
  }

  async ingestEntries(archive: string, entries: AsyncIterable<ArchiveEntry>): Promise<void> {
    for await (const e of entries) {
      this.countFile();
      const name = `${archive}/${e.name}`;
      if ('refused' in e) {
        this.refuse(name, e.refused);
        continue;
      }
      this.countExtracted(e.data.length);
      await this.ingest(name, e.data.subarray(0, HEAD_BYTES), [e.data.subarray(HEAD_BYTES)], e.data.length);
    }
  }

  private markBusy(studyUid: string): void {
    if (this.busy.has(studyUid)) return;
    this.busy.add(studyUid);
    this.deps.activity.add(studyUid);
  }

  release(): void {
    for (const s of this.busy) this.deps.activity.remove(s);
    this.busy.clear();
  }
}

/** The first bytes of a stream (at least `n` unless it ends first) and an iterable of the rest. */
async function peek(stream: AsyncIterable<Buffer>, n: number): Promise<{ head: Buffer; ended: boolean; rest: AsyncIterable<Buffer> | Iterable<Buffer> }> {
  const it = stream[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let got = 0;
  let ended = false;
  while (got < n) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    chunks.push(r.value);
    got += r.value.length;
  }
  const rest: AsyncIterable<Buffer> = { [Symbol.asyncIterator]: () => it };
  return { head: Buffer.concat(chunks), ended, rest: ended ? [] : rest };
}

type PartKind = 'zip' | 'tar.gz' | 'dicom';

/** By name first (what the user chose), then by magic bytes (a renamed archive still works). */
export function partKind(name: string, head: Buffer): PartKind {
  const lower = name.toLowerCase();
  if (lower.endsWith('.zip')) return 'zip';
  if (lower.endsWith('.tar.gz') || lower.endsWith('.tgz')) return 'tar.gz';
  if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) return 'zip';
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'tar.gz';
  return 'dicom';
}

/**
 * The part's bytes, counted against the upload limit as they are read. The part stream is never
 * destroyed here: busboy would wait for it forever; what is not read is drained by processPart.
 */
async function* counted(s: UploadSession, stream: Readable): AsyncGenerator<Buffer> {
  for await (const chunk of stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    s.bytesIn += chunk.length;
    if (s.bytesIn > s.maxBytes) throw new UploadError(413, `upload larger than ${mb(s.maxBytes)} (node.max_upload_mb); upload in parts`);
    yield chunk;
  }
}

/** Reads what is left of a part so the parser can go on to the next one. */
async function drain(stream: Readable): Promise<void> {
  if (stream.readableEnded || stream.destroyed) return;
  const ended = once(stream, 'end');
  stream.resume();
  await ended;
}

async function processPart(s: UploadSession, deps: UploadDeps, name: string, stream: Readable, bytes: AsyncIterable<Buffer>): Promise<void> {
  s.countFile();
  const { head, ended, rest } = await peek(bytes, HEAD_BYTES);
  const kind = partKind(name, head);
  const limits = { maxEntryBytes: deps.store.maxInstanceBytes };
  try {
    if (kind === 'dicom') await s.ingest(name, head, rest, ended ? head.length : undefined);
    else if (kind === 'tar.gz') await s.ingestEntries(name, tarGzEntries(Readable.from(concatStream(head, rest)), limits));
    else await ingestZip(s, deps, name, concatStream(head, rest), limits);
  } catch (e) {
    if (e instanceof UploadError) throw e; // the request ends here: nothing more is read
    // A broken file or archive is the file's problem, not the request's: refuse it and go on.
    s.refuse(name, kind === 'dicom' ? `cannot store: ${(e as Error).message}` : `cannot read the ${kind} archive: ${(e as Error).message}`);
  }
  await drain(stream);
}

/** A zip's directory is at its end: the part waits in a temp file, then is read entry by entry. */
async function ingestZip(s: UploadSession, deps: UploadDeps, name: string, bytes: AsyncIterable<Buffer>, limits: { maxEntryBytes: number }): Promise<void> {
  await fsp.mkdir(deps.tmpDir, { recursive: true });
  const tmp = path.join(deps.tmpDir, `${Date.now()}-${randomBytes(6).toString('hex')}.zip`);
  try {
    await pipeline(Readable.from(bytes), createWriteStream(tmp, { flags: 'wx' }));
    s.checkDisk();
    await s.ingestEntries(name, zipEntries(tmp, limits));
  } finally {
    await fsp.rm(tmp, { force: true });
  }
}

async function* concatStream(head: Buffer, rest: AsyncIterable<Buffer> | Iterable<Buffer>): AsyncGenerator<Buffer> {
  if (head.length > 0) yield head;
  yield* rest;
}

/** What the upload brought, per patient and study, and what looks incomplete in those studies. */
export function summarize(taken: TakenInstance[], studyModalities: (studyUid: string) => string[]): UploadSummary {
  const patients = new Map<string, UploadSummary['patients'][number]>();
  const studies = new Map<string, UploadSummary['patients'][number]['studies'][number]>();
  const counted = new Set<string>();
  for (const t of taken) {
    if (counted.has(t.sopInstanceUid)) continue; // the same instance twice in one upload counts once
    counted.add(t.sopInstanceUid);
    let p = patients.get(t.patientId);
    if (!p) patients.set(t.patientId, (p = { patientId: t.patientId, patientName: t.patientName, studies: [] }));
    let st = studies.get(t.studyUid);
    if (!st) {
      st = { studyInstanceUid: t.studyUid, studyDate: t.studyDate, modalities: {}, instances: 0 };
      studies.set(t.studyUid, st);
      p.studies.push(st);
    }
    st.modalities[t.modality] = (st.modalities[t.modality] ?? 0) + 1;
    st.instances++;
  }
  const warnings: string[] = [];
  for (const p of patients.values()) {
    for (const st of p.studies) {
      // The whole study as the node has it now: an upload may complete what came before.
      const have = new Set([...studyModalities(st.studyInstanceUid), ...Object.keys(st.modalities)]);
      const where = `study ${st.studyInstanceUid} (patient ${p.patientId})`;
      if (!have.has('CT')) warnings.push(`no CT series in ${where}: nothing to segment, no course images`);
      if (have.has('RTSTRUCT') && !have.has('RTDOSE')) warnings.push(`RTSTRUCT without RTDOSE in ${where}: no DVH will be computed`);
      if (have.has('RTDOSE') && !have.has('RTPLAN')) warnings.push(`RTDOSE without RTPLAN in ${where}: the dose cannot be tied to its plan`);
      if (have.has('RTPLAN') && !have.has('RTDOSE')) warnings.push(`RTPLAN without RTDOSE in ${where}: no DVH will be computed`);
    }
  }
  return { patients: [...patients.values()], warnings };
}

/** Handles one POST /api/upload request (multipart/form-data, any number of file parts). */
export async function handleUpload(req: http.IncomingMessage, deps: UploadDeps): Promise<HttpReply> {
  const type = req.headers['content-type'] ?? '';
  if (!/^multipart\/form-data/i.test(type)) {
    return { status: 400, body: { error: `expected multipart/form-data with file parts in "files[]", got content-type "${type || 'none'}"` } };
  }
  const declared = Number(req.headers['content-length'] ?? NaN);
  const close = { connection: 'close' };
  const maxBytes = deps.maxBytes ?? MAX_UPLOAD_BYTES;
  const maxFiles = deps.maxFiles ?? MAX_UPLOAD_FILES;
  if (declared > maxBytes) {
    deps.audit?.record({ type: 'http.upload', outcome: 'failure', remote: remoteOf(req), files: 0, stored: 0, refused: 0, studies: [], status: 413, error: 'over node.max_upload_mb' });
    return { status: 413, headers: close, body: { error: `upload of ${declared} bytes is larger than the limit of ${mb(maxBytes)} (node.max_upload_mb); nothing was stored; upload in parts`, stored: 0 } };
  }
  const free = deps.store.freeBytes();
  // The bytes will be stored (and a zip waits in a temp file): leave the reserve free after them.
  if (free - (Number.isFinite(declared) ? declared : 0) < deps.minFreeBytes) {
    return { status: 507, headers: close, body: { error: `not enough free disk for this upload: ${Math.round(free / 1048576)} MB free, the node keeps ${Math.round(deps.minFreeBytes / 1048576)} MB (node.min_free_disk_mb); free space, then upload again` } };
  }
  const s = new UploadSession(deps);
  let bb: busboy.Busboy;
  try {
    bb = busboy({ headers: req.headers, limits: { files: maxFiles, fileSize: maxBytes, fields: 1000 }, preservePath: true });
  } catch (e) {
    return { status: 400, body: { error: `bad multipart request: ${(e as Error).message}` } };
  }
  let work: Promise<void> = Promise.resolve();
  let failure: unknown;
  let stopped!: () => void;
  const failed = new Promise<void>((r) => (stopped = r));
  // The part being stored now: a failure ends it, so nothing is stored after the answer is sent.
  let current: NodeJS.ReadableStream | undefined;
  const fail = (e: unknown) => {
    failure ??= e;
    req.unpipe(bb);
    (current as { destroy?: (e: Error) => void } | undefined)?.destroy?.(e as Error);
    stopped();
  };
  bb.on('file', (_field, stream, info) => {
    const name = info.filename || 'unnamed';
    stream.on('limit', () => fail(new UploadError(413, `${name} is larger than ${mb(maxBytes)} (node.max_upload_mb)`)));
    // One part at a time, in order: busboy waits for a part to be read before it parses the next.
    work = work.then(async () => {
      if (failure) return void stream.resume();
      current = stream;
      try {
        await processPart(s, deps, name, stream, counted(s, stream));
      } catch (e) {
        stream.resume();
        fail(e);
      } finally {
        current = undefined;
      }
    });
  });
  bb.on('filesLimit', () => fail(new UploadError(413, `more than ${maxFiles} files in one upload (node.max_upload_files); upload in parts`)));
  const parsed = new Promise<void>((resolve, reject) => {
    bb.on('close', resolve);
    bb.on('error', reject);
    req.on('error', reject);
  });
  req.pipe(bb);
  try {
    await Promise.race([parsed, failed]);
    // After a failure the parts left are never read (they are skipped), and the one in progress was
    // ended: waiting for the work is short, and the count in the answer is final.
    await work;
  } catch (e) {
    fail(new UploadError(400, `bad multipart request: ${(e as Error).message}`));
    await work;
  } finally {
    s.release();
  }
  const summary = summarize(s.taken, (uid) => deps.index.seriesOfStudy(uid).map((x) => x.modality));
  deps.log.info({ stored: s.stored, duplicates: s.duplicates, refused: s.refused.length, files: s.files, bytes: s.bytesIn, error: failure ? (failure as Error).message : undefined }, 'upload received');
  // Stored instances stay even when the request failed later: they are received, and audited as such.
  const tally = new ReceiptTally();
  for (const t of s.taken) tally.add(t.studyUid, t.patientId, t.size === 0 ? 'duplicate' : 'stored', t.size);
  const remote = remoteOf(req);
  recordReceived(tally.receipts(), { via: 'upload', peer: remote }, deps);
  const status = failure ? (failure instanceof UploadError ? failure.status : 500) : 200;
  deps.audit?.record({ type: 'http.upload', outcome: failure ? 'failure' : 'success', remote, files: s.files, stored: s.stored, duplicates: s.duplicates, refused: s.refused.length, studies: [...new Set(s.taken.map((t) => t.studyUid))], status, error: failure ? (failure as Error).message : undefined });
  if (failure) {
    const done = s.stored + s.duplicates > 0 ? ` (${s.stored} instances were stored before it stopped; they stay)` : '';
    return { status, headers: close, body: { error: `${(failure as Error).message}${done}`, stored: s.stored, duplicates: s.duplicates, refused: s.refused } };
  }
  return { status: 200, body: { stored: s.stored, duplicates: s.duplicates, refused: s.refused, summary } satisfies UploadResult };
}

const mb = (bytes: number) => `${Math.round(bytes / 1048576)} MB`;
