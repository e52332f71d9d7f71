import { promises as fsp } from 'node:fs';
import { readHeader, readPart10Meta, NeedMoreBytes, type InstanceHeader, type Part10Meta } from './header.js';
import { isExplicitVr } from './transfer-syntax.js';

/** Reads the identifying header of a Part 10 file (first 1 MiB, more if needed). */
export async function readPart10Header(file: string): Promise<{ meta: Part10Meta; header: InstanceHeader }> {
  const h = await fsp.open(file, 'r');
  try {
    let size = 1 << 20;
    for (;;) {
      const buf = Buffer.allocUnsafe(size);
      const { bytesRead } = await h.read(buf, 0, size, 0);
      const data = buf.subarray(0, bytesRead);
      try {
        const meta = readPart10Meta(data);
        const header = readHeader(data.subarray(meta.datasetOffset), isExplicitVr(meta.transferSyntaxUid), bytesRead < size);
        return { meta, header };
      } catch (e) {
        if (!(e instanceof NeedMoreBytes) || bytesRead < size || size >= 64 << 20) throw e;
        size *= 4;
      }
    }
  } finally {
    await h.close();
  }
}

