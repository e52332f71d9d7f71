/**
 * Boolean custom structures (PTV_eval, rings, PRVs, combined organs) defined in a YAML file, and
 * RS_custom.dcm: the planning RTSTRUCT's manual ROIs + the auto-segmentation + the custom ROIs.
 *
 * The file format is the original Python rtpipeline's:
 *
 *   custom_structures:
 *     - name: PTV_eval
 *       operation: subtract            # union (default) | intersection | subtract | xor
 *       source_structures: [PTV, BODY_ring]
 *       margin: 5                      # optional, mm: a number, or per patient direction:
 *       # margin: { anterior_mm: 5, posterior_mm: 3, left_mm: 5, right_mm: 5, superior_mm: 10, inferior_mm: 10 }
 *       description: free text
 *       type: PTV                      # optional RT ROI Interpreted Type (else from the name, see below)
 *       color: [255, 0, 0]             # optional display colour
 *
 * Margin keys may also be written without `_mm`; `uniform_mm` (or `uniform`) is the margin of every
 * direction not given. Negative margins shrink. The margin is applied to the result of the operation.
 *
 * Semantics: union and intersection over all sources; subtract = first source minus the union of
 * the others; xor = voxels in an odd number of sources (the original's pairwise chain). A source may
 * be another custom structure, in any order in the file: they are evaluated in dependency order, and
 * a cycle is an error in the file (and skipped, with the reason, if definitions come from elsewhere).
 *
 * Source names: exact match first, then case-insensitive, then ignoring everything but letters and
 * digits ("Lung L" = "lung_l", as the original matched). A name that matches several structures at
 * the first tier that matches is ambiguous and counts as missing. A structure with a missing source
 * is skipped and reported with the missing names; the others are still computed. A custom structure
 * whose name is already taken (exact or case-insensitive) by a manual or automatic structure is
 * skipped, so RS_custom never holds two ROIs of one name.
 */
import { readFile } from 'node:fs/promises';
import { type LineCounter, isMap, isPair, isScalar, type Document, type Node as YamlNode } from 'yaml';
import { z } from 'zod';
import { ConfigError, parseYamlDocument } from '../config/load.js';
import { contoursToMask } from '../geometry/contours.js';
import { voxelCount, type Contour, type Grid, type Mask } from '../geometry/types.js';
import { applyMargin, isZeroMargin, MARGIN_DIRECTIONS, type DirectionalMargin } from '../segment/margin.js';
import { voxelVolumeMm3 } from '../segment/mask.js';
import { ctReference, maskContours, paletteColor, type CtIdentity } from './structure-set.js';
export type { CtIdentity };
import {
  buildRtStruct,
  readRtStruct,
  type RoiGenerationAlgorithm,
  type RoiInterpretedType,
  type RtStructCtReference,
  type RtStructRoiInput,
} from './rtstruct.js';

// ----------------------------------------------------------------------------------------- types

export const BOOLEAN_OPERATIONS = ['union', 'intersection', 'subtract', 'xor'] as const;
export type BooleanOperation = (typeof BOOLEAN_OPERATIONS)[number];
export type Rgb = [number, number, number];

export interface CustomStructureDefinition {
  name: string;
  operation: BooleanOperation;
  sourceStructures: string[];
  /** Applied to the operation's result; absent = none. */
  margin?: DirectionalMargin;
  description?: string;
  type?: RoiInterpretedType;
  color?: Rgb;
}

export interface CustomStructure {
  name: string;
  mask: Mask;
  definition: CustomStructureDefinition;
  /** The structures each source name resolved to (available or custom names). */
  resolvedSources: string[];
  /** The available (non-custom) structures it derives from, through other custom structures too. */
  baseSources: string[];
  voxels: number;
}

export interface MissingSources {
  name: string;
  missingSources: string[];
  /** One sentence per missing source: not found, ambiguous, or itself skipped. */
  reasons: string[];
}

export interface CustomStructuresResult {
  /** In dependency order. */
  structures: CustomStructure[];
  missing: MissingSources[];
  /** Skipped for another reason than a missing source: a cycle or a name already taken. */
  skipped: { name: string; reason: string }[];
  warnings: string[];
}

const INTERPRETED_TYPES = [
  'EXTERNAL', 'PTV', 'CTV', 'GTV', 'TREATED_VOLUME', 'IRRAD_VOLUME', 'BOLUS', 'AVOIDANCE', 'ORGAN', 'MARKER',
  'REGISTRATION', 'ISOCENTER', 'CONTRAST_AGENT', 'CAVITY', 'BRACHY_CHANNEL', 'BRACHY_ACCESSORY', 'BRACHY_SRC_APP',
  'BRACHY_CHNL_SHLD', 'SUPPORT', 'FIXATION', 'DOSE_REGION', 'CONTROL', 'DOSE_MEASUREMENT',
] as const satisfies readonly RoiInterpretedType[];

// ---------------------------------------------------------------------------------------- schema

const mm = z.number({ error: 'must be a number of millimetres' });
const optionalMm = mm.optional();

const MARGIN_KEYS = [...MARGIN_DIRECTIONS.flatMap((d) => [d, `${d}_mm`]), 'uniform', 'uniform_mm'];
const MARGIN_HELP = `must be a number of mm or a mapping of ${MARGIN_KEYS.join(', ')}`;

const marginSchema = z.preprocess(
  (v) => (typeof v === 'number' ? { uniform_mm: v } : v),
  z
    .object(
      {
        anterior: optionalMm, anterior_mm: optionalMm, posterior: optionalMm, posterior_mm: optionalMm,
        left: optionalMm, left_mm: optionalMm, right: optionalMm, right_mm: optionalMm,
        superior: optionalMm, superior_mm: optionalMm, inferior: optionalMm, inferior_mm: optionalMm,
        uniform: optionalMm, uniform_mm: optionalMm,
      },
      { error: MARGIN_HELP },
    )
    .strict()
    .superRefine((m, ctx) => {
      for (const d of [...MARGIN_DIRECTIONS, 'uniform'] as const) {
        if (m[d] !== undefined && m[`${d}_mm`] !== undefined) {
          ctx.addIssue({ code: 'custom', path: [`${d}_mm`], message: `give either ${d} or ${d}_mm, not both` });
        }
      }
    })
    .transform((m): DirectionalMargin => {
      const fallback = m.uniform ?? m.uniform_mm ?? 0;
      return Object.fromEntries(MARGIN_DIRECTIONS.map((d) => [d, m[d] ?? m[`${d}_mm`] ?? fallback])) as unknown as DirectionalMargin;
    }),
);

const ENTRY_KEYS = ['name', 'operation', 'source_structures', 'margin', 'description', 'type', 'color'];

const entrySchema = z
  .object(
    {
      name: z.string({ error: 'must be a text' }).trim().min(1, 'must not be empty').max(64, 'must be at most 64 characters (DICOM LO)'),
      operation: z.enum(BOOLEAN_OPERATIONS, { error: `must be one of ${BOOLEAN_OPERATIONS.join(', ')}` }).default('union'),
      source_structures: z
        .array(z.string({ error: 'must be a structure name' }).trim().min(1, 'must not be empty'), { error: 'must be a list of structure names' })
        .min(1, 'must name at least one structure'),
      margin: marginSchema.optional(),
      description: z.string({ error: 'must be a text' }).optional(),
      type: z
        .string({ error: 'must be an RT ROI Interpreted Type' })
        .transform((t) => t.trim().toUpperCase())
        .pipe(z.enum(INTERPRETED_TYPES, { error: `must be one of ${INTERPRETED_TYPES.join(', ')}` }))
        .optional(),
      color: z
        .tuple([0, 1, 2].map(() => z.number().int().min(0).max(255)) as [z.ZodNumber, z.ZodNumber, z.ZodNumber], {
          error: 'must be [R, G, B] with integers 0..255',
        })
        .optional(),
    },
    { error: 'each custom structure must be a mapping with name, operation and source_structures' },
  )
  .strict()
  .superRefine((e, ctx) => {
    if (e.operation === 'subtract' && e.source_structures.length < 2) {
      ctx.addIssue({ code: 'custom', path: ['source_structures'], message: 'subtract needs at least two structures (the first minus the others)' });
    }
  })
  .transform(
    (e): CustomStructureDefinition => ({
      name: e.name,
      operation: e.operation,
      sourceStructures: e.source_structures,
      ...(e.margin && !isZeroMargin(e.margin) ? { margin: e.margin } : {}),
      ...(e.description !== undefined ? { description: e.description } : {}),
      ...(e.type !== undefined ? { type: e.type } : {}),
      ...(e.color !== undefined ? { color: e.color as Rgb } : {}),
    }),
  );

const fileSchema = z
  .object(
    { custom_structures: z.array(entrySchema, { error: 'must be a list of custom structures' }).nullable().transform((l) => l ?? []) },
    { error: 'the file must be a mapping with a custom_structures list' },
  )
  .strict();

// --------------------------------------------------------------------------------------- loading

/** Reads and validates a custom structures YAML file. Problems throw ConfigError (exit 2) naming the
 *  file, line, entry and key. */
export async function loadCustomStructures(file: string): Promise<CustomStructureDefinition[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read custom structures file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseCustomStructures(text, file);
}

/** Validates the YAML text of a custom structures file; `file` is only used in messages. */
export function parseCustomStructures(text: string, file: string): CustomStructureDefinition[] {
  const { doc, lineCounter } = parseYamlDocument(text, file);
  const raw = doc.toJS() as unknown;
  const where = new IssueLocator(file, doc, lineCounter, raw);
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(`invalid custom structures file:\n  ${parsed.error.issues.flatMap((i) => where.describe(i)).join('\n  ')}`);
  }
  const defs = parsed.data.custom_structures;
  const problems = [...duplicateNames(defs, where), ...cycleProblems(defs, where)];
  if (problems.length > 0) throw new ConfigError(`invalid custom structures file:\n  ${problems.join('\n  ')}`);
  return defs;
}

type IssuePath = (string | number)[];

/** Turns a zod issue path into "file: line N: custom_structures[2] "name": key: message". */
class IssueLocator {
  constructor(
    private readonly file: string,
    private readonly doc: Document,
    private readonly lines: LineCounter,
    private readonly raw: unknown,
  ) {}

  describe(issue: z.core.$ZodIssue): string[] {
    const path = issue.path as IssuePath;
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((k) => this.at([...path, k], `unknown key (allowed here: ${allowedKeys(path).join(', ')})`, k));
    }
    return [this.at(path, issue.message)];
  }

  /** Message for the entry at `index`, pointing at the entry itself. */
  entry(index: number, message: string): string {
    return this.at(['custom_structures', index], message);
  }

  private at(path: IssuePath, message: string, key?: string): string {
    const line = this.lineOf(path, key);
    const prefix = `${this.file}${line ? `: line ${line}` : ''}`;
    if (path[0] !== 'custom_structures' || typeof path[1] !== 'number') {
      return `${prefix}: ${path.length > 0 ? `${path.join('.')}: ` : ''}${message}`;
    }
    const name = this.entryName(path[1]);
    const rest = path.slice(2).join('.');
    return `${prefix}: custom_structures[${path[1]}]${name ? ` "${name}"` : ''}${rest ? `: ${rest}` : ''}: ${message}`;
  }

  private entryName(index: number): string | undefined {
    const list = (this.raw as { custom_structures?: unknown } | null)?.custom_structures;
    const name = Array.isArray(list) ? (list[index] as { name?: unknown } | null)?.name : undefined;
    return typeof name === 'string' ? name : undefined;
  }

  private lineOf(path: IssuePath, key?: string): number | undefined {
    const parent = key === undefined ? path : path.slice(0, -1);
    let node: unknown = parent.length === 0 ? this.doc.contents : this.doc.getIn(parent, true);
    if (key !== undefined && isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === key);
      if (pair && isPair(pair)) node = pair.key;
    }
    // A path into a missing key points at its parent.
    for (let n = parent.length; !(node as YamlNode | undefined)?.range && n > 0; n--) node = this.doc.getIn(parent.slice(0, n - 1), true);
    const range = (node as YamlNode | undefined)?.range;
    return range ? this.lines.linePos(range[0]).line : undefined;
  }
}

function allowedKeys(path: IssuePath): string[] {
  if (path.length === 0) return ['custom_structures'];
  if (path.length === 2) return ENTRY_KEYS;
  return MARGIN_KEYS;
}

function duplicateNames(defs: CustomStructureDefinition[], where: IssueLocator): string[] {
  const first = new Map<string, number>();
  const problems: string[] = [];
  defs.forEach((d, i) => {
    const key = d.name.toLowerCase();
    const earlier = first.get(key);
    if (earlier === undefined) first.set(key, i);
    else problems.push(where.entry(i, `name: "${d.name}" is already defined by custom_structures[${earlier}] "${defs[earlier].name}" (names are compared case-insensitively)`));
  });
  return problems;
}

function cycleProblems(defs: CustomStructureDefinition[], where: IssueLocator): string[] {
  const names = defs.map((d) => d.name);
  const deps = new Map(defs.map((d) => [d.name, d.sourceStructures.flatMap((s) => found(matchStructureName(s, names)))]));
  return dependencyOrder(names, deps).cycles.map((cycle) => {
    const index = names.indexOf(cycle[0]);
    const text = cycle.length === 1 ? `refers to itself` : `is part of a cycle: ${[...cycle, cycle[0]].join(' -> ')}`;
    return where.entry(index, `source_structures: "${cycle[0]}" ${text}; a structure cannot be built from itself`);
  });
}

// ---------------------------------------------------------------------------------- name matching

export type NameMatch =
  | { kind: 'found'; name: string; how: 'exact' | 'case-insensitive' | 'normalized' }
  | { kind: 'ambiguous'; candidates: string[] }
  | { kind: 'none' };

const normalizeName = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]/g, '');

/** Finds `wanted` among `names`: exact, then case-insensitive, then letters and digits only. */
export function matchStructureName(wanted: string, names: readonly string[]): NameMatch {
  if (names.includes(wanted)) return { kind: 'found', name: wanted, how: 'exact' };
  const tiers: ['case-insensitive' | 'normalized', (s: string) => string][] = [
    ['case-insensitive', (s) => s.toLowerCase()],
    ['normalized', normalizeName],
  ];
  for (const [how, key] of tiers) {
    const k = key(wanted);
    if (k === '') continue;
    const hits = names.filter((n) => key(n) === k);
    if (hits.length === 1) return { kind: 'found', name: hits[0], how };
    if (hits.length > 1) return { kind: 'ambiguous', candidates: hits };
  }
  return { kind: 'none' };
}

const found = (m: NameMatch): string[] => (m.kind === 'found' ? [m.name] : []);

// ------------------------------------------------------------------------------ dependency order

/**
 * Evaluation order of `names` by `deps` (edges to names outside `names` are ignored): every name
 * after the names it depends on. Names on a cycle (strongly connected components with more than
 * one name, or a name depending on itself) are left out of `order` and reported, one list per
 * cycle, starting with the first in `names` and following its dependencies. Tarjan's algorithm,
 * which emits each component after every component it reaches, i.e. dependencies first.
 */
export function dependencyOrder(names: readonly string[], deps: ReadonlyMap<string, readonly string[]>): { order: string[]; cycles: string[][] } {
  const known = new Set(names);
  const edges = (n: string) => (deps.get(n) ?? []).filter((d) => known.has(d));
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const order: string[] = [];
  const cycles: string[][] = [];
  const visit = (n: string): void => {
    index.set(n, index.size);
    low.set(n, index.get(n)!);
    stack.push(n);
    onStack.add(n);
    for (const d of edges(n)) {
      if (!index.has(d)) {
        visit(d);
        low.set(n, Math.min(low.get(n)!, low.get(d)!));
      } else if (onStack.has(d)) {
        low.set(n, Math.min(low.get(n)!, index.get(d)!));
      }
    }
    if (low.get(n) !== index.get(n)) return;
    const component: string[] = [];
    let m: string;
    do {
      m = stack.pop()!;
      onStack.delete(m);
      component.push(m);
    } while (m !== n);
    if (component.length === 1 && !edges(n).includes(n)) order.push(n);
    else cycles.push(cyclePath(names.filter((x) => component.includes(x)), edges));
  };
  for (const n of names) if (!index.has(n)) visit(n);
  return { order, cycles };
}

/** The members of a cycle from the first, each followed by one it depends on (then any left over). */
function cyclePath(members: string[], edges: (n: string) => string[]): string[] {
  const path = [members[0]];
  for (;;) {
    const next = edges(path[path.length - 1]).find((d) => members.includes(d) && !path.includes(d));
    if (!next) break;
    path.push(next);
  }
  return [...path, ...members.filter((m) => !path.includes(m))];
}

// ---------------------------------------------------------------------------------- computation

type Resolved = { kind: 'available' | 'custom'; name: string };
type Resolution = Resolved | { kind: 'missing'; reason: string };

/**
 * Computes the custom structures from the `available` masks (manual and automatic structures, all on
 * `grid`). Pure: nothing is read or written. Missing sources, cycles and name clashes skip the
 * structure concerned (reported), never the others.
 */
export function computeCustomStructures(
  defs: readonly CustomStructureDefinition[],
  available: ReadonlyMap<string, Mask>,
  grid: Grid,
): CustomStructuresResult {
  for (const [name, m] of available) {
    if (m.data.length !== voxelCount(grid) || m.grid.dims.some((n, a) => n !== grid.dims[a])) {
      throw new RangeError(`structure "${name}" is on a ${m.grid.dims.join('x')} grid, not the CT's ${grid.dims.join('x')}; resample it first`);
    }
  }
  const result: CustomStructuresResult = { structures: [], missing: [], skipped: [], warnings: [] };
  const availableNames = [...available.keys()];
  const unavailable = new Map<string, string>();
  const seen = new Set<string>();
  const active = defs.filter((d) => {
    const clash = matchStructureName(d.name, availableNames);
    const takenBy = clash.kind === 'found' && clash.how !== 'normalized' ? clash.name : undefined;
    const twice = seen.has(d.name.toLowerCase());
    seen.add(d.name.toLowerCase());
    if (takenBy === undefined && !twice) return true;
    const reason = takenBy !== undefined
      ? `the name is already taken by the structure "${takenBy}"; rename the custom structure`
      : 'it is defined more than once (names are compared case-insensitively); only the first definition is used';
    result.skipped.push({ name: d.name, reason });
    if (takenBy !== undefined) unavailable.set(d.name, reason);
    return false;
  });
  const customNames = active.map((d) => d.name);
  const pool = [...availableNames, ...customNames];
  const resolutions = new Map(active.map((d) => [d.name, d.sourceStructures.map((s) => resolveSource(s, pool, available, d, result))]));
  const deps = new Map([...resolutions].map(([n, rs]) => [n, rs.flatMap((r) => (r.kind === 'custom' ? [r.name] : []))]));
  const { order, cycles } = dependencyOrder(customNames, deps);
  for (const cycle of cycles) {
    for (const name of cycle) {
      const reason = cycle.length === 1 ? 'it is one of its own sources' : `its sources form a cycle: ${[...cycle, cycle[0]].join(' -> ')}`;
      result.skipped.push({ name, reason });
      unavailable.set(name, reason);
    }
  }
  const computed = new Map<string, CustomStructure>();
  const byName = new Map(active.map((d) => [d.name, d]));
  for (const name of order) {
    const def = byName.get(name)!;
    const sources = resolutions.get(name)!;
    const missing = sources.flatMap((r, i) => {
      if (r.kind === 'missing') return [{ source: def.sourceStructures[i], reason: r.reason }];
      if (r.kind === 'custom' && !computed.has(r.name)) {
        return [{ source: def.sourceStructures[i], reason: `custom structure "${r.name}" was not built: ${unavailable.get(r.name) ?? 'unknown reason'}` }];
      }
      return [];
    });
    if (missing.length > 0) {
      result.missing.push({ name, missingSources: missing.map((m) => m.source), reasons: missing.map((m) => `"${m.source}": ${m.reason}`) });
      unavailable.set(name, `missing sources ${missing.map((m) => `"${m.source}"`).join(', ')}`);
      continue;
    }
    const present = sources.filter((r): r is Resolved => r.kind !== 'missing');
    const masks = present.map((r) => (r.kind === 'available' ? available.get(r.name)! : computed.get(r.name)!.mask));
    let mask = combine(def.operation, masks.map((m) => m.data), grid);
    if (def.margin) mask = applyMargin(mask, def.margin);
    const voxels = countVoxels(mask.data);
    if (voxels === 0) result.warnings.push(`custom structure "${name}" is empty (${def.operation} of ${def.sourceStructures.join(', ')}${def.margin ? ' with its margin' : ''})`);
    const resolvedSources = present.map((r) => r.name);
    const baseSources = [...new Set(present.flatMap((r) => (r.kind === 'available' ? [r.name] : computed.get(r.name)!.baseSources)))];
    const structure = { name, mask, definition: def, resolvedSources, baseSources, voxels };
    computed.set(name, structure);
    result.structures.push(structure);
  }
  return result;
}

function resolveSource(
  source: string,
  pool: string[],
  available: ReadonlyMap<string, Mask>,
  def: CustomStructureDefinition,
  result: CustomStructuresResult,
): Resolution {
  const m = matchStructureName(source, pool);
  if (m.kind === 'none') return { kind: 'missing', reason: 'no structure of that name' };
  if (m.kind === 'ambiguous') return { kind: 'missing', reason: `ambiguous, it matches ${m.candidates.map((c) => `"${c}"`).join(', ')}; use the exact name` };
  if (m.how !== 'exact') result.warnings.push(`custom structure "${def.name}": source "${source}" matched "${m.name}" (${m.how})`);
  const mask = available.get(m.name);
  if (!mask) return { kind: 'custom', name: m.name };
  if (countVoxels(mask.data) === 0) result.warnings.push(`custom structure "${def.name}": source "${m.name}" is empty`);
  return { kind: 'available', name: m.name };
}

/** The boolean operation over source masks (any non-zero voxel counts as set). */
export function combine(operation: BooleanOperation, sources: readonly Uint8Array[], grid: Grid): Mask {
  const n = voxelCount(grid);
  const out = new Uint8Array(n);
  const [first, ...rest] = sources;
  switch (operation) {
    case 'union':
      for (const s of sources) for (let v = 0; v < n; v++) if (s[v]) out[v] = 1;
      break;
    case 'intersection':
      for (let v = 0; v < n; v++) out[v] = first[v] ? 1 : 0;
      for (const s of rest) for (let v = 0; v < n; v++) if (!s[v]) out[v] = 0;
      break;
    case 'subtract':
      for (let v = 0; v < n; v++) out[v] = first[v] ? 1 : 0;
      for (const s of rest) for (let v = 0; v < n; v++) if (s[v]) out[v] = 0;
      break;
    case 'xor':
      for (const s of sources) for (let v = 0; v < n; v++) if (s[v]) out[v] ^= 1;
      break;
  }
  return { grid, data: out };
}

function countVoxels(data: Uint8Array): number {
  let n = 0;
  for (let v = 0; v < data.length; v++) if (data[v]) n++;
  return n;
}

// ------------------------------------------------------------------------------------ RS_custom


export interface AutoStructure {
  name: string;
  mask: Mask;
  color?: Rgb;
  /** Default ORGAN ('EXTERNAL' for BODY/EXTERNAL names, as the builtin engine types them). */
  type?: RoiInterpretedType;
}

export interface RsCustomInput {
  ct: {
    grid: Grid;
    /** SOP Instance UID of CT slice k, k = 0 .. dims[2]-1. */
    sliceSopInstanceUids: string[];
    study: CtIdentity;
  };
  /** The planning RTSTRUCT (Part 10 bytes), if the course has one. */
  manual?: Buffer;
  auto: AutoStructure[];
  definitions: readonly CustomStructureDefinition[];
  /** Same inputs and seed give byte-identical output. */
  seed: string;
}

export type RoiOrigin = 'manual' | 'auto' | 'custom';

export interface RsCustomRoiReport {
  number: number;
  name: string;
  origin: RoiOrigin;
  algorithm: RoiGenerationAlgorithm;
  interpretedType: RoiInterpretedType;
  voxels: number;
  volumeCm3: number;
  contours: number;
  /** Set when the name was changed to keep ROI names unique. */
  renamedFrom?: string;
}

export interface RsCustomReport {
  sopInstanceUid: string;
  rois: RsCustomRoiReport[];
  missing: MissingSources[];
  skipped: { name: string; reason: string }[];
  warnings: string[];
}

export interface RsCustomResult {
  rtstruct: Buffer;
  report: RsCustomReport;
  /** The custom structures' masks (e.g. for Segmentation/custom/*.nii.gz and the DVH). */
  custom: CustomStructure[];
}

interface PendingRoi {
  name: string;
  origin: RoiOrigin;
  algorithm: RoiGenerationAlgorithm;
  interpretedType: RoiInterpretedType;
  /** Absent: the next palette colour. */
  color?: Rgb;
  contours: Contour[];
  mask: Mask;
  description?: string;
  renamedFrom?: string;
}

/**
 * RS_custom: the manual ROIs (their own contours, rasterised onto the CT grid for the boolean
 * operations), the automatic ROIs and the custom ROIs, as one deterministic RTSTRUCT on the CT.
 * Manual names win a clash with automatic ones, which get the suffix "_auto".
 */
export function buildRsCustom(input: RsCustomInput): RsCustomResult {
  const { grid, sliceSopInstanceUids } = input.ct;
  const ct = ctReference(grid, sliceSopInstanceUids, input.ct.study);
  const warnings: string[] = [];
  const taken = new Set<string>();
  const rois: PendingRoi[] = [];
  const add = (roi: PendingRoi): void => {
    const unique = uniqueName(roi.name, roi.origin === 'auto' ? '_auto' : '_', taken);
    if (unique !== roi.name) {
      warnings.push(`${roi.origin} ROI "${roi.name}" is written as "${unique}": the name is already used`);
      roi = { ...roi, name: unique, renamedFrom: roi.name };
    }
    taken.add(unique.toLowerCase());
    rois.push({ ...roi, color: roi.color ?? paletteColor(rois.length) });
  };
  if (input.manual) manualRois(input.manual, ct, grid, warnings).forEach(add);
  for (const a of input.auto) {
    if (a.mask.data.length !== voxelCount(grid)) throw new RangeError(`auto structure "${a.name}" is not on the CT grid (${grid.dims.join('x')})`);
    const type = a.type ?? (/^(body|external)$/i.test(a.name) ? 'EXTERNAL' : 'ORGAN');
    add({ name: a.name, origin: 'auto', algorithm: 'AUTOMATIC', interpretedType: type, color: a.color, contours: [], mask: a.mask });
  }
  const available = new Map(rois.map((r) => [r.name, r.mask]));
  const origins = new Map(rois.map((r) => [r.name, r.origin]));
  const custom = computeCustomStructures(input.definitions, available, grid);
  for (const s of custom.structures) {
    const manual = s.baseSources.some((b) => origins.get(b) === 'manual');
    add({
      name: s.name,
      origin: 'custom',
      // Computed, but from contours a person drew: semi-automatic; from automatic ones: automatic.
      algorithm: manual ? 'SEMIAUTOMATIC' : 'AUTOMATIC',
      interpretedType: s.definition.type ?? interpretedTypeForName(s.name),
      color: s.definition.color,
      contours: [],
      mask: s.mask,
      description: s.definition.description ?? describeDefinition(s.definition),
    });
  }
  for (const r of rois) if (r.origin !== 'manual') r.contours = maskContours(r.mask, sliceSopInstanceUids);
  const rtstruct = buildRtStruct({
    ct,
    rois: rois.map((r, i): RtStructRoiInput => ({
      number: i + 1,
      name: r.name,
      color: r.color!,
      interpretedType: r.interpretedType,
      algorithm: r.algorithm,
      contours: r.contours,
      ...(r.description ? { description: r.description.slice(0, 64) } : {}),
    })),
    seriesDescription: 'rtpipeline manual + auto + custom structures',
    structureSetLabel: 'RS_custom',
    deterministic: { seed: input.seed },
  });
  const voxelCm3 = voxelVolumeMm3(grid) / 1000;
  const report: RsCustomReport = {
    sopInstanceUid: readRtStruct(rtstruct).sopInstanceUid,
    rois: rois.map((r, i) => {
      const voxels = countVoxels(r.mask.data);
      return {
        number: i + 1,
        name: r.name,
        origin: r.origin,
        algorithm: r.algorithm,
        interpretedType: r.interpretedType,
        voxels,
        volumeCm3: Math.round(voxels * voxelCm3 * 100) / 100,
        contours: r.contours.length,
        ...(r.renamedFrom ? { renamedFrom: r.renamedFrom } : {}),
      };
    }),
    missing: custom.missing,
    skipped: custom.skipped,
    warnings: [...warnings, ...custom.warnings],
  };
  return { rtstruct, report, custom: custom.structures };
}

const GENERATION_ALGORITHMS: readonly string[] = ['AUTOMATIC', 'SEMIAUTOMATIC', 'MANUAL'];

/** The planning RTSTRUCT's ROIs: original contour points (a contour naming a slice not in this CT
 *  is placed by its plane), and a mask for the boolean operations. */
function manualRois(bytes: Buffer, ct: RtStructCtReference, grid: Grid, warnings: string[]): PendingRoi[] {
  const rs = readRtStruct(bytes);
  const frame = rs.referencedFrameOfReferenceUid;
  if (frame && frame !== ct.frameOfReferenceUid) {
    warnings.push(`the planning RTSTRUCT is in frame of reference ${frame}, not the CT's ${ct.frameOfReferenceUid}; its ROIs are left out of RS_custom`);
    return [];
  }
  const sliceUids = new Set(ct.slices.map((s) => s.sopInstanceUid));
  const out: PendingRoi[] = [];
  for (const roi of rs.rois) {
    if (roi.frameOfReferenceUid && roi.frameOfReferenceUid !== ct.frameOfReferenceUid) {
      warnings.push(`manual ROI "${roi.name}" is in frame of reference ${roi.frameOfReferenceUid}, not the CT's; left out`);
      continue;
    }
    const closed = roi.contours.filter((c) => c.geometricType === 'CLOSED_PLANAR' && c.points.length >= 9);
    if (roi.contours.length > 0 && closed.length === 0) {
      warnings.push(`manual ROI "${roi.name}" has no closed planar contours (${roi.contours[0].geometricType}); it is not a volume and is left out`);
      continue;
    }
    const contours: Contour[] = closed.map((c) => ({ points: c.points, ...(c.sopInstanceUid && sliceUids.has(c.sopInstanceUid) ? { sopInstanceUid: c.sopInstanceUid } : {}) }));
    let outside = 0;
    const mask = contoursToMask(grid, contours, { onSkip: () => outside++ });
    if (outside > 0) warnings.push(`manual ROI "${roi.name}": ${outside} of ${contours.length} contours are off the CT's slices and do not count in its mask`);
    out.push({
      name: roi.name || `ROI_${roi.number}`,
      origin: 'manual',
      algorithm: (GENERATION_ALGORITHMS.includes(roi.algorithm) ? roi.algorithm : 'MANUAL') as RoiGenerationAlgorithm,
      interpretedType: ((INTERPRETED_TYPES as readonly string[]).includes(roi.interpretedType) ? roi.interpretedType : '') as RoiInterpretedType,
      color: roi.color ?? undefined,
      contours,
      mask,
    });
  }
  return out;
}

/** `name`, or name + suffix (+ a number) if its case-insensitive form is taken; at most 64 characters. */
function uniqueName(name: string, suffix: string, taken: ReadonlySet<string>): string {
  if (!taken.has(name.toLowerCase())) return name;
  for (let n = 1; ; n++) {
    const tail = suffix === '_' ? `_${n + 1}` : n === 1 ? suffix : `${suffix}_${n}`;
    const candidate = name.slice(0, 64 - tail.length) + tail;
    if (!taken.has(candidate.toLowerCase())) return candidate;
  }
}

/**
 * RT ROI Interpreted Type of a custom structure from its name, when the YAML gives no `type`.
 * The words (letters only) before a "minus", "not", "outside", "excl..." or "without" decide, so
 * LUNGS_minus_PTV is an organ and PTV_minus_rectum a PTV; the first rule that matches wins:
 * ring/shell/opt/control/boundary -> CONTROL; prv/avoid -> AVOIDANCE; ptv -> PTV; ctv/itv -> CTV;
 * gtv -> GTV; anything else ORGAN.
 */
export function interpretedTypeForName(name: string): RoiInterpretedType {
  const all = name.toLowerCase().split(/[^a-z]+/).filter(Boolean);
  const cut = all.findIndex((w, i) => i > 0 && /^(minus|not|outside|excl|without|wo)/.test(w));
  const words = cut < 0 ? all : all.slice(0, cut);
  const has = (...prefixes: string[]) => words.some((w) => prefixes.some((p) => w.startsWith(p)));
  if (has('ring', 'shell', 'opt', 'control', 'boundary')) return 'CONTROL';
  if (has('prv', 'avoid')) return 'AVOIDANCE';
  if (has('ptv')) return 'PTV';
  if (has('ctv', 'itv')) return 'CTV';
  if (has('gtv')) return 'GTV';
  return 'ORGAN';
}

function describeDefinition(d: CustomStructureDefinition): string {
  const margin = d.margin ? ` + margin` : '';
  return `${d.operation}(${d.sourceStructures.join(', ')})${margin}`;
}

