/**
 * Per-stage completion markers in a course folder (`.rtpipeline/stages/<stage>.json`), written
 * atomically once the stage's outputs are durable. A stage whose marker carries the same key is
 * not run again (resume after a crash or restart); a changed key (more instances arrived, other
 * engine, an earlier stage ran again: see runCourse) or `--force-redo` runs it again.
 */
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import { writeFileAtomic } from '../store/durable-fs.js';
import type { StageName } from './stage-names.js';

export interface StageMarker {
  stage: StageName;
  key: string;
  finishedAt: string;
  result: unknown;
}

function markerPath(courseDir: string, stage: StageName): string {
  return path.join(courseDir, '.rtpipeline', 'stages', `${stage}.json`);
}

export async function readMarker(courseDir: string, stage: StageName): Promise<StageMarker | undefined> {
  try {
    const m = JSON.parse(await fsp.readFile(markerPath(courseDir, stage), 'utf8')) as StageMarker;
    return m.stage === stage && typeof m.key === 'string' ? m : undefined;
  } catch {
    // Missing, or torn by something other than our atomic write: the stage simply runs again.
    return undefined;
  }
}

export async function writeMarker(courseDir: string, stage: StageName, key: string, result: unknown): Promise<void> {
  const file = markerPath(courseDir, stage);
  await fsp.mkdir(path.dirname(file), { recursive: true });
  const marker: StageMarker = { stage, key, finishedAt: new Date().toISOString(), result };
  await writeFileAtomic(file, JSON.stringify(marker, null, 2));
}

/** Removes a stage's marker before it runs again (a crash mid-stage must not leave the old one). */
export async function removeMarker(courseDir: string, stage: StageName): Promise<void> {
  await fsp.rm(markerPath(courseDir, stage), { force: true });
}
