/**
 * Pure parts of the SLURM executor: the sbatch arguments and job script of a course array, and the
 * parsing of squeue / scontrol output. No processes, no files.
 */

/** The sbatch settings of the executor (config `executor`, flags of `rtpipeline run`). */
export interface SlurmSettings {
  /** null = the cluster's default partition. */
  partition: string | null;
  account: string | null;
  gpusPerTask: number;
  /** `HH:MM:SS` (or any sbatch --time form); null = the partition's default. */
  time: string | null;
  /** An Apptainer image with rtpipeline on PATH; null = run this installation's CLI with this node. */
  container: string | null;
}

/** SLURM job ids as sbatch prints them (`12345`); array tasks are `12345_3`. */
export type SlurmJobId = string & { readonly __brand: 'SlurmJobId' };

/** Common sbatch flags: where, how long, no silent requeue (retries are ours, counted). */
export function sbatchArgs(s: SlurmSettings, o: { jobName: string; outputPattern: string; chdir: string }): string[] {
  const args = ['--parsable', `--job-name=${o.jobName}`, `--output=${o.outputPattern}`, `--chdir=${o.chdir}`, '--export=ALL', '--no-requeue', '--ntasks=1'];
  if (s.partition) args.push(`--partition=${s.partition}`);
  if (s.account) args.push(`--account=${s.account}`);
  if (s.time) args.push(`--time=${s.time}`);
  if (s.gpusPerTask > 0) args.push(`--gpus-per-task=${s.gpusPerTask}`);
  return args;
}

/** `--array=0,2,5`: the task ids to (re)run; SLURM accepts a comma list. */
export function arraySpec(indices: readonly number[]): string {
  if (indices.length === 0) throw new RangeError('an array job needs at least one task');
  return `--array=${[...indices].sort((a, b) => a - b).join(',')}`;
}

/** Single-quoted for /bin/sh (paths may hold spaces or quotes). */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface CourseTaskCommand {
  /** The command before `run`: `[node, cli.js]`, or `[apptainer, exec, --nv, image, rtpipeline]`. */
  launcher: string[];
  outDir: string;
  logsDir: string;
  configFile: string;
  stages: readonly string[];
  /** One course folder per line; task N runs line N+1. */
  coursesFile: string;
  forceRedo: boolean;
}

/** The launcher of the course command: this installation's CLI, or the container's rtpipeline. */
export function launcherFor(s: SlurmSettings, nodeExec: string, cliJs: string): string[] {
  if (!s.container) return [nodeExec, cliJs];
  return ['apptainer', 'exec', ...(s.gpusPerTask > 0 ? ['--nv'] : []), s.container, 'rtpipeline'];
}

/** The batch script of the course array: picks its course from the list by SLURM_ARRAY_TASK_ID. */
export function courseArrayScript(c: CourseTaskCommand): string {
  const cmd = [...c.launcher, 'run', '--outdir', c.outDir, '--logs', c.logsDir, '--config', c.configFile, '--stage', c.stages.join(','), ...(c.forceRedo ? ['--force-redo'] : []), '--only-course'].map(shQuote).join(' ');
  return [
    '#!/bin/sh',
    '# Written by rtpipeline (--executor slurm): one array task per course folder.',
    'set -eu',
    `course=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" ${shQuote(c.coursesFile)})`,
    '[ -n "$course" ] || { echo "no course for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2; }',
    `exec ${cmd} "$course"`,
    '',
  ].join('\n');
}


/** `squeue -h -r -o %i|%T` lines → task id → state (`123_4` → RUNNING). */
export function parseSqueue(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const [id, state] = line.trim().split('|');
    if (id && state) out.set(id, state);
  }
  return out;
}

/** `scontrol show job ID` → JobState and ExitCode (`1:0`), when present. */
export function parseScontrolJob(text: string): { state?: string; exitCode?: string; reason?: string } {
  const field = (name: string) => new RegExp(`(?:^|\\s)${name}=(\\S+)`).exec(text)?.[1];
  return { state: field('JobState'), exitCode: field('ExitCode'), reason: field('Reason') };
}
