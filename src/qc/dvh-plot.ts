/**
 * The cumulative DVH plot of the QC report as inline SVG (no browser or font rasteriser needed to
 * make it, and it stays sharp when zoomed): volume % against dose, one curve per ROI in its colour,
 * axes with ticks and labels, and a legend. Pure: curves in, SVG text out.
 */
import type { Rgb } from './render.js';

export interface DvhPlotCurve {
  label: string;
  color: Rgb;
  binWidthGy: number;
  volumeCm3: number;
  /** Volume (cm³) receiving at least b × binWidthGy, for bin b. */
  cumulativeCm3: readonly number[];
}

const W = 720;
const H = 420;
const M = { left: 60, right: 190, top: 20, bottom: 50 };

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A "nice" tick step (1, 2 or 5 × 10^n) giving about `n` ticks over [0, max]. */
function tickStep(max: number, n: number): number {
  const raw = max / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
}

/** Drops points inside horizontal runs (same y to 0.05 px as both neighbours): a DVH has thousands of bins, mostly flat. */
function corners(xy: readonly [number, number][]): [number, number][] {
  const same = (a: number, b: number) => Math.abs(a - b) < 0.05;
  return xy.filter((p, n) => n === 0 || n === xy.length - 1 || !(same(p[1], xy[n - 1][1]) && same(p[1], xy[n + 1][1])));
}

export function dvhPlotSvg(curves: readonly DvhPlotCurve[]): string {
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const maxDose = Math.max(1, ...curves.map((c) => c.cumulativeCm3.length * c.binWidthGy));
  const step = tickStep(maxDose, 8);
  const xMax = Math.ceil(maxDose / step) * step;
  const x = (gy: number) => M.left + (gy / xMax) * plotW;
  const y = (pct: number) => M.top + plotH - (pct / 100) * plotH;
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" class="dvh" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`];
  parts.push(`<rect x="${M.left}" y="${M.top}" width="${plotW}" height="${plotH}" fill="white" stroke="#444"/>`);
  for (let gy = 0; gy <= xMax + 1e-9; gy += step) {
    parts.push(`<line x1="${x(gy).toFixed(1)}" y1="${M.top}" x2="${x(gy).toFixed(1)}" y2="${M.top + plotH}" stroke="#ddd"/>`);
    parts.push(`<text x="${x(gy).toFixed(1)}" y="${M.top + plotH + 15}" text-anchor="middle">${+gy.toFixed(6)}</text>`);
  }
  for (let pct = 0; pct <= 100; pct += 20) {
    parts.push(`<line x1="${M.left}" y1="${y(pct)}" x2="${M.left + plotW}" y2="${y(pct)}" stroke="#ddd"/>`);
    parts.push(`<text x="${M.left - 6}" y="${y(pct) + 4}" text-anchor="end">${pct}</text>`);
  }
  parts.push(`<text x="${M.left + plotW / 2}" y="${H - 10}" text-anchor="middle">Dose (Gy)</text>`);
  parts.push(`<text transform="translate(16 ${M.top + plotH / 2}) rotate(-90)" text-anchor="middle">Volume (%)</text>`);
  curves.forEach((c, n) => {
    const colour = `rgb(${c.color.join(',')})`;
    const xy: [number, number][] = c.cumulativeCm3.map((v, b) => [x(b * c.binWidthGy), y(c.volumeCm3 > 0 ? Math.min(100, (100 * v) / c.volumeCm3) : 0)]);
    if (xy.length > 0) xy.push([x(c.cumulativeCm3.length * c.binWidthGy), y(0)]);
    const pts = corners(xy).map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`);
    parts.push(`<polyline fill="none" stroke="${colour}" stroke-width="1.5" points="${pts.join(' ')}"><title>${escapeXml(c.label)}</title></polyline>`);
    const ly = M.top + 10 + n * 15;
    parts.push(`<line x1="${W - M.right + 12}" y1="${ly - 4}" x2="${W - M.right + 30}" y2="${ly - 4}" stroke="${colour}" stroke-width="3"/>`);
    parts.push(`<text x="${W - M.right + 35}" y="${ly}">${escapeXml(c.label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
