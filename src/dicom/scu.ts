import dimse from 'dcmjs-dimse';
import type { Destination } from '../config/schema.js';

const { Client } = dimse;
const { CStoreRequest } = dimse.requests;
const { Status } = dimse.constants;

dimse.log.setLevel('silent');

export interface FileResult {
  file: string;
  /** DIMSE status, or undefined when the instance was never answered (association failed). */
  status: number | undefined;
  comment?: string;
}

export interface SendResult {
  /** The association itself failed (refused, rejected, dropped): worth retrying later. */
  associationError: string | undefined;
  results: FileResult[];
}

/** Success and the warning statuses (coercion, elements discarded) all mean "the PACS has it". */
export function isStoredStatus(status: number | undefined): boolean {
  return status !== undefined && (status === Status.Success || (status & 0xf000) === 0xb000);
}

export interface SendOptions {
  callingAet: string;
  timeoutMs?: number;
}

/** Instances per association. dcmjs-dimse needs every request before it connects, and building a
 *  request from a file reads the whole file to get its UIDs; batches keep that up-front work (and
 *  the time before the first byte is sent) bounded for a study of thousands of slices. Peak RSS of
 *  `rtpipeline send` measured flat: 177 MB for 200 CT slices, 194 MB for 600. */
const BATCH = 50;

/**
 * Sends files to one destination with C-STORE, each dataset as stored (the file's own transfer
 * syntax is proposed, so no transcoding happens when the peer accepts it), in associations of
 * BATCH instances. Stops at the first association that fails; the rest stay unanswered.
 */
export async function sendFiles(dest: Destination, files: string[], opts: SendOptions): Promise<SendResult> {
  const results: FileResult[] = [];
  for (let i = 0; i < files.length; i += BATCH) {
    const batch = files.slice(i, i + BATCH);
    const r = await sendBatch(dest, batch, opts);
    results.push(...r.results);
    if (r.associationError) {
      results.push(...files.slice(i + BATCH).map((file) => ({ file, status: undefined })));
      return { associationError: r.associationError, results };
    }
  }
  return { associationError: undefined, results };
}

function sendBatch(dest: Destination, files: string[], opts: SendOptions): Promise<SendResult> {
  return new Promise((resolve) => {
    const results = new Map<string, FileResult>(files.map((f) => [f, { file: f, status: undefined }]));
    const client = new Client();
    let associationError: string | undefined;
    for (const file of files) {
      let request: dimse.requests.CStoreRequest;
      try {
        request = new CStoreRequest(file);
      } catch (e) {
        results.set(file, { file, status: 0xc000, comment: `cannot read ${file}: ${(e as Error).message}` });
        continue;
      }
      request.on('response', (r: dimse.responses.CStoreResponse) => {
        results.set(file, { file, status: r.getStatus(), comment: r.getErrorComment() || undefined });
        // The library keeps sent requests; drop the dataset so a big study is not held in memory.
        request.setDataset(undefined as unknown as dimse.Dataset);
      });
      client.addRequest(request);
    }
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ associationError, results: files.map((f) => results.get(f)!) });
    };
    if (files.every((f) => results.get(f)!.status !== undefined)) return finish();
    client.on('associationRejected', (r: { result: number; source: number; reason: number }) => {
      associationError = `association rejected by ${dest.aet} (result ${r.result}, source ${r.source}, reason ${r.reason})`;
    });
    client.on('networkError', (e: Error) => {
      associationError ??= `network error: ${e.message}`;
    });
    client.on('closed', finish);
    timer = setTimeout(() => {
      associationError ??= `no answer from ${dest.aet}@${dest.host}:${dest.port} within ${(opts.timeoutMs ?? 120000) / 1000} s`;
      try {
        client.abort();
      } catch {
        /* not connected yet */
      }
      finish();
    }, opts.timeoutMs ?? 120000);
    client.send(dest.host, dest.port, dest.calling_aet ?? opts.callingAet, dest.aet, {
      connectTimeout: 30000,
      associationTimeout: 30000,
      pduTimeout: 60000,
      securityOptions: dest.tls ? { rejectUnauthorized: true } : undefined,
    });
    const network = (client as unknown as { network?: { socket?: { setNoDelay(b: boolean): void } } }).network;
    network?.socket?.setNoDelay(true);
  });
}
