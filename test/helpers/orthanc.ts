// Start a throwaway Orthanc 1.10.1 (Debian /usr/sbin/Orthanc) on loopback ports for integration tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOOPBACK, exited, freePort, killAndWait, loopbackEnv, sleep, track } from './ports.js';

export interface Modality { aet: string; host: string; port: number }

export interface RestResponse { status: number; body: any }

export interface OrthancHandle {
  httpPort: number;
  dicomPort: number;
  aet: string;
  dir: string;
  proc: ChildProcess;
  /** Raw REST call; never throws on HTTP errors. Body: Buffer/Uint8Array sent as-is, string as text, else JSON. */
  rest(method: string, path: string, body?: unknown): Promise<RestResponse>;
  /** POST /instances; returns Orthanc's answer ({ ID, ParentStudy, Status, ... }). */
  uploadInstance(dicom: Uint8Array): Promise<{ ID: string; Status: string; [k: string]: unknown }>;
  /** Orthanc instance ids. */
  listInstances(): Promise<string[]>;
  instanceFile(id: string): Promise<Buffer>;
  /** POST /modalities/{m}/store, synchronous by default; opts are merged into the request body. */
  storeToModality(modality: string, resources: string[], opts?: Record<string, unknown>): Promise<RestResponse>;
  addModality(name: string, m: Modality): Promise<void>;
  /** Last lines of Orthanc's log. */
  logTail(lines?: number): string;
  stop(): Promise<void>;
}

const ORTHANC = process.env.ORTHANC_BIN ?? '/usr/sbin/Orthanc';
const toOrthanc = (m: Modality) => ({ AET: m.aet, Host: m.host, Port: m.port });

export async function startOrthanc(opts: {
  modalities?: Record<string, Modality>;
  aet?: string;
  /** Extra top-level configuration keys, e.g. { DicomScuTimeout: 5 }. */
  extraConfig?: Record<string, unknown>;
  startTimeoutMs?: number;
  /** A fixed DICOM port (e.g. one a node was told about before this "PACS" came up). */
  dicomPort?: number;
} = {}): Promise<OrthancHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'rtpipeline-orthanc-'));
  const [httpPort, dicomPort] = [await freePort(), opts.dicomPort ?? (await freePort())];
  const aet = opts.aet ?? 'ORTHANC';
  const config = {
    Name: 'rtpipeline-test',
    StorageDirectory: join(dir, 'db'),
    IndexDirectory: join(dir, 'db'),
    HttpPort: httpPort,
    DicomPort: dicomPort,
    // 1.10.1 has no bind-address options (it listens on 0.0.0.0); loopbackEnv() rewrites the bind.
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    DicomAet: aet,
    DicomModalities: Object.fromEntries(Object.entries(opts.modalities ?? {}).map(([k, m]) => [k, toOrthanc(m)])),
    DicomAlwaysAllowStore: true,
    DicomAlwaysAllowEcho: true,
    DicomCheckCalledAet: false,
    Plugins: [],
    ConcurrentJobs: 2,
    SaveJobs: false,
    HttpDescribeErrors: true,
    ...opts.extraConfig,
  };
  const configFile = join(dir, 'orthanc.json');
  await writeFile(configFile, JSON.stringify(config, null, 2));

  // Log goes straight to a file (fd inherited by the child) so it survives even if we crash.
  const logFile = join(dir, 'orthanc.log');
  const fd = openSync(logFile, 'a');
  const proc = track(spawn(ORTHANC, [configFile], { cwd: dir, env: loopbackEnv(), stdio: ['ignore', fd, fd] }));
  closeSync(fd);

  const base = `http://${LOOPBACK}:${httpPort}`;
  const logTail = (n = 40) => {
    try { return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-n).join('\n'); } catch { return ''; }
  };
  const stop = async () => {
    await killAndWait(proc, 10_000); // SIGTERM = clean shutdown (~1 s), SIGKILL as backstop
    await rm(dir, { recursive: true, force: true });
  };

  async function rest(method: string, path: string, body?: unknown): Promise<RestResponse> {
    let payload: BodyInit | undefined;
    const headers: Record<string, string> = {};
    if (body instanceof Uint8Array) { payload = new Uint8Array(body); headers['content-type'] = 'application/dicom'; }
    else if (typeof body === 'string') payload = body;
    else if (body !== undefined) { payload = JSON.stringify(body); headers['content-type'] = 'application/json'; }
    const res = await fetch(base + path, { method, body: payload, headers });
    const buf = Buffer.from(await res.arrayBuffer());
    const type = res.headers.get('content-type') ?? '';
    if (/dicom|octet-stream|^image\/|zip/.test(type)) return { status: res.status, body: buf };
    // 1.10.1 sends its JSON error bodies without a content-type, so try JSON for anything textual.
    const text = buf.toString();
    try { return { status: res.status, body: text ? JSON.parse(text) : null }; }
    catch { return { status: res.status, body: text }; }
  }
  async function ok(method: string, path: string, body?: unknown) {
    const r = await rest(method, path, body);
    if (r.status >= 300) throw new Error(`Orthanc ${method} ${path} -> ${r.status}: ${JSON.stringify(r.body)}`);
    return r.body;
  }

  // Ready when the REST API answers; fail fast if the process dies, with the log tail.
  try {
    const deadline = Date.now() + (opts.startTimeoutMs ?? 20_000);
    const died = exited(proc).then(() => 'died' as const);
    const spawnErr = new Promise<never>((_, rej) => proc.once('error', rej));
    spawnErr.catch(() => {}); // only relevant while racing below
    for (;;) {
      const probe = rest('GET', '/system').then((r) => r.status === 200, () => false);
      const r = await Promise.race([probe, died, spawnErr]);
      if (r === 'died') throw new Error(`Orthanc exited during startup (code ${proc.exitCode})`);
      if (r) break;
      if (Date.now() > deadline) throw new Error('Orthanc did not answer GET /system in time');
      await sleep(100);
    }
  } catch (e) {
    const tail = logTail();
    await stop();
    throw new Error(`${(e as Error).message}\n--- orthanc.log tail ---\n${tail}`);
  }

  return {
    httpPort, dicomPort, aet, dir, proc, rest, logTail, stop,
    uploadInstance: (dicom) => ok('POST', '/instances', dicom),
    listInstances: () => ok('GET', '/instances'),
    async instanceFile(id) {
      const b = await ok('GET', `/instances/${id}/file`);
      if (!Buffer.isBuffer(b)) throw new Error(`GET /instances/${id}/file: expected DICOM bytes`);
      return b;
    },
    storeToModality: (modality, resources, o = {}) =>
      rest('POST', `/modalities/${encodeURIComponent(modality)}/store`, { Resources: resources, Synchronous: true, ...o }),
    async addModality(name, m) { await ok('PUT', `/modalities/${encodeURIComponent(name)}`, toOrthanc(m)); },
  };
}
