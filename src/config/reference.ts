/**
 * The configuration reference (README), generated from the zod schema itself so that it can never
 * drift from what `validate` and `serve` accept: every key, its type, its built-in default and its
 * `.describe()` text. Pure: it renders text; reference-cli.ts reads and writes the README.
 */
import type { z } from 'zod';
import { configSchema } from './schema.js';

export interface ConfigKeyDoc {
  /** Dotted path; `[]` marks the elements of a list of objects (`node.destinations[].aet`). */
  key: string;
  type: string;
  /** Markdown for the default: a value in backticks, or "required" / "optional" / "" (sections). */
  default: string;
  description: string;
}

export const REFERENCE_START = '<!-- config-reference:start -->';
export const REFERENCE_END = '<!-- config-reference:end -->';

/** The zod 4 internals the walker reads; only the parts it needs. */
interface Def {
  type: string;
  innerType?: Schema;
  defaultValue?: unknown;
  in?: Schema;
  shape?: Record<string, Schema>;
  element?: Schema;
  entries?: Record<string, string | number>;
  values?: unknown[];
  options?: Schema[];
}
interface Schema {
  def: Def;
  description?: string;
  format?: string | null;
  minValue?: number | null;
  maxValue?: number | null;
}

/** A schema with its wrappers (default, nullable, optional, transform pipes) taken off. */
interface Peeled {
  core: Schema;
  description?: string;
  /** Present when a default or prefault gives the key a value (boxed: the value may be null). */
  defaulted?: { value: unknown };
  nullable: boolean;
  optional: boolean;
}

function peel(schema: Schema): Peeled {
  const out: Peeled = { core: schema, nullable: false, optional: false };
  let s = schema;
  for (;;) {
    // The outermost description wins: it is the one written next to the key.
    out.description ??= s.description;
    const t = s.def.type;
    if ((t === 'default' || t === 'prefault') && s.def.innerType) {
      out.defaulted ??= { value: s.def.defaultValue };
      s = s.def.innerType;
    } else if ((t === 'nullable' || t === 'optional' || t === 'readonly') && s.def.innerType) {
      if (t === 'nullable') out.nullable = true;
      if (t === 'optional') out.optional = true;
      s = s.def.innerType;
    } else if (t === 'pipe' && s.def.in) {
      // A transform (e.g. AE titles are trimmed): the file holds the input side.
      s = s.def.in;
    } else {
      out.core = s;
      return out;
    }
  }
}

function numberType(s: Schema): string {
  const integer = s.format === 'safeint' || s.format === 'int32' || s.format === 'uint32';
  const name = integer ? 'integer' : 'number';
  const bounded = (v: number | null | undefined) => typeof v === 'number' && Number.isFinite(v) && Math.abs(v) < Number.MAX_SAFE_INTEGER;
  return bounded(s.minValue) && bounded(s.maxValue) ? `${name} ${s.minValue}–${s.maxValue}` : name;
}

function typeName(core: Schema): string {
  const d = core.def;
  switch (d.type) {
    case 'string':
      return 'string';
    case 'number':
      return numberType(core);
    case 'boolean':
      return 'boolean';
    case 'enum':
      return Object.values(d.entries ?? {}).map((v) => `\`${v}\``).join(' \\| ');
    case 'literal':
      return (d.values ?? []).map((v) => `\`${JSON.stringify(v)}\``).join(' \\| ');
    case 'array': {
      const el = peel(d.element as Schema).core;
      return el.def.type === 'object' ? 'list of objects' : `list of ${typeName(el)}`;
    }
    case 'object':
      return 'section';
    case 'record':
      return 'map';
    case 'unknown':
    case 'any':
      return 'any';
    case 'union':
      return (d.options ?? []).map((o) => typeName(peel(o).core)).join(' or ');
    default:
      return d.type;
  }
}

/** A default as it would be written in YAML flow style. */
function yamlValue(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return `[${v.map(yamlValue).join(', ')}]`;
  if (typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>);
    return entries.length === 0 ? '{}' : `{${entries.map(([k, x]) => `${k}: ${yamlValue(x)}`).join(', ')}}`;
  }
  return String(v);
}

function defaultText(p: Peeled): string {
  // A section's own default ({}) says nothing: its keys carry the defaults.
  if (p.core.def.type === 'object') return p.nullable && p.defaulted?.value === null ? '`null`' : '';
  if (p.defaulted) return `\`${yamlValue(p.defaulted.value)}\``;
  return p.optional ? 'optional' : 'required';
}

function walk(shape: Record<string, Schema>, prefix: string, rows: ConfigKeyDoc[]): void {
  for (const [name, schema] of Object.entries(shape)) {
    const key = prefix ? `${prefix}.${name}` : name;
    const p = peel(schema);
    const type = typeName(p.core) + (p.nullable ? ' or null' : '');
    rows.push({ key, type, default: defaultText(p), description: p.description ?? '' });
    if (p.core.def.type === 'object' && p.core.def.shape) walk(p.core.def.shape, key, rows);
    if (p.core.def.type === 'array') {
      const el = peel(p.core.def.element as Schema).core;
      if (el.def.type === 'object' && el.def.shape) walk(el.def.shape, `${key}[]`, rows);
    }
  }
}

/** Every key of the config schema, in schema order, sections before their keys. */
export function describeConfig(schema: z.ZodType = configSchema): ConfigKeyDoc[] {
  const root = peel(schema as unknown as Schema).core;
  if (root.def.type !== 'object' || !root.def.shape) throw new Error('the config schema must be an object schema');
  const rows: ConfigKeyDoc[] = [];
  walk(root.def.shape, '', rows);
  return rows;
}

const cell = (s: string) => s.replace(/\r?\n/g, ' ').replace(/(?<!\\)\|/g, '\\|');

/** The Markdown that goes between the README markers. */
export function renderConfigReference(rows: readonly ConfigKeyDoc[] = describeConfig()): string {
  const lines = [
    '_Generated from `src/config/schema.ts` by `npm run docs:config`; edit the schema, not this table._',
    '',
    '| key | type | default | description |',
    '|---|---|---|---|',
    ...rows.map((r) => `| \`${r.key}\` | ${cell(r.type)} | ${cell(r.default)} | ${cell(r.description)} |`),
  ];
  return lines.join('\n');
}

/** Finds the text between the markers; an error names what is missing and what to add. */
export function findReference(document: string, where = 'README.md'): { start: number; end: number; current: string } {
  const s = document.indexOf(REFERENCE_START);
  const e = document.indexOf(REFERENCE_END);
  if (s < 0 || e < 0 || e < s) {
    throw new Error(`${where}: the markers ${REFERENCE_START} and ${REFERENCE_END} (in that order) are missing; add them where the configuration reference goes`);
  }
  const start = s + REFERENCE_START.length;
  return { start, end: e, current: document.slice(start, e).trim() };
}

/** The document with the reference between its markers replaced by `block`. */
export function spliceReference(document: string, block: string, where = 'README.md'): string {
  const { start, end } = findReference(document, where);
  return `${document.slice(0, start)}\n${block}\n${document.slice(end)}`;
}
