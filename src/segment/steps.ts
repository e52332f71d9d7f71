/**
 * Long computations written as generators: each `yield` marks a point where the work may pause.
 * Run synchronously, or yielding to the event loop at each point, so that I/O started earlier
 * (files compressed on the threadpool, whose next block is handed out from this thread) keeps
 * moving while a CT is segmented.
 */
export type Steps<T> = Generator<void, T, void>;

export function runSteps<T>(steps: Steps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

export async function runStepsYielding<T>(steps: Steps<T>): Promise<T> {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
