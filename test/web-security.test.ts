// The web side under hostile use: with RTPIPELINE_API_KEY set, every route of the node's real route
// table (RtNode.routeTable(), the same list the HTTP server serves) refuses a request without the
// key (401) except the documented public ones, and does not answer 401 with it; every path
// parameter of every route is tried with traversal payloads (.., %2e%2e, %2F, ..%5c, absolute
// paths, NUL) and must be refused with a 4xx, never returning a planted secret file outside the
// course folder. Failed authentications are in the audit trail.
import { describe, it, expect, afterAll } from 'vitest';
import http from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { startNode, tempDir, type NodeHandle } from './helpers/node.js';
import { RtNode } from '../src/node/node.js';
import { configSchema } from '../src/config/schema.js';
import { createLogger } from '../src/log.js';
import { readAudit } from '../src/audit/audit-log.js';

const KEY = 'web-security-key-5f2a9c';
const SECRET = 'TOP-SECRET-CONTENT-81f3';

/** A request whose path goes to the server byte for byte (fetch would normalise dot segments). */
function raw(port: number, method: string, p: string, key?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: key ? { 'x-api-key': key } : {} }, (res) => {
      // Event streams never end: the status is what matters, read a little and go.
      if ((res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
        res.destroy();
        return resolve({ status: res.statusCode ?? 0, body: '' });
      }
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The routes the node serves without a key: the health probe, and the web UI's page and static assets
 *  (no patient data; the page asks for the key before it calls the API). */
const PUBLIC = ['GET /health', 'GET /', 'GET /ui/:asset'];

describe('web security: API key on every route, path traversal in every path parameter', () => {
  const nodes: NodeHandle[] = [];
  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
  });

  it('refuses every route without the key and every traversal attempt, and audits failed authentication', async () => {
    const routes = new RtNode(configSchema.parse({}), createLogger({ level: 'silent' })).routeTable();
    expect(routes.length).toBeGreaterThan(10);
    expect(routes.map((r) => `${r.method} ${r.path}`)).toEqual(expect.arrayContaining(PUBLIC));

    // A node with one finished job whose course folder holds a file, and secrets beside it.
    const root = tempDir();
    const dataDir = path.join(root, 'data');
    const first = await startNode({ dataDir });
    await first.stop();
    const courseDir = path.join(dataDir, 'output', 'P1', '2026-01-01');
    mkdirSync(courseDir, { recursive: true });
    writeFileSync(path.join(courseDir, 'qc_report.html'), '<p>report</p>');
    writeFileSync(path.join(dataDir, 'output', 'P1', 'secret.txt'), SECRET);
    writeFileSync(path.join(dataDir, 'secret.txt'), SECRET);
    writeFileSync(path.join(root, 'secret.txt'), SECRET);
    const study = '1.2.826.0.1.3680043.8.498.1';
    const db = new Database(path.join(dataDir, 'index.sqlite'));
    db.prepare(`INSERT INTO studies (study_uid, patient_id, patient_name, study_date, study_time, description, accession, state, generation, first_received_at, last_received_at, completed_at)
      VALUES (?, 'P1', 'P^1', '20260101', '', '', '', 'complete', 1, 1, 1, 1)`).run(study);
    const jobId = Number(db.prepare(`INSERT INTO jobs (study_uid, generation, kind, state, created_at, finished_at, result) VALUES (?, 1, 'study', 'done', 1, 2, ?)`)
      .run(study, JSON.stringify({ courseDir, courseId: '2026-01-01' })).lastInsertRowid);
    db.close();
    const node = await startNode({ dataDir, env: { RTPIPELINE_API_KEY: KEY } });
    nodes.push(node);

    const concrete = (p: string, value: (param: string) => string) =>
      p.split('/').map((seg) => (seg.startsWith(':') ? value(seg.slice(1)) : seg === '*' ? value('*') : seg)).join('/');
    const normal = (param: string) => ({ id: String(jobId), uid: study, asset: 'app.js', '*': 'qc_report.html' })[param] ?? 'x';

    // 1. Without the key: 401 everywhere but the public routes; with it: never 401.
    let refused = 0;
    for (const r of routes) {
      const url = concrete(r.path, normal);
      const label = `${r.method} ${r.path}`;
      const without = await raw(node.httpPort, r.method, url);
      const wrong = await raw(node.httpPort, r.method, url, 'wrong-key');
      if (PUBLIC.includes(label)) {
        expect(without.status, label).not.toBe(401);
        continue;
      }
      expect(without.status, label).toBe(401);
      expect(wrong.status, label).toBe(401);
      refused += 2;
      // Side-effect-free with the key: state-changing routes get an id that does not exist.
      const safeUrl = r.method === 'GET' ? url : concrete(r.path, (p) => ({ id: '999999', uid: '1.2.3.999999' })[p] ?? normal(p));
      const withKey = await raw(node.httpPort, r.method, safeUrl, KEY);
      expect(withKey.status, label).not.toBe(401);
    }
    // ?key= works for GET only (links, event streams); a POST must send the header.
    expect((await raw(node.httpPort, 'GET', `/api/jobs?key=${KEY}`)).status).toBe(200);
    expect((await raw(node.httpPort, 'POST', `/api/jobs/${jobId}/cancel?key=${KEY}`)).status).toBe(401);
    refused++;

    // 2. Traversal in every path parameter of every route, with the key.
    const payloads = [
      '..', '%2e%2e', '%2E%2E', '..%2f..%2fsecret.txt', '..%2F..%2F..%2Fsecret.txt', '%2e%2e%2fsecret.txt', '%2F',
      '..%5c..%5csecret.txt', '..\\..\\secret.txt', '%2Fetc%2Fpasswd', `%2F${encodeURIComponent(path.join(root, 'secret.txt')).slice(3)}`,
      encodeURIComponent(path.join(root, 'secret.txt')), 'secret.txt%00.html', '%00', '..%00', '....%2f%2f....%2f%2fsecret.txt', '%252e%252e%252fsecret.txt',
    ];
    let tried = 0;
    for (const r of routes) {
      const params = r.path.split('/').filter((s) => s.startsWith(':') || s === '*').map((s) => (s === '*' ? '*' : s.slice(1)));
      for (const param of params) {
        for (const payload of payloads) {
          const variants = param === '*' ? [payload, `../${payload}`, `DICOM/../../${payload}`, `/${payload}`] : [payload];
          for (const v of variants) {
            const url = concrete(r.path, (p) => (p === param ? v : r.method === 'GET' ? normal(p) : ({ id: '999999', uid: '1.2.3.999999' })[p] ?? normal(p)));
            const res = await raw(node.httpPort, r.method, url, KEY);
            tried++;
            const label = `${r.method} ${url}`;
            expect(res.status, label).toBeGreaterThanOrEqual(400);
            expect(res.status, label).toBeLessThan(500);
            expect(res.body, label).not.toContain(SECRET);
            expect(res.body, label).not.toContain('root:x:0:0');
          }
        }
      }
    }
    expect(tried).toBeGreaterThan(100);
    // The course file route itself works for a file inside the folder (the refusals are not blanket).
    const ok = await raw(node.httpPort, 'GET', `/api/jobs/${jobId}/files/qc_report.html`, KEY);
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('report');

    // 3. Every failed authentication is in the audit trail, with who and what.
    const failed = readAudit(path.join(dataDir, 'audit', 'audit.jsonl')).filter((e) => e.type === 'http.auth_failed');
    expect(failed).toHaveLength(refused);
    expect(failed[0]).toMatchObject({ outcome: 'failure', remote: '127.0.0.1', method: expect.any(String), path: expect.stringMatching(/^\//) });
    expect(new Set(failed.map((e) => `${e.method} ${e.path}`)).size).toBeGreaterThan(routes.length - PUBLIC.length - 1);
    // And a download with the key is audited as such.
    const downloads = readAudit(path.join(dataDir, 'audit', 'audit.jsonl')).filter((e) => e.type === 'http.download' && e.outcome === 'success');
    expect(downloads.some((e) => e.jobId === jobId && e.what === 'qc_report.html')).toBe(true);
  });
});
