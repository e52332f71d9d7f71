import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTool, ToolError } from '../src/tools/run-tool.js';
import { toolTimeouts } from '../src/tools/timeouts.js';
import { processesWithMarker, readStat, zombiesOfOurs } from './helpers/processes.js';
import { ConfigError } from '../src/config/load.js';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rtp-run-tool-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A bash script in the temp dir; `$MARK` in it is the marker given through the environment. */
function script(name: string, body: string): string {
  const file = join(dir, name);
  writeFileSync(file, `#!/bin/bash\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

async function rejection(p: Promise<unknown>): Promise<ToolError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ToolError);
    return e as ToolError;
  }
  throw new Error('expected the tool run to fail');
}

/** A tool that starts a child, a setsid'd grandchild (new session), a subshell and a nested bash, then hangs. */
const HANGING_TREE = `
sleep 300 &
setsid bash -c "sleep 300; : $MARK" &
( sleep 300; : ) &
bash -c "bash -c 'sleep 300; : $MARK'; :" &
echo started
wait
`;

describe('runTool', () => {
  it('stops the whole process tree at the timeout, setsid grandchildren included', async () => {
    const marker = randomUUID();
    const tool = script('hang.sh', HANGING_TREE);
    let spawned = 0;
    const t0 = performance.now();
    const err = await rejection(
      runTool({ file: tool, args: [marker], env: { MARK: marker }, timeoutSeconds: 1, graceSeconds: 2, label: 'hang test', timeoutVariable: 'TOTALSEG_TIMEOUT', onSpawn: (pid) => (spawned ||= pid) }),
    );
    const seconds = (performance.now() - t0) / 1000;
    expect(err.reason).toBe('timeout');
    expect(err.message).toContain('hang test');
    expect(err.message).toContain('timed out after 1 s');
    expect(err.message).toContain('TOTALSEG_TIMEOUT');
    expect(err.details.stdout).toContain('started');
    // Everything here dies on SIGTERM, so no need to wait for the grace period.
    expect(seconds).toBeGreaterThanOrEqual(0.95);
    expect(seconds).toBeLessThan(1 + 2);
    expect(spawned).toBeGreaterThan(0);
    expect(readStat(spawned)).toBeNull();
    expect(processesWithMarker(marker)).toEqual([]);
    expect(zombiesOfOurs()).toEqual([]);
  });

  it('sends SIGKILL after the grace period to processes that ignore SIGTERM', async () => {
    const marker = randomUUID();
    const tool = script('stubborn.sh', `trap '' TERM\nsleep 300 &\nsetsid bash -c "trap '' TERM; sleep 300; : $MARK" &\necho ready\nwait`);
    const t0 = performance.now();
    const err = await rejection(runTool({ file: tool, args: [marker], env: { MARK: marker }, timeoutSeconds: 1, graceSeconds: 1, label: 'stubborn' }));
    const seconds = (performance.now() - t0) / 1000;
    expect(err.message).toContain('timed out after 1 s');
    expect(seconds).toBeGreaterThanOrEqual(1.9); // timeout + the whole grace period
    expect(seconds).toBeLessThan(1 + 1 + 2);
    expect(processesWithMarker(marker)).toEqual([]);
    expect(zombiesOfOurs()).toEqual([]);
  });

  it('stops the tree when the AbortSignal fires', async () => {
    const marker = randomUUID();
    const tool = script('cancel.sh', HANGING_TREE);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const t0 = performance.now();
    const err = await rejection(runTool({ file: tool, args: [marker], env: { MARK: marker }, timeoutSeconds: 60, graceSeconds: 2, signal: controller.signal, label: 'cancel test' }));
    expect(err.reason).toBe('cancelled');
    expect(err.message).toContain('cancelled');
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(processesWithMarker(marker)).toEqual([]);
  });

  it('does not start a tool when the signal has already fired', async () => {
    const marker = randomUUID();
    const controller = new AbortController();
    controller.abort();
    const err = await rejection(runTool({ file: script('never.sh', 'sleep 300'), args: [marker], timeoutSeconds: 5, signal: controller.signal, label: 'never' }));
    expect(err.reason).toBe('cancelled');
    expect(processesWithMarker(marker)).toEqual([]);
  });

  it('stops processes a tool leaves behind when it exits', async () => {
    const marker = randomUUID();
    // The first keeps our stdout pipe open; the second does not.
    const tool = script('leaves.sh', `bash -c "sleep 300; : $MARK" &\nbash -c "sleep 300; : $MARK" >/dev/null 2>&1 &\necho done`);
    const result = await runTool({ file: tool, args: [marker], env: { MARK: marker }, timeoutSeconds: 30, graceSeconds: 2, label: 'leaves' });
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toBe('done\n');
    expect(result.durationMs).toBeLessThan(5000);
    expect(processesWithMarker(marker)).toEqual([]);
  });

  it('reports a non-zero exit with the code and the last 20 lines of stderr', async () => {
    const tool = script('fails.sh', 'for n in $(seq 1 30); do echo "problem line $n" >&2; done\nexit 3');
    const err = await rejection(runTool({ file: tool, args: [], timeoutSeconds: 10, label: 'failing tool' }));
    expect(err.reason).toBe('exit-code');
    expect(err.details.exitCode).toBe(3);
    expect(err.message).toContain('failing tool');
    expect(err.message).toContain('exited with code 3');
    expect(err.message).toContain('problem line 30');
    expect(err.message).toContain('problem line 11\n');
    expect(err.message).not.toContain('problem line 10\n');
    expect(err.details.stderr).toContain('problem line 1\n');
  });

  it('reports a tool killed by a signal', async () => {
    const err = await rejection(runTool({ file: script('killed.sh', 'kill -KILL $$'), args: [], timeoutSeconds: 10, label: 'killed' }));
    expect(err.reason).toBe('signal');
    expect(err.message).toContain('SIGKILL');
  });

  it('names a missing executable and what to do', async () => {
    const err = await rejection(runTool({ file: 'TotalSegmentator-not-installed', args: [], timeoutSeconds: 10, label: 'TotalSegmentator', notFoundHint: 'install it or set segmentation.command' }));
    expect(err.reason).toBe('not-found');
    expect(err.message).toContain('not found: TotalSegmentator-not-installed (install it or set segmentation.command)');
    const missingPath = await rejection(runTool({ file: join(dir, 'nope'), args: [], timeoutSeconds: 10, label: 'x' }));
    expect(missingPath.message).toContain(`not found: ${join(dir, 'nope')}`);
  });

  it('calls the heartbeat while the tool runs', async () => {
    const beats: number[] = [];
    await runTool({ file: 'sleep', args: ['0.65'], timeoutSeconds: 10, heartbeatSeconds: 0.1, onHeartbeat: (ms) => beats.push(ms), label: 'beat' });
    expect(beats.length).toBeGreaterThanOrEqual(4);
    expect(beats.length).toBeLessThanOrEqual(7);
    expect(beats).toEqual([...beats].sort((a, b) => a - b));
    expect(beats[0]).toBeGreaterThanOrEqual(90);
  });

  it('passes the environment through (CUDA_VISIBLE_DEVICES), with overrides and removals', async () => {
    const saved = { cuda: process.env.CUDA_VISIBLE_DEVICES, other: process.env.RTP_TEST_REMOVE_ME };
    process.env.CUDA_VISIBLE_DEVICES = '1,3';
    process.env.RTP_TEST_REMOVE_ME = 'present';
    try {
      const tool = script('env.sh', 'echo "cuda=$CUDA_VISIBLE_DEVICES extra=$EXTRA removed=${RTP_TEST_REMOVE_ME-unset}"');
      const result = await runTool({ file: tool, args: [], env: { EXTRA: 'x y', RTP_TEST_REMOVE_ME: undefined }, timeoutSeconds: 10, label: 'env' });
      expect(result.stdout).toBe('cuda=1,3 extra=x y removed=unset\n');
    } finally {
      for (const [name, value] of [['CUDA_VISIBLE_DEVICES', saved.cuda], ['RTP_TEST_REMOVE_ME', saved.other]] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('keeps only the tail of a large output', async () => {
    const tool = script('chatty.sh', 'head -c 3000000 /dev/zero | tr "\\0" "x"; echo; echo THE-END');
    const result = await runTool({ file: tool, args: [], timeoutSeconds: 20, label: 'chatty' });
    expect(result.stdout.length).toBeLessThan((1 << 20) + 200);
    expect(result.stdout.length).toBeGreaterThan(1 << 19);
    expect(result.stdout).toMatch(/^\[\.\.\. \d+ earlier bytes not kept \.\.\.\]\n/);
    expect(result.stdout.endsWith('x\nTHE-END\n')).toBe(true);
  });

  it('runs in the given working directory and refuses a missing one', async () => {
    const result = await runTool({ file: 'pwd', args: [], cwd: dir, timeoutSeconds: 10, label: 'pwd' });
    expect(result.stdout.trim()).toBe(dir);
    const err = await rejection(runTool({ file: 'pwd', args: [], cwd: join(dir, 'missing'), timeoutSeconds: 10, label: 'pwd' }));
    expect(err.message).toContain(`working directory ${join(dir, 'missing')} does not exist`);
  });
});

describe('toolTimeouts', () => {
  it('uses the defaults when nothing is set', () => {
    expect(toolTimeouts({})).toEqual({
      totalsegSeconds: 3600,
      dcm2niixSeconds: 300,
      radiomicsTaskSeconds: 600,
      sources: { TOTALSEG_TIMEOUT: 'default', DCM2NIIX_TIMEOUT: 'default', RTPIPELINE_RADIOMICS_TASK_TIMEOUT: 'default' },
    });
  });

  it('never replaces a set variable by the default', () => {
    const t = toolTimeouts({ TOTALSEG_TIMEOUT: '7200', DCM2NIIX_TIMEOUT: ' 12.5 ', RTPIPELINE_RADIOMICS_TASK_TIMEOUT: '' });
    expect(t.totalsegSeconds).toBe(7200);
    expect(t.dcm2niixSeconds).toBe(12.5);
    expect(t.radiomicsTaskSeconds).toBe(600);
    expect(t.sources).toEqual({ TOTALSEG_TIMEOUT: 'env', DCM2NIIX_TIMEOUT: 'env', RTPIPELINE_RADIOMICS_TASK_TIMEOUT: 'default' });
  });

  it('refuses a value that is not a positive number, naming the variable', () => {
    for (const bad of ['0', '-5', 'one hour', '1h', 'NaN', 'Infinity']) {
      let error: unknown;
      try {
        toolTimeouts({ DCM2NIIX_TIMEOUT: bad });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).exitCode).toBe(2);
      expect((error as ConfigError).message).toContain(`DCM2NIIX_TIMEOUT="${bad}"`);
    }
  });
});
