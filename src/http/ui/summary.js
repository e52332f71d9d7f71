// The validation summary of an upload: what was stored, what was refused and why, and per patient
// the studies with their modalities, plus the node's warnings (e.g. RTSTRUCT without RTDOSE).
import { h } from './dom.js';

export function renderSummary(result) {
  const refused = Array.isArray(result.refused) ? result.refused : [];
  const summary = result.summary ?? { patients: [], warnings: [] };
  const patients = Array.isArray(summary.patients) ? summary.patients : [];
  const warnings = Array.isArray(summary.warnings) ? summary.warnings : [];
  return h(
    'div',
    { class: 'summary', 'data-testid': 'upload-summary' },
    h('p', { class: 'counts' }, `${result.stored ?? 0} stored`, ' · ', `${result.duplicates ?? 0} duplicates`, ' · ', `${refused.length} refused`),
    refused.length > 0 &&
      h(
        'div',
        { class: 'refused', role: 'alert' },
        h('h3', {}, 'Refused'),
        h('ul', {}, refused.map((r) => h('li', {}, h('code', {}, r.name ?? '?'), ': ', r.reason ?? 'no reason given'))),
      ),
    warnings.length > 0 && h('div', { class: 'warnings' }, h('h3', {}, 'Warnings'), h('ul', {}, warnings.map((w) => h('li', {}, String(w))))),
    patients.length > 0 &&
      h(
        'table',
        { class: 'studies' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Patient'), h('th', {}, 'Study'), h('th', {}, 'Date'), h('th', {}, 'Modalities'), h('th', {}, 'Instances'))),
        h('tbody', {}, patients.flatMap((p) => (p.studies ?? []).map((st) => studyRow(p, st)))),
      ),
  );
}

function studyRow(patient, study) {
  const modalities = Object.entries(study.modalities ?? {});
  return h(
    'tr',
    {},
    h('td', {}, patient.patientId ?? '', patient.patientName ? h('span', { class: 'muted' }, ` ${formatPersonName(patient.patientName)}`) : null),
    h('td', { title: study.studyInstanceUid ?? '' }, h('code', {}, shortUid(study.studyInstanceUid ?? ''))),
    h('td', {}, formatDate(study.studyDate ?? '')),
    h('td', {}, modalities.map(([m, n]) => h('span', { class: 'chip', 'data-modality': m }, `${m} ${n}`))),
    h('td', { class: 'num' }, String(study.instances ?? '')),
  );
}

/** DICOM PN "FAMILY^GIVEN" -> "FAMILY, GIVEN". */
export function formatPersonName(pn) {
  const [family, given] = String(pn).split('^');
  return given ? `${family}, ${given}` : family;
}

/** YYYYMMDD -> YYYY-MM-DD (anything else unchanged). */
export function formatDate(d) {
  return /^\d{8}$/.test(d) ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}` : d;
}

export function shortUid(uid) {
  return uid.length > 24 ? `…${uid.slice(-20)}` : uid;
}
