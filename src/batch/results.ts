/** The cohort tables of a batch run: `<outdir>/_RESULTS/` (contract), from every course folder. */
import path from 'node:path';
import { existsSync, promises as fsp } from 'node:fs';
import type { Logger } from '../log.js';
import { caseMetadataPath } from '../pipeline/course.js';
import { toCsv } from '../io/csv.js';
import { toXlsx } from '../io/xlsx.js';
import type { Cell, Table } from '../io/table.js';
import { writeFileAtomic } from '../store/durable-fs.js';
import { readMarker } from '../pipeline/stage-markers.js';
import type { DvhResult } from '../pipeline/stages/dvh.js';
import type { RadiomicsResult } from '../pipeline/stages/radiomics.js';
import type { RobustnessResult } from '../pipeline/stages/robustness.js';
import type { QcResult } from '../pipeline/stages/qc.js';
import type { Config } from '../config/schema.js';
import { parseRobustnessThresholds, ROBUSTNESS_SUMMARY_COLUMNS, ROBUSTNESS_SUMMARY_EXTRA_COLUMNS, summarizeRobustness, type RobustnessValueRow } from '../robustness/summary.js';

interface CourseRow {
  patientId: string;
  courseId: string;
  dir: string;
  ok: boolean;
  error?: string;
}

async function writeTable(dir: string, name: string, table: Table): Promise<void> {
  await writeFileAtomic(path.join(dir, `${name}.csv`), toCsv(table));
  await writeFileAtomic(path.join(dir, `${name}.xlsx`), toXlsx([{ name, table }]));
}

/** Concatenates tables whose columns may differ (e.g. with and without prescription metrics). */
function concatTables(tables: Table[]): Table {
  const columns: string[] = [];
  for (const t of tables) for (const c of t.columns) if (!columns.includes(c)) columns.push(c);
  const rows = tables.flatMap((t) => t.rows.map((r) => columns.map((c) => r[t.columns.indexOf(c)] as Cell)));
  return { columns, rows };
}

export async function writeCohortResults(outDir: string, courses: readonly CourseRow[], log: Logger, config?: Config): Promise<void> {
  const dir = path.join(outDir, '_RESULTS');
  await fsp.mkdir(dir, { recursive: true });
  const meta: Record<string, Cell>[] = [];
  const dvhTables: Table[] = [];
  const radiomicsTables: Table[] = [];
  const robustnessRows: RobustnessValueRow[] = [];
  const qcRows: Cell[][] = [];
  for (const c of courses) {
    const m = existsSync(caseMetadataPath(c.dir)) ? (JSON.parse(await fsp.readFile(caseMetadataPath(c.dir), 'utf8')) as Record<string, unknown>) : {};
    const dvh = (m.dvh ?? {}) as { skipped?: boolean; reason?: string; rows?: number };
    meta.push({
      PatientID: c.patientId,
      CourseID: c.courseId,
      status: c.ok ? 'ok' : 'failed',
      error: c.error ?? '',
      dvh: dvh.skipped ? `skipped: ${dvh.reason}` : dvh.rows !== undefined ? `${dvh.rows} rows` : '',
      folder: c.dir,
    });
    const marker = await readMarker(c.dir, 'dvh');
    const result = marker?.result as DvhResult | undefined;
    if (result && 'table' in result) dvhTables.push(result.table);
    const radiomics = (await readMarker(c.dir, 'radiomics'))?.result as RadiomicsResult | undefined;
    if (radiomics && 'table' in radiomics) radiomicsTables.push(radiomics.table);
    const robustness = (await readMarker(c.dir, 'robustness'))?.result as RobustnessResult | undefined;
    if (robustness && 'rows' in robustness) {
      const subject = `${c.patientId}/${c.courseId}`;
      for (const [structure, source, perturbationId, feature, value] of robustness.rows) robustnessRows.push({ subject, structure, source, perturbationId, feature, value });
    }
    const qc = (await readMarker(c.dir, 'qc'))?.result as QcResult | undefined;
    if (qc && 'checks' in qc) {
      const failed = qc.checks.filter((k) => k.status === 'FAIL').map((k) => `${k.check}: ${k.subject}`);
      qcRows.push([c.patientId, c.courseId, qc.status, failed.join('; '), path.relative(outDir, path.join(c.dir, path.basename(qc.report)))]);
    }
  }
  const metaColumns = ['PatientID', 'CourseID', 'status', 'error', 'dvh', 'folder'];
  await writeTable(dir, 'case_metadata', { columns: metaColumns, rows: meta.map((r) => metaColumns.map((c) => r[c])) });
  if (dvhTables.length > 0) await writeTable(dir, 'dvh_metrics', concatTables(dvhTables));
  if (radiomicsTables.length > 0) await writeTable(dir, 'radiomics_ct', concatTables(radiomicsTables));
  if (qcRows.length > 0) await writeTable(dir, 'qc_reports', { columns: ['PatientID', 'CourseID', 'status', 'failed_checks', 'report'], rows: qcRows });
  if (robustnessRows.length > 0) {
    // ICC over subjects: every course with robustness rows is one subject of the cohort.
    const summary = summarizeRobustness(robustnessRows, { thresholds: parseRobustnessThresholds(config?.radiomics_robustness.thresholds ?? {}, 'radiomics_robustness.thresholds') });
    const columns = [...ROBUSTNESS_SUMMARY_COLUMNS, ...ROBUSTNESS_SUMMARY_EXTRA_COLUMNS];
    await writeTable(dir, 'radiomics_robustness_summary', { columns, rows: summary.map((r) => columns.map((c) => (r as unknown as Record<string, Cell>)[c])) });
  }
  log.info({ dir, courses: courses.length, dvhCourses: dvhTables.length, radiomicsCourses: radiomicsTables.length }, 'cohort results written');
}
