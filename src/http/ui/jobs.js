// The job list: one entry per job, kept up to date from job events, with cancel, delete,
// download and a detail view (stages, log, results).
import { h, replace } from './dom.js';
import { api, withKey } from './api.js';
import { stageChips, FINISHED } from './stages.js';
import { jobHeader, loadResults } from './results.js';
import { formatDate } from './summary.js';
import { showTimeline } from './timeline.js';

export class JobBoard {
  /** @param {{ list: HTMLElement, empty: HTMLElement, detail: HTMLElement, detailBody: HTMLElement, message: (text: string, kind?: string) => void }} el */
  constructor(el) {
    this.el = el;
    this.jobs = new Map();
    this.studies = new Map();
    this.selected = null;
    this.studiesLoading = null;
  }

  /** Replaces the whole list with the node's (start, reconnects, polling). */
  async refresh() {
    const [jobs] = await Promise.all([api('/api/jobs'), this.loadStudies()]);
    const seen = new Set();
    for (const job of jobs) {
      seen.add(job.id);
      this.update(job, { studies: false });
    }
    for (const id of [...this.jobs.keys()]) if (!seen.has(id)) this.remove(id);
  }

  /** One job changed (an event, or an answer to an action). */
  update(job, { studies = true } = {}) {
    const before = this.jobs.get(job.id);
    this.jobs.set(job.id, job);
    if (studies && !this.studies.has(job.study_uid)) this.loadStudies().then(() => this.render(), () => {});
    this.render();
    if (this.selected === job.id) this.showDetail(job, !before || before.state !== job.state || before.finished_at !== job.finished_at);
  }

  remove(id) {
    this.jobs.delete(id);
    if (this.selected === id) {
      this.selected = null;
      this.el.detail.hidden = true;
    }
    this.render();
  }

  loadStudies() {
    // One request at a time: a burst of events for new studies needs one answer.
    this.studiesLoading ??= api('/api/studies')
      .then((list) => {
        for (const st of list) this.studies.set(st.study_uid, st);
      })
      .finally(() => (this.studiesLoading = null));
    return this.studiesLoading;
  }

  render() {
    const jobs = [...this.jobs.values()].sort((a, b) => b.id - a.id);
    this.el.empty.hidden = jobs.length > 0;
    replace(this.el.list, jobs.map((j) => this.item(j)));
  }

  item(job) {
    const study = this.studies.get(job.study_uid);
    const title = study ? `${study.patient_id} · ${formatDate(study.study_date)}` : job.study_uid;
    return h(
      'li',
      { class: `job${this.selected === job.id ? ' selected' : ''}`, 'data-job-id': job.id, 'data-state': job.state },
      h(
        'div',
        { class: 'job-head' },
        h('button', { type: 'button', class: 'link job-title', onclick: () => this.select(job.id) }, `#${job.id} ${title}`),
        job.result?.courseId ? h('span', { class: 'muted' }, ` course ${job.result.courseId}`) : null,
        h('span', { class: 'state', 'data-state': job.state }, job.state),
        job.progress?.stage && !FINISHED.has(job.state) ? h('span', { class: 'muted' }, ` ${job.progress.stage}…`) : null,
      ),
      stageChips(job),
      h(
        'div',
        { class: 'actions' },
        !FINISHED.has(job.state) && h('button', { type: 'button', class: 'secondary', onclick: () => this.act(job, 'cancel') }, 'Cancel'),
        FINISHED.has(job.state) && h('button', { type: 'button', class: 'secondary', onclick: () => this.act(job, 'delete') }, 'Delete'),
        job.state === 'done' && job.result?.courseDir && h('a', { class: 'button', href: withKey(`/api/jobs/${job.id}/download`), download: '' }, 'Download'),
        h('button', { type: 'button', class: 'secondary', onclick: () => this.select(job.id) }, 'Details'),
      ),
    );
  }

  async act(job, verb) {
    try {
      if (verb === 'cancel') {
        await api(`/api/jobs/${job.id}/cancel`, { method: 'POST' });
        this.el.message(`Job #${job.id}: cancel requested.`);
        this.update(await api(`/api/jobs/${job.id}`));
      } else {
        if (!confirm(`Delete job #${job.id} from the list? The course folder stays on the node.`)) return;
        await api(`/api/jobs/${job.id}`, { method: 'DELETE' });
        this.el.message(`Job #${job.id} deleted.`);
        this.remove(job.id);
      }
    } catch (e) {
      this.el.message(e.message, 'error');
    }
  }

  select(id) {
    this.selected = id;
    this.render();
    const job = this.jobs.get(id);
    if (job) this.showDetail(job, true);
  }

  showDetail(job, reloadResults) {
    const { detail, detailBody } = this.el;
    detail.hidden = false;
    detail.querySelector('h2').textContent = `Job #${job.id}`;
    void showTimeline(job, document.getElementById('study-timeline'));
    let results = detailBody.querySelector('.results');
    const head = jobHeader(job, this.studies.get(job.study_uid));
    if (!results || reloadResults || detailBody.dataset.jobId !== String(job.id)) {
      results = h('div', { class: 'results' });
      detailBody.dataset.jobId = String(job.id);
      replace(detailBody, head, results);
      loadResults(job, results).catch((e) => replace(results, h('p', { class: 'error' }, `results could not be loaded: ${e.message}`)));
    } else {
      detailBody.firstElementChild.replaceWith(head);
    }
  }
}
