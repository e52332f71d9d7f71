/** The SLURM commands we use (sbatch, squeue, scontrol, scancel), run with execa; no shell. */
import { execa } from 'execa';
import { parseScontrolJob, parseSqueue, type SlurmJobId } from './slurm-job.js';

async function slurm(cmd: string, args: string[]): Promise<string> {
  try {
    const r = await execa(cmd, args, { timeout: 60_000, stripFinalNewline: true });
    return r.stdout;
  } catch (e) {
    const err = e as { code?: string; stderr?: string; shortMessage?: string };
    if (err.code === 'ENOENT') throw new Error(`${cmd} not found: the slurm executor needs the SLURM client commands on PATH (Debian: slurm-client)`);
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(err.stderr || err.shortMessage || String(e)).trim()}`);
  }
}

/** Submits a script (its text on stdin); returns the job id (`--parsable` prints `id[;cluster]`). */
export async function sbatch(args: string[], script: string): Promise<SlurmJobId> {
  try {
    const r = await execa('sbatch', args, { input: script, timeout: 60_000 });
    const id = r.stdout.trim().split(';')[0];
    if (!/^\d+$/.test(id)) throw new Error(`unexpected sbatch output "${r.stdout.trim()}"`);
    return id as SlurmJobId;
  } catch (e) {
    const err = e as { code?: string; stderr?: string; message: string };
    if (err.code === 'ENOENT') throw new Error('sbatch not found: the slurm executor needs the SLURM client commands on PATH (Debian: slurm-client)');
    throw new Error(`sbatch ${args.join(' ')} was refused: ${(err.stderr || err.message).trim()}`);
  }
}

/** Tasks of these jobs still known to the queue (pending, running, completing): task id → state. */
export async function queuedTasks(jobs: readonly SlurmJobId[]): Promise<Map<string, string>> {
  if (jobs.length === 0) return new Map();
  try {
    return parseSqueue(await slurm('squeue', ['-h', '-r', '-o', '%i|%T', `--jobs=${jobs.join(',')}`]));
  } catch (e) {
    // squeue refuses ids it has already forgotten: then nothing of them is queued.
    if (/Invalid job id/i.test((e as Error).message)) return new Map();
    throw e;
  }
}

/** Final state of a job or task (`123_4`) while slurmctld still remembers it (MinJobAge). */
export async function jobState(id: string): Promise<{ state?: string; exitCode?: string; reason?: string }> {
  try {
    return parseScontrolJob(await slurm('scontrol', ['show', 'job', id]));
  } catch {
    return {};
  }
}

export async function scancel(jobs: readonly SlurmJobId[]): Promise<void> {
  if (jobs.length > 0) await slurm('scancel', [...jobs]);
}
