// Thin wrappers around the DCMTK command-line tools (Debian dcmtk 3.6.7) for integration tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { LOOPBACK, exited, killAndWait, loopbackEnv, run, track, waitForPort, type RunResult } from './ports.js';

export type { RunResult } from './ports.js';

interface ScuOpts {
  port: number;
  calledAet: string;
  callingAet?: string;
  /** Extra options placed before host/port, e.g. ['-xi'] (propose implicit VR only), ['-R'], ['-v']. */
  extraArgs?: string[];
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

// DCMTK reads TCP_NODELAY from the environment; without it small PDUs hit Nagle delays.
const scuEnv = (env?: NodeJS.ProcessEnv) => ({ ...process.env, TCP_NODELAY: '1', ...env });
const aetArgs = (o: ScuOpts) => [...(o.callingAet ? ['-aet', o.callingAet] : []), '-aec', o.calledAet];

/** C-STORE files (or a directory, scanned recursively) to 127.0.0.1:port. Never throws on non-zero exit. */
export function storescu(opts: ScuOpts & { files: string[] | string }): Promise<RunResult> {
  const files = typeof opts.files === 'string' ? ['+sd', '+r', opts.files] : opts.files;
  // Options go before host/port; the file list (or +sd +r dir) after them.
  const args = [...aetArgs(opts), ...(opts.extraArgs ?? []), LOOPBACK, String(opts.port), ...files];
  return run('storescu', args, { env: scuEnv(opts.env), timeoutMs: opts.timeoutMs });
}

/** C-ECHO 127.0.0.1:port. Never throws on non-zero exit. */
export function echoscu(opts: ScuOpts): Promise<RunResult> {
  const args = [...aetArgs(opts), ...(opts.extraArgs ?? []), LOOPBACK, String(opts.port)];
  return run('echoscu', args, { env: scuEnv(opts.env), timeoutMs: opts.timeoutMs });
}

/** dcmdump a file (e.g. args ['+P', '0008,0018'] to print one tag). Never throws on non-zero exit. */
export function dcmdump(file: string, args: string[] = []): Promise<RunResult> {
  return run('dcmdump', [...args, file]);
}

export interface StorescpHandle {
  proc: ChildProcess;
  port: number;
  aet: string;
  outDir: string;
  /** stdout+stderr so far (pass ['-v'] in extraArgs for association details). */
  output(): string;
  /** Names of files received so far (storescp writes e.g. "CT.<SOPInstanceUID>"). */
  received(): Promise<string[]>;
  /** Wait until at least n files are in outDir. */
  waitForFiles(n: number, timeoutMs?: number): Promise<string[]>;
  stop(): Promise<void>;
}

/**
 * Start a single-process storescp on 127.0.0.1:port (loopback enforced by the bind shim, since
 * 3.6.7 has no bind option), accepting all transfer syntaxes, writing into outDir.
 */
export async function startStorescp(opts: { port: number; aet: string; outDir: string; extraArgs?: string[] }): Promise<StorescpHandle> {
  await mkdir(opts.outDir, { recursive: true }); // storescp refuses a missing -od directory
  const args = ['-aet', opts.aet, '-od', opts.outDir, '+xa', ...(opts.extraArgs ?? []), String(opts.port)];
  const proc = track(spawn('storescp', args, { env: loopbackEnv(scuEnv()), stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  const append = (d: Buffer) => { out = (out + d.toString()).slice(-64_000); };
  proc.stdout!.on('data', append);
  proc.stderr!.on('data', append);

  const spawnErr = new Promise<never>((_, rej) => proc.once('error', rej));
  const died = exited(proc).then(() => { throw new Error(`storescp exited early (code ${proc.exitCode}): ${out}`); });
  try {
    await Promise.race([waitForPort(opts.port), died, spawnErr]);
  } catch (e) {
    await killAndWait(proc);
    throw e;
  }
  died.catch(() => {}); // later exits are reported via stop()/output(), not as unhandled rejections
  spawnErr.catch(() => {});

  const received = async () => (await readdir(opts.outDir)).filter((f) => !f.startsWith('.')).sort();
  return {
    proc, port: opts.port, aet: opts.aet, outDir: opts.outDir,
    output: () => out,
    received,
    async waitForFiles(n, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const files = await received();
        if (files.length >= n) return files;
        if (Date.now() > deadline) throw new Error(`storescp got ${files.length}/${n} files; log:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    stop: () => killAndWait(proc),
  };
}

/** A random DICOM UID under the 2.25 (UUID-derived) root. */
export function newUid(): string {
  return `2.25.${BigInt('0x' + randomBytes(16).toString('hex'))}`;
}

export interface TestDicomOpts {
  sopInstanceUid?: string;
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  patientId?: string;
  patientName?: string;
  modality?: string;
}

/** Write a tiny valid CT image (2x2, 16-bit) as a Part-10 file via dump2dcm; returns its UIDs. */
export async function writeTestDicom(file: string, o: TestDicomOpts = {}) {
  const uids = {
    sopInstanceUid: o.sopInstanceUid ?? newUid(),
    studyInstanceUid: o.studyInstanceUid ?? newUid(),
    seriesInstanceUid: o.seriesInstanceUid ?? newUid(),
  };
  const dump = `
(0008,0016) UI =CTImageStorage
(0008,0018) UI ${uids.sopInstanceUid}
(0008,0060) CS ${o.modality ?? 'CT'}
(0010,0010) PN ${o.patientName ?? 'Test^Patient'}
(0010,0020) LO ${o.patientId ?? 'TESTPID'}
(0020,000d) UI ${uids.studyInstanceUid}
(0020,000e) UI ${uids.seriesInstanceUid}
(0020,0013) IS 1
(0028,0002) US 1
(0028,0004) CS MONOCHROME2
(0028,0010) US 2
(0028,0011) US 2
(0028,0100) US 16
(0028,0101) US 16
(0028,0102) US 15
(0028,0103) US 1
(7fe0,0010) OW 0000\\0001\\0002\\0003
`;
  const dumpFile = `${file}.dump`;
  await writeFile(dumpFile, dump);
  const r = await run('dump2dcm', ['+te', dumpFile, file]);
  await rm(dumpFile); // don't leave a non-DICOM file behind for `storescu +sd` to trip over
  if (r.code !== 0 || !(await stat(file).catch(() => null))) throw new Error(`dump2dcm failed: ${r.stderr}`);
  return { file, ...uids };
}
