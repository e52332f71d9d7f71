// The audit trail's configuration: RFC 5424 syslog forwarding over UDP and TCP to collectors this
// test opens on 127.0.0.1 (parsed back: PRI, version, app name, MSGID, JSON MSG), a collector that
// is down (the node keeps working, one warning, the file keeps every event, forwarding resumes),
// patient ids masked with a salted hash in the trail, and log_phi in the ordinary logs.
import { describe, it, expect, afterAll } from 'vitest';
import dgram from 'node:dgram';
import net from 'node:net';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { startNode, tempDir, type NodeHandle } from './helpers/node.js';
import { echoscu, writeTestDicom } from './helpers/dcmtk.js';
import { freePort, sleep } from './helpers/ports.js';
import { formatRfc5424, octetCounted } from '../src/audit/syslog.js';
import { loadOrCreateSalt, patientIdMasker, scrubPhi } from '../src/audit/phi-mask.js';
import { readAudit } from '../src/audit/audit-log.js';

interface Syslog { pri: number; version: number; time: string; host: string; app: string; procId: string; msgId: string; msg: Record<string, unknown> }

/** Parses one RFC 5424 message as the node writes it (no structured data: "-"). */
function parse5424(line: string): Syslog {
  const m = /^<(\d{1,3})>(\d) (\S+) (\S+) (\S+) (\S+) (\S+) - (.*)$/s.exec(line);
  if (!m) throw new Error(`not an RFC 5424 message: ${line.slice(0, 200)}`);
  return { pri: Number(m[1]), version: Number(m[2]), time: m[3], host: m[4], app: m[5], procId: m[6], msgId: m[7], msg: JSON.parse(m[8]) as Record<string, unknown> };
}

/** Splits an octet-counted TCP stream ("LEN SP MSG"...) into messages; returns the rest. */
function splitFrames(buf: Buffer, out: string[]): Buffer {
  for (;;) {
    const sp = buf.indexOf(0x20);
    if (sp < 0) return buf;
    const len = Number(buf.subarray(0, sp).toString('ascii'));
    if (!Number.isInteger(len) || len <= 0) throw new Error(`bad octet count "${buf.subarray(0, sp).toString()}"`);
    if (buf.length < sp + 1 + len) return buf;
    out.push(buf.subarray(sp + 1, sp + 1 + len).toString('utf8'));
    buf = buf.subarray(sp + 1 + len);
  }
}

async function upload(node: NodeHandle, files: string[], key?: string): Promise<{ status: number; body: any }> {
  const f = new FormData();
  for (const file of files) f.append('files[]', new Blob([new Uint8Array(readFileSync(file))]), path.basename(file));
  return node.api('/api/upload', { method: 'POST', body: f, headers: key ? { 'x-api-key': key } : {} });
}

describe('audit trail: syslog, masking, ordinary logs', () => {
  const nodes: NodeHandle[] = [];
  const closers: (() => void)[] = [];
  afterAll(async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
    for (const c of closers) c();
  });

  it('formats RFC 5424 and octet-counted frames; masks ids with a salted, stable hash; drops names', () => {
    const line = formatRfc5424({ type: 'http.auth_failed', outcome: 'failure', time: '2026-01-02T03:04:05.000Z', remote: '10.0.0.1' }, { facility: 'authpriv', appName: 'rtp', hostname: 'h1', procId: 42 });
    const p = parse5424(line);
    expect(p).toMatchObject({ pri: 10 * 8 + 4, version: 1, time: '2026-01-02T03:04:05.000Z', host: 'h1', app: 'rtp', procId: '42', msgId: 'http.auth_failed' });
    expect(p.msg).toMatchObject({ type: 'http.auth_failed', remote: '10.0.0.1' });
    expect(parse5424(formatRfc5424({ type: 'node.start', outcome: 'success' }, { facility: 'local3', appName: 'a' })).pri).toBe(19 * 8 + 5);
    const frames: string[] = [];
    expect(splitFrames(Buffer.concat([octetCounted('é 1'), octetCounted('two'), Buffer.from('5 ab')]), frames).toString()).toBe('5 ab');
    expect(frames).toEqual(['é 1', 'two']);

    const dir = tempDir();
    const salt = loadOrCreateSalt(path.join(dir, 'audit', 'salt'));
    expect(statSync(path.join(dir, 'audit', 'salt')).mode & 0o777).toBe(0o600);
    expect(loadOrCreateSalt(path.join(dir, 'audit', 'salt'))).toBe(salt); // created once
    const mask = patientIdMasker(salt);
    expect(mask('P1')).toMatch(/^pid-[0-9a-f]{16}$/);
    expect(mask('P1')).toBe(mask('P1'));
    expect(mask('P1')).not.toBe(mask('P2'));
    expect(patientIdMasker('0'.repeat(64))('P1')).not.toBe(mask('P1')); // another salt, another token
    const scrubbed = scrubPhi({ patientId: 'P1', patientName: 'Doe^J', nested: [{ patient_id: 'P1', PatientName: 'x' }], other: 'P1' }, 'masked', mask);
    expect(scrubbed).toEqual({ patientId: mask('P1'), nested: [{ patient_id: mask('P1') }], other: 'P1' });
    expect(scrubPhi({ patientId: 'P1', patientName: 'n' }, 'none', mask)).toEqual({});
  });

  it('forwards every audit event over UDP in RFC 5424, masks patient ids in the trail and in the ordinary logs', async () => {
    const udpPort = await freePort();
    const received: string[] = [];
    const sock = dgram.createSocket('udp4');
    sock.on('message', (m) => received.push(m.toString('utf8')));
    await new Promise<void>((r) => sock.bind(udpPort, '127.0.0.1', () => r()));
    closers.push(() => sock.close());
    const KEY = 'audit-test-key-0123456789';
    const node = await startNode({
      configYaml: `log_phi: masked\nnode:\n  stable_seconds: 1\n  audit:\n    mask_patient_ids: true\n    syslog: {host: 127.0.0.1, port: ${udpPort}, protocol: udp, facility: local4, app_name: rtp-audit}\n`,
      env: { RTPIPELINE_API_KEY: KEY },
    });
    nodes.push(node);
    const work = tempDir();
    const a = await writeTestDicom(path.join(work, 'a.dcm'), { patientId: 'SECRET-PID-77', patientName: 'Secret^Person' });
    const b = await writeTestDicom(path.join(work, 'b.dcm'), { patientId: 'SECRET-PID-77', patientName: 'Secret^Person', studyInstanceUid: a.studyInstanceUid, seriesInstanceUid: a.seriesInstanceUid });
    expect((await upload(node, [a.file, b.file])).status).toBe(401);
    const up = await upload(node, [a.file, b.file], KEY);
    expect(up.status).toBe(200);
    expect(up.body.stored).toBe(2);

    const wanted = ['node.start', 'http.auth_failed', 'instances.received', 'http.upload'];
    const msgs = await node.waitFor(() => {
      const parsed = received.map(parse5424);
      return wanted.every((t) => parsed.some((p) => p.msgId === t)) ? parsed : undefined;
    }, 10_000, 'syslog messages');
    for (const p of msgs) {
      expect(p.version).toBe(1);
      expect(p.app).toBe('rtp-audit');
      expect(p.procId).toBe(String(node.proc.pid));
      expect(p.pri).toBe(20 * 8 + (p.msg.outcome === 'success' ? 5 : 4)); // local4, notice / warning
      expect(p.msg.type).toBe(p.msgId);
    }
    const start = msgs.find((p) => p.msgId === 'node.start')!.msg;
    expect(start).toMatchObject({ aet: 'RTPIPELINE', ports: { dicom: node.dicomPort, http: node.httpPort }, api_key_set: true, allowed_callers: [], mask_patient_ids: true, log_phi: 'masked' });
    expect(start.config_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(String(start.config_file)).toMatch(/config\.yaml$/);

    // The same events are in the file; the id is a salted hash, the same one the logs use.
    const salt = readFileSync(path.join(node.dataDir, 'audit', 'salt'), 'utf8').trim();
    expect(statSync(path.join(node.dataDir, 'audit', 'salt')).mode & 0o777).toBe(0o600);
    const token = patientIdMasker(salt)('SECRET-PID-77');
    const trail = readAudit(path.join(node.dataDir, 'audit', 'audit.jsonl'));
    const rec = trail.find((e) => e.type === 'instances.received')!;
    expect(rec).toMatchObject({ studyUid: a.studyInstanceUid, patientId: token, count: 2, via: 'upload' });
    expect(trail.find((e) => e.type === 'http.upload')).toMatchObject({ outcome: 'success', files: 2, stored: 2, refused: 0, studies: [a.studyInstanceUid] });
    const fileText = readFileSync(path.join(node.dataDir, 'audit', 'audit.jsonl'), 'utf8');
    const syslogText = received.join('\n');
    for (const text of [fileText, syslogText, node.logs()]) {
      expect(text).not.toContain('SECRET-PID-77');
      expect(text).not.toContain('Secret^Person');
    }
    // The ordinary log still says which patient, as the token (the completion line names the patient).
    await node.waitFor(() => node.events().find((e) => e.msg === 'study complete: job queued'), 10_000, 'study completion');
    expect(node.events().find((e) => e.msg === 'study complete: job queued')!.patientId).toBe(token);
    await node.waitFor(() => node.events().some((e) => /^job (done|failed)/.test(String(e.msg))), 60_000, 'the job to end');
    for (const text of [readFileSync(path.join(node.dataDir, 'audit', 'audit.jsonl'), 'utf8'), node.logs()]) {
      expect(text).not.toContain('SECRET-PID-77');
      expect(text).not.toContain('Secret^Person');
    }
    // The timeline has one 'received' event for the upload.
    const tl = await node.api(`/api/studies/${a.studyInstanceUid}/timeline`, { headers: { 'x-api-key': KEY } });
    if (tl.status === 200) expect(JSON.stringify(tl.body)).toContain('"via":"upload"');
  });

  it('keeps working when the TCP collector is down (one warning, file complete), then forwards again when it is back', async () => {
    const tcpPort = await freePort();
    const node = await startNode({ configYaml: `node:\n  stable_seconds: 3600\n  audit:\n    syslog: {host: 127.0.0.1, port: ${tcpPort}, protocol: tcp}\n` });
    nodes.push(node);
    // Collector down: the node answers DICOM and HTTP; audit events still go to the file.
    for (let i = 0; i < 3; i++) expect((await echoscu({ port: node.dicomPort, calledAet: node.aet })).code).toBe(0);
    const work = tempDir();
    const a = await writeTestDicom(path.join(work, 'a.dcm'), { patientId: 'TCP-1' });
    expect((await upload(node, [a.file])).status).toBe(200);
    expect((await node.api('/health')).status).toBe(200);
    const trail = readAudit(path.join(node.dataDir, 'audit', 'audit.jsonl'));
    expect(trail.map((e) => e.type)).toEqual(expect.arrayContaining(['node.start', 'instances.received', 'http.upload']));
    const warnings = () => node.events().filter((e) => String(e.msg).startsWith('syslog collector unreachable'));
    await node.waitFor(() => warnings().length > 0, 5000, 'the collector warning');
    await sleep(1500); // a reconnect attempt or two: still one warning for the outage
    expect(warnings()).toHaveLength(1);
    expect(node.events().filter((e) => e.level === 50 || e.level === 60)).toEqual([]);

    // The collector comes up: queued events (node.start first) arrive, octet-counted.
    const frames: string[] = [];
    const server = net.createServer((s) => {
      let rest: Buffer = Buffer.alloc(0);
      s.on('data', (d: Buffer) => (rest = splitFrames(Buffer.concat([rest, d]), frames)));
    });
    await new Promise<void>((r) => server.listen(tcpPort, '127.0.0.1', () => r()));
    closers.push(() => server.close());
    const got = await node.waitFor(() => {
      const p = frames.map(parse5424);
      return ['node.start', 'http.upload'].every((t) => p.some((x) => x.msgId === t)) ? p : undefined;
    }, 20_000, 'queued events after the collector came back');
    expect(got[0].msgId).toBe('node.start');
    expect(got.every((p) => p.app === 'rtpipeline' && p.pri === 10 * 8 + (p.msg.outcome === 'success' ? 5 : 4))).toBe(true);
    await node.waitFor(() => node.events().some((e) => e.msg === 'syslog collector reachable again'), 5000, 'recovery log line');
    // New events go straight through now.
    expect((await node.api('/api/jobs/999', { method: 'DELETE' })).status).toBe(404);
    await node.waitFor(() => frames.map(parse5424).some((p) => p.msgId === 'http.delete'), 5000, 'a live event over TCP');
  });

  it('log_phi: none drops patient ids from ordinary logs; full keeps them (names never)', async () => {
    const work = tempDir();
    for (const mode of ['none', 'full'] as const) {
      const node = await startNode({ configYaml: `log_phi: ${mode}\nnode:\n  stable_seconds: 1\n` });
      nodes.push(node);
      const a = await writeTestDicom(path.join(work, `${mode}.dcm`), { patientId: `PHI-${mode}-ID`, patientName: `Name^${mode}` });
      expect((await upload(node, [a.file])).status).toBe(200);
      await node.waitFor(() => node.events().some((e) => e.msg === 'study complete: job queued'), 10_000, 'study completion');
      const logs = node.logs();
      expect(logs).not.toContain(`Name^${mode}`);
      if (mode === 'none') expect(logs).not.toContain(`PHI-${mode}-ID`);
      else expect(logs).toContain(`PHI-${mode}-ID`);
      await node.stop();
    }
  });
});
