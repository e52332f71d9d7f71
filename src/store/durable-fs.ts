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

/** mkdir -p that fsyncs the parent of every directory it creates, so the new path survives a power cut. */
export async function mkdirDurable(dir: string, known: Set<string>): Promise<void> {
  if (known.has(dir)) return;
  const created: string[] = [];
  let cur = dir;
  while (!(await exists(cur))) {
    created.unshift(cur);
    cur = path.dirname(cur);
  }
  for (const d of created) {
    try {
      await fsp.mkdir(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    await fsyncDir(path.dirname(d));
  }
  known.add(dir);
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

/** Byte-for-byte comparison of two files, streamed in 1 MiB blocks. */
export async function sameContent(a: string, b: string): Promise<boolean> {
  const [sa, sb] = await Promise.all([fsp.stat(a), fsp.stat(b)]);
  if (sa.size !== sb.size) return false;
  const [ha, hb] = await Promise.all([fsp.open(a, 'r'), fsp.open(b, 'r')]);
  try {
    const ba = Buffer.allocUnsafe(1 << 20);
    const bb = Buffer.allocUnsafe(1 << 20);
    for (let pos = 0; pos < sa.size; ) {
      const [ra, rb] = await Promise.all([ha.read(ba, 0, ba.length, pos), hb.read(bb, 0, bb.length, pos)]);
      if (ra.bytesRead !== rb.bytesRead || ra.bytesRead === 0) return false;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
      pos += ra.bytesRead;
    }
    return true;
  } finally {
    await Promise.all([ha.close(), hb.close()]);
  }
}
