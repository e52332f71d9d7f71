/**
 * The QC report page of a course (`qc_report.html`): one self-contained HTML file with inline CSS,
 * the snapshots (PNG files beside it, referenced relatively, so the page works from disk, a zip
 * or the web UI without any server logic), the checks, the structure volumes and the DVH plot.
 * Pure: what to show in, HTML text out.
 */
import type { CheckStatus, QcCheck } from './checks.js';
import { escapeXml as esc } from './dvh-plot.js';
import type { Rgb } from './render.js';

export interface QcReportInput {
  patientId: string;
  courseId: string;
  status: CheckStatus;
  checks: readonly QcCheck[];
  /** Snapshot files, relative to the report. */
  snapshots: readonly { plane: string; file: string; caption: string; width: number; height: number }[];
  structures: readonly { source: string; name: string; color: Rgb; voxels: number; volumeCm3: number }[];
  /** Inline SVG of the DVH plot, or why there is none. */
  dvh: { svg: string } | { missing: string };
  notes: readonly string[];
  generatedAt: string;
}

const STATUS_COLOUR: Record<CheckStatus, string> = { PASS: '#1a7f37', WARN: '#b26b00', FAIL: '#c62828' };

const badge = (s: CheckStatus) => `<span class="badge" style="background:${STATUS_COLOUR[s]}">${s}</span>`;

export function qcReportHtml(r: QcReportInput): string {
  const title = `QC report ${r.patientId} / ${r.courseId}`;
  const checkRows = r.checks.map((c) => `<tr><td>${badge(c.status)}</td><td>${esc(c.check)}</td><td>${esc(c.subject)}</td><td>${esc(c.detail)}</td></tr>`).join('\n');
  const structRows = r.structures
    .map((s) => `<tr><td><span class="swatch" style="background:rgb(${s.color.join(',')})"></span>${esc(s.name)}</td><td>${esc(s.source)}</td><td class="num">${s.volumeCm3.toFixed(2)}</td><td class="num">${s.voxels}</td></tr>`)
    .join('\n');
  const figures = r.snapshots
    .map((s) => `<figure><img src="${esc(encodeURI(s.file))}" width="${s.width}" height="${s.height}" alt="${esc(s.plane)} snapshot"><figcaption>${esc(s.caption)}</figcaption></figure>`)
    .join('\n');
  const dvh = 'svg' in r.dvh ? r.dvh.svg : `<p class="note">No DVH plot: ${esc(r.dvh.missing)}</p>`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${esc(title)}</title>
<style>
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.5em; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { color: white; padding: 1px 6px; border-radius: 3px; font-weight: bold; font-size: 0.85em; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; margin-right: 6px; vertical-align: middle; border: 1px solid #666; }
figure { display: inline-block; margin: 0 1em 1em 0; vertical-align: top; } figure img { background: black; image-rendering: pixelated; }
.note { color: #555; }
</style>
</head>
<body>
<h1>${esc(title)} ${badge(r.status)}</h1>
<p class="note">Generated ${esc(r.generatedAt)} by rtpipeline.</p>
${r.notes.map((n) => `<p class="note">${esc(n)}</p>`).join('\n')}
<h2>Checks</h2>
<table class="checks"><thead><tr><th>Status</th><th>Check</th><th>Subject</th><th>Detail</th></tr></thead>
<tbody>
${checkRows}
</tbody></table>
<h2>Snapshots</h2>
${figures || '<p class="note">No CT: no snapshots.</p>'}
<h2>Structures</h2>
<table class="structures"><thead><tr><th>ROI</th><th>Source</th><th>Volume (cm³)</th><th>Voxels</th></tr></thead>
<tbody>
${structRows}
</tbody></table>
<h2>DVH</h2>
${dvh}
</body>
</html>
`;
}
