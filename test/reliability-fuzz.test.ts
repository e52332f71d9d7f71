// Hostile input against the real node: a seeded PDU fuzzer over raw sockets (A-ASSOCIATE-RQ, P-DATA-TF
// and datasets inside valid P-DATA), then malformed files through the watched folder and the upload.
// The node must stay up, answer C-ECHO, keep nothing corrupt and quarantine with reasons.
// RELIABILITY_FUZZ_CASES (500 here, 10,000 in bench/soak) and RELIABILITY_SEED set the run.
import { describe, it, expect, afterAll } from 'vitest';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startNode, tempDir, type NodeHandle } from './helpers/node.js';
import { echoscu, newUid } from './helpers/dcmtk.js';
import { run } from './helpers/ports.js';
import { associateRq, CT_IMAGE_STORAGE, datasetTemplate, EXPLICIT_LE, pduTypes, runFuzz } from './helpers/pdu-fuzz.js';
import net from 'node:net';
import { checkStore, errorEvents, memoryMb, quarantined, reportFigures, scale } from './helpers/reliability.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';

const CASE_BUDGET_MS = 30 + 10_000 / 60; // generous per-case time at concurrency 6, for the timeout only

describe('hostile input', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    await Promise.allSettled(cleanup.map((f) => f()));
  });

  it(`survives ${scale.fuzzCases} fuzzed PDUs and datasets: alive, answers C-ECHO, stores nothing corrupt, quarantines with reasons`, async () => {
    // No study completes during the run (a job over fuzzed data is not what is tested here).
    const node: NodeHandle = await startNode({ configYaml: 'node:\n  stable_seconds: 3600\n  idle_timeout_seconds: 5\n  association_timeout_seconds: 5\nsegmentation:\n  engine: none\n' });
    cleanup.push(() => node.stop());
    const pid = node.proc.pid!;
    const rssBefore = memoryMb(pid).rss;
    // Found by the soak: more than 128 presentation contexts made the library throw while writing
    // its A-ASSOCIATE-AC (an unhandled rejection, a peer left waiting). Now an A-ASSOCIATE-RJ.
    const many = associateRq({ called: 'RTPIPELINE', calling: 'FUZZER', maxPdu: 16384, contexts: Array.from({ length: 200 }, (_, i) => ({ id: (2 * i + 1) & 0xff, abstract: CT_IMAGE_STORAGE, transfers: [EXPLICIT_LE] })) });
    const answer = await new Promise<Buffer>((resolve) => {
      let got = Buffer.alloc(0);
      const sock = net.connect(node.dicomPort, '127.0.0.1', () => sock.write(many));
      sock.on('data', (d) => { got = Buffer.concat([got, d]); if (pduTypes(got).length) { sock.destroy(); resolve(got); } });
      sock.on('close', () => resolve(got));
      sock.on('error', () => resolve(got));
    });
    expect(pduTypes(answer)[0]).toBe(0x03);
    const template = datasetTemplate(newUid());
    const summary = await runFuzz({ port: node.dicomPort, calledAet: 'RTPIPELINE', maxPdu: 262144 }, template, {
      cases: scale.fuzzCases,
      seed: scale.seed,
      concurrency: 6,
      onProgress: (n) => process.stderr.write(`fuzz: ${n}/${scale.fuzzCases}\n`),
    });

    expect(node.proc.exitCode, node.logs().slice(-3000)).toBeNull();
    expect((await echoscu({ port: node.dicomPort, calledAet: 'RTPIPELINE' })).code).toBe(0);
    expect((await node.api('/health')).status).toBe(200);
    // Every association the fuzzer opened is gone (cut ones after the idle timeout at the latest).
    await node.waitFor(async () => ((await node.api('/health')).body.activeAssociations === 0 ? true : undefined), 15_000, 'associations to close');
    const mem = memoryMb(pid);
    expect(mem.rss).toBeLessThan(rssBefore + 250);

    const store = await checkStore(node.dataDir);
    expect(store.unparsable).toEqual([]);
    expect(store.notIndexed).toEqual([]);
    expect(store.missingFiles).toEqual([]);
    expect(store.partials).toEqual([]);
    // Every instance the node acknowledged is stored, parses and is indexed.
    const lost = summary.acknowledged.filter((uid) => !store.indexedSopUids.has(uid));
    expect(lost).toEqual([]);
    const q = quarantined(node.dataDir);
    expect(q.withoutReason).toEqual([]);
    expect(q.reasons.every((r) => r.length > 10)).toBe(true);
    expect(errorEvents(node.events()).map((e) => `${e.msg}: ${JSON.stringify(e.err ?? e.reason ?? '')}`)).toEqual([]);
    reportFigures('fuzz', {
      cases: summary.cases,
      seconds: Math.round(summary.ms / 100) / 10,
      acknowledged: summary.acknowledged.length,
      stored: store.files,
      quarantined: q.items,
      rssBeforeMb: Math.round(rssBefore),
      rssAfterMb: Math.round(mem.rss),
      peakRssMb: Math.round(mem.hwm),
      outcomes: summary.outcomes,
    });
  }, Math.max(120_000, scale.fuzzCases * CASE_BUDGET_MS));

  it('malformed files through the watched folder and the upload: quarantined with reasons, nothing corrupt stored, nothing written outside', async () => {
    const root = tempDir('rtp-hostile-');
    const watch = path.join(root, 'watch');
    const dataDir = path.join(root, 'data');
    mkdirSync(watch);
    const node = await startNode({ dataDir, args: ['--watch', watch], configYaml: 'node:\n  stable_seconds: 3600\nsegmentation:\n  engine: none\n' });
    cleanup.push(() => node.stop());
    const good = await writeCtSeries(path.join(root, 'good'), { patientId: 'HOSTILE', patientName: 'Hostile^Input', phantom: { rows: 16, columns: 16, slices: 3, pixelSpacingMm: [4, 4], sliceThicknessMm: 5 } });
    const valid = readFileSync(good.files[0]);
    const preambleGarbage = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.from(Array.from({ length: 4000 }, (_, i) => (i * 7919) & 0xff))]);
    const bad: Record<string, Buffer> = {
      'truncated.dcm': valid.subarray(0, Math.floor(valid.length * 0.6)),
      'not-dicom.dcm': Buffer.from('this is a text file, not DICOM\n'.repeat(20)),
      'empty.dcm': Buffer.alloc(0),
      'preamble-garbage.dcm': preambleGarbage,
      'header-only.dcm': valid.subarray(0, 300),
    };
    // Archives built by Python's zipfile, which writes any entry name (a real zip tool would clean "../").
    const zips = path.join(root, 'zips');
    mkdirSync(zips);
    const py = String.raw`
import sys, zipfile
out = sys.argv[1]
with zipfile.ZipFile(out + '/traversal.zip', 'w') as z:
    z.writestr('../../x.dcm', open(sys.argv[3], 'rb').read())
    z.writestr('/abs/y.dcm', b'abc')
    z.writestr('ok/a.dcm', open(sys.argv[2], 'rb').read())
with zipfile.ZipFile(out + '/many.zip', 'w', zipfile.ZIP_DEFLATED) as z:
    for i in range(3000):
        z.writestr('f%05d.dcm' % i, b'\0' * 65536)
`;
    const made = await run('python3', ['-c', py, zips, good.files[1], good.files[0]]);
    expect(made.code, made.stderr).toBe(0);

    // 1. The watched folder.
    for (const [name, bytes] of Object.entries(bad)) writeFileSync(path.join(watch, name), bytes);
    const reasonFiles = await node.waitFor(() => {
      const q = path.join(watch, 'quarantine');
      const r = existsSync(q) ? readdirSync(q).filter((f) => f.endsWith('.reason.txt')) : [];
      return r.length >= Object.keys(bad).length ? r : undefined;
    }, 30_000, 'watched files to be quarantined');
    expect(reasonFiles.sort()).toEqual(Object.keys(bad).map((n) => `${n}.reason.txt`).sort());
    for (const f of reasonFiles) expect(readFileSync(path.join(watch, 'quarantine', f), 'utf8').trim().length).toBeGreaterThan(10);

    // 2. The upload: the same files, the zips and one valid file.
    const form = new FormData();
    for (const [name, bytes] of Object.entries(bad)) form.append('files[]', new Blob([new Uint8Array(bytes)]), name);
    form.append('files[]', new Blob([new Uint8Array(readFileSync(path.join(zips, 'traversal.zip')))]), 'traversal.zip');
    form.append('files[]', new Blob([new Uint8Array(readFileSync(path.join(zips, 'many.zip')))]), 'many.zip');
    form.append('files[]', new Blob([new Uint8Array(readFileSync(good.files[2]))]), 'good.dcm');
    const t0 = Date.now();
    const up = await node.api('/api/upload', { method: 'POST', body: form });
    const uploadMs = Date.now() - t0;
    expect(up.status, JSON.stringify(up.body).slice(0, 2000)).toBe(200);
    expect(up.body.stored, JSON.stringify(up.body.refused.filter((x: any) => !/^many.zip.f/.test(x.name))).slice(0, 3000)).toBe(2); // good.dcm and ok/a.dcm from the zip
    const refused = up.body.refused as { name: string; reason: string }[];
    for (const name of Object.keys(bad)) expect(refused.find((x) => x.name.endsWith(name))?.reason, name).toBeTruthy();
    expect(refused.find((x) => x.name.includes('../../x.dcm'))?.reason).toMatch(/\.\./);
    expect(refused.find((x) => x.name.includes('/abs/y.dcm'))?.reason).toMatch(/absolute/);
    expect(refused.filter((x) => /^many\.zip|f\d{5}\.dcm/.test(x.name)).length).toBeGreaterThanOrEqual(1);
    for (const x of refused) expect(x.reason.length, x.name).toBeGreaterThan(5);

    // Nothing written outside the data dir and the watched folder; nothing corrupt stored.
    // (The traversal entry carries this run's own first slice, so an older x.dcm elsewhere is no false alarm.)
    const mine = readFileSync(good.files[0]);
    for (const p of [path.resolve(dataDir, 'incoming', 'uploads', '../../x.dcm'), path.join(root, 'x.dcm'), path.resolve(root, '..', 'x.dcm'), path.resolve(dataDir, '..', '..', 'x.dcm')]) {
      expect(existsSync(p) && readFileSync(p).equals(mine), p).toBe(false);
    }
    expect(existsSync('/abs/y.dcm')).toBe(false);
    expect(readdirSync(root).sort()).toEqual(['data', 'good', 'watch', 'zips']);
    const store = await checkStore(dataDir);
    expect(store.unparsable).toEqual([]);
    expect(store.notIndexed).toEqual([]);
    expect(store.files).toBe(2);
    expect(quarantined(dataDir).withoutReason).toEqual([]);
    expect(node.proc.exitCode).toBeNull();
    expect((await echoscu({ port: node.dicomPort, calledAet: 'RTPIPELINE' })).code).toBe(0);
    expect((await node.api('/health')).status).toBe(200);
    reportFigures('hostile-files', { watched: Object.keys(bad).length, uploaded: Object.keys(bad).length + 3, zipEntries: 3003, refused: refused.length, stored: store.files, uploadMs });
  }, 120_000);
});
