import { fileURLToPath } from 'node:url';
// IBSI 1 reference data for tests: the reference-value CSV, the pass rule, and the two phantoms.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readNifti } from '../../src/io/nifti.js';
import type { RawVolume } from '../../src/radiomics/preprocess.js';
import type { Features } from '../../src/radiomics/types.js';

/** The team's shared reference data: beside the repository (../shared), or where RTPIPELINE_SHARED_DIR says. */
function findIbsiDir(): string {
  const candidates = [
    process.env.RTPIPELINE_SHARED_DIR && join(process.env.RTPIPELINE_SHARED_DIR, 'reference/ibsi'),
    fileURLToPath(new URL('../../../shared/reference/ibsi', import.meta.url)),
    '/work/shared/reference/ibsi',
  ].filter((c): c is string => typeof c === 'string');
  const found = candidates.find((c) => existsSync(join(c, 'reference_values')));
  if (!found) throw new Error(`IBSI reference data not found (looked in ${candidates.join(', ')}); set RTPIPELINE_SHARED_DIR to the shared folder`);
  return found;
}

export const IBSI_DIR = findIbsiDir();

export interface ReferenceRow {
  dataSet: string;
  family: string;
  tag: string;
  value: number;
  tolerance: number;
}

/** RFC 4180 fields of one line (quotes may hold commas). */
export function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') (field += '"'), i++;
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') out.push(field), (field = '');
    else field += c;
  }
  out.push(field);
  return out;
}

/** Rows of a CSV file as objects keyed by the header. */
export function readCsv(path: string): Record<string, string>[] {
  const lines = readFileSync(path, 'utf8').replace(/^\uFEFF/, '').split(/\r?\n/).filter((l) => l.length > 0);
  const header = splitCsvLine(lines[0]);
  return lines.slice(1).map((l) => {
    const fields = splitCsvLine(l);
    return Object.fromEntries(header.map((h, i) => [h, fields[i] ?? '']));
  });
}

/** The 1803 IBSI 1 reference values that have a value (one row of config C has none). */
export function loadReferenceValues(): ReferenceRow[] {
  return readCsv(join(IBSI_DIR, 'reference_values/ibsi1_reference_values.csv'))
    .filter((r) => r.reference_value !== '')
    .map((r) => ({ dataSet: r.data_set, family: r.family, tag: r.ibsi_tag, value: Number(r.reference_value), tolerance: Number(r.tolerance || 0) }));
}

/** Round to 3 significant digits (the precision of the IBSI tables). */
export function round3(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  return Number(x.toPrecision(3));
}

/** The IBSI rule: round the computed value to 3 significant digits, then |x − ref| <= tolerance. */
export function passes(x: number | undefined, ref: number, tolerance: number): boolean {
  if (x === undefined || !Number.isFinite(x)) return false;
  // A hair of slack for the decimal representation of the tolerance itself (e.g. 0.1 + 0.2).
  return Math.abs(round3(x) - ref) <= tolerance + 1e-12 * Math.max(1, Math.abs(ref));
}

export interface Score {
  family: string;
  passed: number;
  total: number;
  failures: { tag: string; value: number | undefined; ref: number; tolerance: number }[];
}

/** Pass counts per family for one data set. */
export function score(rows: ReferenceRow[], features: Features): Map<string, Score> {
  const out = new Map<string, Score>();
  for (const r of rows) {
    const s = out.get(r.family) ?? { family: r.family, passed: 0, total: 0, failures: [] };
    out.set(r.family, s);
    s.total++;
    const x = features.get(r.tag);
    if (passes(x, r.value, r.tolerance)) s.passed++;
    else s.failures.push({ tag: r.tag, value: x, ref: r.value, tolerance: r.tolerance });
  }
  return out;
}

async function loadVolume(path: string, float: boolean): Promise<RawVolume> {
  const img = await readNifti(path);
  const data = new Float64Array(img.data.length);
  for (let i = 0; i < data.length; i++) {
    const v = img.data[i] * img.sclSlope + img.sclInter;
    // IBSI: cast to at least float32, then round; masks are read as 0/1.
    data[i] = float ? Math.fround(v) : v;
  }
  return { dims: img.grid.dims, spacingMm: img.grid.spacingMm, data };
}

export async function loadDigitalPhantom(): Promise<{ image: RawVolume; mask: RawVolume }> {
  const base = join(IBSI_DIR, 'ibsi_1_digital_phantom/nifti');
  return { image: await loadVolume(join(base, 'image/phantom.nii.gz'), true), mask: await loadVolume(join(base, 'mask/mask.nii.gz'), false) };
}

export async function loadCtPhantom(): Promise<{ image: RawVolume; mask: RawVolume }> {
  const base = join(IBSI_DIR, 'ibsi_1_ct_radiomics_phantom/nifti');
  return { image: await loadVolume(join(base, 'image/phantom.nii.gz'), true), mask: await loadVolume(join(base, 'mask/mask.nii.gz'), false) };
}
