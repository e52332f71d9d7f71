// DICOM TLS on the listener, with real DCMTK peers and certificates made by openssl: the TLS
// listener beside the plain one, TLS only, mutual TLS, client certificates mapped to AE titles,
// old protocols refused, and every accept/reject in the audit trail with its reason.
import { describe, it, expect, beforeAll } from 'vitest';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { startNode, tempDir, CLI, type NodeHandle } from './helpers/node.js';
import { echoscu, storescu } from './helpers/dcmtk.js';
import { freePort, run, LOOPBACK } from './helpers/ports.js';
import { makeTestPki, type TestPki } from './helpers/certs.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';
import { readAudit } from '../src/audit/audit-log.js';

const phantom = { rows: 16, columns: 16, slices: 3, pixelSpacingMm: [4, 4] as [number, number], sliceThicknessMm: 5 };

function storedIn(dataDir: string, seriesUid: string): number {
  const root = path.join(dataDir, 'store');
  if (!existsSync(root)) return 0;
  return readdirSync(root, { recursive: true, withFileTypes: true }).filter((d) => d.isFile() && (d.parentPath ?? '').endsWith(seriesUid)).length;
}

/** The study's 'received' timeline entries, read from the node's index (WAL: readable while it runs). */
function receivedTimeline(node: NodeHandle, studyUid: string): Record<string, unknown>[] | undefined {
  const db = new Database(path.join(node.dataDir, 'index.sqlite'), { readonly: true });
  try {
    const rows = db.prepare("SELECT detail FROM timeline WHERE study_uid = ? AND event = 'received' ORDER BY id").all(studyUid) as { detail: string }[];
    return rows.length > 0 ? rows.map((r) => JSON.parse(r.detail) as Record<string, unknown>) : undefined;
  } finally {
    db.close();
  }
}

const auditOf = (node: NodeHandle) => readAudit(path.join(node.dataDir, 'audit', 'audit.jsonl'));

/** Waits for an audit event matching `pred` (close reports are written just after the peer leaves). */
async function auditEvent(node: NodeHandle, pred: (e: Record<string, unknown>) => boolean, what: string) {
  return node.waitFor(() => auditOf(node).find(pred), 10_000, `audit event: ${what}`);
}

/** An openssl s_client handshake with the given protocol/cipher options; true if it completed. */
async function sClient(port: number, args: string[]): Promise<{ ok: boolean; out: string }> {
  const r = await run('openssl', ['s_client', '-connect', `${LOOPBACK}:${port}`, ...args], { timeoutMs: 15_000 });
  const out = r.stdout + r.stderr;
  return { ok: /^\s*Protocol\s*:\s*TLSv1/m.test(out) && !/Cipher is \(NONE\)/.test(out), out };
}

describe('DICOM TLS listener', () => {
  const dir = tempDir('rtp-tls-');
  let pki: TestPki;

  beforeAll(async () => {
    pki = await makeTestPki(dir);
  });

  it('runs TLS beside the plain listener: C-ECHO and C-STORE over TLS, plain still works, plain TCP, TLS 1.1 and excluded ciphers refused', async () => {
    const tlsPort = await freePort();
    const node = await startNode({
      configYaml: `node:\n  tls:\n    key: ${pki.server.key}\n    cert: ${pki.server.cert}\n    ca: ${pki.ca.cert}\n    ciphers: ECDHE-ECDSA-AES256-GCM-SHA384\n`,
      args: ['--tls-port', String(tlsPort)],
    });
    try {
      const health = await node.api('/health');
      expect(health.body).toMatchObject({ dicomPort: node.dicomPort, dicomTlsPort: tlsPort, dicomPlain: true });
      const anon = ['+tla', '+cf', pki.ca.cert];
      const echo = await echoscu({ port: tlsPort, calledAet: 'RTPIPELINE', callingAet: 'TLSPEER', extraArgs: anon });
      expect(echo.code, echo.stdout + echo.stderr).toBe(0);
      const s = await writeCtSeries(path.join(dir, 'ct-a'), { patientId: 'TLS-A', patientName: 'Tls^Beside', phantom });
      const st = await storescu({ port: tlsPort, calledAet: 'RTPIPELINE', callingAet: 'TLSPEER', files: s.files, extraArgs: anon });
      expect(st.code, st.stdout + st.stderr).toBe(0);
      expect(storedIn(node.dataDir, s.seriesInstanceUid)).toBe(3);

      // The plain listener keeps running beside it.
      const plain = await echoscu({ port: node.dicomPort, calledAet: 'RTPIPELINE', callingAet: 'PLAINPEER' });
      expect(plain.code, plain.stdout + plain.stderr).toBe(0);
      // A plain-TCP peer cannot talk to the TLS listener.
      expect((await echoscu({ port: tlsPort, calledAet: 'RTPIPELINE', timeoutMs: 15_000, extraArgs: ['-to', '3', '-ta', '3'] })).code).not.toBe(0);

      // TLS 1.1 is refused in the handshake (SECLEVEL=0 lets this OpenSSL offer it at all).
      const old = await sClient(tlsPort, ['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0']);
      expect(old.ok, old.out).toBe(false);
      // node.tls.ciphers applies to TLS 1.2: a suite outside the list is refused, one inside accepted.
      expect((await sClient(tlsPort, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256'])).ok).toBe(false);
      const listed = await sClient(tlsPort, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES256-GCM-SHA384']);
      expect(listed.ok, listed.out).toBe(true);

      const accepted = await auditEvent(node, (e) => e.type === 'association.accepted' && e.callingAet === 'TLSPEER', 'TLS association accepted');
      expect(accepted.tls).toMatchObject({ protocol: expect.stringMatching(/^TLSv1\.[23]$/), cipher: expect.any(String), clientCN: null });
      expect((await auditEvent(node, (e) => e.type === 'association.accepted' && e.callingAet === 'PLAINPEER', 'plain accepted')).tls).toBeNull();
      const received = await auditEvent(node, (e) => e.type === 'instances.received' && e.studyUid === s.studyInstanceUid, 'instances.received');
      expect(received).toMatchObject({ count: 3, callingAet: 'TLSPEER', patientId: 'TLS-A' });
      const oldRejected = await auditEvent(node, (e) => e.type === 'association.rejected' && /unsupported protocol/.test(String(e.reason)), 'TLS 1.1 rejected');
      expect(oldRejected.reason).toMatch(/^tls handshake: /);
      await auditEvent(node, (e) => e.type === 'association.rejected' && /no shared cipher/.test(String(e.reason)), 'cipher refused');
      // The timeline of the study says who sent it, over DIMSE.
      const timeline = await node.waitFor(() => receivedTimeline(node, s.studyInstanceUid), 10_000, 'timeline received');
      expect(timeline).toMatchObject([{ count: 3, callingAet: 'TLSPEER', calledAet: 'RTPIPELINE', via: 'dimse', peer: expect.stringMatching(/^127\.0\.0\.1:\d+$/) }]);
    } finally {
      expect(await node.stop()).toBe(0);
    }
  });

  it('TLS only with mutual TLS and client_aets: no cert, wrong CA, wrong AE and TLS 1.2 (min_version TLSv1.3) refused; CN=CTSIM as CTSIM accepted', async () => {
    const tlsPort = await freePort();
    const node = await startNode({
      configYaml: [
        'node:',
        '  tls:',
        `    key: ${pki.server.key}`,
        `    cert: ${pki.server.cert}`,
        `    ca: ${pki.ca.cert}`,
        `    port: ${tlsPort}`,
        '    plain: false',
        '    require_client_cert: true',
        '    min_version: TLSv1.3',
        '    client_aets:',
        '      CTSIM: [CTSIM]',
        '',
      ].join('\n'),
    });
    try {
      expect((await node.api('/health')).body).toMatchObject({ dicomTlsPort: tlsPort, dicomPlain: false });
      // The plain port is closed.
      const plain = await echoscu({ port: node.dicomPort, calledAet: 'RTPIPELINE', timeoutMs: 15_000, extraArgs: ['-to', '3'] });
      expect(plain.code).not.toBe(0);
      expect(plain.stdout + plain.stderr).toMatch(/refused/i);

      const withCert = (k: { key: string; cert: string }) => ['+tls', k.key, k.cert, '+cf', pki.ca.cert];
      const noCert = await echoscu({ port: tlsPort, calledAet: 'RTPIPELINE', callingAet: 'CTSIM', extraArgs: ['+tla', '+cf', pki.ca.cert] });
      expect(noCert.code).not.toBe(0);
      const rogue = await echoscu({ port: tlsPort, calledAet: 'RTPIPELINE', callingAet: 'CTSIM', extraArgs: withCert(pki.rogue) });
      expect(rogue.code).not.toBe(0);
      const wrongAe = await echoscu({ port: tlsPort, calledAet: 'RTPIPELINE', callingAet: 'OTHER', extraArgs: withCert(pki.ctsim) });
      expect(wrongAe.code).not.toBe(0);
      expect(wrongAe.stdout + wrongAe.stderr).toMatch(/Calling AE Title Not Recognized/);
      const tls12 = await sClient(tlsPort, ['-tls1_2', '-cert', pki.ctsim.cert, '-key', pki.ctsim.key]);
      expect(tls12.ok, tls12.out).toBe(false);

      const good = await echoscu({ port: tlsPort, calledAet: 'RTPIPELINE', callingAet: 'CTSIM', extraArgs: withCert(pki.ctsim) });
      expect(good.code, good.stdout + good.stderr).toBe(0);
      const s = await writeCtSeries(path.join(dir, 'ct-b'), { patientId: 'TLS-B', patientName: 'Tls^Mutual', phantom });
      const st = await storescu({ port: tlsPort, calledAet: 'RTPIPELINE', callingAet: 'CTSIM', files: s.files, extraArgs: withCert(pki.ctsim) });
      expect(st.code, st.stdout + st.stderr).toBe(0);
      expect(storedIn(node.dataDir, s.seriesInstanceUid)).toBe(3);

      await auditEvent(node, (e) => e.type === 'association.rejected' && e.reason === 'tls handshake: peer did not return a certificate', 'no client certificate');
      const wrongCa = await auditEvent(node, (e) => e.type === 'association.rejected' && /^tls handshake: client certificate refused \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/.test(String(e.reason)), 'wrong CA');
      expect(wrongCa.peer).toMatch(/^127\.0\.0\.1:\d+$/);
      const aeRejected = await auditEvent(node, (e) => e.type === 'association.rejected' && e.callingAet === 'OTHER', 'wrong AE');
      expect(aeRejected.reason).toMatch(/^calling AE not recognized: calling AE "OTHER" is not allowed for client certificate CN=CTSIM/);
      expect(aeRejected.tls).toMatchObject({ clientCN: 'CTSIM', protocol: 'TLSv1.3' });
      await auditEvent(node, (e) => e.type === 'association.rejected' && /unsupported protocol/.test(String(e.reason)), 'TLS 1.2 under min_version TLSv1.3');
      const ok = auditOf(node).filter((e) => e.type === 'association.accepted');
      expect(ok.map((e) => (e.tls as { clientCN: string }).clientCN)).toEqual(['CTSIM', 'CTSIM']);
      const received = await auditEvent(node, (e) => e.type === 'instances.received' && e.studyUid === s.studyInstanceUid, 'instances.received');
      expect(received).toMatchObject({ count: 3, callingAet: 'CTSIM' });
      // Nothing from the refused peers got in.
      expect(auditOf(node).filter((e) => e.type === 'association.accepted' && e.callingAet !== 'CTSIM')).toEqual([]);
    } finally {
      expect(await node.stop()).toBe(0);
    }
  });

  it('stops the start with exit code 2 and the file named when the TLS key or certificate is bad', async () => {
    const garbage = path.join(dir, 'garbage.key');
    writeFileSync(garbage, 'not a key\n');
    const cases: [string, RegExp][] = [
      [`key: ${garbage}\n    cert: ${pki.server.cert}`, new RegExp(`node\\.tls\\.key: ${garbage.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not a readable`)],
      [`key: ${pki.ctsim.key}\n    cert: ${pki.server.cert}`, /node\.tls\.key: .*ctsim\.key is not the private key of the certificate in node\.tls\.cert/],
      [`key: ${pki.server.key}\n    cert: ${pki.server.cert}\n    ca: ${garbage}`, /node\.tls\.ca: .*garbage\.key holds no PEM certificate/],
      [`key: ${pki.server.key}\n    cert: ${pki.server.cert}\n    ciphers: NOT-A-CIPHER`, /node\.tls\.ciphers: "NOT-A-CIPHER"/],
      [`key: ${pki.server.key}\n    cert: ${pki.server.cert}\n    require_client_cert: true`, /require_client_cert and client_aets need node\.tls\.ca/],
    ];
    for (const [tlsYaml, message] of cases) {
      const cfg = path.join(tempDir(), 'config.yaml');
      writeFileSync(cfg, `node:\n  tls:\n    ${tlsYaml}\n`);
      const r = await run(process.execPath, [CLI, 'serve', '--bind', '127.0.0.1', '--dicom-port', String(await freePort()), '--http-port', String(await freePort()), '--data-dir', path.join(tempDir(), 'data'), '--config', cfg], { timeoutMs: 20_000 });
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });
});
