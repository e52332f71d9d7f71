import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';

/**
 * How many CPUs this process may really use. Inside a container, os.cpus() reports the host's
 * CPUs; the limits that matter are the scheduler affinity mask (taskset, docker --cpuset-cpus)
 * and the CFS bandwidth quota (docker --cpus, Kubernetes limits) of cgroup v2 or v1. Every limit
 * found is a candidate; the smallest wins. A file that is missing sets no limit; a file that is
 * present but malformed is ignored with the reason recorded, never a crash: a wrong guess of
 * "no limit" only costs speed, a crash costs the whole node.
 */

export type CpuSource = 'affinity' | 'cgroup-v2' | 'cgroup-v1' | 'os';

export interface CpuCandidate {
  source: CpuSource;
  /** CPUs this source allows; null when it sets no limit or could not be read (see detail). */
  count: number | null;
  detail: string;
  /** Set when the source's file was present but malformed, so it was ignored. */
  ignored?: string;
}

export interface UsableCpus {
  count: number;
  source: CpuSource;
  detail: string;
  candidates: CpuCandidate[];
}

export interface UsableCpusOptions {
  /** Root of the filesystem to read /proc and /sys from (tests point it at a fixture tree). */
  root?: string;
  /** Stand-in for os.availableParallelism() (tests, so fixtures do not depend on this machine). */
  osCount?: number;
}

/** Tie-break between equal limits: the order the contract lists them in. */
const SOURCE_ORDER: CpuSource[] = ['affinity', 'cgroup-v2', 'cgroup-v1', 'os'];

// ---- pure parsers (text in, numbers out) ----------------------------------------------------

/** Number of distinct CPUs in a kernel cpu list such as "0-3,8,10-11"; throws on bad syntax. */
export function parseCpuList(text: string): number {
  const trimmed = text.trim();
  if (trimmed === '') throw new Error('empty CPU list');
  const ranges: [number, number][] = trimmed.split(',').map((part) => {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new Error(`"${part}" is not a CPU number or range`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new Error(`range "${part}" runs backwards`);
    return [lo, hi];
  });
  // Merge overlaps so "0-3,2-5" counts 6, not 8.
  ranges.sort((a, b) => a[0] - b[0]);
  let count = 0;
  let end = -1;
  for (const [lo, hi] of ranges) {
    if (hi <= end) continue;
    count += hi - Math.max(lo, end + 1) + 1;
    end = hi;
  }
  return count;
}

/**
 * CPUs granted by a CFS quota. Floor, not ceil: with 1.5 CPUs, two busy workers would each be
 * throttled to 0.75 CPU in bursts (CFS throttling stalls the whole cgroup at the end of each
 * period), which is slower and jerkier than one worker running flat out. At least 1, since no
 * worker at all makes no progress.
 */
export function cpusFromQuota(quotaUs: number, periodUs: number): number {
  return Math.max(1, Math.floor(quotaUs / periodUs));
}

/** cgroup v2 cpu.max: "max 100000" → null (no limit), "150000 100000" → 1; throws when malformed. */
export function parseCpuMax(text: string): number | null {
  const fields = text.trim().split(/\s+/);
  if (fields.length > 2 || fields[0] === '') throw new Error(`expected "<quota|max> [period]", got "${text.trim()}"`);
  const period = fields.length === 2 ? positiveInteger(fields[1], 'period') : 100_000;
  if (fields[0] === 'max') return null;
  return cpusFromQuota(positiveInteger(fields[0], 'quota'), period);
}

/** cgroup v1 cpu.cfs_quota_us / cpu.cfs_period_us: quota -1 → null (no limit); throws when malformed. */
export function parseCfsQuota(quotaText: string, periodText: string): number | null {
  const quota = quotaText.trim();
  if (quota === '-1') return null;
  return cpusFromQuota(positiveInteger(quota, 'cfs_quota_us'), positiveInteger(periodText.trim(), 'cfs_period_us'));
}

function positiveInteger(text: string, what: string): number {
  if (!/^\d+$/.test(text) || Number(text) <= 0) throw new Error(`${what} "${text}" is not a positive integer`);
  return Number(text);
}

export interface ProcCgroupLine {
  hierarchy: string;
  controllers: string[];
  path: string;
}

/** /proc/self/cgroup lines "hierarchy-id:controller,list:/path" (v2: "0::/path"). */
export function parseProcCgroup(text: string): ProcCgroupLine[] {
  const out: ProcCgroupLine[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (m) out.push({ hierarchy: m[1], controllers: m[2] === '' ? [] : m[2].split(','), path: m[3] });
  }
  return out;
}

export interface CgroupMount {
  /** Root of the mounted hierarchy as seen from the cgroup tree (field 4 of mountinfo). */
  root: string;
  mountPoint: string;
  fsType: 'cgroup' | 'cgroup2';
  /** Super options: for v1 they name the controllers ("rw,cpu,cpuacct"). */
  superOptions: string[];
}

/** The cgroup and cgroup2 mounts of /proc/self/mountinfo. */
export function parseMountInfo(text: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (right === undefined) continue;
    const l = left.split(' ');
    const r = right.split(' ');
    if ((r[0] !== 'cgroup' && r[0] !== 'cgroup2') || l.length < 5) continue;
    out.push({ root: unescapeMount(l[3]), mountPoint: unescapeMount(l[4]), fsType: r[0], superOptions: (r[2] ?? '').split(',') });
  }
  return out;
}

/** mountinfo escapes space, tab, newline and backslash as octal (\040). */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * Directory of this process's cgroup under a mount. Without a cgroup namespace, both /proc/self/cgroup
 * and the mount root carry the full path (/docker/<id>), so the mount root is stripped; a path
 * outside the mounted subtree cannot be reached, and the mount point itself is the best guess.
 */
export function cgroupDir(mount: Pick<CgroupMount, 'root' | 'mountPoint'>, cgroupPath: string): string {
  const root = mount.root === '/' ? '' : mount.root.replace(/\/+$/, '');
  let rel = cgroupPath;
  if (root !== '') rel = cgroupPath === root || cgroupPath.startsWith(root + '/') ? cgroupPath.slice(root.length) : '';
  const mountPoint = mount.mountPoint.replace(/(.)\/+$/, '$1');
  return rel === '' || rel === '/' ? mountPoint : path.posix.join(mountPoint, rel).replace(/(.)\/+$/, '$1');
}

/** The directory and its ancestors up to (and including) the mount point, innermost first. */
function selfAndAncestors(dir: string, mountPoint: string): string[] {
  const out = [dir];
  let cur = dir;
  while (cur !== mountPoint && cur.startsWith(mountPoint + '/')) {
    cur = path.posix.dirname(cur);
    out.push(cur);
  }
  return out;
}

// ---- readers of one source each (fixture root injected) -------------------------------------

type Read = (p: string) => string | undefined;

function makeReader(root: string): Read {
  return (p) => {
    try {
      return readFileSync(path.join(root, p), 'utf8');
    } catch {
      return undefined;
    }
  };
}

function affinityCandidate(read: Read): CpuCandidate {
  const status = read('/proc/self/status');
  if (status === undefined) return { source: 'affinity', count: null, detail: '/proc/self/status not readable' };
  const line = status.split('\n').find((l) => l.startsWith('Cpus_allowed_list:'));
  if (!line) return { source: 'affinity', count: null, detail: 'no Cpus_allowed_list in /proc/self/status' };
  const list = line.slice('Cpus_allowed_list:'.length).trim();
  try {
    return { source: 'affinity', count: parseCpuList(list), detail: `Cpus_allowed_list ${list}` };
  } catch (e) {
    return ignored('affinity', '/proc/self/status Cpus_allowed_list', e);
  }
}

function ignored(source: CpuSource, where: string, e: unknown): CpuCandidate {
  const reason = `${where}: ${(e as Error).message}`;
  return { source, count: null, detail: `ignored (${reason})`, ignored: reason };
}

/** Walks the cgroup and its ancestors; the smallest limit wins (a parent's quota caps its children). */
function smallestLimit(
  source: 'cgroup-v2' | 'cgroup-v1',
  dirs: string[],
  file: string,
  limitAt: (dir: string) => { count: number | null; detail: string } | undefined,
): CpuCandidate {
  let best: CpuCandidate | undefined;
  const problems: string[] = [];
  for (const dir of dirs) {
    let found;
    try {
      found = limitAt(dir);
    } catch (e) {
      problems.push(`${dir}/${file}: ${(e as Error).message}`);
      continue;
    }
    if (found?.count != null && (best?.count == null || found.count < best.count)) best = { source, count: found.count, detail: found.detail };
  }
  const none = `no ${file} limit in ${dirs[0]} or its parents`;
  const result: CpuCandidate = best ?? { source, count: null, detail: none };
  if (problems.length > 0) {
    result.ignored = problems.join('; ');
    result.detail += `; ignored malformed: ${result.ignored}`;
  }
  return result;
}

function cgroupV2Candidate(read: Read, lines: ProcCgroupLine[], mounts: CgroupMount[]): CpuCandidate {
  const own = lines.find((l) => l.hierarchy === '0' && l.controllers.length === 0);
  if (!own) return { source: 'cgroup-v2', count: null, detail: 'no cgroup v2 entry (0::) in /proc/self/cgroup' };
  const mount = mounts.find((m) => m.fsType === 'cgroup2') ?? { root: '/', mountPoint: '/sys/fs/cgroup' };
  const dirs = selfAndAncestors(cgroupDir(mount, own.path), mount.mountPoint);
  return smallestLimit('cgroup-v2', dirs, 'cpu.max', (dir) => {
    const text = read(path.posix.join(dir, 'cpu.max'));
    if (text === undefined) return undefined;
    const count = parseCpuMax(text);
    return { count, detail: `${dir}/cpu.max "${text.trim()}"` };
  });
}

function cgroupV1Candidate(read: Read, lines: ProcCgroupLine[], mounts: CgroupMount[]): CpuCandidate {
  const own = lines.find((l) => l.controllers.includes('cpu'));
  if (!own) return { source: 'cgroup-v1', count: null, detail: 'no cgroup v1 cpu controller in /proc/self/cgroup' };
  const mount = mounts.find((m) => m.fsType === 'cgroup' && m.superOptions.includes('cpu')) ?? { root: '/', mountPoint: '/sys/fs/cgroup/cpu' };
  const dirs = selfAndAncestors(cgroupDir(mount, own.path), mount.mountPoint);
  return smallestLimit('cgroup-v1', dirs, 'cpu.cfs_quota_us', (dir) => {
    const quota = read(path.posix.join(dir, 'cpu.cfs_quota_us'));
    if (quota === undefined) return undefined;
    const period = read(path.posix.join(dir, 'cpu.cfs_period_us'));
    if (period === undefined) throw new Error('present, but cpu.cfs_period_us is missing');
    const count = parseCfsQuota(quota, period);
    return { count, detail: `${dir}/cpu.cfs_quota_us ${quota.trim()} / cpu.cfs_period_us ${period.trim()}` };
  });
}

/** Picks the smallest candidate limit; equal limits go to the earlier source in SOURCE_ORDER. */
export function pickUsable(candidates: CpuCandidate[]): UsableCpus {
  const limited = candidates
    .filter((c): c is CpuCandidate & { count: number } => c.count !== null && c.count >= 1)
    .sort((a, b) => a.count - b.count || SOURCE_ORDER.indexOf(a.source) - SOURCE_ORDER.indexOf(b.source));
  const best = limited[0] ?? { source: 'os' as const, count: 1, detail: 'no source reported a CPU count: assuming 1' };
  return { count: best.count, source: best.source, detail: best.detail, candidates };
}

/** Usable CPUs of this process (see the module comment). Synchronous: it reads a few tiny kernel files. */
export function usableCpusSync(opts: UsableCpusOptions = {}): UsableCpus {
  const read = makeReader(opts.root ?? '/');
  const lines = parseProcCgroup(read('/proc/self/cgroup') ?? '');
  const mounts = parseMountInfo(read('/proc/self/mountinfo') ?? '');
  const osCount = opts.osCount ?? availableParallelism();
  return pickUsable([
    affinityCandidate(read),
    cgroupV2Candidate(read, lines, mounts),
    cgroupV1Candidate(read, lines, mounts),
    { source: 'os', count: osCount, detail: `os.availableParallelism() = ${osCount}` },
  ]);
}

export async function usableCpus(opts: UsableCpusOptions = {}): Promise<UsableCpus> {
  return usableCpusSync(opts);
}
