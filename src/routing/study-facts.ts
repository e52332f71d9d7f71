import { promises as fsp } from 'node:fs';
import { readHeader, readPart10Meta, NeedMoreBytes } from '../dicom/header.js';
import { readPart10Header } from '../dicom/header-file.js';
import { isExplicitVr } from '../dicom/transfer-syntax.js';
import type { SeriesDetails } from './rules.js';

/** Most headers end well within this; a file whose header does not is read again in full. */
const FIRST_READ = 64 * 1024;

/**
 * BodyPartExamined and SliceThickness of each image file (for the routing constraints): only the
 * first bytes of each file are read, never the pixels.
 */
export async function readSeriesDetails(files: readonly string[]): Promise<SeriesDetails> {
  const details: SeriesDetails = { bodyParts: [], sliceThicknessMm: [] };
  const buf = Buffer.allocUnsafe(FIRST_READ);
  for (const file of files) {
    const header = await headerOf(file, buf);
    details.bodyParts.push(header.bodyPartExamined ?? '');
    details.sliceThicknessMm.push(header.sliceThicknessMm ?? null);
  }
  return details;
}

async function headerOf(file: string, buf: Buffer) {
  const h = await fsp.open(file, 'r');
  let bytesRead: number;
  try {
    ({ bytesRead } = await h.read(buf, 0, buf.length, 0));
  } finally {
    await h.close();
  }
  const data = buf.subarray(0, bytesRead);
  try {
    const meta = readPart10Meta(data);
    return readHeader(data.subarray(meta.datasetOffset), isExplicitVr(meta.transferSyntaxUid), bytesRead < buf.length);
  } catch (e) {
    if (!(e instanceof NeedMoreBytes)) throw new Error(`cannot read the header of ${file} for the routing constraints: ${(e as Error).message}`);
    return (await readPart10Header(file)).header;
  }
}
