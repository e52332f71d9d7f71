import { readFileSync, promises as fsp } from 'node:fs';
import tls from 'node:tls';
import dimse from 'dcmjs-dimse';
import type { Destination } from '../config/schema.js';
import { readPart10Meta } from './header.js';
import { readPart10Header } from './header-file.js';

const { Client, Dataset } = dimse;
const { CStoreRequest } = dimse.requests;
const { Status } = dimse.constants;

dimse.log.setLevel('silent');

export interface FileResult {
  file: string;
  /** DIMSE status, or undefined when the instance was never answered (association failed). */
  status: number | undefined;
  comment?: string;
  /** The instance's SOP Instance UID, when its header could be read (the audit trail names it). */
  sopInstanceUid?: string;
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
  /** Abort when the peer has answered nothing for this long (default 120 s). Reset by every
   *  response, so a study of thousands of instances is not bound by one overall deadline. */
  idleTimeoutMs?: number;
}

/** What a C-STORE request needs before its dataset is read: the UIDs and the file's syntax. */
interface FileIdentity {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
}

/** The first bytes of a file read for its identity: the Part 10 meta group is a few hundred bytes. */
const META_BYTES = 16 << 10;

/** The identity from the Part 10 meta group; from the dataset's own header when the meta lacks it. */
export async function fileIdentity(file: string): Promise<FileIdentity> {
  const h = await fsp.open(file, 'r');
  let head: Buffer;
  try {
    const buf = Buffer.allocUnsafe(META_BYTES);
    const { bytesRead } = await h.read(buf, 0, META_BYTES, 0);
    head = buf.subarray(0, bytesRead);
  } finally {
    await h.close();
  }
  try {
    const meta = readPart10Meta(head);
    if (meta.mediaStorageSopClassUid && meta.mediaStorageSopInstanceUid) {
      return { sopClassUid: meta.mediaStorageSopClassUid, sopInstanceUid: meta.mediaStorageSopInstanceUid, transferSyntaxUid: meta.transferSyntaxUid };
    }
  } catch {
    /* a meta group longer than META_BYTES: the full header reader below reads more */
  }
  const { meta, header } = await readPart10Header(file);
  return { sopClassUid: header.sopClassUid, sopInstanceUid: header.sopInstanceUid, transferSyntaxUid: meta.transferSyntaxUid };
}

/**
 * A C-STORE request whose dataset is read from its file only when the association gets to it.
 * dcmjs-dimse's Network sends queued requests one at a time (the next when the previous one's
 * response arrives) and calls loadFullDatasetIfNeeded() on a CStoreRequest just before sending it;
 * until then the request holds a two-element dataset with the UIDs and the transfer syntax, which is
 * all the association negotiation reads. After the response the dataset is dropped again, so a
 * study of any size goes over one association with one instance in memory at a time.
 * (The library's own `new CStoreRequest(file)` defers the same way, but reads the whole file up
 * front to find the UIDs.)
 */
class FileStoreRequest extends CStoreRequest {
  constructor(file: string, id: FileIdentity) {
    super(new Dataset({ SOPClassUID: id.sopClassUid, SOPInstanceUID: id.sopInstanceUid }, id.transferSyntaxUid));
    // The library's lazy-loading fields (not in its type declarations).
    Object.assign(this, { needsFullDatasetLoading: true, datasetOrFile: file });
  }
}

/** TLS options for a destination's association: min TLS 1.2, server certificate verified. */
export interface OutboundTls {
  securityOptions: { rejectUnauthorized: true; minVersion: 'TLSv1.2'; ca?: Buffer; cert?: Buffer; key?: Buffer };
  /** The name the server certificate must carry when it differs from `host` (e.g. host is an IP). */
  servername?: string;
}

/**
 * The TLS settings of a destination: `tls: true` trusts the system CAs (plus NODE_EXTRA_CA_CERTS);
 * an object names PEM files: `ca` (the PACS's CA, instead of the system ones), `cert` + `key` (our
 * client certificate, for a PACS that requires mutual TLS) and `servername`. Files are read at every
 * association, so a renewed certificate is used without a restart.
 */
export function outboundTls(dest: Destination): OutboundTls | undefined {
  if (!dest.tls) return undefined;
  const base = { rejectUnauthorized: true as const, minVersion: 'TLSv1.2' as const };
  if (dest.tls === true) return { securityOptions: base };
  const read = (what: string, file: string | undefined) => {
    if (!file) return undefined;
    try {
      return readFileSync(file);
    } catch (e) {
      throw new Error(`destination ${dest.aet}@${dest.host}:${dest.port}: cannot read the TLS ${what} file ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); fix node.destinations[].tls.${what}`);
    }
  };
  const securityOptions = { ...base, ca: read('ca', dest.tls.ca), cert: read('cert', dest.tls.cert), key: read('key', dest.tls.key) };
  return { securityOptions, servername: dest.tls.servername };
}

/**
 * Sends files to one destination with C-STORE over ONE association, each dataset as stored (the
 * file's own transfer syntax is proposed, so no transcoding happens when the peer accepts it).
 * Files are read one at a time as the association reaches them (FileStoreRequest). If the
 * association fails, the instances not yet answered come back with status undefined.
 */
export async function sendFiles(dest: Destination, files: string[], opts: SendOptions): Promise<SendResult> {
  const results: FileResult[] = files.map((file) => ({ file, status: undefined }));
  const requests: { request: dimse.requests.CStoreRequest; result: FileResult }[] = [];
  for (const result of results) {
    try {
      const id = await fileIdentity(result.file);
      result.sopInstanceUid = id.sopInstanceUid;
      requests.push({ request: new FileStoreRequest(result.file, id), result });
    } catch (e) {
      // Cannot be sent at all: a final failure for this file, not a reason to hold the others.
      Object.assign(result, { status: 0xc000, comment: `cannot read ${result.file}: ${(e as Error).message}` });
    }
  }
  if (requests.length === 0) return { associationError: undefined, results };
  const security = outboundTls(dest);
  const idleMs = opts.idleTimeoutMs ?? 120_000;
  return new Promise((resolve) => {
    const client = new Client();
    let associationError: string | undefined;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ associationError, results });
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        associationError ??= `no answer from ${dest.aet}@${dest.host}:${dest.port} within ${idleMs / 1000} s`;
        try {
          client.abort();
        } catch {
          /* not connected yet */
        }
        finish();
      }, idleMs);
    };
    for (const { request, result } of requests) {
      request.on('response', (r: dimse.responses.CStoreResponse) => {
        result.status = r.getStatus();
        result.comment = r.getErrorComment() || undefined;
        // Sent and answered: drop the dataset (the library keeps the request until the association ends).
        request.setDataset(undefined as unknown as dimse.Dataset);
        arm();
      });
      client.addRequest(request);
    }
    client.on('associationRejected', (r: { result: number; source: number; reason: number }) => {
      associationError = `association rejected by ${dest.aet} (result ${r.result}, source ${r.source}, reason ${r.reason})`;
    });
    client.on('networkError', (e: Error) => {
      associationError ??= `network error: ${e.message}`;
    });
    client.on('closed', () => {
      // A close before every request was answered (peer aborted or dropped us) is an association failure.
      if (!associationError && results.some((r) => r.status === undefined)) {
        associationError = `association with ${dest.aet}@${dest.host}:${dest.port} ended with ${results.filter((r) => r.status === undefined).length} instance(s) unanswered`;
      }
      finish();
    });
    arm();
    const sendOpts = { connectTimeout: 30000, associationTimeout: 30000, pduTimeout: idleMs, securityOptions: security?.securityOptions };
    const callingAet = dest.calling_aet ?? opts.callingAet;
    if (security?.servername) {
      // dcmjs-dimse passes only its own list of TLS options to tls.connect, and servername (SNI and
      // the name checked against the certificate) is not among them. Client.send calls tls.connect
      // synchronously, so adding it for the duration of that one call affects no other connection.
      const connect = tls.connect;
      const servername = security.servername;
      tls.connect = ((o: tls.ConnectionOptions) => connect({ ...o, servername })) as typeof tls.connect;
      try {
        client.send(dest.host, dest.port, callingAet, dest.aet, sendOpts);
      } finally {
        tls.connect = connect;
      }
    } else {
      client.send(dest.host, dest.port, callingAet, dest.aet, sendOpts);
    }
    const network = (client as unknown as { network?: { socket?: { setNoDelay(b: boolean): void } } }).network;
    network?.socket?.setNoDelay(true);
  });
}
