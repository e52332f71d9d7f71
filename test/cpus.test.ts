import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/load.js';
import { cgroupDir, parseCfsQuota, parseCpuList, parseCpuMax, usableCpusSync } from '../src/system/cpus.js';
import { resolveWorkers } from '../src/system/workers.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/cgroup/', import.meta.url));
const REPO = fileURLToPath(new URL('..', import.meta.url));
// A many-core host, so every fixture limit is below what the OS reports.
const fixture = (name: string) => usableCpusSync({ root: path.join(FIXTURES, name), osCount: 64 });

describe('parsers', () => {
  it('counts CPU lists with ranges, singles and overlaps', () => {
    expect(parseCpuList('0-3,8,10-11')).toBe(7);
    expect(parseCpuList('0')).toBe(1);
    expect(parseCpuList('0-3,2-5')).toBe(6);
    expect(() => parseCpuList('3-1')).toThrow(/backwards/);
    expect(() => parseCpuList('')).toThrow(/empty/);
  });
  it('reads cpu.max and CFS quotas, flooring fractions with a minimum of 1', () => {
    expect(parseCpuMax('max 100000')).toBeNull();
    expect(parseCpuMax('150000 100000')).toBe(1);
    expect(parseCpuMax('400000 100000\n')).toBe(4);
    expect(parseCpuMax('50000 100000')).toBe(1);
    expect(() => parseCpuMax('lots of cpus')).toThrow();
    expect(parseCfsQuota('-1', '100000')).toBeNull();
    expect(parseCfsQuota('250000', '100000')).toBe(2);
    expect(() => parseCfsQuota('abc', '100000')).toThrow(/cfs_quota_us/);
  });
  it('maps a cgroup path under a mount whose root is the cgroup itself (no cgroup namespace)', () => {
    expect(cgroupDir({ root: '/docker/x', mountPoint: '/sys/fs/cgroup/cpu' }, '/docker/x')).toBe('/sys/fs/cgroup/cpu');
    expect(cgroupDir({ root: '/docker/x', mountPoint: '/sys/fs/cgroup/cpu' }, '/docker/x/sub')).toBe('/sys/fs/cgroup/cpu/sub');
    expect(cgroupDir({ root: '/', mountPoint: '/sys/fs/cgroup' }, '/a/b')).toBe('/sys/fs/cgroup/a/b');
  });
});

describe('usable CPUs from fixture trees', () => {
  it('cgroup v2 limit (2.5 CPUs → 2)', () => {
    const r = fixture('v2-limited');
    expect(r).toMatchObject({ count: 2, source: 'cgroup-v2' });
    expect(r.detail).toContain('/sys/fs/cgroup/cpu.max "250000 100000"');
    expect(r.candidates.find((c) => c.source === 'affinity')?.count).toBe(8);
  });
  it('cgroup v2 without a limit falls to the affinity mask', () => {
    const r = fixture('v2-unlimited');
    expect(r).toMatchObject({ count: 8, source: 'affinity' });
    expect(r.candidates.find((c) => c.source === 'cgroup-v2')).toMatchObject({ count: null });
  });
  it('cgroup v2 nested: a parent limit caps an unlimited child', () => {
    const r = fixture('v2-nested');
    expect(r).toMatchObject({ count: 3, source: 'cgroup-v2' });
    expect(r.detail).toContain('/sys/fs/cgroup/kubepods/pod1/cpu.max');
  });
  it('cgroup v1 quota under a cpu,cpuacct mount rooted at the container cgroup', () => {
    const r = fixture('v1-limited');
    expect(r).toMatchObject({ count: 2, source: 'cgroup-v1' });
    expect(r.detail).toContain('/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us 200000');
  });
  it('cgroup v1 quota -1 is no limit', () => {
    const r = fixture('v1-unlimited');
    expect(r).toMatchObject({ count: 8, source: 'affinity' });
    expect(r.candidates.find((c) => c.source === 'cgroup-v1')).toMatchObject({ count: null });
  });
  it('affinity mask alone', () => {
    expect(fixture('affinity-only')).toMatchObject({ count: 4, source: 'affinity', detail: 'Cpus_allowed_list 0,2,5-6' });
  });
  it('malformed files are ignored with a reason, and the OS count is used', () => {
    const r = fixture('malformed');
    expect(r).toMatchObject({ count: 64, source: 'os' });
    const why = Object.fromEntries(r.candidates.map((c) => [c.source, c.ignored]));
    expect(why.affinity).toMatch(/Cpus_allowed_list: "0-x"/);
    expect(why['cgroup-v2']).toMatch(/sys\/fs\/cgroup\/cpu.max: expected/);
    expect(why['cgroup-v1']).toMatch(/cfs_quota_us "abc"/);
  });
  it('an empty root (no /proc at all) gives the OS count', () => {
    expect(usableCpusSync({ root: path.join(FIXTURES, 'no-such-tree'), osCount: 3 })).toMatchObject({ count: 3, source: 'os' });
  });
});

describe('usable CPUs of a real process', () => {
  const dist = path.join(REPO, 'dist/src/system/cpus.js');
  beforeAll(() => {
    spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: REPO, stdio: 'ignore' }); // emits even when other modules have type errors
  }, 120_000);
  const run = (prefix: string[]) => {
    const code = `import {usableCpus} from ${JSON.stringify(dist)}; console.log(JSON.stringify(await usableCpus()))`;
    const r = spawnSync(prefix[0], [...prefix.slice(1), process.execPath, '--input-type=module', '-e', code], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as { count: number; source: string; candidates: { source: string; count: number | null }[] };
  };
  // This machine has no cgroup CPU limit, so the affinity mask set by taskset is the limit.
  it('taskset -c 0 → 1 CPU from the affinity mask', () => {
    expect(existsSync(dist)).toBe(true);
    const r = run(['taskset', '-c', '0']);
    expect(r).toMatchObject({ count: 1, source: 'affinity' });
  });
  it('without taskset, every CPU of the mask (matching os.availableParallelism)', () => {
    const r = run(['env']);
    const limited = r.candidates.filter((c) => c.source.startsWith('cgroup') && c.count !== null);
    if (limited.length === 0) expect(r.count).toBe(r.candidates.find((c) => c.source === 'os')?.count);
    expect(r.count).toBeGreaterThanOrEqual(1);
  });
});

describe('resolveWorkers', () => {
  const base = { env: {}, configMaxWorkers: null, configSegWorkers: null, usable: 4 };
  it('defaults to usable − 1 (at least 1) and 1 segmentation worker', () => {
    expect(resolveWorkers(base)).toMatchObject({ maxWorkers: 3, segWorkers: 1, source: 'default', segSource: 'default' });
    expect(resolveWorkers({ ...base, usable: 1 })).toMatchObject({ maxWorkers: 1, segWorkers: 1 });
  });
  it('flag > env > config', () => {
    expect(resolveWorkers({ ...base, configMaxWorkers: 2 })).toMatchObject({ maxWorkers: 2, source: 'config' });
    expect(resolveWorkers({ ...base, configMaxWorkers: 2, env: { RTPIPELINE_WORKERS: '5' } })).toMatchObject({ maxWorkers: 5, source: 'env', detail: 'RTPIPELINE_WORKERS' });
    expect(resolveWorkers({ ...base, flagMaxWorkers: '6', configMaxWorkers: 2, env: { RTPIPELINE_WORKERS: '5' } })).toMatchObject({ maxWorkers: 6, source: 'flag' });
  });
  it('RTPIPELINE_MAX_WORKERS wins over RTPIPELINE_WORKERS, with a warning', () => {
    const r = resolveWorkers({ ...base, env: { RTPIPELINE_WORKERS: '3', RTPIPELINE_MAX_WORKERS: '2' } });
    expect(r).toMatchObject({ maxWorkers: 2, source: 'env', detail: 'RTPIPELINE_MAX_WORKERS' });
    expect(r.warnings.join()).toMatch(/RTPIPELINE_MAX_WORKERS=2 and RTPIPELINE_WORKERS=3 differ/);
  });
  it('segmentation workers are capped by the worker cap', () => {
    const r = resolveWorkers({ ...base, flagMaxWorkers: 2, configSegWorkers: 4 });
    expect(r).toMatchObject({ maxWorkers: 2, segWorkers: 2, segSource: 'config' });
    expect(r.warnings.join()).toMatch(/cap is 2/);
    expect(resolveWorkers({ ...base, env: { RTPIPELINE_SEG_WORKERS: '2' } })).toMatchObject({ segWorkers: 2, segSource: 'env' });
  });
  it('invalid values are a ConfigError (exit 2) naming the variable or flag', () => {
    for (const [name, value] of [['RTPIPELINE_WORKERS', 'abc'], ['RTPIPELINE_MAX_WORKERS', '0'], ['RTPIPELINE_WORKERS', '1.5']]) {
      let err: unknown;
      try {
        resolveWorkers({ ...base, env: { [name]: value } });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).exitCode).toBe(2);
      expect((err as Error).message).toContain(`environment variable ${name}: "${value}"`);
    }
    expect(() => resolveWorkers({ ...base, flagMaxWorkers: '-1' })).toThrow(/--max-workers: "-1"/);
  });
  it('agrees with the config loader, which already merges the same variables into max_workers', () => {
    const env = { RTPIPELINE_WORKERS: '3', RTPIPELINE_MAX_WORKERS: '2' };
    const { config } = loadConfig({ env });
    expect(config.max_workers).toBe(2);
    expect(resolveWorkers({ env, configMaxWorkers: config.max_workers, configSegWorkers: config.seg_workers, usable: 8 })).toMatchObject({ maxWorkers: 2, source: 'env' });
  });
});
