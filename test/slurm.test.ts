// The slurm executor against a real single-node SLURM cluster (slurmctld + slurmd + munged on this
// machine, started by test/fixtures/slurm-single-node.sh as root). Run with `npm run test:slurm`
// (RTPIPELINE_TEST_SLURM=1); excluded from the default suite. A small synthetic cohort goes through
// `--executor slurm` and through the local executor: same _RESULTS tables, same course files; a task
// that fails once is resubmitted; SIGTERM cancels the jobs (scancel) and the run exits 1. A daemon
// with `executor: {kind: slurm}` runs its study job's stages after organize as a course task there.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI, startNode, tempDir } from './helpers/node.js';
import { storescu } from './helpers/dcmtk.js';
import { writeCtSeries } from '../src/dicom/ct-series-writer.js';
import { PLAN_PHANTOM as phantom } from './helpers/planned-patient.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/slurm-single-node.sh', import.meta.url));
const STAGES = 'organize,segmentation,dvh,qc';

/** Every file under dir (relative), without our bookkeeping (.rtpipeline) and timing-dependent logs. */
function filesUnder(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    if (e.name === '.rtpipeline') continue;
    if (e.isDirectory()) out.push(...filesUnder(dir, r));
    else out.push(r);
  }
  return out.sort();
}

/** Numbers compared within float tolerance, everything else exactly. */
function expectTablesEqual(a: string, b: string, name: string): void {
  const rows = (t: string) => t.trim().split('\r\n').map((l) => l.split(','));
  const ra = rows(a);
  const rb = rows(b);
  expect(ra.length, name).toBe(rb.length);
  ra.forEach((row, i) =>
    row.forEach((cell, j) => {
      const other = rb[i][j];
      if (cell !== '' && Number.isFinite(Number(cell)) && Number.isFinite(Number(other))) expect(Number(other), `${name} row ${i} col ${j}`).toBeCloseTo(Number(cell), 9);
      else expect(other, `${name} row ${i} col ${j}`).toBe(cell);
    }),
  );
}

function squeueAll(): string {
  return spawnSync('squeue', ['-h', '-o', '%i %j %T'], { encoding: 'utf8' }).stdout.trim();
}

describe('slurm executor: rtpipeline run --executor slurm on a real single-node cluster', () => {
  const stateDir = tempDir('rtp-slurm-state-');
  let partition = '';
  let input: string;
  const work = tempDir('rtp-slurm-');
  const run = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [CLI, 'run', ...args], { encoding: 'utf8', timeout: 240_000, env: { ...process.env, RTPIPELINE_LOG_FORMAT: 'json', ...env } });
  const slurmArgs = () => ['--executor', 'slurm', '--partition', partition, '--time', '00:10:00'];

  beforeAll(async () => {
    // setsid: the daemons get a session of their own, so that nothing they signal reaches this test's process group.
    const up = spawnSync('setsid', ['bash', FIXTURE, 'up', stateDir], { encoding: 'utf8', timeout: 120_000 });
    expect(up.status, up.stderr).toBe(0);
    partition = up.stdout.trim().split('\n').pop()!;
    input = path.join(work, 'in');
    for (const [i, id] of ['SL1', 'SL2', 'SL3'].entries()) {
      await writeCtSeries(path.join(input, id), { patientId: id, patientName: `${id}^SLURM`, studyDate: `2025050${i + 1}`, phantom });
    }
  }, 180_000);

  afterAll(() => {
    spawnSync('bash', [FIXTURE, 'down', stateDir], { encoding: 'utf8', timeout: 60_000 });
  });

  it('gives the same course folders and _RESULTS as the local executor; a task that fails once is resubmitted', () => {
    const config = path.join(work, 'config.yaml');
    // Fast polls for the test; radiomics off (the stage list has none anyway).
    cpSync(fileURLToPath(new URL('../config/default.yaml', import.meta.url)), config);
    const yaml = readFileSync(config, 'utf8').replace('poll_seconds: 5', 'poll_seconds: 1').replace(/radiomics:\n  enabled: true/, 'radiomics:\n  enabled: false');
    spawnSync('sh', ['-c', `cat > '${config}'`], { input: yaml });

    const local = run(['--dicom-root', input, '--outdir', path.join(work, 'local'), '--logs', path.join(work, 'logs-local'), '--config', config, '--stage', STAGES]);
    expect(local.status, local.stderr + local.stdout.slice(-2000)).toBe(0);

    const failOnce = path.join(work, 'fail-once.marker');
    const out = path.join(work, 'slurm');
    const logs = path.join(work, 'logs-slurm');
    const r = run(['--dicom-root', input, '--outdir', out, '--logs', logs, '--config', config, '--stage', STAGES, ...slurmArgs()], { RTPIPELINE_TEST_FAIL_ONCE: failOnce });
    expect(r.status, r.stderr + r.stdout.slice(-4000)).toBe(0);
    expect(r.stdout).toMatch(/shared-filesystem probe passed/);
    expect(r.stdout).toMatch(/submitted array job \d+ \(3 course task\(s\), attempt 1\)/);
    // The hook failed exactly one task once; it was resubmitted alone and then succeeded.
    expect(existsSync(failOnce)).toBe(true);
    expect(r.stdout).toMatch(/without a result.*resubmitting \(retry 1 of 2\)/);
    expect(r.stdout).toMatch(/submitted array job \d+ \(1 course task\(s\), attempt 2\)/);
    expect(r.stdout).toMatch(/3\/3 course\(s\) done/);
    const taskLogs = readdirSync(path.join(logs, 'slurm'));
    expect(taskLogs.filter((f) => /^rtpipeline-\d+_\d\.out$/.test(f))).toHaveLength(4);
    expect(taskLogs.map((f) => readFileSync(path.join(logs, 'slurm', f), 'utf8')).join('\n')).toMatch(/RTPIPELINE_TEST_FAIL_ONCE \(test hook\)/);

    // Same files in every course folder (and the same courses), same cohort tables.
    const localFiles = filesUnder(path.join(work, 'local')).filter((f) => !f.startsWith('_RESULTS'));
    expect(localFiles.some((f) => f.endsWith('RS_auto.dcm'))).toBe(true);
    expect(filesUnder(out).filter((f) => !f.startsWith('_RESULTS'))).toEqual(localFiles);
    for (const f of localFiles.filter((x) => x.endsWith('RS_auto.dcm') || x.endsWith('.nii.gz'))) {
      expect(statSync(path.join(out, f)).size, f).toBe(statSync(path.join(work, 'local', f)).size);
    }
    const tables = readdirSync(path.join(work, 'local', '_RESULTS')).filter((f) => f.endsWith('.csv'));
    expect(tables).toEqual(expect.arrayContaining(['case_metadata.csv', 'qc_reports.csv']));
    expect(readdirSync(path.join(out, '_RESULTS')).filter((f) => f.endsWith('.csv')).sort()).toEqual(tables.sort());
    for (const t of tables) {
      // case_metadata's folder column differs by the output folder only.
      const norm = (dir: string) => readFileSync(path.join(dir, '_RESULTS', t), 'utf8').split(dir).join('<OUT>');
      expectTablesEqual(norm(path.join(work, 'local')), norm(out), t);
    }
    expect(squeueAll()).toBe('');
  }, 300_000);

  it('SIGTERM cancels the run\'s jobs with scancel and exits 1, leaving nothing in the queue', async () => {
    const out = path.join(work, 'cancel');
    const child = spawn(process.execPath, [CLI, 'run', '--dicom-root', input, '--outdir', out, '--logs', path.join(work, 'logs-cancel'), '--stage', STAGES, '--force-redo', ...slurmArgs()], {
      env: { ...process.env, RTPIPELINE_LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, as from a login shell.
      detached: true,
    });
    let stdout = '';
    let signalled = false;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (!signalled && /submitted array job/.test(stdout)) {
        signalled = true;
        // The array is queued now: its tasks are pending or running.
        expect(squeueAll()).toMatch(/rtpipeline-course/);
        child.kill('SIGTERM');
      }
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | string | null>((resolve) => child.on('exit', (c, sig) => resolve(c ?? sig)));
    expect(signalled, stdout.slice(-3000)).toBe(true);
    expect(code, stderr + stdout.slice(-3000)).toBe(1);
    expect(stdout).toMatch(/cancelling job\(s\) \d+ \(scancel\)/);
    expect(squeueAll()).toBe('');
  }, 180_000);
  it('the daemon with executor.kind slurm organizes here and runs the study job\'s later stages as a SLURM course task', async () => {
    const ct = path.join(work, 'node-ct');
    await writeCtSeries(ct, { patientId: 'SLN', patientName: 'SLN^NODE', studyDate: '20250601', phantom });
    const node = await startNode({ configYaml: `node:\n  stable_seconds: 0.5\nexecutor:\n  kind: slurm\n  partition: ${partition}\n  poll_seconds: 1\n  time: '00:10:00'\n` });
    try {
      const sent = await storescu({ port: node.dicomPort, calledAet: node.aet, files: ct });
      expect(sent.code, sent.stderr).toBe(0);
      const job = await node.waitFor(async () => ((await node.api('/api/jobs')).body as any[]).find((j) => j.state === 'done' || j.state === 'failed'), 150_000, 'the study job');
      expect(job.state, `${job.error}\n${node.logs().split('\n').slice(-20).join('\n')}`).toBe('done');
      expect(job.result.stages.map((s: { stage: string; status: string }) => `${s.stage}:${s.status}`)).toEqual(['organize:done', 'segmentation:done', 'qc:done']);
      // Organize ran in the node; segmentation and qc in one array task on the cluster.
      expect(node.logs()).toMatch(/organize done for SLN\//);
      expect(node.logs()).toMatch(/shared-filesystem probe passed/);
      const submitted = /submitted array job (\d+) \(1 course task\(s\), attempt 1\)/.exec(node.logs());
      expect(submitted, node.logs().slice(-3000)).not.toBeNull();
      expect(node.logs()).not.toMatch(/segmentation started for/);
      const taskLog = readFileSync(path.join(node.dataDir, 'logs', 'slurm', `rtpipeline-${submitted![1]}_0.out`), 'utf8');
      expect(taskLog).toMatch(/segmentation done for SLN\//);
      expect(taskLog).toMatch(/qc done for SLN\//);
      const rsAuto = job.result.segmentation.rsAuto as string;
      expect(rsAuto).toBe(path.join(job.result.courseDir, 'RS_auto.dcm'));
      expect(rsAuto.startsWith(path.join(node.dataDir, 'output') + path.sep)).toBe(true);
      expect(statSync(rsAuto).size).toBeGreaterThan(1000);
      expect(squeueAll()).toBe('');
    } finally {
      await node.stop();
    }
  }, 200_000);
});
