// node.max_upload_files and node.max_upload_mb: an upload over either is answered 413 with a
// message naming the key. A request whose declared size is over the limit is refused before
// anything is read (nothing stored); a multipart upload that passes the limit part-way stops there:
// the files stored before it stay, and the answer says how many. Both are audited.
import { describe, it, expect, afterAll } from 'vitest';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { startNode, tempDir, type NodeHandle } from './helpers/node.js';
import { writeTestDicom } from './helpers/dcmtk.js';
import { readAudit } from '../src/audit/audit-log.js';

function form(files: { name: string; data: Buffer }[]): FormData {
  const f = new FormData();
  for (const p of files) f.append('files[]', new Blob([new Uint8Array(p.data)]), p.name);
  return f;
}

describe('upload limits', () => {
  const nodes: NodeHandle[] = [];
  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
  });

  it('answers 413 over node.max_upload_files and node.max_upload_mb, with what was stored', async () => {
    const node = await startNode({ configYaml: 'node:\n  stable_seconds: 3600\n  max_upload_files: 2\n  max_upload_mb: 1\n' });
    nodes.push(node);
    const work = tempDir();
    const files = [];
    for (let i = 0; i < 3; i++) files.push(await writeTestDicom(path.join(work, `${i}.dcm`), { patientId: 'LIM' }));
    const parts = files.map((f) => ({ name: path.basename(f.file), data: readFileSync(f.file) }));

    // Two files: within the limit.
    const ok = await node.api('/api/upload', { method: 'POST', body: form(parts.slice(0, 2)) });
    expect(ok.status).toBe(200);
    expect(ok.body.stored).toBe(2);

    // Three new files: the third passes node.max_upload_files. The request stops there; what was stored
    // before it (if the parser got that far) stays and is counted in the answer.
    const more = [];
    for (let i = 3; i < 6; i++) more.push(await writeTestDicom(path.join(work, `${i}.dcm`), { patientId: 'LIM' }));
    const tooMany = await node.api('/api/upload', { method: 'POST', body: form(more.map((f) => ({ name: path.basename(f.file), data: readFileSync(f.file) }))) });
    expect(tooMany.status).toBe(413);
    expect(tooMany.body.error).toMatch(/more than 2 files .*node\.max_upload_files/);
    expect(tooMany.body.stored).toBeLessThanOrEqual(2);
    const count = () => node.api('/api/studies').then((r) => (r.body as { instance_count: number }[]).reduce((a, s) => a + s.instance_count, 0));
    expect(await count()).toBe(2 + tooMany.body.stored);

    // Over 1 MB declared: refused from the headers alone, before a byte of the body is read.
    const tooBig = await new Promise<{ status: number; body: any }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: node.httpPort, method: 'POST', path: '/api/upload', headers: { 'content-type': 'multipart/form-data; boundary=x', 'content-length': String(1_200_000) } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => {
          req.destroy();
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) });
        });
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    expect(tooBig.status).toBe(413);
    expect(tooBig.body.error).toMatch(/larger than the limit of 1 MB \(node\.max_upload_mb\); nothing was stored/);
    expect(tooBig.body.stored).toBe(0);
    expect(await count()).toBe(2 + tooMany.body.stored);

    const uploads = readAudit(path.join(node.dataDir, 'audit', 'audit.jsonl')).filter((e) => e.type === 'http.upload');
    expect(uploads.map((e) => [e.outcome, e.status])).toEqual([['success', 200], ['failure', 413], ['failure', 413]]);
  });
});
