import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { applyVisibleDevices, detectGpu, parseNvidiaSmi } from '../src/system/gpu.js';

// Stand-in nvidia-smi scripts: the query arguments are checked so a changed command line fails here.
const dir = mkdtempSync(path.join(tmpdir(), 'rtp-gpu-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function script(name: string, body: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

const twoGpus = script(
  'two-gpus',
  `case "$1" in --query-gpu=index,name,memory.total,driver_version*) ;; *) echo "unexpected args $*" >&2; exit 9;; esac
[ "$2" = "--format=csv,noheader,nounits" ] || { echo "unexpected format $2" >&2; exit 9; }
echo "0, NVIDIA A100-SXM4-40GB, 40960, 535.54.03, GPU-aaaa1111-0000-0000-0000-000000000000"
echo "1, Tesla T4, 15360, 535.54.03, GPU-bbbb2222-0000-0000-0000-000000000000"`,
);
const failing = script('failing', 'echo "NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver." >&2\nexit 9');
// The grandchild sleep keeps stdout open: the probe must still return on time.
const hanging = script('hanging', 'sleep 30\necho never');

describe('detectGpu', () => {
  it('lists the GPUs nvidia-smi reports, with driver version and memory', async () => {
    const g = await detectGpu({ nvidiaSmi: twoGpus, env: { PATH: process.env.PATH } });
    expect(g.available).toBe(true);
    expect(g.driverVersion).toBe('535.54.03');
    expect(g.devices.map((d) => [d.index, d.name, d.memoryMb])).toEqual([
      [0, 'NVIDIA A100-SXM4-40GB', 40960],
      [1, 'Tesla T4', 15360],
    ]);
    expect(g.visibleDevices).toBeUndefined();
  });

  it('honours CUDA_VISIBLE_DEVICES: a list filters, "" and "-1" hide everything', async () => {
    const only1 = await detectGpu({ nvidiaSmi: twoGpus, env: { PATH: process.env.PATH, CUDA_VISIBLE_DEVICES: '1' } });
    expect(only1.available).toBe(true);
    expect(only1.devices.map((d) => d.name)).toEqual(['Tesla T4']);
    expect(only1.visibleDevices).toBe('1');
    for (const none of ['', '-1']) {
      const g = await detectGpu({ nvidiaSmi: twoGpus, env: { PATH: process.env.PATH, CUDA_VISIBLE_DEVICES: none } });
      expect(g.available).toBe(false);
      expect(g.devices).toEqual([]);
      expect(g.reason).toMatch(/CUDA_VISIBLE_DEVICES.*hides all 2/);
    }
  });

  it('reports a failing nvidia-smi as no GPU, with its message', async () => {
    const g = await detectGpu({ nvidiaSmi: failing, env: { PATH: process.env.PATH } });
    expect(g.available).toBe(false);
    expect(g.reason).toMatch(/exited with code 9.*couldn't communicate with the NVIDIA driver/);
  });

  it('gives up on a hanging nvidia-smi after the timeout', async () => {
    const t0 = Date.now();
    const g = await detectGpu({ nvidiaSmi: hanging, env: { PATH: process.env.PATH }, timeoutMs: 300 });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(g.available).toBe(false);
    expect(g.reason).toMatch(/timed out after 0.3 s/);
  });

  it('reports a missing binary as not found', async () => {
    const g = await detectGpu({ nvidiaSmi: path.join(dir, 'no-such-nvidia-smi'), env: { PATH: process.env.PATH } });
    expect(g).toMatchObject({ available: false, devices: [] });
    expect(g.reason).toMatch(/not found/);
  });

  it('finds no GPU on this machine (no nvidia-smi on PATH)', async () => {
    const g = await detectGpu();
    expect(g.available).toBe(false);
    expect(g.reason).toBeTruthy();
  });
});

describe('CUDA_VISIBLE_DEVICES rules', () => {
  const { devices } = parseNvidiaSmi('0, A, 100, 1.0, GPU-aa\n1, Name, with comma, 200, 1.0, GPU-bb\n');
  it('parses a name containing a comma', () => {
    expect(devices.map((d) => d.name)).toEqual(['A', 'Name, with comma']);
    expect(devices.map((d) => d.memoryMb)).toEqual([100, 200]);
  });
  it('keeps the listed order, accepts UUID prefixes and stops at the first unknown entry (as CUDA does)', () => {
    expect(applyVisibleDevices(devices, '1,0').map((d) => d.index)).toEqual([1, 0]);
    expect(applyVisibleDevices(devices, 'GPU-b').map((d) => d.index)).toEqual([1]);
    expect(applyVisibleDevices(devices, '0,7,1').map((d) => d.index)).toEqual([0]);
    expect(applyVisibleDevices(devices, undefined)).toHaveLength(2);
  });
});
