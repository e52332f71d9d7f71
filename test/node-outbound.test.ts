// Delivery of results by the real node to real receivers (DCMTK storescp, plain and TLS):
// one association per study; the per-destination circuit breaker (opens, waits, half-open trial,
// closes; each instance delivered once); dead letters and their retry through the API; outbound
// TLS with a CA, a server name and a client certificate (mutual TLS); an RTSTRUCT that fails
// validation is held back and never reaches the receiver. The timeline and audit trail record it.
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { tempDir, type NodeHandle } from './helpers/node.js';
import { outboundFixtures, outboundItems as outbound, sendStudy } from './helpers/outbound.js';
import { freePort, run, sleep } from './helpers/ports.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';
import { SOP_CLASS } from '../src/dicom/sop-classes.js';
import { thoraxSlices, type PhantomSpec } from '../src/phantom/thorax.js';
import { buildRtStruct } from '../src/rt/rtstruct.js';
import { readAudit } from '../src/audit/audit-log.js';

const SMALL: PhantomSpec = { rows: 16, columns: 16, slices: 3, pixelSpacingMm: [4, 4], sliceThicknessMm: 5, seed: 1 };

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  await Promise.allSettled(cleanup.reverse().map((f) => f()));
});

const { node, storescp } = outboundFixtures(cleanup);
const count = (text: string, re: RegExp) => (text.match(new RegExp(re.source, 'g')) ?? []).length;

function timeline(n: NodeHandle, studyUid: string): { event: string; detail: any }[] {
  const db = new Database(path.join(n.dataDir, 'index.sqlite'), { readonly: true });
  try {
    return (db.prepare('SELECT event, detail FROM timeline WHERE study_uid = ? ORDER BY id').all(studyUid) as { event: string; detail: string }[]).map((r) => ({ event: r.event, detail: JSON.parse(r.detail) }));
  } finally {
    db.close();
  }
}

const audit = (n: NodeHandle) => readAudit(path.join(n.dataDir, 'audit', 'audit.jsonl'));


describe('outbound delivery', () => {
  it('forwards a 100-slice study over exactly one association, with sent/acknowledged on the timeline and the audit trail', async () => {
    const pacs = await storescp(await freePort(), 'PACS');
    const n = await node('', [`PACS@127.0.0.1:${pacs.port}`]);
    const ct = await writeCtSeries(path.join(tempDir(), 'ct'), { patientId: 'OB-ONE', patientName: 'ONE^ASSOC', studyDate: '20240101', phantom: { ...SMALL, slices: 100 } });
    await sendStudy(n, path.dirname(ct.files[0]));
    const item = await n.waitFor(async () => (await outbound(n)).find((o) => o.state === 'done'), 40_000, 'forwarded study');
    expect(item).toMatchObject({ files: 100, delivered: 100, attempts: 1, study_uid: ct.studyInstanceUid, circuit: 'closed' });
    expect(await pacs.received()).toHaveLength(100);
    expect(count(pacs.output(), /Association Acknowledged/)).toBe(1);
    expect(count(pacs.output(), /Received Store Request/)).toBe(100);

    const events = timeline(n, ct.studyInstanceUid).filter((e) => e.event === 'sent' || e.event === 'acknowledged');
    expect(events).toEqual([
      { event: 'sent', detail: { outboundId: item.id, destination: item.destination, files: 100 } },
      { event: 'acknowledged', detail: { outboundId: item.id, destination: item.destination, delivered: 100 } },
    ]);
    const sent = audit(n).filter((e) => e.type === 'result.sent');
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ outcome: 'success', studyUid: ct.studyInstanceUid, destination: item.destination });
    expect(new Set(sent[0].sopInstanceUids as string[])).toEqual(new Set(ct.files.map((f) => path.basename(f).slice(3, -4))));
  });

  it('opens the circuit after N association failures, makes no attempt while open, and delivers once on the half-open trial', async () => {
    const port = await freePort();
    const dest = `DOWN@127.0.0.1:${port}`;
    const n = await node('  retry_initial_seconds: 0.2\n  retry_max_seconds: 0.4\n  circuit_breaker:\n    failures: 3\n    open_seconds: 3\n', [dest]);
    const ct = await writeCtSeries(path.join(tempDir(), 'ct'), { patientId: 'OB-CB', patientName: 'CIRCUIT^B', studyDate: '20240101', phantom: SMALL });
    await sendStudy(n, path.dirname(ct.files[0]));
    const open = await n.waitFor(async () => ((await n.api('/api/outbound/destinations')).body as any[]).find((c) => c.destination === dest && c.state === 'open'), 20_000, 'circuit open');
    expect(open.consecutiveFailures).toBe(3);
    expect((await outbound(n))[0]).toMatchObject({ state: 'pending', attempts: 3, circuit: 'open' });
    expect((await n.api('/metrics')).body).toContain(`rtpipeline_destination_circuit_state{destination="${dest}"} 1`);
    const attempts = () => n.events().filter((e) => e.msg === 'outbound attempt').length;
    expect(attempts()).toBe(3);
    await sleep(1500); // well inside open_seconds, while the item's own backoff (<= 0.4 s) is long due
    expect(attempts()).toBe(3);
    expect((await outbound(n))[0].attempts).toBe(3);

    const pacs = await storescp(port, 'DOWN');
    const done = await n.waitFor(async () => (await outbound(n)).find((o) => o.state === 'done'), 20_000, 'delivery on the half-open trial');
    expect(done).toMatchObject({ attempts: 4, delivered: 3, circuit: 'closed' });
    const transitions = n.events().filter((e) => e.destination === dest && typeof e.to === 'string').map((e) => e.to);
    expect(transitions).toEqual(['open', 'half-open', 'closed']);
    expect(await pacs.received()).toHaveLength(3);
    expect(count(pacs.output(), /Received Store Request/)).toBe(3); // each instance exactly once
    expect((await n.api('/metrics')).body).toContain(`rtpipeline_destination_circuit_state{destination="${dest}"} 0`);
  });

  it('lists an item that was given up as a dead letter; POST retry delivers it once the destination is back', async () => {
    const port = await freePort();
    // retry_max_age_hours 0.0005 = 1.8 s: the item becomes a dead letter after a few attempts.
    const n = await node('  retry_initial_seconds: 0.2\n  retry_max_seconds: 0.4\n  retry_max_age_hours: 0.0005\n  circuit_breaker:\n    failures: 100\n', [`LATER@127.0.0.1:${port}`]);
    const ct = await writeCtSeries(path.join(tempDir(), 'ct'), { patientId: 'OB-DL', patientName: 'DEAD^LETTER', studyDate: '20240101', phantom: SMALL });
    await sendStudy(n, path.dirname(ct.files[0]));
    const dead = await n.waitFor(async () => ((await n.api('/api/dead-letters')).body as any[])[0], 20_000, 'dead letter');
    expect(dead).toMatchObject({ state: 'failed', study_uid: ct.studyInstanceUid, files: 3 });
    expect(dead.last_error).toMatch(/^gave up: network error/);
    expect((await outbound(n, '?state=failed')).map((o) => o.id)).toEqual([dead.id]);
    expect(await outbound(n, '?state=pending')).toEqual([]);
    expect((await n.api('/api/outbound?state=lost')).status).toBe(400);
    expect(timeline(n, ct.studyInstanceUid).find((e) => e.event === 'failed')?.detail.reason).toMatch(/^gave up/);

    const pacs = await storescp(port, 'LATER');
    const retry = await n.api(`/api/outbound/${dead.id}/retry`, { method: 'POST' });
    expect(retry.status).toBe(202);
    const done = await n.waitFor(async () => (await outbound(n)).find((o) => o.id === dead.id && o.state === 'done'), 20_000, 'retried delivery');
    expect(done).toMatchObject({ attempts: 1, delivered: 3 });
    expect(await pacs.received()).toHaveLength(3);
    expect((await n.api(`/api/outbound/${dead.id}/retry`, { method: 'POST' })).status).toBe(409);
    expect((await n.api('/api/outbound/999/retry', { method: 'POST' })).status).toBe(404);
    expect(audit(n).filter((e) => e.type === 'http.request').map((e) => e.result)).toEqual(['requeued', 'not_failed', 'missing']);
    expect(await n.api('/api/dead-letters').then((r) => r.body)).toEqual([]);
  });

  it('sends over TLS 1.2+ with a CA and server name, and with a client certificate to a PACS that requires one', async () => {
    const pki = await makePki();
    const [tlsPort, mtlsPort] = [await freePort(), await freePort()];
    // The server certificate names only pacs.test: connecting to 127.0.0.1 needs servername.
    const tlsPacs = await storescp(tlsPort, 'TLSPACS', ['+tls', pki.serverKey, pki.serverCert, '-ic']);
    const mtlsPacs = await storescp(mtlsPort, 'MTLSPACS', ['+tls', pki.serverKey, pki.serverCert, '-rc', '+cf', pki.caCert]);
    const yaml = [
      '  destinations:',
      `    - { aet: TLSPACS, host: 127.0.0.1, port: ${tlsPort}, tls: { ca: ${pki.caCert}, servername: pacs.test } }`,
      `    - { aet: MTLSPACS, host: 127.0.0.1, port: ${mtlsPort}, tls: { ca: ${pki.caCert}, servername: pacs.test, cert: ${pki.clientCert}, key: ${pki.clientKey} } }`,
      // The same mutual-TLS PACS without our client certificate: refused at the handshake.
      `    - { aet: NOCERT, host: 127.0.0.1, port: ${mtlsPort}, tls: { ca: ${pki.caCert}, servername: pacs.test } }`,
      '  retry_initial_seconds: 30',
      '',
    ].join('\n');
    const n = await node(yaml, []);
    const ct = await writeCtSeries(path.join(tempDir(), 'ct'), { patientId: 'OB-TLS', patientName: 'TLS^X', studyDate: '20240101', phantom: SMALL });
    await sendStudy(n, path.dirname(ct.files[0]));
    const items = await n.waitFor(async () => {
      const list = await outbound(n);
      return list.length === 3 && list.every((o) => o.attempts >= 1 && o.state !== 'sending') ? list : undefined;
    }, 30_000, 'three deliveries tried');
    const byAet = (aet: string) => items.find((o) => o.destination.startsWith(`${aet}@`));
    expect(byAet('TLSPACS')).toMatchObject({ state: 'done', delivered: 3 });
    expect(byAet('MTLSPACS')).toMatchObject({ state: 'done', delivered: 3 });
    expect(byAet('NOCERT')).toMatchObject({ state: 'pending', delivered: 0 });
    expect(byAet('NOCERT').last_error).toMatch(/network error/);
    expect(await tlsPacs.received()).toHaveLength(3);
    expect(await mtlsPacs.received()).toHaveLength(3);
    expect(count(mtlsPacs.output(), /Received Store Request/)).toBe(3);
  });

  it('holds back a study whose RTSTRUCT has a contour outside the image stack: nothing reaches the receiver', async () => {
    const pacs = await storescp(await freePort(), 'PACS');
    const n = await node('', [`PACS@127.0.0.1:${pacs.port}`]);
    const dir = tempDir();
    const ct = await writeCtSeries(path.join(dir, 'study'), { patientId: 'OB-HOLD', patientName: 'HOLD^X', studyDate: '20240101', phantom: SMALL });
    const zs = [...thoraxSlices(SMALL)].map((s) => s.zMm);
    const slices = ct.files.map((f, k) => ({ sopInstanceUid: path.basename(f).slice(3, -4), sopClassUid: SOP_CLASS.CtImage, zMm: zs[k] }));
    // The stack spans x in [-32, 32] mm (16 pixels of 4 mm around 0); this square reaches x = 60.
    const square = (z: number) => Float64Array.from([20, -10, z, 60, -10, z, 60, 10, z, 20, 10, z]);
    const rs = buildRtStruct({
      ct: { studyInstanceUid: ct.studyInstanceUid, seriesInstanceUid: ct.seriesInstanceUid, frameOfReferenceUid: ct.frameOfReferenceUid, patientId: 'OB-HOLD', patientName: 'HOLD^X', slices },
      rois: [{ number: 1, name: 'OUTSIDE', color: [0, 255, 0], interpretedType: 'ORGAN', algorithm: 'MANUAL', contours: [{ points: square(zs[1]), sopInstanceUid: slices[1].sopInstanceUid }] }],
    });
    writeFileSync(path.join(dir, 'study', 'RS.dcm'), rs);
    await sendStudy(n, path.join(dir, 'study'));
    const held = await n.waitFor(async () => (await outbound(n)).find((o) => o.state === 'held'), 30_000, 'held item');
    expect(held.last_error).toMatch(/RTSTRUCT failed validation: .*ROI 1 "OUTSIDE": 2 contour point\(s\) outside the CT image stack/);
    expect((await n.api('/api/dead-letters')).body.map((o: any) => o.id)).toEqual([held.id]);
    expect(timeline(n, ct.studyInstanceUid).find((e) => e.event === 'held')?.detail.reason).toBe(held.last_error);
    expect(audit(n).find((e) => e.type === 'result.held')).toMatchObject({ outcome: 'failure', studyUid: ct.studyInstanceUid, outboundId: held.id });
    // Retry validates again: still wrong, so still held, and still nothing sent.
    expect((await n.api(`/api/outbound/${held.id}/retry`, { method: 'POST' })).status).toBe(202);
    await n.waitFor(async () => (await outbound(n)).find((o) => o.id === held.id && o.state === 'held' && o.updated_at > held.updated_at), 20_000, 'held again');
    expect(await pacs.received()).toEqual([]);
    expect(count(pacs.output(), /Association Acknowledged/)).toBe(0);
    expect(n.events().some((e) => e.msg === 'outbound attempt')).toBe(false);
  });
});

/** A CA, a server certificate for DNS name pacs.test and a client certificate, made with openssl. */
async function makePki() {
  const dir = tempDir('rtp-pki-');
  const p = (name: string) => path.join(dir, name);
  const ssl = async (args: string[]) => {
    const r = await run('openssl', args, { cwd: dir });
    if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  };
  await ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('ca.key'), '-out', p('ca.pem'), '-days', '2', '-subj', '/CN=rtpipeline test CA']);
  for (const [name, cn, ext] of [['server', 'pacs.test', 'subjectAltName=DNS:pacs.test\nextendedKeyUsage=serverAuth'], ['client', 'RTPIPELINE', 'extendedKeyUsage=clientAuth']]) {
    await ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`), '-subj', `/CN=${cn}`]);
    writeFileSync(p(`${name}.ext`), `${ext}\n`);
    await ssl(['x509', '-req', '-in', p(`${name}.csr`), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p(`${name}.pem`), '-days', '2', '-extfile', p(`${name}.ext`)]);
  }
  expect(readFileSync(p('server.pem'), 'utf8')).toContain('BEGIN CERTIFICATE');
  return { caCert: p('ca.pem'), serverKey: p('server.key'), serverCert: p('server.pem'), clientKey: p('client.key'), clientCert: p('client.pem') };
}
