// The selected job's study timeline: what happened to the study and when (received, complete and
// why, jobs, stages, amendments, storage commitment), from GET /api/studies/:uid/timeline.
import { h, replace } from './dom.js';
import { api } from './api.js';

/** One line of details per event kind; unknown kinds show their detail keys. */
function describe(e) {
  const d = e.detail ?? {};
  switch (e.event) {
    case 'received':
      return `${d.count} instance(s) from ${d.callingAet || 'unknown AE'}${d.peer ? ` (${d.peer})` : ''} via ${d.via}${d.released === false ? ', association aborted' : ''}`;
    case 'complete':
      return `generation ${d.generation}: ${d.reason} (${d.detail})`;
    case 'job':
      return `job #${d.jobId} ${d.state}${d.generation ? ` (generation ${d.generation})` : ''}${d.reason ? `: ${d.reason}` : ''}${d.error ? `: ${d.error}` : ''}`;
    case 'stage':
      return `${d.stage} ${d.status}${d.ms ? ` in ${(d.ms / 1000).toFixed(1)} s` : ''}`;
    case 'amended':
      return `generation ${d.generation} amends generation ${d.previousGeneration}: ${(d.newSeries ?? []).map((s) => `${s.modality} (${s.instances})`).join(', ') || 'no new series'}`;
    case 'commitment':
      return `storage commitment from ${d.callingAet}: ${d.instances} committed${d.failed ? `, ${d.failed} not held` : ''}`;
    default:
      return Object.entries(d).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ');
  }
}

const time = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });

/** Fills `mount` with the timeline of the job's study; a failure shows as a line, never throws. */
export async function showTimeline(job, mount) {
  if (!mount) return;
  mount.hidden = false;
  mount.dataset.studyUid = job.study_uid;
  try {
    const { study, events } = await api(`/api/studies/${encodeURIComponent(job.study_uid)}/timeline`);
    if (mount.dataset.studyUid !== job.study_uid) return; // another job was selected meanwhile
    replace(
      mount,
      h('h3', {}, 'Study timeline'),
      study.waiting ? h('p', { class: 'muted' }, `waiting: ${study.waiting.detail}`) : null,
      h(
        'ol',
        { class: 'timeline', 'data-testid': 'study-timeline' },
        events.map((e) => h('li', { 'data-event': e.event }, h('time', { datetime: new Date(e.at).toISOString() }, time(e.at)), ' ', h('strong', {}, e.event), ' ', describe(e))),
      ),
    );
  } catch (e) {
    replace(mount, h('h3', {}, 'Study timeline'), h('p', { class: 'error' }, `timeline could not be loaded: ${e.message}`));
  }
}
