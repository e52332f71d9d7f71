// The upload / job API of the web UI against a real node: DICOM files, a zip and a tar.gz go in
// through POST /api/upload (the same store path as C-STORE), the study completes and its job runs
// with live progress (GET /api/jobs and the SSE stream), results come out as a zip and as single
// files; hostile archives, non-DICOM files, missing keys and unsafe paths are refused.
import { describe, it, expect, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { startNode, tempDir, type NodeHandle } from './helpers/node.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';
import { zip } from '../src/io/zip.js';

const KEY = 'upload-test-key-1234';
const phantom = { rows: 64, columns: 64, slices: 12, pixelSpacingMm: [6, 6] as [number, number], sliceThicknessMm: 10 };
const small = { rows: 32, columns: 32, slices: 4, pixelSpacingMm: [8, 8] as [number, number], sliceThicknessMm: 10 };

type Job = { id: number; study_uid: string; state: string; result: { courseDir: string } | null; progress: { stage: string | null; stages: { stage: string; status: string; ms: number }[] } | null };

function form(parts: { name: string; data: Buffer }[]): FormData {
  const f = new FormData();
  for (const p of parts) f.append('files[]', new Blob([new Uint8Array(p.data)]), p.name);
  return f;
}

/** Reads SSE events from a fetch body until `until` is satisfied or the stream ends. */
async function collectEvents(body: ReadableStream<Uint8Array>, sink: { event: string; data: any }[]): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true as const }));
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event && data) sink.push({ event, data: JSON.parse(data) });
    }
  }
}

/** A raw GET whose path is sent as written (fetch would normalise `..` away). */
function rawGet(port: number, p: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p, headers: { 'x-api-key': KEY } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
}

describe('upload and job API (web UI server side)', () => {
  const nodes: NodeHandle[] = [];
  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
  });

  it('stores uploaded files, zips and tar.gz like C-STOREs, runs the job with live progress, and refuses what is unsafe', async () => {
    const node = await startNode({ args: ['--stable-seconds', '1'], env: { RTPIPELINE_API_KEY: KEY } });
    nodes.push(node);
    const base = `http://127.0.0.1:${node.httpPort}`;
    const api = async (p: string, init: RequestInit = {}) => {
      const r = await fetch(base + p, { ...init, headers: { 'x-api-key': KEY, ...(init.headers as Record<string, string>) } });
      const text = await r.text();
      let body: any = text;
      try {
        body = JSON.parse(text);
      } catch {
        /* text */
      }
      return { status: r.status, body, headers: r.headers };
    };

    // The key: required everywhere but /health; ?key= only for GET.
    expect((await fetch(`${base}/api/jobs`)).status).toBe(401);
    expect((await fetch(`${base}/health`)).status).toBe(200);
    expect((await fetch(`${base}/api/jobs?key=${KEY}`)).status).toBe(200);
    expect((await fetch(`${base}/api/jobs?key=wrong`)).status).toBe(401);
    expect((await fetch(`${base}/api/upload?key=${KEY}`, { method: 'POST', body: form([]) })).status).toBe(401);

    // Live events from before the upload.
    const events: { event: string; data: any }[] = [];
    const sseAbort = new AbortController();
    const sse = await fetch(`${base}/api/events?key=${KEY}`, { signal: sseAbort.signal });
    expect(sse.status).toBe(200);
    expect(sse.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reading = collectEvents(sse.body!, events);

    // 1. A CT series as individual files (folder-style relative names), plus a non-DICOM file.
    const ctA = await writeCtSeries(path.join(tempDir(), 'a'), { patientId: 'UPL-A', patientName: 'Upload^Files', studyDate: '20260401', phantom });
    const filesA = ctA.files.map((f) => ({ name: `folder/ct/${path.basename(f)}`, data: readFileSync(f) }));
    const up1 = await api('/api/upload', { method: 'POST', body: form([...filesA, { name: 'folder/notes.txt', data: Buffer.from('not DICOM\n'.repeat(20)) }]) });
    expect(up1.status, JSON.stringify(up1.body)).toBe(200);
    expect(up1.body.stored).toBe(phantom.slices);
    expect(up1.body.duplicates).toBe(0);
    expect(up1.body.refused).toHaveLength(1);
    expect(up1.body.refused[0].name).toBe('folder/notes.txt');
    expect(up1.body.refused[0].reason).toMatch(/not a DICOM Part 10 file|DICM/);
    expect(up1.body.summary.patients).toEqual([
      { patientId: 'UPL-A', patientName: 'Upload^Files', studies: [{ studyInstanceUid: ctA.studyInstanceUid, studyDate: '20260401', modalities: { CT: phantom.slices }, instances: phantom.slices }] },
    ]);
    expect(up1.body.summary.warnings).toEqual([]);
    // The same files again: duplicates, nothing new.
    const again = await api('/api/upload', { method: 'POST', body: form(filesA.slice(0, 3)) });
    expect([again.body.stored, again.body.duplicates]).toEqual([0, 3]);

    // 2. A zip (zip CLI) of another study, and a zip with a `../` entry.
    const work = tempDir('rtp-upload-');
    const ctB = await writeCtSeries(path.join(work, 'b'), { patientId: 'UPL-B', patientName: 'Upload^Zip', studyDate: '20260402', phantom: small });
    execFileSync('zip', ['-q', '-r', path.join(work, 'b.zip'), 'b'], { cwd: work });
    const evilZip = zip([
      { name: '../evil.dcm', data: readFileSync(ctB.files[0]) },
      { name: '/abs/evil2.dcm', data: readFileSync(ctB.files[0]) },
      { name: 'ok/slice.dcm', data: readFileSync(ctB.files[1]) },
    ]);
    const up2 = await api('/api/upload', { method: 'POST', body: form([{ name: 'b.zip', data: readFileSync(path.join(work, 'b.zip')) }, { name: 'evil.zip', data: evilZip }]) });
    expect(up2.status, JSON.stringify(up2.body)).toBe(200);
    expect(up2.body.stored).toBe(small.slices);
    expect(up2.body.duplicates).toBe(1); // ok/slice.dcm is a slice of b.zip
    const refused2 = Object.fromEntries(up2.body.refused.map((r: { name: string; reason: string }) => [r.name, r.reason]));
    expect(Object.keys(refused2).sort()).toEqual(['evil.zip//abs/evil2.dcm', 'evil.zip/../evil.dcm'].sort());
    expect(refused2['evil.zip/../evil.dcm']).toMatch(/\.\./);
    expect(refused2['evil.zip//abs/evil2.dcm']).toMatch(/absolute/);
    expect(up2.body.summary.patients.map((p: { patientId: string }) => p.patientId)).toEqual(['UPL-B']);
    expect(up2.body.summary.patients[0].studies[0].modalities).toEqual({ CT: small.slices });

    // 3. A tar.gz (tar CLI) with a symlink and a nested folder.
    const ctC = await writeCtSeries(path.join(work, 'c', 'ct'), { patientId: 'UPL-C', patientName: 'Upload^Tar', studyDate: '20260403', phantom: small });
    symlinkSync('/etc/passwd', path.join(work, 'c', 'link.dcm'));
    execFileSync('tar', ['czf', path.join(work, 'c.tar.gz'), 'c'], { cwd: work });
    const up3 = await api('/api/upload', { method: 'POST', body: form([{ name: 'c.tar.gz', data: readFileSync(path.join(work, 'c.tar.gz')) }]) });
    expect(up3.status, JSON.stringify(up3.body)).toBe(200);
    expect(up3.body.stored).toBe(small.slices);
    expect(up3.body.refused).toEqual([{ name: 'c.tar.gz/c/link.dcm', reason: expect.stringMatching(/symbolic link/) }]);
    expect(up3.body.summary.patients[0].studies[0].studyInstanceUid).toBe(ctC.studyInstanceUid);

    // A tar with a `..` entry (GNU tar keeps it with -P): refused, nothing written outside.
    const evilDir = path.join(work, 'evil', 'inner');
    mkdirSync(evilDir, { recursive: true });
    copyFileSync(ctC.files[0], path.join(work, 'evil', 'x.dcm'));
    execFileSync('tar', ['-P', '-czf', path.join(work, 'evil.tgz'), 'inner/../x.dcm'], { cwd: path.join(work, 'evil') });
    const up4 = await api('/api/upload', { method: 'POST', body: form([{ name: 'evil.tgz', data: readFileSync(path.join(work, 'evil.tgz')) }]) });
    expect(up4.body.refused).toEqual([{ name: 'evil.tgz/inner/../x.dcm', reason: expect.stringMatching(/\.\./) }]);
    expect(up4.body.stored + up4.body.duplicates).toBe(0);
    for (const p of [path.join(node.dataDir, '..', 'evil.dcm'), path.join(node.dataDir, 'evil.dcm'), '/abs/evil2.dcm']) expect(existsSync(p), p).toBe(false);

    // Bad requests.
    expect((await api('/api/upload', { method: 'POST', body: 'x', headers: { 'content-type': 'text/plain' } })).status).toBe(400);

    // 4. The job of study A: running (DELETE refused), then done with its progress.
    const jobOf = async (uid: string) => ((await api('/api/jobs')).body as Job[]).find((j) => j.study_uid === uid);
    const running = await node.waitFor(async () => {
      const j = await jobOf(ctA.studyInstanceUid);
      return j && (j.state === 'running' || j.state === 'queued') ? j : undefined;
    }, 30_000, 'study A job queued or running');
    const del409 = await api(`/api/jobs/${running.id}`, { method: 'DELETE' });
    expect(del409.status).toBe(409);
    expect(del409.body.error).toMatch(/cancel it first/);
    const job = await node.waitFor(async () => {
      const j = await jobOf(ctA.studyInstanceUid);
      return j && ['done', 'failed', 'cancelled'].includes(j.state) ? j : undefined;
    }, 120_000, 'study A job to finish');
    expect(job.state, JSON.stringify(job)).toBe('done');
    const one = (await api(`/api/jobs/${job.id}`)).body as Job;
    expect(one.progress!.stages.map((s) => s.stage)).toEqual(expect.arrayContaining(['organize', 'segmentation']));
    for (const s of one.progress!.stages) expect(['done', 'skipped']).toContain(s.status);
    expect(one.progress!.stages.find((s) => s.stage === 'segmentation')!.status).toBe('done');

    // The SSE stream saw the job go through its stages.
    await node.waitFor(() => events.some((e) => e.event === 'job' && e.data.id === job.id && e.data.state === 'done'), 5_000, 'SSE done event');
    expect(events[0].event).toBe('hello');
    const seen = events.filter((e) => e.event === 'job' && e.data.id === job.id);
    expect(seen.some((e) => e.data.progress?.stages.some((s: { stage: string; status: string }) => s.stage === 'segmentation' && s.status === 'running'))).toBe(true);

    // 5. Results: the whole course as a zip, and single files.
    const dl = await fetch(`${base}/api/jobs/${job.id}/download?key=${KEY}`);
    expect(dl.status).toBe(200);
    expect(dl.headers.get('content-type')).toBe('application/zip');
    expect(dl.headers.get('content-disposition')).toMatch(/^attachment; filename="UPL-A_[^"]+\.zip"$/);
    const zipFile = path.join(work, 'course.zip');
    writeFileSync(zipFile, Buffer.from(await dl.arrayBuffer()));
    const listing = execFileSync('unzip', ['-l', zipFile], { encoding: 'utf8' });
    expect(listing).toMatch(/\bRS_auto\.dcm\b/);
    execFileSync('unzip', ['-tq', zipFile]); // CRCs and structure valid
    const rs = await fetch(`${base}/api/jobs/${job.id}/files/RS_auto.dcm?key=${KEY}`);
    expect(rs.status).toBe(200);
    expect(rs.headers.get('content-type')).toBe('application/dicom');
    expect(Buffer.from(await rs.arrayBuffer()).equals(readFileSync(path.join(job.result!.courseDir, 'RS_auto.dcm')))).toBe(true);
    expect((await api(`/api/jobs/${job.id}/files/none.html`)).status).toBe(404);
    expect((await api(`/api/jobs/${job.id}/files/..%2F..%2F..%2Findex.sqlite`)).status).toBe(400);
    expect(await rawGet(node.httpPort, `/api/jobs/${job.id}/files/../../../../index.sqlite`)).toBe(400);
    // A link inside the course folder pointing out is not served.
    symlinkSync(path.join(node.dataDir, 'index.sqlite'), path.join(job.result!.courseDir, 'escape.sqlite'));
    expect((await api(`/api/jobs/${job.id}/files/escape.sqlite`)).status).toBe(404);

    // 6. Delete the finished job: the row goes, the folder stays; the stream says so.
    const del = await api(`/api/jobs/${job.id}`, { method: 'DELETE' });
    expect(del).toMatchObject({ status: 200, body: { deleted: true } });
    expect((await api(`/api/jobs/${job.id}`)).status).toBe(404);
    expect(existsSync(path.join(job.result!.courseDir, 'RS_auto.dcm'))).toBe(true);
    expect((await api(`/api/jobs/${job.id}`, { method: 'DELETE' })).status).toBe(404);
    await node.waitFor(() => events.some((e) => e.data.id === job.id && e.data.deleted === true), 5_000, 'SSE delete event');

    sseAbort.abort();
    await reading;
  }, 120_000);
});
