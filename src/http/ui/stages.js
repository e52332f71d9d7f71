// A job's per-stage progress as chips: from the live `progress` while it runs, else the stages
// its result recorded.
import { h } from './dom.js';

export const FINISHED = new Set(['done', 'failed', 'cancelled']);

/** [{stage, status, ms}] of a job, or []. */
export function stagesOf(job) {
  if (job.progress && Array.isArray(job.progress.stages)) return job.progress.stages;
  if (job.result && Array.isArray(job.result.stages)) return job.result.stages;
  return [];
}

export function stageChips(job) {
  return h(
    'ol',
    { class: 'stages' },
    stagesOf(job).map((st) =>
      h('li', { class: 'chip stage', 'data-stage': st.stage, 'data-status': st.status, title: `${st.stage}: ${st.status}${typeof st.ms === 'number' ? ` in ${formatMs(st.ms)}` : ''}` }, st.stage, typeof st.ms === 'number' && st.status !== 'pending' ? h('small', {}, ` ${formatMs(st.ms)}`) : null),
    ),
  );
}

export function formatMs(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}
