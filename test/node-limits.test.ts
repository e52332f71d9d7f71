// Resource limits of the listener with real DCMTK senders: associations per peer, study size and
// instance size. Every refusal is a DICOM status or an A-ASSOCIATE-RJ with its reason in the log
// and the audit trail, nothing refused leaves a file behind, and the audit's per-study counts
// match what is on disk.
import { describe, it, expect } from 'vitest';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { startNode, tempDir, type NodeHandle } from './helpers/node.js';
import { storescu } from './helpers/dcmtk.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';
import { readAudit } from '../src/audit/audit-log.js';
import { StudyBudget } from '../src/store/study-budget.js';
import { clientAetRejection, peerLimitRejection } from '../src/dicom/association-policy.js';

function filesUnder(dir: string, suffix = ''): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && d.name.endsWith(suffix))
    .map((d) => path.join(d.parentPath ?? '', d.name));
}

const storedOfStudy = (node: NodeHandle, studyUid: string) => filesUnder(path.join(node.dataDir, 'store', studyUid), '.dcm');
const auditOf = (node: NodeHandle) => readAudit(path.join(node.dataDir, 'audit', 'audit.jsonl'));

describe('association limit per peer', () => {
  it('5 concurrent storescu from 127.0.0.1 with node.max_associations_per_peer 2: the extra ones get "local limit exceeded", the rest store everything', async () => {
    const dir = tempDir('rtp-limits-');
    const slices = 60;
    const senders = await Promise.all(
      [0, 1, 2, 3, 4].map((k) =>
        writeCtSeries(path.join(dir, `s${k}`), { patientId: `PEER-${k}`, patientName: `Peer^${k}`, phantom: { rows: 8, columns: 8, slices, pixelSpacingMm: [4, 4], sliceThicknessMm: 2 } }),
      ),
    );
    const node = await startNode({ configYaml: 'node:\n  max_associations_per_peer: 2\n  max_associations: 16\n' });
    try {
      const results = await Promise.all(senders.map((s, k) => storescu({ port: node.dicomPort, calledAet: 'RTPIPELINE', callingAet: `PEER${k}`, files: s.files })));
      const ok = results.map((r) => r.code === 0);
      const outputs = results.map((r) => r.stdout + r.stderr);
      const rejected = outputs.filter((o) => /Local Limit Exceeded/i.test(o)).length;
      // Each storescu holds its association for its 60 stores; 5 started at once cannot all fit in 2.
      expect(rejected, outputs.join('\n----\n')).toBeGreaterThan(0);
      expect(ok.filter(Boolean).length).toBeGreaterThanOrEqual(2);
      expect(ok.filter(Boolean).length + rejected).toBe(5);
      for (const [k, s] of senders.entries()) expect(storedOfStudy(node, s.studyInstanceUid), `sender ${k}`).toHaveLength(ok[k] ? slices : 0);

      await node.waitFor(() => auditOf(node).filter((e) => e.type === 'association.closed').length === ok.filter(Boolean).length || undefined, 10_000, 'association.closed events');
      const audit = auditOf(node);
      const limitRejections = audit.filter((e) => e.type === 'association.rejected');
      expect(limitRejections).toHaveLength(rejected);
      for (const e of limitRejections) expect(e.reason).toMatch(/^local limit exceeded: 2 associations already open from 127\.0\.0\.1 \(node\.max_associations_per_peer: 2\)$/);
      // The audit's per-study counts are what is on disk.
      for (const [k, s] of senders.entries()) {
        const received = audit.filter((e) => e.type === 'instances.received' && e.studyUid === s.studyInstanceUid);
        if (!ok[k]) {
          expect(received).toEqual([]);
          continue;
        }
        expect(received).toHaveLength(1);
        const files = storedOfStudy(node, s.studyInstanceUid);
        expect(received[0]).toMatchObject({ count: files.length, bytes: files.reduce((n, f) => n + statSync(f).size, 0), callingAet: `PEER${k}`, patientId: `PEER-${k}` });
      }
      // The log says why, once per refused association.
      expect(node.events().filter((e) => e.msg === 'association rejected' && /max_associations_per_peer/.test(String(e.reason)))).toHaveLength(rejected);
    } finally {
      expect(await node.stop()).toBe(0);
    }
  });
});

describe('study and instance size limits', () => {
  it('answers 0xA700 for instances that would take a study over node.max_study_mb (nothing partial on disk, kept across a restart) and for instances over node.max_instance_mb', async () => {
    const dir = tempDir('rtp-limits-');
    const study = await writeCtSeries(path.join(dir, 'study'), { patientId: 'BIG', patientName: 'Big^Study', phantom: { rows: 64, columns: 64, slices: 8, pixelSpacingMm: [2, 2], sliceThicknessMm: 3 } });
    const other = await writeCtSeries(path.join(dir, 'other'), { patientId: 'SMALL', patientName: 'Small^Study', phantom: { rows: 64, columns: 64, slices: 2, pixelSpacingMm: [2, 2], sliceThicknessMm: 3 } });
    const huge = await writeCtSeries(path.join(dir, 'huge'), { patientId: 'HUGE', patientName: 'Huge^Slice', phantom: { rows: 256, columns: 256, slices: 1, pixelSpacingMm: [1, 1], sliceThicknessMm: 3 } });
    // The budget holds the first 4 slices and half of the 5th (stored files differ from these by a
    // few bytes of file meta header at most).
    const sizes = study.files.map((f) => statSync(f).size);
    const budgetBytes = sizes.slice(0, 4).reduce((a, b) => a + b, 0) + sizes[4] / 2;
    const dataDir = path.join(tempDir(), 'data');
    const configYaml = `node:\n  max_study_mb: ${budgetBytes / 1048576}\n  max_instance_mb: 0.1\n`;
    let node = await startNode({ dataDir, configYaml });
    try {
      // -nh: storescu goes on after a failed store (it halts at the first by default); -v: it reports each status.
      const r = await storescu({ port: node.dicomPort, calledAet: 'RTPIPELINE', callingAet: 'CTSIM', files: study.files, extraArgs: ['-nh', '-v'] });
      const out = r.stdout + r.stderr;
      expect(out.match(/Received Store Response \(Refused: OutOfResources\)/g) ?? [], out).toHaveLength(4);
      expect(out.match(/Received Store Response \(Success\)/g) ?? []).toHaveLength(4);
      const stored = storedOfStudy(node, study.studyInstanceUid);
      expect(stored.map((f) => path.basename(f)).sort()).toEqual(study.files.slice(0, 4).map((f) => path.basename(f).replace(/^CT\./, '')).sort());
      // Nothing partial anywhere: no temp file, nothing quarantined.
      expect(filesUnder(path.join(dataDir, 'incoming'), '.part')).toEqual([]);
      expect(filesUnder(path.join(dataDir, 'quarantine'))).toEqual([]);

      // Another study is not affected by this one's budget.
      expect((await storescu({ port: node.dicomPort, calledAet: 'RTPIPELINE', callingAet: 'CTSIM', files: other.files })).code).toBe(0);
      expect(storedOfStudy(node, other.studyInstanceUid)).toHaveLength(2);

      // An instance over node.max_instance_mb (a 256x256 slice, 128 KiB of pixels, over 0.1 MB).
      const big = await storescu({ port: node.dicomPort, calledAet: 'RTPIPELINE', callingAet: 'CTSIM', files: huge.files, extraArgs: ['-v'] });
      expect(big.stdout + big.stderr).toMatch(/Received Store Response \(Refused: OutOfResources\)/);
      expect(storedOfStudy(node, huge.studyInstanceUid)).toEqual([]);

      await node.waitFor(() => auditOf(node).filter((e) => e.type === 'association.closed').length === 3 || undefined, 10_000, 'association.closed events');
      const audit = auditOf(node);
      const refused = audit.filter((e) => e.type === 'instance.refused');
      expect(refused).toHaveLength(5);
      expect(refused.slice(0, 4).map((e) => e.sopInstanceUid)).toEqual(study.files.slice(4).map((f) => path.basename(f).replace(/^CT\./, '').replace(/\.dcm$/, '')));
      for (const e of refused.slice(0, 4)) expect(e).toMatchObject({ status: '0xA700', reason: expect.stringMatching(/^study over node\.max_study_mb: /), callingAet: 'CTSIM' });
      expect(refused[4]).toMatchObject({ status: '0xA700', reason: expect.stringMatching(/node\.max_instance_mb/) });
      const received = audit.find((e) => e.type === 'instances.received' && e.studyUid === study.studyInstanceUid);
      expect(received).toMatchObject({ count: 4, bytes: stored.reduce((n, f) => n + statSync(f).size, 0) });
      expect(audit.find((e) => e.type === 'association.closed' && e.stored === 4)).toMatchObject({ failed: 4 });
    } finally {
      expect(await node.stop()).toBe(0);
    }

    // After a restart the study's size comes from the index: the refused slices are still refused,
    // the stored ones are acknowledged again as duplicates.
    node = await startNode({ dataDir, configYaml });
    try {
      const again = await storescu({ port: node.dicomPort, calledAet: 'RTPIPELINE', callingAet: 'CTSIM', files: [study.files[0], study.files[5]], extraArgs: ['-nh', '-v'] });
      const out = again.stdout + again.stderr;
      expect(out.match(/Received Store Response \(Success\)/g) ?? [], out).toHaveLength(1);
      expect(out.match(/Received Store Response \(Refused: OutOfResources\)/g) ?? []).toHaveLength(1);
      expect(storedOfStudy(node, study.studyInstanceUid)).toHaveLength(4);
    } finally {
      expect(await node.stop()).toBe(0);
    }
  });
});

describe('StudyBudget and the association policy (pure)', () => {
  it('seeds each study once from the index, counts admitted bytes, refuses over the limit without counting, forgets on request and after 10 idle minutes', () => {
    let now = 0;
    const seeds: string[] = [];
    const budget = new StudyBudget(1000, (uid) => (seeds.push(uid), uid === 'A' ? 600 : 0), () => now);
    expect(budget.admit('A', 300)).toBeUndefined();
    expect(budget.admit('A', 200)?.refused).toMatch(/^study over node\.max_study_mb: /);
    expect(budget.storedBytes('A')).toBe(900);
    expect(budget.admit('A', 100)).toBeUndefined(); // exactly at the limit is allowed
    expect(budget.admit('B', 1000)).toBeUndefined();
    expect(seeds).toEqual(['A', 'B']);
    budget.subtract('A', 400);
    expect(budget.storedBytes('A')).toBe(600);
    budget.forget('A');
    expect(budget.storedBytes('A')).toBe(600); // seeded again from the "index"
    now = 11 * 60 * 1000;
    budget.storedBytes('B');
    expect(seeds).toEqual(['A', 'B', 'A', 'B']);
  });

  it('rejects a TLS caller whose certificate CN does not allow its calling AE; plain callers and an empty map are not concerned', () => {
    const map = { CTSIM: ['CTSIM', 'CTSIM2'] };
    const tls = (clientCN: string | null, clientCertError?: string) => ({ protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', clientCN, clientCertError });
    expect(clientAetRejection(map, tls('CTSIM'), 'CTSIM2')).toBeUndefined();
    expect(clientAetRejection(map, null, 'ANY')).toBeUndefined();
    expect(clientAetRejection({}, tls(null), 'ANY')).toBeUndefined();
    expect(clientAetRejection(map, tls('CTSIM'), 'OTHER')?.why).toBe('calling AE not recognized: calling AE "OTHER" is not allowed for client certificate CN=CTSIM (node.tls.client_aets allows CTSIM, CTSIM2)');
    expect(clientAetRejection(map, tls('MRI'), 'MRI')?.why).toMatch(/CN=MRI is not in node\.tls\.client_aets/);
    expect(clientAetRejection(map, tls(null), 'CTSIM')?.why).toMatch(/without a verified client certificate/);
    expect(clientAetRejection(map, tls(null, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'), 'CTSIM')?.why).toMatch(/does not verify against node\.tls\.ca \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/);
    // "toString" is not a certificate name that maps to anything.
    expect(clientAetRejection(map, tls('toString'), 'CTSIM')?.label).toBe('client_cert_aet');
    expect(peerLimitRejection(1, 2, '10.0.0.5')).toBeUndefined();
    expect(peerLimitRejection(2, 2, '10.0.0.5')).toMatchObject({ label: 'peer_limit', why: 'local limit exceeded: 2 associations already open from 10.0.0.5 (node.max_associations_per_peer: 2)' });
  });
});
