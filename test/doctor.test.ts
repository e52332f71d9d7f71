import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, tempDir } from './helpers/node.js';
import type { DoctorReport } from '../src/doctor.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const work = tempDir('rtp-doctor-');
afterAll(() => rmSync(work, { recursive: true, force: true }));

beforeAll(() => {
  // Emits even when other modules have type errors; the doctor runs from dist/ like in a container.
  spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: REPO, stdio: 'ignore' });
}, 120_000);

/** Runs the compiled CLI's doctor in `work` (so output_dir/logs_dir resolve there). */
function doctor(args: string[], env: NodeJS.ProcessEnv = {}, prefix: string[] = []) {
  const baseEnv: NodeJS.ProcessEnv = { ...process.env, RTPIPELINE_DATA_DIR: path.join(work, 'data'), ...env };
  for (const name of ['TOTALSEG_TIMEOUT', 'DCM2NIIX_TIMEOUT', 'RTPIPELINE_RADIOMICS_TASK_TIMEOUT', 'RTPIPELINE_WORKERS', 'RTPIPELINE_MAX_WORKERS', 'CUDA_VISIBLE_DEVICES']) {
    if (!(name in env)) delete baseEnv[name];
  }
  const cmd = [...prefix, process.execPath, CLI, 'doctor', ...args];
  const r = spawnSync(cmd[0], cmd.slice(1), { cwd: work, env: baseEnv, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function json(r: { status: number | null; stdout: string; stderr: string }): DoctorReport {
  try {
    return JSON.parse(r.stdout) as DoctorReport;
  } catch {
    throw new Error(`doctor --json did not print JSON (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  }
}

describe('rtpipeline doctor', () => {
  it('--json reports CPUs, workers, timeouts, signals, tools and GPU, and exits 0', () => {
    const r = doctor(['--json']);
    const rep = json(r);
    expect(r.status, r.stderr).toBe(0);
    expect(rep.ok).toBe(true);
    expect(rep.cpus.count).toBeGreaterThanOrEqual(1);
    expect(rep.workers).toMatchObject({ maxWorkers: Math.max(1, rep.cpus.count - 1), segWorkers: 1, source: 'default' });
    expect(rep.workerSpawn.ok).toBe(true);
    expect(rep.signals.ok).toBe(true);
    expect(rep.timeouts).toMatchObject({ totalsegSeconds: 3600, dcm2niixSeconds: 300, radiomicsTaskSeconds: 600, sources: { TOTALSEG_TIMEOUT: 'default' } });
    const dcm2niix = rep.tools.find((t) => t.name === 'dcm2niix');
    expect(dcm2niix).toMatchObject({ found: true, path: expect.stringMatching(/dcm2niix$/) });
    expect(dcm2niix?.version).toMatch(/^\d+\.\d+/);
    expect(rep.tools.find((t) => t.name === 'TotalSegmentator')?.found).toBe(false);
    expect(rep.gpu.available).toBe(false);
    expect(rep.checks.find((c) => c.name === 'gpu')?.status).toBe('warn');
    expect(rep.dirs.find((d) => d.key === 'node.data_dir')).toMatchObject({ path: path.join(work, 'data'), writable: true });
    expect(rep.process.pid1Comm).toBeTruthy();
  });

  it('under taskset -c 0 sees 1 CPU from the affinity mask, and 1 worker', () => {
    const rep = json(doctor(['--json'], {}, ['taskset', '-c', '0']));
    expect(rep.cpus).toMatchObject({ count: 1, source: 'affinity' });
    expect(rep.workers).toMatchObject({ maxWorkers: 1 });
  });

  it('takes timeouts and workers from the environment', () => {
    const rep = json(doctor(['--json'], { TOTALSEG_TIMEOUT: '42', RTPIPELINE_WORKERS: '3' }));
    expect(rep.timeouts).toMatchObject({ totalsegSeconds: 42, sources: { TOTALSEG_TIMEOUT: 'env', DCM2NIIX_TIMEOUT: 'default' } });
    expect(rep.workers).toMatchObject({ maxWorkers: 3, source: 'env', detail: 'RTPIPELINE_WORKERS' });
  });

  it('fails (exit 1) with an unwritable data dir, naming the check', () => {
    const blocker = path.join(work, 'a-file');
    writeFileSync(blocker, 'not a directory');
    const dataDir = path.join(blocker, 'data');
    const r = doctor([], { RTPIPELINE_DATA_DIR: dataDir });
    expect(r.status, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^FAIL +node\.data_dir +.*a-file is not a directory/m);
    expect(r.stdout).toMatch(/^result: FAIL \(node\.data_dir\)$/m);
    const rep = json(doctor(['--json'], { RTPIPELINE_DATA_DIR: dataDir }));
    expect(rep.ok).toBe(false);
    expect(rep.checks.filter((c) => c.status === 'fail').map((c) => c.name)).toEqual(['node.data_dir']);
  });

  it('an invalid timeout variable is a failed check, not a crash', () => {
    const r = doctor(['--json'], { DCM2NIIX_TIMEOUT: 'soon' });
    expect(r.status).toBe(1);
    const rep = json(r);
    expect(rep.checks.find((c) => c.name === 'timeouts')).toMatchObject({ status: 'fail', message: expect.stringContaining('DCM2NIIX_TIMEOUT') });
  });
});
