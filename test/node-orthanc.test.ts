// Orthanc as the PACS on both sides: it pushes a study to the node through its REST API, the node
// forwards the completed study to a second Orthanc, and a PACS that is down gets it once it is up.
import { describe, it, expect, afterAll } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { startNode, tempDir, CLI, type NodeHandle } from './helpers/node.js';
import { startOrthanc, type OrthancHandle } from './helpers/orthanc.js';
import { storescu } from './helpers/dcmtk.js';
import { freePort, sleep, track, exited } from './helpers/ports.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';

const phantom = { rows: 96, columns: 96, slices: 8, pixelSpacingMm: [2, 2] as [number, number], sliceThicknessMm: 3 };

/** Pixel data of every instance of a study in an Orthanc, keyed by SOP Instance UID. */
async function pixelsBySop(pacs: OrthancHandle): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const id of await pacs.listInstances()) {
    const tags = (await pacs.rest('GET', `/instances/${id}/simplified-tags`)).body;
    const r = await fetch(`http://127.0.0.1:${pacs.httpPort}/instances/${id}/content/7fe0-0010/0`);
    out.set(tags.SOPInstanceUID, Buffer.from(await r.arrayBuffer()));
  }
  return out;
}

describe('node with Orthanc as the PACS', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    await Promise.allSettled(cleanup.map((f) => f()));
  });

  it('receives a study pushed by Orthanc and forwards it intact to another Orthanc', async () => {
    const target = await startOrthanc({ aet: 'TARGET' });
    cleanup.push(() => target.stop());
    const node: NodeHandle = await startNode({
      args: ['--stable-seconds', '1', '--destination', `TARGET@127.0.0.1:${target.dicomPort}`, '--allow-caller', 'SOURCE'],
      configYaml: 'segmentation:\n  engine: none\nnode:\n  forward: true\n',
    });
    cleanup.push(() => node.stop());
    const source = await startOrthanc({ aet: 'SOURCE', modalities: { rtp: { aet: 'RTPIPELINE', host: '127.0.0.1', port: node.dicomPort } } });
    cleanup.push(() => source.stop());

    const s = await writeCtSeries(path.join(tempDir(), 'ct'), { patientId: 'ORTH-1', patientName: 'Orthanc^Push', phantom });
    let studyId = '';
    for (const f of s.files) studyId = (await source.uploadInstance(readFileSync(f))).ParentStudy as string;
    const push = await source.storeToModality('rtp', [studyId]);
    expect(push.status, JSON.stringify(push.body)).toBe(200);
    expect(push.body.FailedInstancesCount).toBe(0);

    const item = await node.waitFor(async () => ((await node.api('/api/outbound')).body as any[]).find((o) => o.state === 'done'), 30_000, 'forwarded study');
    expect(item.delivered).toBe(8);
    const sent = await pixelsBySop(source);
    const received = await pixelsBySop(target);
    expect(received.size).toBe(8);
    for (const [sop, pixels] of sent) expect(received.get(sop)?.equals(pixels), sop).toBe(true);
    expect(node.events().some((e) => e.msg === 'outbound attempt' && e.destination === `TARGET@127.0.0.1:${target.dicomPort}`)).toBe(true);
  });

  it('keeps retrying while the PACS is down and delivers once when it comes up', async () => {
    const pacsPort = await freePort();
    const node = await startNode({
      args: ['--stable-seconds', '0.5', '--destination', `LATE@127.0.0.1:${pacsPort}`],
      configYaml: 'segmentation:\n  engine: none\nnode:\n  forward: true\n  retry_initial_seconds: 0.3\n  retry_max_seconds: 1\n',
    });
    cleanup.push(() => node.stop());
    const s = await writeCtSeries(path.join(tempDir(), 'ct'), { patientId: 'ORTH-2', patientName: 'Down^Up', phantom: { ...phantom, slices: 5 } });
    expect((await storescu({ port: node.dicomPort, calledAet: 'RTPIPELINE', files: s.files })).code).toBe(0);
    await node.waitFor(() => node.events().filter((e) => e.msg === 'outbound attempt failed; will retry').length >= 2 || undefined, 20_000, 'failed attempts');
    const pending = (await node.api('/api/outbound')).body as any[];
    expect(pending[0].state).toBe('pending');
    expect(pending[0].last_error).toMatch(/ECONNREFUSED|network error/);

    const late = await startOrthanc({ aet: 'LATE', dicomPort: pacsPort });
    cleanup.push(() => late.stop());
    const done = await node.waitFor(async () => ((await node.api('/api/outbound')).body as any[]).find((o) => o.state === 'done'), 20_000, 'delivery after PACS up');
    expect(done.delivered).toBe(5);
    await sleep(1500); // nothing more is sent after success
    expect((await late.listInstances()).length).toBe(5);
    expect(((await node.api('/api/outbound')).body as any[]).length).toBe(1);
    const stats = (await late.rest('GET', '/statistics')).body;
    expect(stats.CountInstances).toBe(5);
  });

  it('`rtpipeline send` stores files in Orthanc and exits 0; a dead destination exits 1', async () => {
    const pacs = await startOrthanc({ aet: 'MANUAL' });
    cleanup.push(() => pacs.stop());
    const s = await writeCtSeries(path.join(tempDir(), 'ct'), { patientId: 'ORTH-3', patientName: 'Manual^Send', phantom: { ...phantom, slices: 3 } });
    const runCli = async (args: string[]) => {
      const p = track(spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RTPIPELINE_LOG_FORMAT: 'json' } }));
      let out = '';
      p.stdout!.on('data', (d) => (out += d));
      p.stderr!.on('data', (d) => (out += d));
      await exited(p);
      return { code: p.exitCode, out };
    };
    const ok = await runCli(['send', '--destination', `MANUAL@127.0.0.1:${pacs.dicomPort}`, path.dirname(s.files[0])]);
    expect(ok.code, ok.out).toBe(0);
    expect((await pacs.listInstances()).length).toBe(3);
    const dead = await runCli(['send', '--destination', `NOBODY@127.0.0.1:${await freePort()}`, s.files[0]]);
    expect(dead.code).toBe(1);
    expect(dead.out).toMatch(/association failed|not stored/);
    const usage = await runCli(['send', '--destination', 'not-a-destination', s.files[0]]);
    expect(usage.code).toBe(2);
    expect(usage.out).toMatch(/AE@HOST:PORT/);
  });
});
