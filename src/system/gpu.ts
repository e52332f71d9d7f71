import { runTool, ToolError } from '../tools/run-tool.js';

/**
 * GPU detection through nvidia-smi. Never assumes a GPU: a missing binary, a failing driver or a
 * hung nvidia-smi (it does hang when the driver is wedged) all mean "no GPU", with the reason.
 * CUDA_VISIBLE_DEVICES is applied the way CUDA applies it, so the devices listed are the ones a
 * tool started with this environment would see. The query adds `uuid` to the usual fields because
 * CUDA_VISIBLE_DEVICES may name GPUs by UUID.
 */

export interface GpuDevice {
  index: number;
  name: string;
  memoryMb: number;
  uuid?: string;
}

export interface GpuInfo {
  available: boolean;
  devices: GpuDevice[];
  driverVersion?: string;
  /** CUDA_VISIBLE_DEVICES as found, when set. */
  visibleDevices?: string;
  reason?: string;
}

export interface DetectGpuOptions {
  /** The nvidia-smi executable (a name looked up on PATH, or a path). */
  nvidiaSmi?: string;
  /** CUDA_VISIBLE_DEVICES is read from here (default process.env); nvidia-smi runs with these
   *  variables laid over process.env (tools/run-tool.ts). */
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

const QUERY = '--query-gpu=index,name,memory.total,driver_version,uuid';

/** Parses `nvidia-smi --query-gpu=index,name,memory.total,driver_version,uuid --format=csv,noheader,nounits`. */
export function parseNvidiaSmi(text: string): { devices: GpuDevice[]; driverVersion?: string } {
  const devices: GpuDevice[] = [];
  let driverVersion: string | undefined;
  for (const line of text.split('\n')) {
    const f = line.split(',').map((s) => s.trim());
    if (f.length < 4 || !/^\d+$/.test(f[0])) continue;
    // The name is the only field that could hold a comma: take the fixed fields from both ends.
    const hasUuid = f.length >= 5 && /^(GPU|MIG)-/.test(f[f.length - 1]);
    const tail = hasUuid ? f.slice(-3) : f.slice(-2);
    const memory = Number(tail[0]);
    devices.push({
      index: Number(f[0]),
      name: f.slice(1, f.length - tail.length).join(', '),
      memoryMb: Number.isFinite(memory) ? memory : 0,
      ...(hasUuid ? { uuid: tail[2] } : {}),
    });
    driverVersion ??= tail[1];
  }
  return { devices, driverVersion };
}

/**
 * Devices left visible by CUDA_VISIBLE_DEVICES, in its order. As in CUDA, entries are indices or
 * (prefixes of) UUIDs, and the list stops at the first entry that names no device: "0,7,1" on a
 * two-GPU machine shows only GPU 0.
 */
export function applyVisibleDevices(devices: GpuDevice[], visible: string | undefined): GpuDevice[] {
  if (visible === undefined) return devices;
  const out: GpuDevice[] = [];
  for (const entry of visible.split(',').map((s) => s.trim())) {
    const dev = /^\d+$/.test(entry) ? devices.find((d) => d.index === Number(entry)) : entry !== '' ? devices.find((d) => d.uuid?.startsWith(entry)) : undefined;
    if (!dev || out.includes(dev)) break;
    out.push(dev);
  }
  return out;
}

export async function detectGpu(opts: DetectGpuOptions = {}): Promise<GpuInfo> {
  const env = opts.env ?? process.env;
  const visibleDevices = env.CUDA_VISIBLE_DEVICES;
  const base = visibleDevices !== undefined ? { visibleDevices } : {};
  const smi = opts.nvidiaSmi ?? 'nvidia-smi';
  let stdout: string;
  try {
    ({ stdout } = await runTool({
      file: smi,
      args: [QUERY, '--format=csv,noheader,nounits'],
      env,
      timeoutSeconds: (opts.timeoutMs ?? 5000) / 1000,
      graceSeconds: 1,
      label: 'nvidia-smi',
    }));
  } catch (e) {
    if (!(e instanceof ToolError)) throw e;
    const reason = e.reason === 'not-found' ? `${smi} not found (no NVIDIA driver in this environment)` : e.message.split('\n').slice(0, 2).join(' ');
    return { available: false, devices: [], ...base, reason };
  }
  const { devices, driverVersion } = parseNvidiaSmi(stdout);
  if (devices.length === 0) return { available: false, devices, driverVersion, ...base, reason: `${smi} listed no GPU` };
  const visible = applyVisibleDevices(devices, visibleDevices);
  if (visible.length === 0) {
    return { available: false, devices: visible, driverVersion, ...base, reason: `CUDA_VISIBLE_DEVICES="${visibleDevices}" hides all ${devices.length} GPU(s)` };
  }
  return { available: true, devices: visible, driverVersion, ...base };
}
