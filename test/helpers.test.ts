// Exercises the real-server test helpers end to end: storescp <- storescu, Orthanc REST + C-STORE + C-ECHO.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dcmdump, echoscu, startStorescp, storescu, writeTestDicom, type StorescpHandle } from './helpers/dcmtk.js';
import { startOrthanc, type OrthancHandle } from './helpers/orthanc.js';
import { freePort, listeningAddresses } from './helpers/ports.js';

describe('test helpers (real DCMTK + Orthanc on loopback)', () => {
  let work: string;
  let scp: StorescpHandle | undefined;
  let orthanc: OrthancHandle | undefined;
  let dicom: Awaited<ReturnType<typeof writeTestDicom>>;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'rtpipeline-helpers-'));
    dicom = await writeTestDicom(join(work, 'ct1.dcm'));
    scp = await startStorescp({ port: await freePort(), aet: 'TESTSCP', outDir: join(work, 'scp') });
    orthanc = await startOrthanc({ aet: 'ORTHTEST' });
  });

  // Teardown runs even when a test fails; each stop is independent so one failure can't leak the other.
  afterAll(async () => {
    await Promise.allSettled([scp?.stop(), orthanc?.stop()]);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('servers listen on 127.0.0.1 only', () => {
    expect(listeningAddresses(scp!.port)).toEqual(['127.0.0.1']);
    expect(listeningAddresses(orthanc!.httpPort)).toEqual(['127.0.0.1']);
    expect(listeningAddresses(orthanc!.dicomPort)).toEqual(['127.0.0.1']);
  });

  it('dcmdump reads the generated file', async () => {
    const r = await dcmdump(dicom.file, ['+P', '0008,0018']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(dicom.sopInstanceUid);
  });

  it('storescu -> storescp', async () => {
    const r = await storescu({ port: scp!.port, calledAet: 'TESTSCP', callingAet: 'HELPERTEST', files: [dicom.file], extraArgs: ['-xi'] });
    expect(r.code, r.stderr).toBe(0);
    expect(await scp!.waitForFiles(1)).toEqual([`CT.${dicom.sopInstanceUid}`]);
  });

  it('storescu reports failure without throwing', async () => {
    const r = await storescu({ port: await freePort(), calledAet: 'NOBODY', files: [dicom.file], timeoutMs: 10_000 });
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toMatch(/refused|failed/i);
  });

  it('echoscu -> Orthanc', async () => {
    const r = await echoscu({ port: orthanc!.dicomPort, calledAet: 'ORTHTEST' });
    expect(r.code, r.stderr).toBe(0);
  });

  it('Orthanc upload via REST, then C-STORE to storescp as a modality', async () => {
    const o = orthanc!;
    const up = await o.uploadInstance(await readFile(dicom.file));
    expect(up.Status).toBe('Success');
    expect(await o.listInstances()).toEqual([up.ID]);
    const back = await o.instanceFile(up.ID);
    expect(back.subarray(128, 132).toString()).toBe('DICM');

    await o.addModality('scp', { aet: 'TESTSCP', host: '127.0.0.1', port: scp!.port });
    // storescp names files by SOP Instance UID and overwrites, so clear what storescu delivered first.
    for (const f of await scp!.received()) await rm(join(scp!.outDir, f));
    const res = await o.storeToModality('scp', [up.ID]);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ FailedInstancesCount: 0, InstancesCount: 1 });
    expect(await scp!.waitForFiles(1)).toEqual([`CT.${dicom.sopInstanceUid}`]);
  });

  it('storeToModality to a dead peer returns an error response, not a throw', async () => {
    const o = orthanc!;
    await o.addModality('dead', { aet: 'DEAD', host: '127.0.0.1', port: await freePort() });
    const [id] = await o.listInstances();
    const res = await o.storeToModality('dead', [id], { Timeout: 5 });
    // 1.10.1: synchronous job failure -> HTTP 500 with Orthanc's JSON error (no content-type header).
    expect(res.status).toBe(500);
    expect(res.body.Details).toMatch(/Connection refused/);
  });
});
