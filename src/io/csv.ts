/** CSV (RFC 4180, UTF-8 with BOM so that Excel reads "cm³" right, CRLF line ends). */
import type { Cell, Table } from './table.js';

function field(v: Cell): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '';
  const s = String(v);
  return /[",\r\n]/.test(s) || /^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(t: Table): string {
  const lines = [t.columns.map(field).join(','), ...t.rows.map((r) => t.columns.map((_, i) => field(r[i])).join(','))];
  return '\uFEFF' + lines.join('\r\n') + '\r\n';
}
