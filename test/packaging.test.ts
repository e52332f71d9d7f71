// Packaging and operations (issue 9): what can be checked without a Docker engine or Apptainer.
// The unit goes through systemd-analyze, the Dockerfile through a lint that resolves its COPY
// sources and runs its HEALTHCHECK against a real node, the YAML files through structural checks
// tied to the schema's defaults, the shell scripts through `bash -n`, and the README's config
// reference through the generator.
import { describe, it, expect, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { configSchema } from '../src/config/schema.js';
import { loadConfig } from '../src/config/load.js';
import { parseDestination } from '../src/config/destination.js';
import { describeConfig, renderConfigReference, findReference, spliceReference, REFERENCE_START, REFERENCE_END } from '../src/config/reference.js';
import { startNode, CLI, type NodeHandle } from './helpers/node.js';
import { freePort } from './helpers/ports.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const repo = (...p: string[]) => path.join(ROOT, ...p);
const read = (...p: string[]) => readFileSync(repo(...p), 'utf8');
const DEFAULTS = configSchema.parse({});
/** The TLS listener's default port (node.tls is null by default, so it comes from a minimal TLS section). */
const TLS_PORT = configSchema.parse({ node: { tls: { key: 'k', cert: 'c' } } }).node.tls!.port;
/** What the node may take to stop: the grace period, then the CLI's 15 s backstop (src/cli.ts). */
const MAX_STOP_SECONDS = DEFAULTS.node.shutdown_grace_seconds + 15;
const tmp: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(path.join(tmpdir(), 'rtp-pack-'));
  tmp.push(d);
  return d;
};
afterAll(() => {
  for (const d of tmp) rmSync(d, { recursive: true, force: true });
});

/** Validates a config text the way `serve` would load it (file only, no environment). */
function validateConfigText(text: string): ReturnType<typeof loadConfig>['config'] {
  const file = path.join(tempDir(), 'config.yaml');
  writeFileSync(file, text);
  return loadConfig({ file, env: {} }).config;
}

function secondsOf(v: string | number): number {
  if (typeof v === 'number') return v;
  const m = /^(\d+)\s*(s|min|m)?$/.exec(v.trim());
  if (!m) throw new Error(`cannot read a duration from "${v}"`);
  return Number(m[1]) * (m[2] === 'min' || m[2] === 'm' ? 60 : 1);
}

// ---------------------------------------------------------------------------------------------
describe('systemd unit', () => {
  const unitText = read('systemd', 'rtpipeline.service');
  /** Service-section settings; repeated keys keep every value. */
  const service = new Map<string, string[]>();
  let section = '';
  for (const line of unitText.split('\n')) {
    const t = line.trim();
    if (t.startsWith('[')) section = t;
    else if (section === '[Service]' && t && !t.startsWith('#')) {
      const i = t.indexOf('=');
      service.set(t.slice(0, i), [...(service.get(t.slice(0, i)) ?? []), t.slice(i + 1)]);
    }
  }
  const one = (k: string) => service.get(k)?.at(-1);

  /** The shipped unit names /usr/bin/node; on a machine with node elsewhere, the installer's rewrite. */
  function verifiable(text: string): string {
    const file = path.join(tempDir(), 'rtpipeline.service');
    writeFileSync(file, existsSync('/usr/bin/node') ? text : text.replace('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `));
    return file;
  }
  const verify = (file: string) => spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });

  it('passes systemd-analyze verify without a single warning', () => {
    const r = verify(verifiable(unitText));
    expect(r.error).toBeUndefined();
    expect(r.stderr.trim()).toBe('');
    expect(r.status).toBe(0);
  });

  it('the verification catches what it must (a missing executable, an unknown key)', () => {
    const missing = verify(verifiable(unitText.replace(/^ExecStart=\S+/m, 'ExecStart=/nonexistent/node')));
    expect(missing.status).not.toBe(0);
    const typo = verify(verifiable(unitText.replace('KillMode=mixed', 'KillMode=mixed\nKilMode=mixed')));
    expect(typo.stderr).toMatch(/Unknown key/);
  });

  it('stops the way the node stops, restarts on failure, runs as its own user, hardened', () => {
    expect(one('Type')).toBe('exec');
    expect(one('Restart')).toBe('on-failure');
    expect(one('KillMode')).toBe('mixed');
    expect(secondsOf(one('TimeoutStopSec')!)).toBeGreaterThan(MAX_STOP_SECONDS);
    expect(one('User')).toBe('rtpipeline');
    expect(one('ExecStart')).toMatch(/^\/usr\/bin\/node \/opt\/rtpipeline\/dist\/src\/cli\.js serve$/);
    expect(existsSync(repo('dist', 'src', 'cli.js'))).toBe(true);
    for (const [k, v] of [['ProtectSystem', 'strict'], ['ProtectHome', 'true'], ['PrivateTmp', 'true'], ['NoNewPrivileges', 'true']]) expect(one(k), k).toBe(v);
    // The data dir must stay writable under ProtectSystem=strict.
    expect(one('ReadWritePaths')!.split(/\s+/)).toContain('/var/lib/rtpipeline');
    expect(one('MemoryDenyWriteExecute')).toBeUndefined(); // V8's JIT
  });

  it('the env example sets only variables the node or its tools read, with the contract timeouts', () => {
    const lines = read('systemd', 'rtpipeline.env.example').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    const env = Object.fromEntries(lines.map((l) => {
      expect(l).toMatch(/^[A-Z_][A-Z0-9_]*=\S*$/);
      return l.split('=') as [string, string];
    }));
    expect(env).toMatchObject({ TOTALSEG_TIMEOUT: '3600', DCM2NIIX_TIMEOUT: '300', RTPIPELINE_RADIOMICS_TASK_TIMEOUT: '600' });
  });

  it('install-service stages a working install: pruned modules, valid config, verified unit', () => {
    const root = tempDir();
    const r = spawnSync('bash', [repo('scripts', 'install-service.sh'), '--root', root, '--prefix', '/opt/rtp-test'], { encoding: 'utf8' });
    expect(r.status, r.stderr + r.stdout).toBe(0);
    const prefix = path.join(root, 'opt', 'rtp-test');
    expect(existsSync(path.join(prefix, 'dist', 'jobs'))).toBe(true);
    expect(existsSync(path.join(prefix, 'node_modules', 'better-sqlite3'))).toBe(true);
    expect(existsSync(path.join(prefix, 'node_modules', 'vitest'))).toBe(false);
    const unit = readFileSync(path.join(root, 'etc', 'systemd', 'system', 'rtpipeline.service'), 'utf8');
    expect(unit).toContain(`ExecStart=${spawnSync('bash', ['-c', 'command -v node'], { encoding: 'utf8' }).stdout.trim()} /opt/rtp-test/dist/src/cli.js serve`);
    const cfg = validateConfigText(readFileSync(path.join(root, 'etc', 'rtpipeline', 'config.yaml'), 'utf8'));
    expect(cfg.node.data_dir).toBe('/var/lib/rtpipeline');
    // The installed CLI runs from its new place.
    const v = spawnSync(process.execPath, [path.join(prefix, 'dist', 'src', 'cli.js'), 'validate', '--config', path.join(root, 'etc', 'rtpipeline', 'config.yaml')], { encoding: 'utf8' });
    expect(v.status, v.stderr).toBe(0);
    // A second run keeps the admin's config.
    writeFileSync(path.join(root, 'etc', 'rtpipeline', 'config.yaml'), 'node: {aet: KEPT}\n');
    expect(spawnSync('bash', [repo('scripts', 'install-service.sh'), '--root', root, '--prefix', '/opt/rtp-test'], { encoding: 'utf8' }).status).toBe(0);
    expect(readFileSync(path.join(root, 'etc', 'rtpipeline', 'config.yaml'), 'utf8')).toContain('KEPT');
  }, 60_000);
});

// ---------------------------------------------------------------------------------------------
interface Instruction {
  op: string;
  args: string;
  stage: string;
}

/** Dockerfile instructions with continuation lines joined, each tagged with its stage name. */
function parseDockerfile(text: string): { instructions: Instruction[]; stages: string[] } {
  const logical: string[] = [];
  let cur = '';
  for (const raw of text.split('\n')) {
    if (!cur && (raw.trim().startsWith('#') || !raw.trim())) continue;
    if (raw.trim().startsWith('#')) continue; // comment lines inside a continuation
    cur += (cur ? ' ' : '') + raw.trim();
    if (cur.endsWith('\\')) cur = cur.slice(0, -1).trim();
    else {
      logical.push(cur);
      cur = '';
    }
  }
  const instructions: Instruction[] = [];
  const stages: string[] = [];
  let stage = '';
  for (const l of logical) {
    const m = /^(\w+)\s+(.*)$/.exec(l)!;
    const op = m[1].toUpperCase();
    if (op === 'FROM') {
      stage = /\bAS\s+(\S+)/i.exec(m[2])?.[1] ?? `stage${stages.length}`;
      stages.push(stage);
    }
    instructions.push({ op, args: m[2], stage });
  }
  return { instructions, stages };
}

/** A minimal .dockerignore matcher: the patterns used here are plain names and `*.ext`. */
function ignoredByDockerignore(rel: string, patterns: string[]): boolean {
  return patterns.some((p) => {
    const re = new RegExp('^' + p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*') + '(/.*)?$');
    return re.test(rel);
  });
}

describe('Dockerfile', () => {
  const { instructions, stages } = parseDockerfile(read('Dockerfile'));
  const final = stages.at(-1)!;
  const inFinal = (op: string) => instructions.filter((i) => i.stage === final && i.op === op);
  const ignore = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));

  it('is multi-stage: a build stage with dev dependencies, a runtime with production ones', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const build = instructions.filter((i) => i.stage === stages[0] && i.op === 'RUN').map((i) => i.args).join('\n');
    expect(build).toMatch(/npm ci/);
    expect(build).toMatch(/npm run build/);
    expect(build).toMatch(/npm prune --omit=dev/);
    expect(instructions.some((i) => i.stage === final && i.op === 'RUN' && /npm (ci|install)/.test(i.args))).toBe(false);
  });

  it('every COPY source exists in the build context (and is not excluded), every --from stage exists', () => {
    const copies = instructions.filter((i) => i.op === 'COPY');
    expect(copies.length).toBeGreaterThan(3);
    for (const c of copies) {
      const parts = c.args.split(/\s+/);
      const from = parts.find((p) => p.startsWith('--from='))?.slice('--from='.length);
      const paths = parts.filter((p) => !p.startsWith('--'));
      const sources = paths.slice(0, -1);
      if (from) {
        expect(stages.slice(0, stages.indexOf(c.stage)), `COPY --from=${from}`).toContain(from);
        continue;
      }
      for (const s of sources) {
        expect(existsSync(repo(s)), `COPY source ${s}`).toBe(true);
        expect(ignoredByDockerignore(s.replace(/^\.\//, '').replace(/\/$/, ''), ignore), `${s} is excluded by .dockerignore`).toBe(false);
      }
    }
    // What the runtime stage takes from the build stage is what the build produces.
    const fromBuild = copies.filter((c) => c.args.includes('--from=')).map((c) => c.args.split(/\s+/).filter((p) => !p.startsWith('--'))[0]);
    for (const p of fromBuild.filter((x) => x.startsWith('/app/dist/'))) expect(existsSync(repo(p.slice('/app/'.length))), p).toBe(true);
  });

  it('tini is PID 1, the default command is `rtpipeline serve`, run by a non-root user', () => {
    expect(JSON.parse(inFinal('ENTRYPOINT').at(-1)!.args)).toEqual(['/usr/bin/tini', '--']);
    expect(JSON.parse(inFinal('CMD').at(-1)!.args)).toEqual(['rtpipeline', 'serve']);
    const runs = inFinal('RUN').map((i) => i.args).join('\n');
    expect(runs).toMatch(/apt-get install[^\n]*\btini\b/);
    expect(runs).toMatch(/apt-get install[^\n]*\bdcm2niix\b/);
    expect(runs).toMatch(/ln -s \S*dist\/src\/cli\.js \/usr\/local\/bin\/rtpipeline/);
    const user = inFinal('USER').at(-1)!.args.trim();
    expect(['root', '0']).not.toContain(user.split(':')[0]);
    expect(runs).toMatch(new RegExp(`useradd [^\\n]*\\b${user}\\b`));
  });

  it('exposes the default ports, declares the volumes, sets the contract timeouts', () => {
    const exposed = inFinal('EXPOSE').flatMap((i) => i.args.split(/\s+/)).map(Number);
    expect(exposed.sort()).toEqual([DEFAULTS.node.dicom_port, TLS_PORT, DEFAULTS.node.http_port].sort());
    expect(JSON.parse(inFinal('VOLUME').at(-1)!.args)).toEqual(['/data/input', '/data/output', '/data/logs', '/data/node']);
    const env = Object.fromEntries(inFinal('ENV').flatMap((i) => [...i.args.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1], m[2]])));
    expect(env).toMatchObject({ TOTALSEG_TIMEOUT: '3600', DCM2NIIX_TIMEOUT: '300', RTPIPELINE_RADIOMICS_TASK_TIMEOUT: '600' });
    // The config the image points at is one it copies in, and it uses the volumes.
    expect(env.RTPIPELINE_CONFIGFILE).toBe('/app/config/config.container.yaml');
    expect(inFinal('COPY').some((c) => /^config\s+\.\/config$/.test(c.args))).toBe(true);
    expect(inFinal('WORKDIR').at(-1)!.args).toBe('/app');
  });

  describe('HEALTHCHECK against a real node', () => {
    let node: NodeHandle | undefined;
    afterAll(async () => {
      await node?.stop();
    });
    const healthCmd = () => {
      const hc = inFinal('HEALTHCHECK').at(-1)!.args;
      const m = /\bCMD\s+(.*)$/.exec(hc);
      expect(m, 'HEALTHCHECK ... CMD <shell command>').not.toBeNull();
      return m![1];
    };
    const run = (cmd: string, port: number) => spawnSync('sh', ['-c', cmd], { env: { ...process.env, RTPIPELINE_HTTP_PORT: String(port) }, encoding: 'utf8', timeout: 15_000 });

    it('passes on a healthy node, fails where nothing listens; compose runs the same command', async () => {
      const cmd = healthCmd();
      expect(cmd).toMatch(/^node -e /); // no curl in the slim image
      expect(cmd).toContain('/health');
      expect(cmd).toContain(`|| ${DEFAULTS.node.http_port})`);
      node = await startNode();
      expect(run(cmd, node.httpPort).status).toBe(0);
      expect(run(cmd, await freePort()).status).toBe(1);
      const compose = parseYaml(read('docker-compose.yml'), { merge: true }) as { services: Record<string, { healthcheck?: { test: string[] } }> };
      const test = compose.services['rtpipeline-cpu'].healthcheck!.test;
      expect(test[0]).toBe('CMD-SHELL');
      expect(test[1]).toBe(cmd);
    }, 60_000);
  });
});

// ---------------------------------------------------------------------------------------------
describe('container config', () => {
  it('config/config.container.yaml validates with the CLI and uses the image volumes', () => {
    const r = spawnSync(process.execPath, [CLI, 'validate', '--config', repo('config', 'config.container.yaml')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/valid/);
    const cfg = validateConfigText(read('config', 'config.container.yaml'));
    expect(cfg.node.data_dir).toBe('/data/node');
    expect([cfg.dicom_root, cfg.output_dir, cfg.logs_dir]).toEqual(['/data/input', '/data/output', '/data/logs']);
    expect(cfg.node.bind_address).toBe('0.0.0.0');
  });

  it('the CLI refuses a broken copy of it (the check can fail)', () => {
    const file = path.join(tempDir(), 'bad.yaml');
    writeFileSync(file, read('config', 'config.container.yaml').replace('dicom_port: 11112', 'dicom_prot: 11112'));
    const r = spawnSync(process.execPath, [CLI, 'validate', '--config', file], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/dicom_prot/);
  });
});

// ---------------------------------------------------------------------------------------------
interface ComposeService {
  profiles?: string[];
  image?: string;
  build?: { context: string; args?: Record<string, string> };
  ports?: string[];
  restart?: string;
  shm_size?: string;
  stop_grace_period?: string;
  environment?: Record<string, string>;
  volumes?: string[];
  configs?: { source: string; target: string }[];
  healthcheck?: { test: string[] };
  deploy?: { resources?: { limits?: Record<string, string>; reservations?: { devices?: { driver: string; capabilities: string[] }[] } } };
}

describe('docker-compose.yml', () => {
  const compose = parseYaml(read('docker-compose.yml'), { merge: true }) as {
    services: Record<string, ComposeService>;
    volumes: Record<string, unknown>;
    configs: Record<string, { content: string }>;
  };
  const nodes = Object.entries(compose.services).filter(([, s]) => s.build);

  it('has the gpu, cpu-only and demo profiles, each with one node', () => {
    for (const profile of ['gpu', 'cpu-only', 'demo']) {
      expect(nodes.filter(([, s]) => s.profiles?.includes(profile)).length, profile).toBe(1);
    }
    expect(compose.services.orthanc.profiles).toEqual(['demo']);
  });

  it('every node: both ports, restart policy, shm, health check, a stop grace above the node\'s', () => {
    for (const [name, s] of nodes) {
      expect(existsSync(repo(s.build!.context, 'Dockerfile')), name).toBe(true);
      expect(s.ports, name).toEqual([`${DEFAULTS.node.dicom_port}:${DEFAULTS.node.dicom_port}`, `${TLS_PORT}:${TLS_PORT}`, `${DEFAULTS.node.http_port}:${DEFAULTS.node.http_port}`]);
      expect(s.restart, name).toBe('unless-stopped');
      expect(s.shm_size, name).toMatch(/^\d+[gm]b$/);
      expect(s.healthcheck!.test.join(' '), name).toContain('/health');
      expect(secondsOf(s.stop_grace_period!), name).toBeGreaterThan(MAX_STOP_SECONDS);
      expect(s.environment, name).toMatchObject({ TOTALSEG_TIMEOUT: '3600', DCM2NIIX_TIMEOUT: '300', RTPIPELINE_RADIOMICS_TASK_TIMEOUT: '600' });
      expect(s.volumes, name).toContain('totalseg-weights:/home/rtpipeline/.totalsegmentator');
      for (const v of s.volumes!) {
        const src = v.split(':')[0];
        if (!src.startsWith('.')) expect(Object.keys(compose.volumes), `named volume ${src}`).toContain(src);
      }
    }
  });

  it('the gpu node reserves NVIDIA GPUs, builds TotalSegmentator in, and its inline config validates', () => {
    const gpu = nodes.find(([, s]) => s.profiles?.includes('gpu'))![1];
    expect(gpu.deploy!.resources!.reservations!.devices![0]).toMatchObject({ driver: 'nvidia', capabilities: ['gpu'] });
    expect(gpu.build!.args).toMatchObject({ WITH_TOTALSEGMENTATOR: '1' });
    expect(read('Dockerfile')).toMatch(/ARG WITH_TOTALSEGMENTATOR=0/);
    const cfgRef = gpu.configs![0];
    expect(gpu.environment!.RTPIPELINE_CONFIGFILE).toBe(cfgRef.target);
    const cfg = validateConfigText(compose.configs[cfgRef.source].content);
    expect(cfg.segmentation).toMatchObject({ engine: 'totalsegmentator', device: 'gpu' });
    const cpu = nodes.find(([, s]) => s.profiles?.includes('cpu-only'))![1];
    expect(cpu.deploy?.resources?.reservations).toBeUndefined();
  });

  it('demo: the node sends to Orthanc and Orthanc knows the node, with matching names and ports', () => {
    const demo = nodes.find(([, s]) => s.profiles?.includes('demo'))![1];
    const orthanc = compose.services.orthanc;
    const dest = parseDestination(demo.environment!.RTPIPELINE_DESTINATION);
    expect(dest.host).toBe('orthanc');
    expect(dest.aet).toBe(orthanc.environment!.ORTHANC__DICOM_AET);
    expect(orthanc.ports!.map((p) => Number(p.split(':')[1]))).toContain(dest.port);
    expect(demo.environment!.RTPIPELINE_ALLOW_CALLER).toBe(orthanc.environment!.ORTHANC__DICOM_AET);
    const modalities = JSON.parse(orthanc.environment!.ORTHANC__DICOM_MODALITIES) as Record<string, [string, string, number]>;
    const [aet, host, port] = Object.values(modalities)[0];
    expect(aet).toBe(demo.environment!.RTPIPELINE_AET);
    expect(port).toBe(DEFAULTS.node.dicom_port);
    expect(read('docker-compose.yml')).toMatch(new RegExp(`aliases: \\[${host}\\]`));
  });
});

// ---------------------------------------------------------------------------------------------
type K8s = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; spec?: any; data?: Record<string, string> };

describe('Kubernetes manifests', () => {
  const dir = repo('deploy', 'kubernetes');
  const docs: K8s[] = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) =>
      parseAllDocuments(readFileSync(path.join(dir, f), 'utf8')).map((d) => {
        expect(d.errors, f).toEqual([]);
        return d.toJS() as K8s;
      }),
    );
  const byKind = (kind: string) => docs.filter((d) => d.kind === kind);
  const deployment = byKind('Deployment')[0];
  const job = byKind('Job')[0];
  const podOf = (o: K8s) => o.spec.template.spec;

  it('has the objects, with the right apiVersions and names', () => {
    const kinds = docs.map((d) => d.kind).sort();
    expect(kinds).toEqual(['ConfigMap', 'Deployment', 'Job', 'PersistentVolumeClaim', 'PersistentVolumeClaim', 'PersistentVolumeClaim', 'Service', 'Service']);
    const api: Record<string, string> = { Deployment: 'apps/v1', Job: 'batch/v1', Service: 'v1', PersistentVolumeClaim: 'v1', ConfigMap: 'v1' };
    for (const d of docs) {
      expect(d.apiVersion, d.kind).toBe(api[d.kind]);
      expect(d.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    }
  });

  it('the Deployment: ports 11112/2762/8080, probes on /health, a single Recreate replica, a long enough grace', () => {
    expect(deployment.spec.replicas).toBe(1);
    expect(deployment.spec.strategy.type).toBe('Recreate');
    const pod = podOf(deployment);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(MAX_STOP_SECONDS);
    const c = pod.containers[0];
    const ports = Object.fromEntries(c.ports.map((p: { name: string; containerPort: number }) => [p.name, p.containerPort]));
    expect(ports).toEqual({ dicom: DEFAULTS.node.dicom_port, 'dicom-tls': TLS_PORT, http: DEFAULTS.node.http_port });
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      expect(c[probe].httpGet.path, probe).toBe('/health');
      expect(ports[c[probe].httpGet.port], probe).toBe(DEFAULTS.node.http_port);
    }
    expect(deployment.spec.selector.matchLabels).toEqual(deployment.spec.template.metadata.labels);
  });

  it('requests and limits: CPU limits set the workers, the Job has a GPU, both run as the image\'s user', () => {
    const cpus = (v: string) => (v.endsWith('m') ? Number(v.slice(0, -1)) / 1000 : Number(v));
    for (const o of [deployment, job]) {
      const r = podOf(o).containers[0].resources;
      expect(cpus(r.requests.cpu), o.kind).toBeGreaterThan(0);
      expect(cpus(r.limits.cpu), o.kind).toBeGreaterThanOrEqual(cpus(r.requests.cpu));
      expect(r.limits.memory, o.kind).toMatch(/^\d+Gi$/);
      // The node derives workers from the limit; a fixed worker count here would fight it.
      expect((podOf(o).containers[0].env ?? []).map((e: { name: string }) => e.name), o.kind).not.toContain('RTPIPELINE_MAX_WORKERS');
      const uid = Number(/--uid (\d+)/.exec(read('Dockerfile'))![1]);
      expect(podOf(o).securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: uid });
    }
    const jr = podOf(job).containers[0].resources;
    expect(jr.limits['nvidia.com/gpu']).toBe(1);
    expect(podOf(job).restartPolicy).toBe('Never');
    expect(podOf(job).containers[0].args.slice(0, 2)).toEqual(['rtpipeline', 'run']);
  });

  it('Services select the node pod and target its named ports; claims and config maps referenced exist', () => {
    const podLabels = deployment.spec.template.metadata.labels;
    const containerPorts = podOf(deployment).containers[0].ports.map((p: { name: string }) => p.name);
    const servicePorts = byKind('Service').flatMap((s) => {
      for (const [k, v] of Object.entries(s.spec.selector)) expect(podLabels[k], s.metadata.name).toBe(v);
      return s.spec.ports.map((p: { port: number; targetPort: string }) => {
        expect(containerPorts).toContain(p.targetPort);
        return p.port;
      });
    });
    expect(servicePorts.sort()).toEqual([DEFAULTS.node.dicom_port, TLS_PORT, DEFAULTS.node.http_port].sort());
    const claims = byKind('PersistentVolumeClaim').map((p) => p.metadata.name);
    const maps = byKind('ConfigMap').map((p) => p.metadata.name);
    for (const o of [deployment, job]) {
      for (const v of podOf(o).volumes) {
        if (v.persistentVolumeClaim) expect(claims).toContain(v.persistentVolumeClaim.claimName);
        if (v.configMap) expect(maps).toContain(v.configMap.name);
      }
    }
  });

  it('the ConfigMap holds a valid config whose data dir is the mounted volume', () => {
    const cm = byKind('ConfigMap')[0];
    const cfg = validateConfigText(cm.data!['config.yaml']);
    const c = podOf(deployment).containers[0];
    const mounts = c.volumeMounts.map((m: { mountPath: string }) => m.mountPath);
    expect(mounts).toContain(cfg.node.data_dir);
    const configFile = c.env.find((e: { name: string }) => e.name === 'RTPIPELINE_CONFIGFILE').value as string;
    expect(mounts).toContain(path.dirname(configFile));
    expect(path.basename(configFile)).toBe('config.yaml');
  });
});

// ---------------------------------------------------------------------------------------------
describe('shell scripts and the Apptainer definition', () => {
  const shellScripts = (d: string): string[] =>
    readdirSync(repo(d)).flatMap((f) => (statSync(repo(d, f)).isDirectory() ? shellScripts(path.join(d, f)) : f.endsWith('.sh') ? [path.join(d, f)] : []));
  const scripts = ['scripts', 'deploy'].flatMap(shellScripts);

  it('every shell script parses (bash -n) and is executable', () => {
    expect(scripts.length).toBeGreaterThanOrEqual(3);
    for (const s of scripts) {
      const r = spawnSync('bash', ['-n', repo(s)], { encoding: 'utf8' });
      expect(r.status, `${s}: ${r.stderr}`).toBe(0);
      expect(statSync(repo(s)).mode & 0o111, `${s} is not executable`).not.toBe(0);
    }
  });

  it('npm run install-service and docs:config exist', () => {
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    expect(pkg.scripts['install-service']).toContain('scripts/install-service.sh');
    expect(pkg.scripts['docs:config']).toContain('dist/src/config/reference-cli.js');
  });

  const def = read('rtpipeline.def');
  /** The body of every `%section` (with its header), stage by stage. */
  const sections = [...def.matchAll(/^%(\w+)([^\n]*)\n([\s\S]*?)(?=^%|^Bootstrap:|(?![\s\S]))/gm)].map((m) => ({ name: m[1], arg: m[2].trim(), body: m[3] }));

  it('rtpipeline.def: a build and a final stage, a runscript that serves, an app that runs a batch', () => {
    expect([...def.matchAll(/^Stage: (\w+)/gm)].map((m) => m[1])).toEqual(['build', 'final']);
    expect(def).toMatch(/^Bootstrap: docker$/m);
    const get = (name: string, arg = '') => sections.find((s) => s.name === name && s.arg === arg);
    expect(get('runscript')!.body).toMatch(/rtpipeline serve "\$@"/);
    expect(get('apprun', 'batch')!.body).toMatch(/rtpipeline run "\$@"/);
    expect(get('environment')!.body).toMatch(/TOTALSEG_TIMEOUT=\$\{TOTALSEG_TIMEOUT:-3600\}/);
    expect(def).toMatch(/--nv/);
    for (const s of sections.filter((x) => ['post', 'runscript', 'apprun', 'environment', 'test'].includes(x.name))) {
      const r = spawnSync('sh', ['-n'], { input: s.body, encoding: 'utf8' });
      expect(r.status, `%${s.name} ${s.arg}: ${r.stderr}`).toBe(0);
    }
  });

  it('rtpipeline.def: %files sources exist in the repository; files from the build stage are built there', () => {
    const files = sections.filter((s) => s.name === 'files');
    expect(files.length).toBe(3);
    for (const f of files) {
      for (const line of f.body.split('\n').map((l) => l.trim()).filter(Boolean)) {
        const src = line.split(/\s+/)[0];
        if (f.arg === 'from build') expect(src.startsWith('/app/'), src).toBe(true);
        else expect(existsSync(repo(src)), src).toBe(true);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('configuration reference', () => {
  /** Every leaf key of the parsed defaults (plus optional keys), as dotted paths. */
  function leafKeys(o: Record<string, unknown>, prefix = ''): string[] {
    return Object.entries(o).flatMap(([k, v]) => {
      const key = prefix ? `${prefix}.${k}` : k;
      return v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0 ? [key, ...leafKeys(v as Record<string, unknown>, key)] : [key];
    });
  }

  it('lists every key of the schema with its real default', () => {
    const rows = describeConfig();
    const byKey = new Map(rows.map((r) => [r.key, r]));
    for (const key of leafKeys(DEFAULTS as unknown as Record<string, unknown>)) expect(byKey.has(key), key).toBe(true);
    expect(byKey.get('node.dicom_port')!.default).toBe(`\`${DEFAULTS.node.dicom_port}\``);
    expect(byKey.get('node.aet')!.default).toBe(`\`${DEFAULTS.node.aet}\``);
    expect(byKey.get('segmentation.engine')!.type).toBe('`builtin` \\| `totalsegmentator` \\| `none`');
    expect(byKey.get('node.destinations[].port')).toMatchObject({ type: 'integer 1–65535', default: 'required' });
    expect(byKey.get('radiomics_robustness.segmentation_perturbation.small_volume_changes')!.default).toBe('`[-0.15, 0, 0.15]`');
    expect(byKey.get('max_workers')!.type).toBe('integer or null');
    // Every key the user can set has a description.
    for (const r of rows) expect(r.description, r.key).not.toBe('');
  });

  it('the README holds exactly what the generator renders now (run `npm run docs:config` after a schema change)', () => {
    expect(findReference(read('README.md')).current).toBe(renderConfigReference());
  });

  it('splicing replaces only the marked block, and missing markers are an error that says what to add', () => {
    const doc = `# T\n\n${REFERENCE_START}\nold\n${REFERENCE_END}\n\nafter\n`;
    const out = spliceReference(doc, 'NEW');
    expect(out).toBe(`# T\n\n${REFERENCE_START}\nNEW\n${REFERENCE_END}\n\nafter\n`);
    expect(spliceReference(out, 'NEW')).toBe(out);
    expect(() => spliceReference('# no markers', 'x', 'X.md')).toThrow(/X\.md: the markers .* are missing; add them/);
  });

  it('docs:config --check fails on a stale README and the rewrite fixes it', () => {
    const cliJs = repo('dist', 'src', 'config', 'reference-cli.js');
    expect(existsSync(cliJs), 'run npx tsc -p tsconfig.json first').toBe(true);
    const file = path.join(tempDir(), 'README.md');
    writeFileSync(file, `x\n${REFERENCE_START}\nstale\n${REFERENCE_END}\n`);
    expect(spawnSync(process.execPath, [cliJs, '--check', file]).status).toBe(1);
    expect(spawnSync(process.execPath, [cliJs, file]).status).toBe(0);
    expect(findReference(readFileSync(file, 'utf8')).current).toBe(renderConfigReference());
    expect(spawnSync(process.execPath, [cliJs, '--check', file]).status).toBe(0);
  });
});
