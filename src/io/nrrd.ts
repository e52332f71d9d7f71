/**
 * NRRD reader (teem format, NRRD0001..0005): attached or detached data, raw or gzip encoding,
 * little or big endian, the integer and float types. The spatial header (`space`, `space directions`,
 * `space origin`) becomes our Grid in DICOM LPS: RAS spaces flip the first two axes. Data index is
 * x fastest (i + nx*(j + ny*k)), as NRRD stores it, so no reordering is needed.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Grid, Vec3 } from '../geometry/types.js';

export type NrrdData = Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;

export interface NrrdVolume {
  grid: Grid;
  data: NrrdData;
  /** The header fields, keys lower-cased, as written. */
  fields: Map<string, string>;
}

type Ctor = { new (buf: ArrayBuffer): NrrdData; BYTES_PER_ELEMENT: number };

const TYPES: Record<string, Ctor> = {};
const alias = (ctor: Ctor, names: string[]) => names.forEach((n) => (TYPES[n] = ctor));
alias(Int8Array, ['signed char', 'int8', 'int8_t']);
alias(Uint8Array, ['uchar', 'unsigned char', 'uint8', 'uint8_t']);
alias(Int16Array, ['short', 'short int', 'signed short', 'signed short int', 'int16', 'int16_t']);
alias(Uint16Array, ['ushort', 'unsigned short', 'unsigned short int', 'uint16', 'uint16_t']);
alias(Int32Array, ['int', 'signed int', 'int32', 'int32_t']);
alias(Uint32Array, ['uint', 'unsigned int', 'uint32', 'uint32_t']);
alias(Float32Array, ['float']);
alias(Float64Array, ['double']);

/** Reads an NRRD file (`.nrrd`, or a `.nhdr` with its detached data file). */
export function readNrrd(path: string): NrrdVolume {
  return parseNrrd(readFileSync(path), path);
}

/** Parses NRRD bytes; `path` names the file in errors and locates detached data. */
export function parseNrrd(bytes: Buffer, path: string): NrrdVolume {
  const fail = (msg: string): never => {
    throw new Error(`${path}: ${msg}`);
  };
  if (bytes.subarray(0, 4).toString('latin1') !== 'NRRD') fail('not an NRRD file (no "NRRD" magic at the start)');
  // The header ends at the first empty line.
  let end = -1;
  let dataStart = -1;
  for (let i = 0; i < bytes.length - 1; i++) {
    if (bytes[i] === 0x0a && bytes[i + 1] === 0x0a) {
      end = i;
      dataStart = i + 2;
      break;
    }
    if (bytes[i] === 0x0a && bytes[i + 1] === 0x0d && bytes[i + 2] === 0x0a) {
      end = i;
      dataStart = i + 3;
      break;
    }
  }
  const headerText = bytes.subarray(0, end < 0 ? bytes.length : end).toString('latin1');
  const fields = new Map<string, string>();
  for (const raw of headerText.split(/\r?\n/).slice(1)) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || /^[^:]+:=/.test(line)) continue; // comments and key:=value pairs
    const sep = line.indexOf(': ');
    if (sep < 0) fail(`malformed header line "${line}" (expected "field: value")`);
    fields.set(line.slice(0, sep).trim().toLowerCase(), line.slice(sep + 2).trim());
  }
  const need = (k: string): string => fields.get(k) ?? fail(`header has no "${k}" field`);

  const dimension = Number(need('dimension'));
  if (dimension !== 3) fail(`dimension ${dimension} is not supported; only 3-D scalar volumes are read`);
  const sizes = need('sizes').split(/\s+/).map(Number);
  if (sizes.length !== 3 || sizes.some((s) => !Number.isInteger(s) || s < 1)) fail(`bad sizes "${need('sizes')}"`);
  const typeName = need('type').toLowerCase();
  const ctor = TYPES[typeName] ?? fail(`type "${typeName}" is not supported (integer types, float, double)`);
  const encoding = need('encoding').toLowerCase();
  const count = sizes[0] * sizes[1] * sizes[2];

  let payload: Buffer;
  const dataFile = fields.get('data file') ?? fields.get('datafile');
  if (dataFile) payload = readFileSync(resolve(dirname(path), dataFile));
  else {
    if (dataStart < 0) fail('header is not terminated by an empty line and no data file is named');
    payload = bytes.subarray(dataStart);
  }
  if (encoding === 'gzip' || encoding === 'gz') payload = gunzipSync(payload);
  else if (encoding !== 'raw') fail(`encoding "${encoding}" is not supported (raw, gzip)`);
  const nBytes = count * ctor.BYTES_PER_ELEMENT;
  if (payload.length < nBytes) fail(`data has ${payload.length} bytes, ${sizes.join('x')} ${typeName} needs ${nBytes}`);
  // Raw data may be preceded by bytes to skip; the image is the last nBytes then.
  const start = encoding === 'raw' ? payload.length - nBytes : 0;
  const copy = new Uint8Array(nBytes);
  copy.set(payload.subarray(start, start + nBytes));
  const bigEndian = (fields.get('endian') ?? 'little').toLowerCase() === 'big';
  if (bigEndian && ctor.BYTES_PER_ELEMENT > 1) swapBytes(copy, ctor.BYTES_PER_ELEMENT);
  const data = new ctor(copy.buffer);

  return { grid: spatialGrid(fields, sizes as Vec3, fail), data, fields };
}

function swapBytes(b: Uint8Array, width: number): void {
  for (let i = 0; i < b.length; i += width) b.subarray(i, i + width).reverse();
}

function parseVector(text: string, fail: (m: string) => never): Vec3 | null {
  if (text === 'none') return null;
  const m = text.match(/^\(([^)]*)\)$/) ?? fail(`bad vector "${text}"`);
  const v = m[1].split(',').map(Number);
  if (v.length !== 3 || v.some((x) => !Number.isFinite(x))) fail(`vector "${text}" needs 3 numbers`);
  return v as Vec3;
}

/** Grid in LPS from space/space directions/space origin (or spacings), x fastest. */
function spatialGrid(fields: Map<string, string>, dims: Vec3, fail: (m: string) => never): Grid {
  const space = (fields.get('space') ?? 'left-posterior-superior').toLowerCase();
  // Sign flips taking the file's space to LPS.
  const flips: Record<string, Vec3> = {
    'left-posterior-superior': [1, 1, 1], lps: [1, 1, 1],
    'right-anterior-superior': [-1, -1, 1], ras: [-1, -1, 1],
    'left-anterior-superior': [1, -1, 1], las: [1, -1, 1],
  };
  const flip = flips[space] ?? fail(`space "${space}" is not supported (LPS, RAS, LAS)`);
  const dirText = fields.get('space directions');
  let axes: Vec3[];
  if (dirText) {
    const parts = dirText.match(/\([^)]*\)|none/g) ?? [];
    const vecs = parts.map((p) => parseVector(p, fail)).filter((v): v is Vec3 => v !== null);
    if (vecs.length !== 3) fail(`space directions "${dirText}" must give 3 vectors`);
    axes = vecs;
  } else {
    const sp = (fields.get('spacings') ?? '1 1 1').split(/\s+/).map(Number);
    axes = [[sp[0], 0, 0], [0, sp[1], 0], [0, 0, sp[2]]];
  }
  const origin = fields.get('space origin') ? parseVector(fields.get('space origin') as string, fail) ?? [0, 0, 0] : [0, 0, 0];
  const lps = (v: Vec3): Vec3 => v.map((c, a) => c * flip[a] + 0) as Vec3; // + 0 turns -0 into 0
  const spacingMm = axes.map((a) => Math.hypot(...a)) as Vec3;
  if (spacingMm.some((s) => !(s > 0))) fail('a space direction has zero length');
  const direction = axes.map((a, i) => lps(a).map((c) => c / spacingMm[i] + 0) as Vec3) as [Vec3, Vec3, Vec3];
  return { dims: [...dims] as [number, number, number], spacingMm, originMm: lps(origin as Vec3), direction };
}
