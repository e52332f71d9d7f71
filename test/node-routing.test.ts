// Return routing in the real node, with DCMTK senders (storescu -aet ...) and DCMTK storescp
// receivers as the PACSes: each sender's result goes to its own return endpoint, an unmapped sender's
// to node.destinations; a dry run sends nothing but keeps RS_auto and says "held"; a test destination
// gets the result instead of the real one; a constraint skip shows its reason; branding is in the
// RTSTRUCT; PUT /api/routing redirects the next study without a restart, is audited, survives one.
import { describe, it, expect, afterAll } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { startNode, tempDir, type NodeHandle } from './helpers/node.js';
import { dcmdump, startStorescp, storescu, type StorescpHandle } from './helpers/dcmtk.js';
import { freePort, sleep } from './helpers/ports.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';
import { readRtStruct } from '../src/rt/rtstruct.js';
import { readAudit } from '../src/audit/audit-log.js';

const PHANTOM = { rows: 48, columns: 48, slices: 6, pixelSpacingMm: [8, 8] as [number, number], sliceThicknessMm: 8 };

describe('return routing, end to end', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    await Promise.allSettled(cleanup.reverse().map((f) => f()));
  });

  async function receiver(aet: string): Promise<StorescpHandle> {
    const r = await startStorescp({ port: await freePort(), aet, outDir: path.join(tempDir('rtp-pacs-'), aet) });
    cleanup.push(() => r.stop());
    return r;
  }
  const dest = (r: StorescpHandle) => ({ aet: r.aet, host: '127.0.0.1', port: r.port });
  /** Study UIDs of the RTSTRUCTs a receiver holds. */
  const studiesAt = async (r: StorescpHandle) =>
    (await r.received()).filter((f) => f.startsWith('RS')).map((f) => readRtStruct(readFileSync(path.join(r.outDir, f))).studyInstanceUid).sort();

  async function sendStudy(node: NodeHandle, callingAet: string, patientId: string) {
    const ct = await writeCtSeries(path.join(tempDir('rtp-ct-'), 'ct'), { patientId, patientName: `ROUTE^${patientId}`, studyDate: '20260401', phantom: PHANTOM });
    const r = await storescu({ port: node.dicomPort, calledAet: node.aet, callingAet, files: ct.files });
    expect(r.code, r.stderr).toBe(0);
    return ct.studyInstanceUid as string;
  }
  const jobOf = (node: NodeHandle, studyUid: string) =>
    node.waitFor(async () => ((await node.api('/api/jobs')).body as any[]).find((j) => j.study_uid === studyUid && (j.state === 'done' || j.state === 'failed')), 90_000, `job of ${studyUid}`);

  it('routes results per sender, holds dry runs, skips on constraints, and takes rule edits at run time', async () => {
    const [pacsA, pacsB, fixed, test, dry] = await Promise.all(['PACS_A', 'PACS_B', 'FIXED', 'TESTPACS', 'DRYPACS'].map(receiver));
    const routes = [
      { name: 'sim1', match: { calling_aet: ['CTSIM1'] }, return_to: dest(pacsA) },
      { name: 'sim2', match: { calling_aet: ['CTSIM2'], peer: ['127.0.0.0/8'] }, return_to: dest(pacsB) },
      { name: 'commissioning', match: { calling_aet: ['DRYSIM'] }, return_to: dest(dry), dry_run: 'no_send' },
      { name: 'trial', match: { calling_aet: ['TRIALSIM'] }, return_to: dest(pacsA), dry_run: 'test_destination', test_destination: dest(test) },
      { name: 'ct-sim', match: { calling_aet: ['SMALLSIM'] }, return_to: dest(pacsA), constraints: { modalities: ['CT'], min_images: 50 } },
    ];
    const config = {
      node: {
        stable_seconds: 0.5,
        destinations: [dest(fixed)],
        routes,
        result_branding: { structure_set_label: 'NOT FOR CLIN USE', structure_set_name: 'NOT FOR CLINICAL USE' },
      },
    };
    const dataDir = path.join(tempDir(), 'data');
    const configYaml = JSON.stringify(config);
    let node = await startNode({ dataDir, configYaml });
    cleanup.push(() => node.stop());
    expect((await node.api('/api/routing')).body).toMatchObject({ source: 'config', routes: routes.map((r) => ({ name: r.name })) });

    // One study per sender, sent at once (the node completes and processes them one after the other).
    const senders = ['CTSIM1', 'CTSIM2', 'OTHERSIM', 'DRYSIM', 'TRIALSIM', 'SMALLSIM'] as const;
    const uids = Object.fromEntries(await Promise.all(senders.map(async (aet, i) => [aet, await sendStudy(node, aet, `RT-${i}`)] as const)));
    const jobs = Object.fromEntries(await Promise.all(senders.map(async (aet) => [aet, await jobOf(node, uids[aet])] as const)));
    for (const aet of senders) expect(jobs[aet].state, `${aet}: ${jobs[aet].error}`).toBe('done');

    // Each receiver gets exactly its senders' RTSTRUCTs.
    await pacsA.waitForFiles(1, 30_000);
    await pacsB.waitForFiles(1, 30_000);
    await fixed.waitForFiles(1, 30_000);
    await test.waitForFiles(1, 30_000);
    await node.waitFor(async () => ((await node.api('/api/outbound')).body as any[]).every((o) => o.state === 'done'), 30_000, 'outbound drained');
    expect(await studiesAt(pacsA)).toEqual([uids.CTSIM1]);
    expect(await studiesAt(pacsB)).toEqual([uids.CTSIM2]);
    expect(await studiesAt(fixed)).toEqual([uids.OTHERSIM]);
    expect(await studiesAt(test)).toEqual([uids.TRIALSIM]);
    expect(jobs.CTSIM1.result.routing).toMatchObject({ route: 'sim1', destinations: [`PACS_A@127.0.0.1:${pacsA.port}`], held: null });
    expect(jobs.OTHERSIM.result.routing).toMatchObject({ route: null, destinations: [`FIXED@127.0.0.1:${fixed.port}`] });
    expect(jobs.TRIALSIM.result.routing).toMatchObject({ route: 'trial', testDestination: true });

    // The sender as recorded at receive time.
    const study1 = (await node.api(`/api/studies/${uids.CTSIM1}`)).body;
    expect(study1).toMatchObject({ calling_aet: 'CTSIM1', called_aet: 'RTPIPELINE', calling_host: '127.0.0.1' });

    // Branding: StructureSetLabel (SH, 16 characters) and StructureSetName.
    const rsA = path.join(pacsA.outDir, (await pacsA.received()).find((f) => f.startsWith('RS'))!);
    expect((await dcmdump(rsA, ['+P', '3006,0002'])).stdout).toContain('[NOT FOR CLIN USE]');
    expect((await dcmdump(rsA, ['+P', '3006,0004'])).stdout).toContain('[NOT FOR CLINICAL USE]');

    // Dry run: processed, RS_auto kept, nothing queued or sent, the timeline says held.
    expect(jobs.DRYSIM.result.routing).toMatchObject({ route: 'commissioning', held: 'dry run (route commissioning)', destinations: [] });
    expect(existsSync(path.join(jobs.DRYSIM.result.courseDir, 'RS_auto.dcm'))).toBe(true);
    expect(jobs.DRYSIM.result.outbound).toEqual([]);
    expect(await dry.received()).toEqual([]);
    const dryTimeline = (await node.api(`/api/studies/${uids.DRYSIM}/timeline`)).body;
    expect(dryTimeline.events.find((e: any) => e.event === 'held')?.detail).toMatchObject({ reason: 'dry run (route commissioning)', route: 'commissioning' });

    // Constraint skip: done (not failed), the reason in the result and the timeline, nothing sent.
    const skipReason = `${PHANTOM.slices} images < min_images 50 (route ct-sim)`;
    expect(jobs.SMALLSIM.result).toMatchObject({ skipped: skipReason, routing: { route: 'ct-sim' } });
    const skipTimeline = (await node.api(`/api/studies/${uids.SMALLSIM}/timeline`)).body;
    expect(skipTimeline.study.study_uid).toBe(uids.SMALLSIM);
    expect(skipTimeline.events.find((e: any) => e.event === 'skipped')?.detail).toMatchObject({ reason: skipReason, route: 'ct-sim' });

    // A bad edit is refused with the path of the field, and changes nothing.
    const bad = await node.api('/api/routing', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ routes: [{ ...routes[0], return_to: { aet: 'X', host: 'h', port: 0 } }] }) });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toContain('routes.0.return_to.port');
    expect(bad.body.issues.map((i: any) => i.path)).toContain('routes.0.return_to.port');
    const dryCheck = await node.api('/api/routing/validate', { method: 'POST', body: JSON.stringify({ routes: [{ name: 'x', dry_run: 'maybe' }] }) });
    expect(dryCheck.body).toMatchObject({ valid: false });
    expect(dryCheck.body.issues[0].path).toBe('routes.0.dry_run');
    expect((await node.api('/api/routing')).body.source).toBe('config');

    // A good edit: CTSIM1 now returns to PACS_B; the next study goes there, without a restart.
    const edited = [{ ...routes[0], return_to: dest(pacsB) }, ...routes.slice(1)];
    const before = (await node.api('/api/routing')).body.hash;
    const put = await node.api('/api/routing', { method: 'PUT', body: JSON.stringify({ routes: edited }) });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect(put.body).toMatchObject({ source: 'file', file: path.join(dataDir, 'routing.json') });
    expect(put.body.hash).not.toBe(before);
    const again = await sendStudy(node, 'CTSIM1', 'RT-9');
    expect((await jobOf(node, again)).state).toBe('done');
    await pacsB.waitForFiles(2, 30_000);
    expect(await studiesAt(pacsB)).toEqual([uids.CTSIM2, again].sort());
    expect(await studiesAt(pacsA)).toEqual([uids.CTSIM1]);

    const audit = readAudit(path.join(dataDir, 'audit', 'audit.jsonl')).filter((e) => e.type === 'routing.changed');
    expect(audit.map((e) => e.outcome)).toEqual(['failure', 'success']);
    expect(audit[1]).toMatchObject({ before, after: put.body.hash, remote: '127.0.0.1' });

    // A restart keeps the edited rules (the file overrides node.routes of the config) and says so.
    expect(await node.stop()).toBe(0);
    node = await startNode({ dataDir, configYaml });
    const after = (await node.api('/api/routing')).body;
    expect(after).toMatchObject({ source: 'file', hash: put.body.hash });
    expect(after.routes[0].return_to).toMatchObject({ aet: 'PACS_B', port: pacsB.port });
    await sleep(100);
    expect(node.logs()).toContain('override node.routes of the config');
  }, 240_000);
});
