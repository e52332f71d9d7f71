// Watched folders in the real node: a CT series copied in slowly (each file in chunks, with pauses
// longer than the watcher's poll) plus a junk file, a dotfile and a nested folder. Every slice must be
// stored whole (never a half-written file), the study must complete once and run its job, and the
// sources must end in processed/ or quarantine/ with a reason.
import { describe, it, expect, afterAll } from 'vitest';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { open, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startNode, tempDir, type NodeHandle } from './helpers/node.js';
import { sleep } from './helpers/ports.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';
import { readPart10Meta } from '../src/dicom/header.js';
import { WATCH_POLL_MS, WATCH_STABLE_MS } from '../src/node/watch-folder.js';

const phantom = { rows: 64, columns: 64, slices: 12, pixelSpacingMm: [6, 6] as [number, number], sliceThicknessMm: 10 };
const CHUNKS = 3;
/** Longer than a poll (so a half-written file is seen) and shorter than the stable window. */
const PAUSE_MS = WATCH_POLL_MS + 300;

/** Writes `bytes` to `dest` in CHUNKS pieces with PAUSE_MS between them, like a slow network copy. */
async function slowCopy(bytes: Buffer, dest: string): Promise<void> {
  await mkdir(path.dirname(dest), { recursive: true });
  const h = await open(dest, 'w');
  try {
    const step = Math.ceil(bytes.length / CHUNKS);
    for (let off = 0; off < bytes.length; off += step) {
      if (off > 0) await sleep(PAUSE_MS);
      await h.write(bytes, off, Math.min(step, bytes.length - off));
    }
  } finally {
    await h.close();
  }
}

/** Dataset bytes of a Part 10 file (what the node must store unchanged, behind its own file meta). */
function datasetOf(bytes: Buffer): Buffer {
  return bytes.subarray(readPart10Meta(bytes).datasetOffset);
}

describe('watched folder (--watch)', () => {
  const nodes: NodeHandle[] = [];
  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
  });

  it('takes slowly copied files only when stable, stores them like C-STOREs, and moves them to processed/ or quarantine/', async () => {
    expect(PAUSE_MS).toBeLessThan(WATCH_STABLE_MS);
    const watchDir = path.join(tempDir('rtp-watch-'), 'drop');
    const node = await startNode({ args: ['--watch', watchDir, '--stable-seconds', '1'] });
    nodes.push(node);

    const ct = await writeCtSeries(path.join(tempDir(), 'ct'), { patientId: 'WATCH-1', patientName: 'Watch^Folder', studyDate: '20260310', phantom });
    const originals = new Map<string, Buffer>(); // relative path in the watched folder → bytes
    ct.files.forEach((f, i) => {
      const rel = i % 2 === 0 ? path.basename(f) : path.join('nested', 'deeper', path.basename(f));
      originals.set(rel, readFileSync(f));
    });
    const junk = Buffer.from('not DICOM at all, just a note someone dropped here\n'.repeat(10));
    await Promise.all([
      ...[...originals].map(([rel, bytes]) => slowCopy(bytes, path.join(watchDir, rel))),
      slowCopy(junk, path.join(watchDir, 'nested', 'notes.txt')),
      writeFile(path.join(watchDir, '.partial.dcm'), originals.values().next().value!),
    ]);

    // The study, whole, and its job done (built-in engine → RS_auto.dcm).
    const study = await node.waitFor(async () => {
      const list = (await node.api('/api/studies')).body as { study_uid: string; instance_count: number; state: string }[];
      return list.find((s) => s.study_uid === ct.studyInstanceUid && s.instance_count === phantom.slices);
    }, 20_000, 'all instances in /api/studies');
    expect(study.instance_count).toBe(phantom.slices);
    const job = await node.waitFor(async () => {
      const jobs = (await node.api('/api/jobs')).body as { study_uid: string; state: string; result: { courseDir: string } | null; error?: string }[];
      const j = jobs.find((x) => x.study_uid === ct.studyInstanceUid);
      return j && ['done', 'failed', 'cancelled'].includes(j.state) ? j : undefined;
    }, 90_000, 'the study job to finish');
    expect(job.state, JSON.stringify(job)).toBe('done');
    expect(existsSync(path.join(job.result!.courseDir, 'RS_auto.dcm'))).toBe(true);
    // One study, one generation, one job: the slow copy did not complete the study early.
    const jobs = (await node.api('/api/jobs')).body as { study_uid: string; generation: number }[];
    expect(jobs.filter((j) => j.study_uid === ct.studyInstanceUid).map((j) => j.generation)).toEqual([1]);

    // Every stored instance holds the whole dataset: no half-written file was taken.
    const detail = (await node.api(`/api/studies/${ct.studyInstanceUid}`)).body as { series: { series_uid: string; instance_count: number }[] };
    expect(detail.series).toHaveLength(1);
    const storeDir = path.join(node.dataDir, 'store', ct.studyInstanceUid, ct.seriesInstanceUid);
    const stored = readdirSync(storeDir);
    expect(stored).toHaveLength(phantom.slices);
    const storedDatasets = new Set(stored.map((f) => datasetOf(readFileSync(path.join(storeDir, f))).toString('base64')));
    for (const bytes of originals.values()) expect(storedDatasets.has(datasetOf(bytes).toString('base64'))).toBe(true);

    // Sources moved to processed/ at their relative paths, unchanged; nothing left behind.
    await node.waitFor(() => (existsSync(path.join(watchDir, 'nested', 'notes.txt')) ? undefined : true), 10_000, 'junk moved');
    for (const [rel, bytes] of originals) {
      expect(existsSync(path.join(watchDir, rel)), `${rel} still in the drop folder`).toBe(false);
      expect(readFileSync(path.join(watchDir, 'processed', rel)).equals(bytes), `processed/${rel}`).toBe(true);
    }
    // The junk in quarantine/ with its reason; the dotfile untouched.
    expect(readFileSync(path.join(watchDir, 'quarantine', 'nested', 'notes.txt')).equals(junk)).toBe(true);
    const reason = readFileSync(path.join(watchDir, 'quarantine', 'nested', 'notes.txt.reason.txt'), 'utf8');
    expect(reason).toMatch(/not a DICOM Part 10 file/);
    expect(existsSync(path.join(watchDir, '.partial.dcm'))).toBe(true);
    expect(existsSync(path.join(watchDir, 'processed', '.partial.dcm'))).toBe(false);

    // Each file is logged with its outcome, and counted.
    const outcomes = node.events().filter((e) => e.component === 'watch' && typeof e.outcome === 'string').map((e) => e.outcome);
    expect(outcomes.filter((o) => o === 'stored')).toHaveLength(phantom.slices);
    expect(outcomes.filter((o) => o === 'quarantined')).toHaveLength(1);
    const metrics = (await node.api('/metrics')).body as string;
    expect(metrics).toContain(`rtpipeline_watch_files_total{outcome="stored"} ${phantom.slices}`);
    expect(metrics).toContain('rtpipeline_watch_files_total{outcome="quarantined"} 1');
  }, 120_000);
});
