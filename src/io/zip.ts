/**
 * Zip archives without a dependency: a writer (whole archive in memory, or streamed entry by entry)
 * and a reader of the central directory over a file handle. No zip64: archives and entries over
 * 4 GiB are refused with a clear error (our outputs and uploads stay far below).
 */
import { promisify } from 'node:util';
import { crc32, deflateRaw, deflateRawSync, inflateRawSync } from 'node:zlib';

const deflateRawAsync = promisify(deflateRaw);
import type { FileHandle } from 'node:fs/promises';

export interface ZipInput {
  /** Path inside the archive, `/`-separated. */
  name: string;
  data: Buffer;
  /** Default true; false stores the bytes as they are (already compressed PNG, .gz). */
  compress?: boolean;
}

const DOS_TIME = 0; // 00:00:00
const DOS_DATE = ((2020 - 1980) << 9) | (1 << 5) | 1; // 2020-01-01: same inputs, same bytes
const U32_MAX = 0xffffffff;
const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_END = 0x06054b50;

/**
 * Builds a zip entry by entry: `add` returns the bytes to write (local header and data) and keeps
 * the central directory entry; `finish` returns the central directory and its end record.
 */
export class ZipBuilder {
  private readonly central: Buffer[] = [];
  private offset = 0;
  private count = 0;

  add(f: ZipInput): Buffer {
    return this.addPacked(f, f.compress === false ? f.data : deflateRawSync(f.data));
  }

  /** `add` with the data already deflated (or stored, when `f.compress` is false). */
  addPacked(f: ZipInput, packed: Buffer): Buffer {
    const name = Buffer.from(f.name, 'utf8');
    const method = f.compress === false ? 0 : 8;
    if (f.data.length >= U32_MAX || this.offset + packed.length >= U32_MAX) {
      throw new Error(`zip: ${f.name} would take the archive over 4 GiB (zip64 is not written); download the course folder's files one by one`);
    }
    const crc = crc32(f.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(SIG_LOCAL, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(DOS_TIME, 10);
    local.writeUInt16LE(DOS_DATE, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(packed.length, 18);
    local.writeUInt32LE(f.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const entry = Buffer.alloc(46);
    entry.writeUInt32LE(SIG_CENTRAL, 0);
    entry.writeUInt16LE(20, 4);
    entry.writeUInt16LE(20, 6);
    entry.writeUInt16LE(0x0800, 8);
    entry.writeUInt16LE(method, 10);
    entry.writeUInt16LE(DOS_TIME, 12);
    entry.writeUInt16LE(DOS_DATE, 14);
    entry.writeUInt32LE(crc, 16);
    entry.writeUInt32LE(packed.length, 20);
    entry.writeUInt32LE(f.data.length, 24);
    entry.writeUInt16LE(name.length, 28);
    entry.writeUInt32LE(this.offset, 42);
    this.central.push(entry, name);
    this.count++;
    const out = Buffer.concat([local, name, packed]);
    this.offset += out.length;
    return out;
  }

  finish(): Buffer {
    if (this.count > 0xffff) throw new Error(`zip: ${this.count} entries is more than a zip without zip64 can hold (65535)`);
    const cd = Buffer.concat(this.central);
    const end = Buffer.alloc(22);
    end.writeUInt32LE(SIG_END, 0);
    end.writeUInt16LE(this.count, 8);
    end.writeUInt16LE(this.count, 10);
    end.writeUInt32LE(cd.length, 12);
    end.writeUInt32LE(this.offset, 16);
    return Buffer.concat([cd, end]);
  }
}

/** A whole zip archive in memory, with a fixed timestamp so the same files give the same bytes. */
export function zip(files: ZipInput[]): Buffer {
  const b = new ZipBuilder();
  const parts = files.map((f) => b.add(f));
  return Buffer.concat([...parts, b.finish()]);
}

/** A zip streamed entry by entry: only one file's bytes are in memory at a time. */
/** A zip as a stream of chunks; deflate runs on the threadpool, so the daemon's event loop stays free. */
export async function* zipStream(files: AsyncIterable<ZipInput> | Iterable<ZipInput>): AsyncGenerator<Buffer> {
  const b = new ZipBuilder();
  for await (const f of files) yield b.addPacked(f, f.compress === false ? f.data : await deflateRawAsync(f.data));
  yield b.finish();
}

// --- reading ---------------------------------------------------------------------------------

export interface ZipEntry {
  /** The name as stored (not yet checked for safety). */
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  crc: number;
  localHeaderOffset: number;
  /** Unix file type bits (S_IFMT) when the archive was made on Unix, else undefined. */
  unixType: number | undefined;
  encrypted: boolean;
  isDirectory: boolean;
}

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;

/** Reads the central directory of a zip file; throws with what is wrong for anything unreadable. */
export async function readZipDirectory(h: FileHandle, fileSize: number): Promise<ZipEntry[]> {
  const tailLen = Math.min(fileSize, 22 + 0xffff);
  const tail = Buffer.alloc(tailLen);
  await h.read(tail, 0, tailLen, fileSize - tailLen);
  let endAt = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === SIG_END) {
      endAt = i;
      break;
    }
  }
  if (endAt < 0) throw new Error('not a zip archive (no end of central directory record)');
  const count = tail.readUInt16LE(endAt + 10);
  const cdSize = tail.readUInt32LE(endAt + 12);
  const cdOffset = tail.readUInt32LE(endAt + 16);
  if (count === 0xffff || cdSize === U32_MAX || cdOffset === U32_MAX) throw new Error('zip64 archives are not read; make a plain zip (under 4 GiB, 65535 files) or a .tar.gz');
  if (cdOffset + cdSize > fileSize) throw new Error('truncated zip archive (the central directory lies past the end of the file)');
  const cd = Buffer.alloc(cdSize);
  await h.read(cd, 0, cdSize, cdOffset);
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let n = 0; n < count; n++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== SIG_CENTRAL) throw new Error(`corrupt zip central directory at entry ${n + 1}`);
    const madeBy = cd.readUInt16LE(p + 4) >> 8;
    const flags = cd.readUInt16LE(p + 8);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    const external = cd.readUInt32LE(p + 38);
    const name = cd.subarray(p + 46, p + 46 + nameLen).toString(flags & 0x0800 ? 'utf8' : 'latin1');
    const mode = external >>> 16;
    entries.push({
      name,
      method: cd.readUInt16LE(p + 10),
      crc: cd.readUInt32LE(p + 16),
      compressedSize: cd.readUInt32LE(p + 20),
      size: cd.readUInt32LE(p + 24),
      localHeaderOffset: cd.readUInt32LE(p + 42),
      // 3 = Unix: the high 16 bits of the external attributes are st_mode.
      // Permission bits without a file type (Python's zipfile.writestr writes 0o600) mean a plain file.
      unixType: madeBy === 3 && (mode & S_IFMT) !== 0 ? mode & S_IFMT : undefined,
      encrypted: (flags & 1) === 1,
      isDirectory: name.endsWith('/') || (madeBy === 3 && (mode & S_IFMT) === S_IFDIR),
    });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** The uncompressed bytes of one entry, CRC-checked; never more than `entry.size` bytes are inflated. */
export async function readZipEntry(h: FileHandle, e: ZipEntry): Promise<Buffer> {
  if (e.encrypted) throw new Error('encrypted entry');
  if (e.method !== 0 && e.method !== 8) throw new Error(`compression method ${e.method} is not supported (only stored and deflate)`);
  if (e.compressedSize === U32_MAX || e.size === U32_MAX) throw new Error('zip64 entry (over 4 GiB)');
  const head = Buffer.alloc(30);
  await h.read(head, 0, 30, e.localHeaderOffset);
  if (head.readUInt32LE(0) !== SIG_LOCAL) throw new Error('corrupt zip: no local header where the central directory points');
  const dataAt = e.localHeaderOffset + 30 + head.readUInt16LE(26) + head.readUInt16LE(28);
  const packed = Buffer.alloc(e.compressedSize);
  const { bytesRead } = await h.read(packed, 0, e.compressedSize, dataAt);
  if (bytesRead !== e.compressedSize) throw new Error('truncated zip entry');
  let data: Buffer;
  if (e.method === 0) data = packed;
  else {
    try {
      // maxOutputLength: a lying size in the directory cannot make us inflate a bomb.
      data = inflateRawSync(packed, { maxOutputLength: Math.max(1, e.size) });
    } catch (err) {
      throw new Error(`cannot inflate: ${(err as Error).message}`);
    }
  }
  if (data.length !== e.size) throw new Error(`size ${data.length} differs from the ${e.size} bytes the directory states`);
  if (crc32(data) !== e.crc) throw new Error('CRC mismatch (corrupt archive)');
  return data;
}
