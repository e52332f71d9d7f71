import { ConfigError, OVERRIDABLE } from '../config/load.js';

/**
 * Worker counts for the pipeline. Precedence (contract): flag > environment > config > default.
 * The default is usable CPUs − 1 (one CPU left for the DICOM listener, the index and the OS), at
 * least 1. Segmentation workers default to 1 because one segmentation can take several GB of
 * memory; they never exceed the overall cap.
 *
 * The variable names come from the config loader's OVERRIDABLE table, which lists
 * RTPIPELINE_MAX_WORKERS before RTPIPELINE_WORKERS: when both are set, RTPIPELINE_MAX_WORKERS is
 * the cap (the explicit name wins over the short alias), and a warning says the other was ignored.
 */

export type WorkerSource = 'flag' | 'env' | 'config' | 'default';

export interface ResolveWorkersInput {
  flagMaxWorkers?: string | number;
  flagSegWorkers?: string | number;
  env: NodeJS.ProcessEnv;
  /** config.max_workers / config.seg_workers (null = not set). Passing the loaded config, in which
   *  flags and variables are already merged, gives the same counts: those are checked first. */
  configMaxWorkers: number | null | undefined;
  configSegWorkers: number | null | undefined;
  /** Usable CPUs (system/cpus.ts). */
  usable: number;
}

export interface WorkerCounts {
  maxWorkers: number;
  segWorkers: number;
  /** Where maxWorkers came from; `detail` names the flag or variable. */
  source: WorkerSource;
  segSource: WorkerSource;
  detail: string;
  /** Things the user may want to know (conflicting variables, more workers than CPUs). */
  warnings: string[];
}

/** Environment variables for a config key, in the loader's order of precedence. */
function envNames(key: 'max_workers' | 'seg_workers'): string[] {
  return OVERRIDABLE.find((o) => o.path.length === 1 && o.path[0] === key)?.env ?? [];
}

function wholeNumber(value: string | number, where: string): number {
  const text = String(value).trim();
  if (!/^\d+$/.test(text) || Number(text) < 1) {
    throw new ConfigError(`${where}: "${value}" is not a valid worker count (use a whole number of at least 1)`);
  }
  return Number(text);
}

interface Choice {
  value: number;
  source: WorkerSource;
  detail: string;
}

function choose(flagName: string, flag: string | number | undefined, names: string[], env: NodeJS.ProcessEnv, config: number | null | undefined, warnings: string[]): Choice | undefined {
  const set = names.filter((n) => env[n] !== undefined && env[n] !== '');
  // Every set variable is checked, so a typo in the ignored one still surfaces.
  const envValues = set.map((n) => ({ name: n, value: wholeNumber(env[n] as string, `environment variable ${n}`) }));
  if (envValues.length > 1 && new Set(envValues.map((e) => e.value)).size > 1) {
    warnings.push(`${envValues.map((e) => `${e.name}=${e.value}`).join(' and ')} differ: ${envValues[0].name} is used`);
  }
  if (flag !== undefined) return { value: wholeNumber(flag, `--${flagName}`), source: 'flag', detail: `--${flagName}` };
  if (envValues.length > 0) return { value: envValues[0].value, source: 'env', detail: envValues[0].name };
  if (config != null) return { value: wholeNumber(config, flagName.replace('-', '_')), source: 'config', detail: flagName.replace('-', '_') };
  return undefined;
}

export function resolveWorkers(input: ResolveWorkersInput): WorkerCounts {
  const warnings: string[] = [];
  const usable = Math.max(1, Math.floor(input.usable));
  const max = choose('max-workers', input.flagMaxWorkers, envNames('max_workers'), input.env, input.configMaxWorkers, warnings) ?? {
    value: Math.max(1, usable - 1),
    source: 'default' as const,
    detail: `usable CPUs (${usable}) - 1, at least 1`,
  };
  if (max.source !== 'default' && max.value > usable) {
    warnings.push(`${max.value} workers requested (${max.detail}) but only ${usable} CPU(s) usable: CPU-bound stages will compete`);
  }
  const seg = choose('seg-workers', input.flagSegWorkers, envNames('seg_workers'), input.env, input.configSegWorkers, warnings) ?? {
    value: 1,
    source: 'default' as const,
    detail: 'default (segmentation is memory-heavy)',
  };
  if (seg.value > max.value) warnings.push(`${seg.value} segmentation workers requested (${seg.detail}) but the cap is ${max.value}: using ${max.value}`);
  return {
    maxWorkers: max.value,
    segWorkers: Math.min(seg.value, max.value),
    source: max.source,
    segSource: seg.source,
    detail: max.detail,
    warnings,
  };
}
