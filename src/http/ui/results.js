// A job's detail: its stages, its error text (the log), and the course's results when present:
// QC report, results zip, DVH plot, DVH/radiomics/robustness tables.
import { h, replace } from './dom.js';
import { request, withKey } from './api.js';
import { stageChips, FINISHED } from './stages.js';
import { dvhPlot } from './dvh-plot.js';
import { csvTable } from './table.js';

const DVH_KEY_COLUMNS = ['ROI_Name', 'Segmentation_Source', 'Volume (cm³)', 'DmeanGy', 'DmaxGy', 'DminGy', 'D95Gy', 'D98Gy', 'D2Gy', 'D50Gy', 'HI'];
const RADIOMICS_KEY_COLUMNS = ['ROI_Name', 'Segmentation_Source', 'original_shape_VoxelVolume', 'original_shape_Sphericity', 'original_firstorder_Mean', 'original_firstorder_StandardDeviation', 'original_glcm_Contrast'];
const ROBUSTNESS_KEY_COLUMNS = ['structure', 'feature_name', 'n_perturbations', 'icc', 'cov_pct', 'robustness_label'];

export function fileUrl(jobId, name) {
  return `/api/jobs/${jobId}/files/${name.split('/').map(encodeURIComponent).join('/')}`;
}

/** The header part of the detail (cheap; redrawn on every job event). */
export function jobHeader(job, study) {
  return h(
    'div',
    { class: 'detail-head' },
    h('p', {}, h('span', { class: 'state', 'data-state': job.state }, job.state), ' ', study ? `${study.patient_id} · ${study.patient_name}` : '', job.result?.courseId ? ` · course ${job.result.courseId}` : ''),
    h('p', { class: 'muted' }, 'Study ', h('code', {}, job.study_uid), ` · attempt ${job.attempts}`),
    stageChips(job),
    job.error ? h('div', { class: 'log' }, h('h3', {}, 'Log'), h('pre', { 'data-testid': 'job-error' }, job.error)) : null,
  );
}

/**
 * Loads and draws the course results into `el`. Files that are not there (yet) are simply not
 * shown: a course without a dose has no DVH, the QC stage may not have run.
 */
export async function loadResults(job, el) {
  if (!FINISHED.has(job.state)) {
    replace(el, h('p', { class: 'muted' }, 'Results appear here when the job has finished.'));
    return;
  }
  replace(el, h('p', { class: 'muted' }, 'Loading results…'));
  const [qc, curves, dvh, radiomics, robustness] = await Promise.all([
    exists(fileUrl(job.id, 'qc_report.html')),
    text(fileUrl(job.id, 'dvh_curves.json')),
    text(fileUrl(job.id, 'dvh_metrics.csv')),
    text(fileUrl(job.id, 'radiomics_ct.csv')),
    text(fileUrl(job.id, 'radiomics_robustness_ct.csv')),
  ]);
  const links = h(
    'p',
    { class: 'links' },
    qc && h('a', { href: withKey(fileUrl(job.id, 'qc_report.html')), target: '_blank', rel: 'noopener', 'data-testid': 'qc-link' }, 'QC report'),
    job.result?.courseDir && h('a', { href: withKey(`/api/jobs/${job.id}/download`), download: '', 'data-testid': 'download-link' }, 'Download results (zip)'),
    job.result?.segmentation && h('a', { href: withKey(fileUrl(job.id, 'RS_auto.dcm')), download: 'RS_auto.dcm', 'data-testid': 'rs-auto-link' }, 'RS_auto.dcm'),
  );
  let plot = null;
  if (curves !== null) {
    try {
      plot = dvhPlot(JSON.parse(curves));
    } catch (e) {
      plot = h('p', { class: 'error' }, `dvh_curves.json could not be read: ${e.message}`);
    }
  }
  const nothing = !qc && curves === null && dvh === null && radiomics === null && robustness === null;
  replace(
    el,
    links,
    plot && h('section', { 'data-testid': 'dvh-plot' }, h('h3', {}, 'DVH'), plot),
    dvh !== null && h('section', { 'data-testid': 'dvh-table' }, h('h3', {}, 'DVH metrics'), csvTable(dvh, DVH_KEY_COLUMNS)),
    radiomics !== null && h('section', { 'data-testid': 'radiomics-table' }, h('h3', {}, 'Radiomics (CT)'), csvTable(radiomics, RADIOMICS_KEY_COLUMNS)),
    robustness !== null && h('section', { 'data-testid': 'robustness-table' }, h('h3', {}, 'Radiomics robustness'), csvTable(robustness, ROBUSTNESS_KEY_COLUMNS)),
    nothing && h('p', { class: 'muted' }, job.state === 'done' ? 'No QC report, DVH or radiomics file in this course (no dose, or those stages did not run).' : 'No results: the job did not finish.'),
  );
}

/** A GET that only asks "is it there" (the node's router answers GET, not HEAD); the body is dropped. */
async function exists(url) {
  try {
    const r = await request(url);
    await r.body?.cancel();
    return r.ok;
  } catch {
    return false;
  }
}

async function text(url) {
  try {
    const r = await request(url);
    return r.ok ? await r.text() : (await r.body?.cancel(), null);
  } catch {
    return null;
  }
}
