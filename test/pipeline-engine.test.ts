// The pipeline engine: stages as bree worker-thread jobs (stage pool), completion markers, resume,
// --force-redo, cancellation with a grace period that kills a stage's tools, worker limits, heartbeat.
import { describe, it, expect, beforeAll, afterEach } from 'vitest';
import { mkdirSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pino from 'pino';
import { Writable } from 'node:stream';
import { StagePool, StageCancelledError } from '../src/pipeline/stage-pool.js';
import { runCourse, formatElapsed, StageFailedError } from '../src/pipeline/course-pipeline.js';
import { readMarker } from '../src/pipeline/stage-markers.js';
import { ChildRegistry, processStartTime } from '../src/pipeline/child-registry.js';
import { spawn } from 'node:child_process';
import { tempDir } from './helpers/node.js';
import { sleep } from './helpers/ports.js';

const HOST = pathToFileURL(fileURLToPath(new URL('../dist/src/pipeline/job-host.js', import.meta.url))).href;

/** A logger that keeps its lines for assertions. */
function memoryLog() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    return state !== 'Z';
  } catch {
    return false;
  }
}

let jobsDir: string;
const pools: StagePool[] = [];
function pool(o: { maxWorkers?: number; segWorkers?: number; graceMs?: number } = {}) {
  const { log, lines } = memoryLog();
  const p = new StagePool({ maxWorkers: o.maxWorkers ?? 2, segWorkers: o.segWorkers ?? 1, graceMs: o.graceMs ?? 500, log, jobsDir });
  pools.push(p);
  return { p, log, lines };
}

beforeAll(() => {
  expect(existsSync(fileURLToPath(HOST)), 'run `npm run build` first (pretest does)').toBe(true);
  jobsDir = tempDir('rtp-jobs-');
  writeFileSync(path.join(jobsDir, 'package.json'), '{"type":"module"}');
  // organize: echoes its input after `ms`, logs through the node's logger, fails on demand.
  writeFileSync(
    path.join(jobsDir, 'organize.js'),
    `import { hostStage } from '${HOST}';
hostStage(async (input, ctx) => {
  ctx.log.info({ n: input.n }, 'organize says hello');
  await new Promise((r) => setTimeout(r, input.ms ?? 0));
  if (input.fail) throw new Error('the organize input was bad: ' + input.fail);
  return { doubled: input.n * 2, at: Date.now(), start: Date.now() - (input.ms ?? 0) };
});`,
  );
  // segmentation: runs an external "tool" that ignores SIGTERM and never ends, and ignores cancel itself.
  writeFileSync(
    path.join(jobsDir, 'segmentation.js'),
    `import { hostStage } from '${HOST}';
import { spawn } from 'node:child_process';
hostStage(async (input, ctx) => {
  if (input.quick) { await new Promise((r) => setTimeout(r, input.ms)); return { start: Date.now() - input.ms, end: Date.now() }; }
  const child = spawn('sh', ['-c', 'trap "" TERM; sleep 300 & wait'], { detached: true, stdio: 'ignore' });
  ctx.onChild(child.pid);
  ctx.log.info({ pid: child.pid }, 'tool started');
  await new Promise(() => {});
});`,
  );
});

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.stop()));
});

describe('stage pool (bree worker threads)', () => {
  it('runs a stage in a worker and returns its result; its log lines reach the node logger', async () => {
    const { p, log, lines } = pool();
    const r = await p.run<{ doubled: number }>('organize', { n: 21 }, { log: log.child({ jobId: 7 }) });
    expect(r.doubled).toBe(42);
    const hello = lines.find((l) => l.msg === 'organize says hello');
    expect(hello).toMatchObject({ jobId: 7, stage: 'organize', n: 21 });
    expect(p.active).toBe(0);
  });

  it("rejects with the stage's own error message", async () => {
    const { p, log } = pool();
    await expect(p.run('organize', { n: 1, fail: 'no CT' }, { log })).rejects.toThrow('the organize input was bad: no CT');
  });

  it('rejects clearly when the job file is missing', async () => {
    const { p, log } = pool();
    await expect(p.run('qc', {}, { log })).rejects.toThrow(/qc could not start|qc worker/);
  });

  it('keeps to segWorkers for segmentation stages and maxWorkers overall', async () => {
    const { p, log } = pool({ maxWorkers: 2, segWorkers: 1 });
    const segs = await Promise.all([
      p.run<{ start: number; end: number }>('segmentation', { quick: true, ms: 300 }, { log }),
      p.run<{ start: number; end: number }>('segmentation', { quick: true, ms: 300 }, { log }),
    ]);
    const [a, b] = segs.sort((x, y) => x.start - y.start);
    expect(b.start).toBeGreaterThanOrEqual(a.end - 20); // one after the other
    const { p: p1 } = pool({ maxWorkers: 1, segWorkers: 1 });
    const t0 = Date.now();
    await Promise.all([p1.run('organize', { n: 1, ms: 250 }, { log }), p1.run('organize', { n: 2, ms: 250 }, { log })]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(480);
  });

  it('cancels a stuck stage: after the grace period the worker is terminated and its tool tree killed', async () => {
    const { p, log, lines } = pool({ graceMs: 300 });
    const abort = new AbortController();
    const run = p.run('segmentation', {}, { log, signal: abort.signal });
    let pid = 0;
    for (let i = 0; i < 100 && !pid; i++) {
      await sleep(50);
      pid = Number(lines.find((l) => l.msg === 'tool started')?.pid ?? 0);
    }
    expect(pid).toBeGreaterThan(0);
    expect(alive(pid)).toBe(true);
    abort.abort('cancelled');
    await expect(run).rejects.toBeInstanceOf(StageCancelledError);
    for (let i = 0; i < 40 && alive(pid); i++) await sleep(50);
    expect(alive(pid)).toBe(false);
    expect(lines.some((l) => String(l.msg).includes('did not stop within the grace period'))).toBe(true);
    expect(p.active).toBe(0);
  });

  it('stop() refuses new stages and cancels running ones', async () => {
    const { p, log } = pool({ graceMs: 200 });
    const run = p.run('segmentation', {}, { log }).catch((e: unknown) => e);
    await sleep(300);
    await p.stop();
    expect(await run).toBeInstanceOf(StageCancelledError);
    await expect(p.run('organize', { n: 1 }, { log })).rejects.toThrow(/stopping/);
  });
});

describe('course pipeline: markers, resume, --force-redo, heartbeat', () => {
  it('runs the stages in order, skips the done ones on a re-run, redoes forced ones and invalidates what follows', async () => {
    const { p, log, lines } = pool();
    const courseDir = tempDir('rtp-course-');
    mkdirSync(courseDir, { recursive: true });
    const plan = (key: string) => [
      { stage: 'organize' as const, key, input: () => ({ n: 5 }) },
      { stage: 'segmentation' as const, key, input: (r: Record<string, unknown>) => ({ quick: true, ms: (r.organize as { doubled: number }).doubled }) },
    ];
    const first = await runCourse({ pool: p, courseDir, label: 'P1/2026-01-01', stages: plan('k1'), log });
    expect(first.outcomes.map((o) => o.status)).toEqual(['done', 'done']);
    expect((await readMarker(courseDir, 'organize'))?.key).toMatch(/^[0-9a-f]{24}$/);

    const again = await runCourse({ pool: p, courseDir, label: 'P1/2026-01-01', stages: plan('k1'), log });
    expect(again.outcomes.map((o) => o.status)).toEqual(['skipped', 'skipped']);
    expect((again.results.organize as { doubled: number }).doubled).toBe(10);

    const forced = await runCourse({ pool: p, courseDir, label: 'P1/2026-01-01', stages: plan('k1'), forceRedo: ['segmentation'], log });
    expect(forced.outcomes.map((o) => o.status)).toEqual(['skipped', 'done']);

    // New input (e.g. more instances arrived): organize re-runs and so must everything after it.
    const changed = await runCourse({ pool: p, courseDir, label: 'P1/2026-01-01', stages: [plan('k2')[0], { ...plan('k1')[1] }], log });
    expect(changed.outcomes.map((o) => o.status)).toEqual(['done', 'done']);
    expect(lines.some((l) => l.msg === 'organize already done for P1/2026-01-01: skipped')).toBe(true);
  });

  it('names the failing stage and the course; the markers before it stay', async () => {
    const { p, log } = pool();
    const courseDir = tempDir('rtp-course-');
    await runCourse({ pool: p, courseDir, label: 'P2/c', stages: [{ stage: 'organize', key: 'a', input: () => ({ n: 1 }) }], log });
    const err = await runCourse({
      pool: p,
      courseDir,
      label: 'P2/c',
      stages: [
        { stage: 'organize', key: 'a', input: () => ({ n: 1 }) },
        { stage: 'dvh', key: 'a', input: () => ({}) },
      ],
      log,
    }).catch((e) => e);
    expect(err).toBeInstanceOf(StageFailedError);
    expect(err.message).toMatch(/^dvh failed for P2\/c: /);
    expect(await readMarker(courseDir, 'organize')).toBeDefined();
    expect(await readMarker(courseDir, 'dvh')).toBeUndefined();
  });

  it('logs "Still processing <stage> for <patient>/<course> (<elapsed>)" while a stage runs', async () => {
    const { p, log, lines } = pool();
    const courseDir = tempDir('rtp-course-');
    await runCourse({ pool: p, courseDir, label: 'P3/2026-02', stages: [{ stage: 'organize', key: 'x', input: () => ({ n: 1, ms: 1300 }) }], log, heartbeatSeconds: 0.5 });
    const beats = lines.filter((l) => String(l.msg).startsWith('Still processing organize for P3/2026-02 ('));
    expect(beats.length).toBeGreaterThanOrEqual(2);
    expect(formatElapsed(3723_000)).toBe('1 h 02 min');
    expect(formatElapsed(185_000)).toBe('3 min 05 s');
    expect(formatElapsed(12_000)).toBe('12 s');
  });
});

describe('child registry: tools left running by a killed node', () => {
  it('kills a leftover tool group at the next start, and never a recycled pid', async () => {
    const file = path.join(tempDir('rtp-children-'), 'running-tools.json');
    const tool = spawn('sh', ['-c', 'sleep 300 & wait'], { detached: true, stdio: 'ignore' });
    await sleep(100);
    const first = new ChildRegistry(file);
    first.add(tool.pid!);
    // A stale entry whose pid now belongs to another process (ours): start time differs.
    const entries = JSON.parse(readFileSync(file, 'utf8'));
    entries.push({ pid: process.pid, startTime: String(Number(processStartTime(process.pid)) + 1) });
    writeFileSync(file, JSON.stringify(entries));
    const { log, lines } = memoryLog();
    expect(new ChildRegistry(file).killLeftovers(log)).toBe(1);
    for (let i = 0; i < 40 && alive(tool.pid!); i++) await sleep(50);
    expect(alive(tool.pid!)).toBe(false);
    expect(lines.filter((l) => l.msg === 'killed an external tool left running by the previous node process')).toHaveLength(1);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual([]);
  });
});
