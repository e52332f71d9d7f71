// A CSV file as an HTML table. Wide tables (DVH: V1Gy…V60Gy; radiomics: a hundred features)
// open on a few key columns with a toggle to show them all.
import { h, replace } from './dom.js';
import { parseCsv } from './csv.js';

/**
 * @param {string} text CSV with a header row
 * @param {string[]} keyColumns columns shown first (those present), or [] for all
 */
export function csvTable(text, keyColumns = []) {
  const [header = [], ...rows] = parseCsv(text).filter((r) => r.length > 1 || r[0] !== '');
  const keyIdx = keyColumns.map((c) => header.indexOf(c)).filter((i) => i >= 0);
  const narrow = keyIdx.length > 0 && keyIdx.length < header.length;
  const wrap = h('div', { class: 'table-wrap' });
  let showAll = !narrow;
  const draw = () => {
    const cols = showAll ? header.map((_, i) => i) : keyIdx;
    replace(
      wrap,
      h('p', { class: 'muted' }, `${rows.length} rows × ${header.length} columns`, narrow && ' ', narrow && h('button', { type: 'button', class: 'link', onclick: () => { showAll = !showAll; draw(); } }, showAll ? 'show key columns' : 'show all columns')),
      h(
        'table',
        { class: 'data' },
        h('thead', {}, h('tr', {}, cols.map((i) => h('th', {}, header[i])))),
        h('tbody', {}, rows.map((r) => h('tr', {}, cols.map((i) => h('td', { class: isNumber(r[i]) ? 'num' : null }, formatCell(r[i])))))),
      ),
    );
  };
  draw();
  return wrap;
}

function isNumber(v) {
  return v !== undefined && v !== '' && Number.isFinite(Number(v));
}

/** Numbers to 4 significant digits (the files keep full precision). */
function formatCell(v) {
  if (v === undefined) return '';
  if (!isNumber(v) || /^-?\d+$/.test(v)) return v;
  return String(Number(Number(v).toPrecision(4)));
}
