/**
 * Safe reading of uploaded archives (.zip, .tar.gz): every entry comes out either as bytes to
 * ingest or as a refusal with a reason. Nothing here writes to disk, so a hostile name
 * (absolute, `..`) can never land outside anywhere; it is still refused and reported, because
 * it says the archive is not what the user thinks. Links, devices and FIFOs are refused too.
 */
import { open } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { readZipDirectory, readZipEntry, S_IFREG } from '../io/zip.js';

export type ArchiveEntry =
  | { name: string; data: Buffer }
  | { name: string; refused: string };

export interface ArchiveLimits {
  /** Entries bigger than this are refused without being inflated or buffered. */
  maxEntryBytes: number;
}

/** Why an entry name may not be used, or undefined when it is a plain relative path. */
export function unsafeEntryName(name: string): string | undefined {
  if (name.includes('\0')) return 'the name contains a NUL byte';
  if (name.startsWith('/') || name.startsWith('\\') || /^[A-Za-z]:/.test(name)) return 'absolute path in the archive (refused: entries must be relative)';
  if (name.split(/[\\/]/).includes('..')) return 'path with ".." in the archive (refused: it would point outside the upload)';
  return undefined;
}

/** The entries of a zip file on disk, one at a time (only the current entry is in memory). */
export async function* zipEntries(file: string, limits: ArchiveLimits): AsyncGenerator<ArchiveEntry> {
  const h = await open(file, 'r');
  try {
    const size = (await h.stat()).size;
    for (const e of await readZipDirectory(h, size)) {
      const unsafe = unsafeEntryName(e.name);
      if (unsafe) yield { name: e.name, refused: unsafe };
      else if (e.isDirectory) continue;
      else if (e.unixType !== undefined && e.unixType !== S_IFREG) yield { name: e.name, refused: `${unixTypeName(e.unixType)} in the archive (only regular files are taken)` };
      else if (e.size > limits.maxEntryBytes) yield { name: e.name, refused: `entry of ${e.size} bytes is larger than the largest instance the node takes (${limits.maxEntryBytes} bytes)` };
      else {
        try {
          yield { name: e.name, data: await readZipEntry(h, e) };
        } catch (err) {
          yield { name: e.name, refused: `cannot read the entry: ${(err as Error).message}` };
        }
      }
    }
  } finally {
    await h.close();
  }
}

function unixTypeName(t: number): string {
  switch (t) {
    case 0o120000: return 'symbolic link';
    case 0o020000: return 'character device';
    case 0o060000: return 'block device';
    case 0o010000: return 'FIFO';
    case 0o140000: return 'socket';
    default: return `special file (type 0${t.toString(8)})`;
  }
}

/** Pulls exact byte counts out of a stream of chunks. */
class ChunkReader {
  private readonly it: AsyncIterator<Buffer>;
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(n: number): Promise<boolean> {
    while (this.buf.length < n && !this.ended) {
      const r = await this.it.next();
      if (r.done) this.ended = true;
      else this.buf = this.buf.length === 0 ? r.value : Buffer.concat([this.buf, r.value]);
    }
    return this.buf.length >= n;
  }

  /** Exactly n bytes, or undefined at the end of the stream. */
  async read(n: number): Promise<Buffer | undefined> {
    if (!(await this.fill(n))) return undefined;
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Drops n bytes without keeping them; false if the stream ended first. */
  async skip(n: number): Promise<boolean> {
    while (n > 0) {
      if (this.buf.length === 0 && !(await this.fill(1))) return false;
      const k = Math.min(n, this.buf.length);
      this.buf = this.buf.subarray(k);
      n -= k;
    }
    return true;
  }
}

const BLOCK = 512;

function tarString(b: Buffer, off: number, len: number): string {
  const s = b.subarray(off, off + len);
  const z = s.indexOf(0);
  return (z < 0 ? s : s.subarray(0, z)).toString('utf8');
}

/** A numeric header field: octal text, or base-256 (GNU) when the high bit is set. */
function tarNumber(b: Buffer, off: number, len: number): number {
  if (b[off] & 0x80) {
    let v = b[off] & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i];
    return v;
  }
  const t = tarString(b, off, len).trim();
  return t === '' ? 0 : parseInt(t, 8);
}

function checksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i];
  return sum === tarNumber(h, 148, 8);
}

/** `path=` (and others) from a pax extended header: records of "<len> key=value\n". */
function paxRecords(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let p = 0;
  while (p < data.length) {
    const sp = data.indexOf(0x20, p);
    if (sp < 0) break;
    const len = parseInt(data.subarray(p, sp).toString('ascii'), 10);
    if (!(len > 0)) break;
    const rec = data.subarray(sp + 1, p + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    p += len;
  }
  return out;
}

const TAR_TYPES: Record<string, string> = {
  '1': 'hard link',
  '2': 'symbolic link',
  '3': 'character device',
  '4': 'block device',
  '6': 'FIFO',
};

/** Metadata entries (pax, GNU long names) are small; bigger ones are a broken or hostile archive. */
const MAX_META_BYTES = 1024 * 1024;

/**
 * The entries of a tar stream (ustar, pax, GNU long names). The stream is read once, in order:
 * regular files come out as bytes, links/devices/FIFOs and unsafe names as refusals.
 */
export async function* tarEntries(source: AsyncIterable<Buffer>, limits: ArchiveLimits): AsyncGenerator<ArchiveEntry> {
  const r = new ChunkReader(source);
  let longName: string | undefined;
  let pax = new Map<string, string>();
  for (;;) {
    const h = await r.read(BLOCK);
    if (!h) throw new Error('truncated tar archive (it ends without the two empty end blocks)');
    if (h.every((b) => b === 0)) return; // end of archive
    if (!checksumOk(h)) throw new Error('not a tar archive, or a corrupt one (header checksum mismatch)');
    const type = String.fromCharCode(h[156] || 0x30);
    const size = tarNumber(h, 124, 12);
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'x' || type === 'g' || type === 'L') {
      if (size > MAX_META_BYTES) throw new Error(`tar metadata entry of ${size} bytes (refused as malformed)`);
      const data = (await r.read(padded))?.subarray(0, size);
      if (!data) throw new Error('truncated tar archive');
      if (type === 'x') pax = paxRecords(data);
      else if (type === 'L') longName = tarString(data, 0, data.length);
      continue; // 'g' (global pax) carries nothing we use
    }
    const prefix = h.subarray(257, 263).toString('latin1').startsWith('ustar') ? tarString(h, 345, 155) : '';
    const ustarName = prefix ? `${prefix}/${tarString(h, 0, 100)}` : tarString(h, 0, 100);
    const name = pax.get('path') ?? longName ?? ustarName;
    const entrySize = pax.has('size') ? Number(pax.get('size')) : size;
    const entryPadded = Math.ceil(entrySize / BLOCK) * BLOCK;
    pax = new Map();
    longName = undefined;
    const unsafe = unsafeEntryName(name);
    let refusal: string | undefined;
    if (unsafe) refusal = unsafe;
    else if (TAR_TYPES[type]) refusal = `${TAR_TYPES[type]} in the archive (only regular files are taken)`;
    else if (type === '5') refusal = undefined; // a directory: nothing to take
    else if (type !== '0' && type !== '7') refusal = `tar entry type "${type}" is not a regular file`;
    else if (entrySize > limits.maxEntryBytes) refusal = `entry of ${entrySize} bytes is larger than the largest instance the node takes (${limits.maxEntryBytes} bytes)`;
    if (refusal !== undefined || type === '5') {
      if (!(await r.skip(entryPadded))) throw new Error('truncated tar archive');
      if (refusal !== undefined) yield { name, refused: refusal };
      continue;
    }
    const data = await r.read(entryPadded);
    if (!data) throw new Error(`truncated tar archive (in ${name})`);
    yield { name, data: data.subarray(0, entrySize) };
  }
}

/** The entries of a gzip-compressed tar stream. */
export async function* tarGzEntries(source: Readable, limits: ArchiveLimits): AsyncGenerator<ArchiveEntry> {
  const gunzip = createGunzip();
  source.on('error', (e) => gunzip.destroy(e));
  source.pipe(gunzip);
  try {
    yield* tarEntries(gunzip, limits);
  } finally {
    // The archive may end before its stream does (padding): stop reading; the caller drains.
    source.unpipe(gunzip);
    source.destroy();
    gunzip.destroy();
  }
}
