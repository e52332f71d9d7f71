import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { readPart10Header } from '../dicom/header-file.js';
import type { IndexDb } from './index-db.js';
import type { StoreLayout } from './instance-store.js';
import type { Logger } from '../log.js';

export interface ReindexResult {
  scanned: number;
  added: number;
  unreadable: string[];
}

/**
 * Brings the index in line with the fsynced files in `store/` (the files are the truth).
 * `mode: 'reconcile'` after an unclean stop adds what the index lost, as new arrivals (their
 * study runs again). `mode: 'rebuild'` for a lost index adds everything as already complete,
 * so a rebuilt node does not re-run every study it ever received.
 */
export async function reindex(layout: StoreLayout, index: IndexDb, log: Logger, mode: 'reconcile' | 'rebuild'): Promise<ReindexResult> {
  const result: ReindexResult = { scanned: 0, added: 0, unreadable: [] };
  const studies = await fsp.readdir(layout.store).catch(() => [] as string[]);
  for (const study of studies) {
    const seriesList = await fsp.readdir(path.join(layout.store, study)).catch(() => [] as string[]);
    for (const series of seriesList) {
      const dir = path.join(layout.store, study, series);
      for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
        if (!name.endsWith('.dcm')) continue;
        result.scanned++;
        const file = path.join(dir, name);
        if (index.getInstance(name.slice(0, -4))?.path === file) continue;
        try {
          const { meta, header } = await readPart10Header(file);
          const stat = await fsp.stat(file);
          index.recordInstance({
            header,
            transferSyntaxUid: meta.transferSyntaxUid,
            path: file,
            size: stat.size,
            receivedAt: Math.round(stat.mtimeMs),
            callingAet: null,
            callingHost: null,
          });
          result.added++;
        } catch (e) {
          result.unreadable.push(`${file}: ${(e as Error).message}`);
        }
      }
    }
  }
  if (mode === 'rebuild') index.db.prepare(`UPDATE studies SET state = 'complete', completed_at = last_received_at WHERE state = 'receiving'`).run();
  log.info({ mode, scanned: result.scanned, added: result.added, unreadable: result.unreadable.length }, 'index checked against the stored files');
  for (const u of result.unreadable.slice(0, 20)) log.warn({ file: u }, 'stored file could not be indexed');
  return result;
}
