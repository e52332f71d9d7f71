// dvh_curves.json as an SVG plot: cumulative DVH (volume % against dose Gy), one line per ROI.
import { s, h } from './dom.js';

const W = 640;
const H = 360;
const M = { left: 52, right: 12, top: 12, bottom: 40 };
const PALETTE = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#42d4f4', '#f032e6', '#9a6324', '#469990', '#808000', '#000075', '#a9a9a9'];

/**
 * @param {{ prescriptionGy?: number|null, curves: { roi: string, source?: string, binWidthGy: number, volumeCm3: number, cumulativeCm3: number[] }[] }} data
 */
export function dvhPlot(data) {
  const curves = (data.curves ?? []).filter((c) => c.volumeCm3 > 0 && Array.isArray(c.cumulativeCm3) && c.cumulativeCm3.length > 0);
  if (curves.length === 0) return h('p', { class: 'muted' }, 'dvh_curves.json holds no curve.');
  const maxDose = niceCeil(Math.max(...curves.map((c) => c.binWidthGy * (c.cumulativeCm3.length - 1)), data.prescriptionGy ?? 0));
  const x = (gy) => M.left + (gy / maxDose) * (W - M.left - M.right);
  const y = (pct) => H - M.bottom - (pct / 100) * (H - M.top - M.bottom);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'dvh-plot', role: 'img', 'aria-label': `DVH of ${curves.length} ROIs` });
  for (let pct = 0; pct <= 100; pct += 20) {
    svg.append(s('line', { x1: M.left, x2: W - M.right, y1: y(pct), y2: y(pct), class: 'grid' }), s('text', { x: M.left - 6, y: y(pct) + 4, 'text-anchor': 'end' }, `${pct}`));
  }
  const step = maxDose / 5;
  for (let gy = 0; gy <= maxDose + 1e-9; gy += step) {
    svg.append(s('line', { x1: x(gy), x2: x(gy), y1: M.top, y2: H - M.bottom, class: 'grid' }), s('text', { x: x(gy), y: H - M.bottom + 16, 'text-anchor': 'middle' }, `${round(gy)}`));
  }
  svg.append(
    s('text', { x: (M.left + W - M.right) / 2, y: H - 6, 'text-anchor': 'middle' }, 'Dose (Gy)'),
    s('text', { x: 14, y: (M.top + H - M.bottom) / 2, 'text-anchor': 'middle', transform: `rotate(-90 14 ${(M.top + H - M.bottom) / 2})` }, 'Volume (%)'),
  );
  if (data.prescriptionGy) svg.append(s('line', { x1: x(data.prescriptionGy), x2: x(data.prescriptionGy), y1: M.top, y2: H - M.bottom, class: 'rx' }));
  const legend = h('ul', { class: 'legend' });
  curves.forEach((c, k) => {
    const colour = PALETTE[k % PALETTE.length];
    const points = c.cumulativeCm3.map((v, i) => `${x(i * c.binWidthGy).toFixed(1)},${y((100 * v) / c.volumeCm3).toFixed(1)}`).join(' ');
    svg.append(s('polyline', { points, fill: 'none', stroke: colour, 'stroke-width': 2, 'data-roi': c.roi }, s('title', {}, c.roi)));
    legend.append(h('li', {}, h('span', { class: 'swatch', style: `background:${colour}` }), `${c.roi}${c.source ? ` (${c.source})` : ''}`));
  });
  return h('figure', { class: 'dvh' }, svg, legend);
}

/** 1, 2, 5 × 10^n at or above v (axis end). */
function niceCeil(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((n) => n >= v) ?? 10 * p;
}

function round(v) {
  return Math.round(v * 100) / 100;
}
