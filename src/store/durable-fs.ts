import fs, { promises as fsp, constants as fsc } from 'node:fs';
import path from 'node:path';

/** Small durable-file primitives: a rename or a new file is only durable once its directory is fsynced. */

export async function fsyncDir(dir: string): Promise<void> {
  const h = await fsp.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

export function fsyncDirSync(dir: string): void {
  const fd = fs.openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

const creating = new Map<string, Promise<void>>();

/**
 * mkdir -p that fsyncs the parent of every directory it creates, so the new path survives a power
 * cut. Concurrent callers for the same directory share one creation: a second caller must not see
 * the directory and go on before the first has fsynced its parent.
 */
export async function mkdirDurable(dir: string, known: Set<string>): Promise<void> {
  if (known.has(dir)) return;
  let p = creating.get(dir);
  if (!p) {
    p = createDurable(dir).finally(() => creating.delete(dir));
    creating.set(dir, p);
  }
  await p;
  known.add(dir);
}

async function createDurable(dir: string): Promise<void> {
  const parent = path.dirname(dir);
  if (parent !== dir && !(await exists(parent))) await mkdirDurable(parent, new Set());
  try {
    await fsp.mkdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  await fsyncDir(parent);
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.stat(p);
    return true;
  } catch {
    return false;
  }
}

/** Writes a small file atomically: temp file, fsync, rename, fsync the directory. */
export async function writeFileAtomic(file: string, data: string | Buffer): Promise<void> {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  const h = await fsp.open(tmp, 'w');
  try {
    await h.writeFile(data);
    await h.sync();
  } finally {
    await h.close();
  }
  await fsp.rename(tmp, file);
  await fsyncDir(path.dirname(file));
}

/** Byte-for-byte comparison of two files from the given offsets, streamed in 1 MiB blocks. */
export async function sameContent(a: string, b: string, offsetA = 0, offsetB = 0): Promise<boolean> {
  const [sa, sb] = await Promise.all([fsp.stat(a), fsp.stat(b)]);
  const length = sa.size - offsetA;
  if (length !== sb.size - offsetB || length < 0) return false;
  const [ha, hb] = await Promise.all([fsp.open(a, 'r'), fsp.open(b, 'r')]);
  try {
    const ba = Buffer.allocUnsafe(1 << 20);
    const bb = Buffer.allocUnsafe(1 << 20);
    for (let pos = 0; pos < length; ) {
      const [ra, rb] = await Promise.all([ha.read(ba, 0, ba.length, offsetA + pos), hb.read(bb, 0, bb.length, offsetB + pos)]);
      if (ra.bytesRead !== rb.bytesRead || ra.bytesRead === 0) return false;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
      pos += ra.bytesRead;
    }
    return true;
  } finally {
    await Promise.all([ha.close(), hb.close()]);
  }
}
