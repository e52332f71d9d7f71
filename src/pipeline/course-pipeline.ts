/**
 * Runs the stages of one course in order, each as a worker-thread job of the stage pool. A stage
 * whose completion marker matches its input key is skipped (resume), unless forced; a stage that
 * runs invalidates the markers after it. The first failing stage ends the course with an error that
 * names the stage; other courses are not affected (each course is its own call).
 */
import type { Logger } from '../log.js';
import type { StagePool } from './stage-pool.js';
import type { StageName } from './stage-names.js';
import { createHash } from 'node:crypto';
import { readMarker, removeMarker, writeMarker } from './stage-markers.js';
import { STAGES } from './stage-names.js';

export type StageResults = Partial<Record<StageName, unknown>>;

export interface PlannedStage {
  stage: StageName;
  /** What the stage's output depends on: same key as the marker = nothing to redo. */
  key: string;
  /** The worker's input, built from the results of the stages before it. */
  input: (results: StageResults) => unknown;
}

export interface CourseRunOptions {
  pool: StagePool;
  courseDir: string;
  /** `<patient>/<course>`, for the heartbeat and the errors. */
  label: string;
  stages: PlannedStage[];
  /** true: redo every stage; a list: redo those. */
  forceRedo?: boolean | readonly StageName[];
  log: Logger;
  signal?: AbortSignal;
  heartbeatSeconds?: number;
  /** Told when a stage starts (running), ends (done, with its duration), is skipped or fails. */
  onStage?: (stage: StageName, status: StageStatus, ms: number) => void;
}

export type StageStatus = 'running' | 'done' | 'skipped' | 'failed';

export interface StageOutcome {
  stage: StageName;
  status: 'done' | 'skipped';
  ms: number;
  result: unknown;
}

export class StageFailedError extends Error {
  constructor(
    readonly stage: StageName,
    readonly reason: Error,
    label: string,
  ) {
    super(`${stage} failed for ${label}: ${reason.message}`);
  }
}

function forced(force: CourseRunOptions['forceRedo'], stage: StageName): boolean {
  return force === true || (Array.isArray(force) && force.includes(stage));
}

export async function runCourse(opts: CourseRunOptions): Promise<{ outcomes: StageOutcome[]; results: StageResults }> {
  const results: StageResults = {};
  const outcomes: StageOutcome[] = [];
  const planned = new Map(opts.stages.map((p) => [p.stage, p]));
  // Each marker's key chains the keys of the stages before it, so a stage runs again when its own
  // inputs or any earlier stage's output changed; a stage not planned in this run (--stage)
  // contributes the key of its last completion.
  let chain = '';
  for (const stage of STAGES) {
    const p = planned.get(stage);
    const marker = await readMarker(opts.courseDir, stage);
    if (!p) {
      if (marker) chain = marker.key;
      continue;
    }
    const key = createHash('sha256').update(`${chain}|${stage}|${p.key}`).digest('hex').slice(0, 24);
    const force = forced(opts.forceRedo, stage);
    if (marker && marker.key === key && !force) {
      chain = key;
      results[stage] = marker.result;
      outcomes.push({ stage, status: 'skipped', ms: 0, result: marker.result });
      opts.onStage?.(stage, 'skipped', 0);
      opts.log.info({ stage, finishedAt: marker.finishedAt }, `${stage} already done for ${opts.label}: skipped`);
      continue;
    }
    chain = key;
    await removeMarker(opts.courseDir, stage);
    // A forced run may change what it writes while its inputs stay the same: the stages after it run again too.
    if (force) for (const later of STAGES.slice(STAGES.indexOf(stage) + 1)) await removeMarker(opts.courseDir, later);
    const started = Date.now();
    const beat = setInterval(
      () => opts.log.info({ stage, elapsedS: Math.round((Date.now() - started) / 1000) }, `Still processing ${stage} for ${opts.label} (${formatElapsed(Date.now() - started)})`),
      (opts.heartbeatSeconds ?? 60) * 1000,
    );
    opts.log.info({ stage }, `${stage} started for ${opts.label}`);
    opts.onStage?.(stage, 'running', 0);
    let result: unknown;
    try {
      result = await opts.pool.run(stage, p.input(results), { log: opts.log, signal: opts.signal });
    } catch (e) {
      opts.onStage?.(stage, 'failed', Date.now() - started);
      throw new StageFailedError(stage, e as Error, opts.label);
    } finally {
      clearInterval(beat);
    }
    await writeMarker(opts.courseDir, stage, key, result);
    const ms = Date.now() - started;
    opts.log.info({ stage, ms }, `${stage} done for ${opts.label}`);
    results[stage] = result;
    outcomes.push({ stage, status: 'done', ms, result });
    opts.onStage?.(stage, 'done', ms);
  }
  return { outcomes, results };
}

/** `1 h 02 min`, `3 min 05 s`, `12 s`. */
export function formatElapsed(ms: number): string {
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h} h ${String(m).padStart(2, '0')} min`;
  if (m > 0) return `${m} min ${String(sec).padStart(2, '0')} s`;
  return `${sec} s`;
}
