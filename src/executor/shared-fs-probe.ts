/**
 * The shared-filesystem check of the slurm executor. The course tasks read the organized course
 * folders and write their results into them, and the submit side then reads those results to build
 * `_RESULTS`: so the output folder must be one filesystem (NFS, Lustre, GPFS, ...) mounted at the same
 * path on this machine and on the compute nodes. Checked before the array: the folder is writable
 * here, and a tiny job writes a random token into it that must then be read back here.
 */
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { writeFileAtomic } from '../store/durable-fs.js';
import { sbatch, queuedTasks, jobState, scancel } from './slurm-client.js';
import { sbatchArgs, shQuote, type SlurmSettings } from './slurm-job.js';

export interface ProbeOptions {
  settings: SlurmSettings;
  /** The run's folder inside the output dir (`<out>/.rtpipeline/slurm/<run>`). */
  runDir: string;
  pollMs: number;
  signal?: AbortSignal;
  /** Told the probe's job id when submitted and again when it has left the queue. */
  onSubmitted?: (jobId: string) => void;
  onGone?: (jobId: string) => void;
}

export class SharedFilesystemError extends Error {}

export async function checkSharedFilesystem(o: ProbeOptions): Promise<void> {
  await fsp.mkdir(o.runDir, { recursive: true });
  const local = path.join(o.runDir, 'writable-check');
  try {
    await writeFileAtomic(local, 'ok');
    await fsp.rm(local);
  } catch (e) {
    throw new SharedFilesystemError(`the output folder ${o.runDir} is not writable here (${(e as Error).message}): the slurm executor needs an output folder on a filesystem shared with the compute nodes`);
  }
  const token = randomBytes(16).toString('hex');
  const file = path.join(o.runDir, `probe-${token}`);
  const script = `#!/bin/sh\nprintf %s ${shQuote(token)} > ${shQuote(file)}\n`;
  const job = await sbatch([...sbatchArgs({ ...o.settings, gpusPerTask: 0 }, { jobName: 'rtpipeline-probe', outputPattern: path.join(o.runDir, 'probe-%j.out'), chdir: o.runDir }), '--time=00:05:00'], script);
  o.onSubmitted?.(job);
  try {
    while ((await queuedTasks([job])).size > 0) {
      if (o.signal?.aborted) throw new Error('cancelled while waiting for the shared-filesystem probe job');
      await sleep(o.pollMs, o.signal);
    }
  } catch (e) {
    await scancel([job]).catch(() => undefined);
    throw e;
  }
  o.onGone?.(job);
  let seen: string | undefined;
  try {
    seen = await fsp.readFile(file, 'utf8');
  } catch {
    seen = undefined;
  }
  await fsp.rm(file, { force: true });
  if (seen !== token) {
    const st = await jobState(job);
    throw new SharedFilesystemError(
      `shared-filesystem check failed: probe job ${job} (state ${st.state ?? 'unknown'}) ${seen === undefined ? 'left no file' : 'wrote other content'} at ${file}. ` +
        'The output folder must be on a filesystem mounted at the same path on this machine and on the compute nodes of the partition; see the job output ' +
        path.join(o.runDir, `probe-${job}.out`),
    );
  }
  await fsp.rm(path.join(o.runDir, `probe-${job}.out`), { force: true });
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
