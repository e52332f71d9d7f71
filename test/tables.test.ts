// Result tables: CSV and XLSX read back by independent readers (Python's csv module and openpyxl).
import { describe, it, expect } from 'vitest';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { toCsv } from '../src/io/csv.js';
import { toXlsx, columnName } from '../src/io/xlsx.js';
import { tableFromRecords, type Table } from '../src/io/table.js';
import { run } from './helpers/ports.js';
import { tempDir } from './helpers/node.js';

const PY = '/usr/bin/python3'; // Debian's python, with python3-openpyxl

const table: Table = tableFromRecords(
  ['PatientID', 'ROI_Name', 'Volume (cm³)', 'DmeanGy', 'V20Gy (%)', 'note'],
  [
    { PatientID: 'P1', ROI_Name: 'PTV, "boost"', 'Volume (cm³)': 123.456, DmeanGy: 60.01, 'V20Gy (%)': 100, note: 'line1\nline2' },
    { PatientID: 'P2', ROI_Name: 'Lung_L <&>', 'Volume (cm³)': 1500, DmeanGy: Number.NaN, 'V20Gy (%)': 0.5 },
  ],
);

describe('result tables', () => {
  it('CSV parses back with Python csv (quotes, commas, newlines, UTF-8 with BOM)', async () => {
    const file = path.join(tempDir(), 't.csv');
    writeFileSync(file, toCsv(table));
    const r = await run(PY, ['-c', `import csv,json,sys; print(json.dumps(list(csv.reader(open(sys.argv[1], encoding='utf-8-sig', newline='')))))`, file]);
    expect(r.code, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout);
    expect(rows[0]).toEqual(table.columns);
    expect(rows[1]).toEqual(['P1', 'PTV, "boost"', '123.456', '60.01', '100', 'line1\nline2']);
    expect(rows[2]).toEqual(['P2', 'Lung_L <&>', '1500', '', '0.5', '']);
  });

  it('XLSX opens in openpyxl with every sheet, header, text and number cell', async () => {
    const file = path.join(tempDir(), 't.xlsx');
    writeFileSync(file, toXlsx([{ name: 'dvh_metrics', table }, { name: 'a/b:c?', table: { columns: ['x'], rows: [[1], [2]] } }]));
    const script = `import openpyxl,json,sys
wb = openpyxl.load_workbook(sys.argv[1])
print(json.dumps({ws.title: [[c for c in row] for row in ws.iter_rows(values_only=True)] for ws in wb.worksheets}))`;
    const r = await run(PY, ['-c', script, file]);
    expect(r.code, r.stderr).toBe(0);
    const book = JSON.parse(r.stdout);
    expect(Object.keys(book)).toEqual(['dvh_metrics', 'a_b_c_']);
    expect(book.dvh_metrics[0]).toEqual(table.columns);
    expect(book.dvh_metrics[1]).toEqual(['P1', 'PTV, "boost"', 123.456, 60.01, 100, 'line1\nline2']);
    expect(book.dvh_metrics[2]).toEqual(['P2', 'Lung_L <&>', 1500, null, 0.5, null]);
    expect(book.a_b_c_).toEqual([['x'], [1], [2]]);
  });

  it('names columns A..Z, AA.., and writes the same bytes for the same table', () => {
    expect([0, 25, 26, 51, 52, 701, 702].map(columnName)).toEqual(['A', 'Z', 'AA', 'AZ', 'BA', 'ZZ', 'AAA']);
    expect(toXlsx([{ name: 's', table }]).equals(toXlsx([{ name: 's', table }]))).toBe(true);
  });
});
