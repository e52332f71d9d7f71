import { existsSync, readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isMap, isPair, isScalar, type Node as YamlNode } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.js';
import { parseDestination } from './destination.js';

/** A config problem the user must fix; the CLI exits 2 with `message`. */
export class ConfigError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Path = (string | number)[];
type Raw = Record<string, unknown>;

/** Where a value came from, so an error can point at the flag, variable or line to change. */
type Origin = { kind: 'flag'; name: string } | { kind: 'env'; name: string };

/** One override from the command line or the environment: where it goes in the config tree. */
export interface Override {
  path: Path;
  value: unknown;
  origin: Origin;
}

/** The `serve` settings that can come from a flag or a `RTPIPELINE_<KEY>` variable (contract). */
interface OverridableKey {
  flag: string;
  env: string[];
  path: Path;
  /** `true`/`false`: a boolean flag that sets the key to that value when given. */
  kind: 'string' | 'number' | 'list' | 'destinations' | true | false;
}

export const OVERRIDABLE: OverridableKey[] = [
  { flag: 'aet', env: ['RTPIPELINE_AET'], path: ['node', 'aet'], kind: 'string' },
  { flag: 'dicom-port', env: ['RTPIPELINE_DICOM_PORT'], path: ['node', 'dicom_port'], kind: 'number' },
  { flag: 'http-port', env: ['RTPIPELINE_HTTP_PORT'], path: ['node', 'http_port'], kind: 'number' },
  { flag: 'data-dir', env: ['RTPIPELINE_DATA_DIR'], path: ['node', 'data_dir'], kind: 'string' },
  { flag: 'bind', env: ['RTPIPELINE_BIND'], path: ['node', 'bind_address'], kind: 'string' },
  { flag: 'bind', env: ['RTPIPELINE_BIND'], path: ['node', 'http_bind_address'], kind: 'string' },
  { flag: 'destination', env: ['RTPIPELINE_DESTINATION'], path: ['node', 'destinations'], kind: 'destinations' },
  { flag: 'allow-caller', env: ['RTPIPELINE_ALLOW_CALLER'], path: ['node', 'allowed_callers'], kind: 'list' },
  { flag: 'stable-seconds', env: ['RTPIPELINE_STABLE_SECONDS'], path: ['node', 'stable_seconds'], kind: 'number' },
  { flag: 'watch', env: ['RTPIPELINE_WATCH'], path: ['node', 'watch'], kind: 'list' },
  { flag: 'tls-port', env: ['RTPIPELINE_TLS_PORT'], path: ['node', 'tls', 'port'], kind: 'number' },
  { flag: 'max-workers', env: ['RTPIPELINE_MAX_WORKERS', 'RTPIPELINE_WORKERS'], path: ['max_workers'], kind: 'number' },
  { flag: 'seg-workers', env: ['RTPIPELINE_SEG_WORKERS'], path: ['seg_workers'], kind: 'number' },
  // The batch command's flags (no variables of their own: the config file or the flag).
  { flag: 'dicom-root', env: [], path: ['dicom_root'], kind: 'string' },
  { flag: 'outdir', env: [], path: ['output_dir'], kind: 'string' },
  { flag: 'logs', env: [], path: ['logs_dir'], kind: 'string' },
  { flag: 'segmentation-engine', env: [], path: ['segmentation', 'engine'], kind: 'string' },
  { flag: 'totalseg-device', env: [], path: ['segmentation', 'device'], kind: 'string' },
  { flag: 'totalseg-fast', env: [], path: ['segmentation', 'fast'], kind: true },
  { flag: 'totalseg-force-split', env: [], path: ['segmentation', 'force_split'], kind: true },
  { flag: 'no-totalseg-force-split', env: [], path: ['segmentation', 'force_split'], kind: false },
  { flag: 'totalseg-roi-subset', env: [], path: ['segmentation', 'roi_subset'], kind: 'list' },
  { flag: 'custom-structures', env: [], path: ['custom_structures'], kind: 'string' },
  { flag: 'radiomics-params', env: [], path: ['radiomics', 'params_file'], kind: 'string' },
  { flag: 'sequential-radiomics', env: [], path: ['radiomics', 'sequential'], kind: true },
];

function convert(key: OverridableKey, raw: string | string[] | boolean, origin: Origin): unknown {
  if (typeof key.kind === 'boolean') return key.kind;
  if (typeof raw === 'boolean') throw new ConfigError(`--${origin.name} needs a value`);
  const where = origin.kind === 'flag' ? `--${origin.name}` : `environment variable ${origin.name}`;
  const items = (Array.isArray(raw) ? raw : [raw]).flatMap((s) => s.split(/[,\s]+/)).filter((s) => s.length > 0);
  switch (key.kind) {
    case 'string':
      return Array.isArray(raw) ? raw[raw.length - 1] : raw;
    case 'number': {
      const text = Array.isArray(raw) ? raw[raw.length - 1] : raw;
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n)) throw new ConfigError(`${where}: "${text}" is not a number`);
      return n;
    }
    case 'list':
      return items;
    case 'destinations':
      return items.map((s) => {
        try {
          return parseDestination(s);
        } catch (e) {
          throw new ConfigError(`${where}: ${(e as Error).message}`);
        }
      });
  }
}

/** Overrides from flags and environment; flags win because they are applied last. */
export function collectOverrides(flags: Record<string, string | string[] | boolean | undefined>, env: NodeJS.ProcessEnv): Override[] {
  const out: Override[] = [];
  for (const key of OVERRIDABLE) {
    const envName = key.env.find((n) => env[n] !== undefined && env[n] !== '');
    if (envName) {
      const origin: Origin = { kind: 'env', name: envName };
      out.push({ path: key.path, value: convert(key, env[envName] as string, origin), origin });
    }
  }
  for (const key of OVERRIDABLE) {
    const v = flags[key.flag];
    if (v === undefined || v === false) continue;
    const origin: Origin = { kind: 'flag', name: key.flag };
    out.push({ path: key.path, value: convert(key, v, origin), origin });
  }
  return out;
}

interface ParsedYaml {
  data: Raw;
  lineOf(path: Path, key?: string): number | undefined;
}

/** A YAML document with line numbers; a syntax error is a ConfigError naming the file, line and column. */
export function parseYamlDocument(text: string, file: string): { doc: ReturnType<typeof parseDocument>; lineCounter: LineCounter } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const pos = lineCounter.linePos(e.pos[0]);
    throw new ConfigError(`${file}: line ${pos.line}, column ${pos.col}: YAML syntax error: ${e.message.split('\n')[0]}`);
  }
  return { doc, lineCounter };
}

function parseYaml(text: string, file: string): ParsedYaml {
  const { doc, lineCounter } = parseYamlDocument(text, file);
  const data = (doc.toJS() ?? {}) as unknown;
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ConfigError(`${file}: the config must be a YAML mapping of keys (see config/default.yaml)`);
  }
  const lineOf = (path: Path, key?: string): number | undefined => {
    let node: unknown = path.length === 0 ? doc.contents : doc.getIn(path, true);
    if (key !== undefined && isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === key);
      node = pair && isPair(pair) ? pair.key : node;
    }
    const range = (node as YamlNode | undefined)?.range;
    return range ? lineCounter.linePos(range[0]).line : undefined;
  };
  return { data: data as Raw, lineOf };
}

function setIn(obj: Raw, path: Path, value: unknown): void {
  let cur: Raw = obj;
  for (const k of path.slice(0, -1)) {
    const next = cur[k as string];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) cur[k as string] = {};
    cur = cur[k as string] as Raw;
  }
  cur[path[path.length - 1] as string] = value;
}

const pathKey = (p: Path): string => p.join('.');

function describeIssue(issue: z.core.$ZodIssue, file: string | undefined, yaml: ParsedYaml | undefined, overrides: Override[]): string {
  const path = issue.path as Path;
  const over = [...overrides].reverse().find((o) => pathKey(path).startsWith(pathKey(o.path)));
  if (over) {
    const where = over.origin.kind === 'flag' ? `--${over.origin.name}` : `environment variable ${over.origin.name}`;
    return `${where} (${pathKey(path)}): ${issue.message}`;
  }
  if (issue.code === 'unrecognized_keys') {
    return issue.keys
      .map((k) => {
        const line = yaml?.lineOf(path, k);
        const full = pathKey([...path, k]);
        return `${file ?? 'config'}${line ? `: line ${line}` : ''}: unknown key "${full}" (check the spelling against config/default.yaml)`;
      })
      .join('\n');
  }
  const line = yaml?.lineOf(path);
  return `${file ?? 'config'}${line ? `: line ${line}` : ''}: ${pathKey(path) || '(top level)'}: ${issue.message}`;
}

export interface LoadOptions {
  /** Path of the YAML file; when absent, RTPIPELINE_CONFIGFILE, else the built-in defaults alone. */
  file?: string;
  flags?: Record<string, string | string[] | boolean | undefined>;
  env?: NodeJS.ProcessEnv;
}

/** Loads the config with the contract's precedence: flag > environment > file > built-in default. */
export function loadConfig(opts: LoadOptions = {}): { config: Config; file: string | undefined } {
  const env = opts.env ?? process.env;
  const file = opts.file ?? (env.RTPIPELINE_CONFIGFILE || undefined);
  let yaml: ParsedYaml | undefined;
  let raw: Raw = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError(`cannot read config file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    yaml = parseYaml(text, file);
    raw = yaml.data;
  }
  const overrides = collectOverrides(opts.flags ?? {}, env);
  for (const o of overrides) setIn(raw, o.path, o.value);
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const lines = result.error.issues.map((i) => describeIssue(i, file, yaml, overrides));
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const config = result.data;
  const tls = config.node.tls;
  for (const key of ['key', 'cert', 'ca'] as const) {
    const f = tls?.[key];
    if (f && !existsSync(f)) {
      const line = yaml?.lineOf(['node', 'tls', key]);
      throw new ConfigError(`${file ?? 'config'}${line ? `: line ${line}` : ''}: node.tls.${key}: file ${f} does not exist`);
    }
  }
  return { config, file };
}
