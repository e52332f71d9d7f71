/**
 * Where the course stages of a batch run execute. `local`: this process's stage pool (bree worker
 * threads), the default. `slurm`: one sbatch job-array task per course on a cluster that shares the
 * output folder with this machine (see slurm-executor.ts). Organize always runs locally before, and
 * the cohort tables are always written locally after, so both give the same `_RESULTS`.
 */
import type { StageName } from '../pipeline/stage-names.js';
import type { CourseOutcome } from '../batch/run.js';
import type { Logger } from '../log.js';

export type ExecutorKind = 'local' | 'slurm';

/** A course folder of the output layout, as organize (or an earlier run) left it. */
export interface CourseRef {
  patientId: string;
  courseId: string;
  dir: string;
}

export interface CourseExecutor {
  readonly kind: ExecutorKind;
  /** Runs `stages` for every course; one outcome per course, in the order given. Never throws for a
   *  failing course (that is an outcome with ok: false); throws only when nothing could run at all. */
  runCourses(courses: readonly CourseRef[], stages: readonly StageName[]): Promise<CourseOutcome[]>;
}

/** One course's stages somewhere else than this process (the daemon's study job with
 *  `executor.kind: slurm`): the outcome as runCourses gives it; cancelled through the signal. */
export type CourseRunner = (course: CourseRef, stages: readonly StageName[], o: { forceRedo: boolean; log: Logger; signal?: AbortSignal }) => Promise<CourseOutcome>;
