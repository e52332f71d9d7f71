/**
 * Time limits for the external tools, from the environment (contract: TOTALSEG_TIMEOUT,
 * DCM2NIIX_TIMEOUT, RTPIPELINE_RADIOMICS_TASK_TIMEOUT), in seconds.
 *
 * A variable that is set always wins over the default; an empty one counts as unset (as with the
 * other RTPIPELINE_* variables). A value that is not a positive number is refused rather than
 * silently replaced by the default, so a typo never turns a deliberate 4 h limit into 1 h.
 */
import { ConfigError } from '../config/load.js';

export type TimeoutVariable = 'TOTALSEG_TIMEOUT' | 'DCM2NIIX_TIMEOUT' | 'RTPIPELINE_RADIOMICS_TASK_TIMEOUT';

export interface ToolTimeouts {
  totalsegSeconds: number;
  dcm2niixSeconds: number;
  radiomicsTaskSeconds: number;
  /** Where each value came from, for `doctor` and the start-up log. */
  sources: Record<TimeoutVariable, 'env' | 'default'>;
}

export const DEFAULT_TIMEOUT_SECONDS: Readonly<Record<TimeoutVariable, number>> = {
  TOTALSEG_TIMEOUT: 3600,
  DCM2NIIX_TIMEOUT: 300,
  RTPIPELINE_RADIOMICS_TASK_TIMEOUT: 600,
};

export function toolTimeouts(env: NodeJS.ProcessEnv = process.env): ToolTimeouts {
  const sources = {} as Record<TimeoutVariable, 'env' | 'default'>;
  const read = (name: TimeoutVariable): number => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') {
      sources[name] = 'default';
      return DEFAULT_TIMEOUT_SECONDS[name];
    }
    const seconds = Number(raw.trim());
    if (!Number.isFinite(seconds) || seconds <= 0) {
      throw new ConfigError(`environment variable ${name}="${raw}" is not a positive number of seconds (default ${DEFAULT_TIMEOUT_SECONDS[name]}); fix or unset it`);
    }
    sources[name] = 'env';
    return seconds;
  };
  return {
    totalsegSeconds: read('TOTALSEG_TIMEOUT'),
    dcm2niixSeconds: read('DCM2NIIX_TIMEOUT'),
    radiomicsTaskSeconds: read('RTPIPELINE_RADIOMICS_TASK_TIMEOUT'),
    sources,
  };
}
