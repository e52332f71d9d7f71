/**
 * Indexes a folder tree of DICOM files: headers only, many files at once.
 *
 * The tree is listed first (one readdir per folder), then a fixed number of workers each open a
 * file, read its first bytes, parse them (src/organize/rt-refs.ts) and close it. Only when the
 * wanted attributes lie further in (an RT plan's beams, an RTSTRUCT with private tags in front)
 * is more read, doubling each time; RTDOSE pixels and RTSTRUCT contours are never read.
 *
 * Part 10 files and raw datasets (no preamble; implicit or explicit VR little endian) are read.
 * Anything else (text, images, truncated or big-endian files, DICOMDIR) is counted with its reason
 * and skipped: a stray file never stops the scan.
 */
import { close, fstat, open, promises as fsp, read, type Dirent } from 'node:fs';
import path from 'node:path';
import { HeaderError, NeedMoreBytes, readPart10Meta } from '../dicom/header.js';
import { TS, isExplicitVr } from '../dicom/transfer-syntax.js';
import { readInstanceRecord, type InstanceRecord } from './rt-refs.js';

export interface ScannedInstance extends InstanceRecord {
  /** Absolute path of the file. */
  path: string;
  sizeBytes: number;
  /** How the file holds the dataset: Part 10, or a raw dataset (no preamble, no file meta). */
  encoding: { part10: boolean; transferSyntaxUid: string };
}

export interface SkippedFile {
  path: string;
  reason: string;
}

export interface ScanProgress {
  /** Files read so far, of `total` found. */
  done: number;
  total: number;
}

export interface ScanOptions {
  /** Files read at once (default 16). */
  concurrency?: number;
  /** Folders not to enter (absolute), e.g. the output folder when it lies inside the input tree. */
  exclude?: string[];
  onProgress?: (p: ScanProgress) => void;
  /** Bytes read first (default 8 KiB: a CT header with its private groups usually fits). */
  firstReadBytes?: number;
}

export interface ScanResult {
  instances: ScannedInstance[];
  skipped: SkippedFile[];
  /** Folders that could not be listed (permissions, vanished). */
  unreadableFolders: SkippedFile[];
}

const DEFAULT_CONCURRENCY = 16;
const DEFAULT_FIRST_READ = 8 * 1024;
/** Never read more than this to find a header; an RT plan of a few MB fits easily. */
const MAX_HEADER_BYTES = 64 * 1024 * 1024;
const PROGRESS_EVERY = 500;

export async function scanTree(root: string, opts: ScanOptions = {}): Promise<ScanResult> {
  const absRoot = path.resolve(root);
  const exclude = new Set((opts.exclude ?? []).map((p) => path.resolve(p)));
  const unreadableFolders: SkippedFile[] = [];
  const files = await listFiles(absRoot, exclude, unreadableFolders);
  const result = await scanFiles(files, opts);
  return { ...result, unreadableFolders };
}

/** Reads the given files; the order of `instances` and `skipped` follows `files`. */
export async function scanFiles(files: string[], opts: ScanOptions = {}): Promise<Omit<ScanResult, 'unreadableFolders'>> {
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? DEFAULT_CONCURRENCY));
  const firstRead = opts.firstReadBytes ?? DEFAULT_FIRST_READ;
  const outcomes: (ScannedInstance | SkippedFile)[] = new Array(files.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    const scratch = Buffer.allocUnsafe(firstRead);
    while (next < files.length) {
      const n = next++;
      outcomes[n] = await scanFile(files[n], scratch);
      done++;
      if (opts.onProgress && (done % PROGRESS_EVERY === 0 || done === files.length)) opts.onProgress({ done, total: files.length });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));
  const instances: ScannedInstance[] = [];
  const skipped: SkippedFile[] = [];
  for (const o of outcomes) ('sopInstanceUid' in o ? instances : skipped).push(o as never);
  return { instances, skipped };
}

/** Every regular file under `root` (symlinked files followed, symlinked folders not: no cycles). */
async function listFiles(root: string, exclude: Set<string>, unreadable: SkippedFile[]): Promise<string[]> {
  const out: string[] = [];
  const pending = [root];
  while (pending.length > 0) {
    const dir = pending.pop()!;
    let entries: Dirent[];
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (e) {
      unreadable.push({ path: dir, reason: (e as Error).message });
      continue;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (!exclude.has(full)) pending.push(full);
      } else if (e.isFile()) {
        out.push(full);
      } else if (e.isSymbolicLink()) {
        const st = await fsp.stat(full).catch(() => undefined);
        if (st?.isFile()) out.push(full);
      }
    }
  }
  return out.sort();
}

/** One file: its record, or why it was skipped. Never throws. */
async function scanFile(file: string, scratch: Buffer): Promise<ScannedInstance | SkippedFile> {
  let fd: number | undefined;
  try {
    fd = await openAsync(file);
    const firstRead = await readAsync(fd, scratch, scratch.length);
    let buf = scratch.subarray(0, firstRead);
    // The file's size is only asked for when the first read filled the buffer.
    let size = firstRead < scratch.length ? firstRead : await sizeAsync(fd);
    for (;;) {
      const complete = buf.length >= size;
      try {
        const { record, encoding } = parse(buf, complete);
        return { ...record, path: file, sizeBytes: size, encoding };
      } catch (e) {
        if (!(e instanceof NeedMoreBytes) || complete) throw e;
      }
      const want = Math.min(size, buf.length * 4, MAX_HEADER_BYTES);
      if (want <= buf.length) throw new HeaderError(`no complete header in the first ${buf.length} bytes`);
      const bigger = Buffer.allocUnsafe(want);
      const bytesRead = await readAsync(fd, bigger, want);
      buf = bigger.subarray(0, bytesRead);
      if (bytesRead < want) size = bytesRead;
    }
  } catch (e) {
    return { path: file, reason: reasonOf(e) };
  } finally {
    if (fd !== undefined) close(fd, () => undefined);
  }
}

// The callback API: a FileHandle costs an object, a finaliser and a promise per call, which shows at
// 100,000 files.
const openAsync = (file: string) => new Promise<number>((ok, fail) => open(file, 'r', (e, fd) => (e ? fail(e) : ok(fd))));
const readAsync = (fd: number, buf: Buffer, length: number) =>
  new Promise<number>((ok, fail) => read(fd, buf, 0, length, 0, (e, n) => (e ? fail(e) : ok(n))));
const sizeAsync = (fd: number) => new Promise<number>((ok, fail) => fstat(fd, (e, st) => (e ? fail(e) : ok(st.size))));

function reasonOf(e: unknown): string {
  if (e instanceof NotDicom || e instanceof HeaderError) return e.message;
  if (e instanceof NeedMoreBytes) return 'file ends before its header does (truncated?)';
  const err = e as NodeJS.ErrnoException;
  return err.code ? `cannot read: ${err.code} ${err.message}` : `unreadable DICOM: ${err.message}`;
}

class NotDicom extends Error {}

/** Media Storage Directory Storage: the DICOMDIR of a CD/DVD. */
const MEDIA_DIRECTORY = '1.2.840.10008.1.3.10';

/** Part 10 (preamble + "DICM") or a raw little-endian dataset starting in group 0008. */
function parse(buf: Buffer, complete: boolean): { record: InstanceRecord; encoding: ScannedInstance['encoding'] } {
  if (buf.length >= 132 && buf.toString('latin1', 128, 132) === 'DICM') {
    const meta = readPart10Meta(buf);
    const ts = meta.transferSyntaxUid;
    if (ts === TS.ExplicitVRBigEndian) throw new HeaderError(`transfer syntax ${ts} (explicit VR big endian, retired) is not read; convert with dcmconv +te`);
    if (ts === TS.DeflatedExplicitVRLittleEndian) throw new HeaderError(`transfer syntax ${ts} (deflated) is not read; convert with dcmconv +te`);
    if (meta.mediaStorageSopClassUid === MEDIA_DIRECTORY) throw new NotDicom('a DICOMDIR (media directory), not an instance');
    return { record: readInstanceRecord(buf.subarray(meta.datasetOffset), isExplicitVr(ts), complete), encoding: { part10: true, transferSyntaxUid: ts } };
  }
  if (buf.length < 8) throw new NotDicom(`not DICOM: ${buf.length} bytes`);
  const group = buf.readUInt16LE(0);
  if (group !== 0x0008) throw new NotDicom('not DICOM: no "DICM" marker and no raw dataset starting with group 0008');
  // A raw dataset: explicit VR when the two bytes after the tag spell a VR (DCMTK's guess too).
  const explicit = /^[A-Z]{2}$/.test(buf.toString('latin1', 4, 6));
  const transferSyntaxUid = explicit ? TS.ExplicitVRLittleEndian : TS.ImplicitVRLittleEndian;
  return { record: readInstanceRecord(buf, explicit, complete), encoding: { part10: false, transferSyntaxUid } };
}
