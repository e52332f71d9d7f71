import net from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import dimse from 'dcmjs-dimse';
import type { Writable } from 'node:stream';
import type { NodeConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { StoreStatus, type IncomingInstance, type InstanceStore, type StoreOutcome } from '../store/instance-store.js';
import { ACCEPTED_TRANSFER_SYNTAXES } from './transfer-syntax.js';
import { isStorageSopClass, STORAGE_SOP_CLASSES, VERIFICATION_SOP_CLASS } from './sop-classes.js';
import { PduGuard } from './pdu-guard.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './uid.js';
import type { AuditSink } from '../audit/audit-log.js';
import type { Timeline } from '../store/timeline.js';
import { handleCommitmentRequest, STORAGE_COMMITMENT_PUSH_SOP_CLASS, type CommitmentDeps } from './storage-commitment.js';
import { handshakeFailure, keepPeerAddresses, tlsPeer, tlsRemote, tlsServerOptions, type TlsPeer } from './tls.js';
import { clientAetRejection, peerLimitRejection } from './association-policy.js';
import { reportAssociationClosed } from './association-report.js';
import { ReceiptTally } from '../audit/received.js';

const { Scp, Dataset, Implementation } = dimse;
const { CStoreResponse, CEchoResponse } = dimse.responses;
const { Status, PresentationContextResult, RejectResult, RejectSource, RejectReason } = dimse.constants;

type Association = dimse.association.Association;
type PresentationContext = dimse.association.PresentationContext;
type CStoreRequest = dimse.requests.CStoreRequest;

// The library logs through loglevel at info by default: every PDU, on stdout. Ours are the logs.
dimse.log.setLevel('silent');

/** Which studies an open association has stored into: completion waits until that association ends. */
export class StudyActivity {
  private readonly open = new Map<string, number>();
  add(studyUid: string): void {
    this.open.set(studyUid, (this.open.get(studyUid) ?? 0) + 1);
  }
  remove(studyUid: string): void {
    const n = (this.open.get(studyUid) ?? 0) - 1;
    if (n <= 0) this.open.delete(studyUid);
    else this.open.set(studyUid, n);
  }
  isBusy(studyUid: string): boolean {
    return this.open.has(studyUid);
  }
}

export interface DicomServerDeps {
  config: NodeConfig;
  store: InstanceStore;
  log: Logger;
  metrics: Metrics;
  activity: StudyActivity;
  /** Security-relevant events (association accepted/rejected, instances received per study). */
  audit?: AuditSink;
  /** The per-study timeline ('received' per association and study). */
  timeline?: Timeline;
  /** Called after an instance is stored (not for duplicates): the study timer restarts. */
  onStored?: (studyUid: string) => void;
  /** An association that stored into these studies released normally (not aborted): completion evidence. */
  onAssociationReleased?: (studies: string[]) => void;
  /** Storage Commitment Push Model SCP (N-ACTION); absent = the SOP class is refused. */
  storageCommitment?: CommitmentDeps;
}

interface AssociationState {
  id: string;
  socket: net.Socket;
  log: Logger;
  callingAet: string;
  calledAet: string;
  /** Stores whose bytes are arriving or whose outcome is pending: shutdown waits for these. */
  inFlight: Set<Promise<unknown>>;
  current: IncomingInstance | undefined;
  studies: Set<string>;
  stored: number;
  failed: number;
  bytes: number;
  startedAt: number;
  accepted: boolean;
  /** The peer asked for a normal release (A-RELEASE-RQ), as opposed to an abort or a dropped connection. */
  released?: boolean;
  /** Transfer syntax accepted for the storage commitment context. */
  commitmentTs?: string;
  /** Remote IP address (node.max_associations_per_peer counts by it) and "address:port". */
  address: string;
  peer: string;
  /** The TLS session, null on the plain listener. */
  tls: TlsPeer | null;
  /** Instances and bytes stored per study: reported at close (audit, timeline). */
  tally: ReceiptTally;
}

/**
 * The DICOM listener: our own net/tls server (so we control TCP_NODELAY, the bind address, the
 * association limit and PDU sizes) handing each socket to a dcmjs-dimse Scp that streams C-STORE
 * datasets to disk and answers Success only once the instance is durable.
 */
export class DicomServer {
  private server: net.Server | undefined;
  /** The DICOM TLS listener (node.tls), beside the plain one or alone; same limits and state. */
  private tlsServer: tls.Server | undefined;
  /** Associations whose close is being reported: a graceful stop waits for them. */
  private readonly closing = new Set<Promise<void>>();
  private readonly states = new Set<AssociationState>();
  private accepting = true;
  private seq = 0;
  /** The Scp subclass bound to this server, built once (not per connection). */
  private readonly ScpClass: ReturnType<DicomServer['scpClass']>;

  constructor(private readonly deps: DicomServerDeps) {
    this.ScpClass = this.scpClass();
    Implementation.setImplementationClassUid(IMPLEMENTATION_CLASS_UID);
    Implementation.setImplementationVersion(IMPLEMENTATION_VERSION_NAME);
    Implementation.setMaxPduLength(deps.config.max_pdu_length);
    deps.metrics.describe('rtpipeline_associations_total', 'Associations accepted');
    deps.metrics.describe('rtpipeline_associations_rejected_total', 'Associations rejected, by reason');
    deps.metrics.describe('rtpipeline_instances_received_total', 'Instances stored (new or replaced)');
    deps.metrics.describe('rtpipeline_instances_duplicate_total', 'Identical instances received again');
    deps.metrics.describe('rtpipeline_instances_failed_total', 'C-STOREs answered with a failure status');
    deps.metrics.describe('rtpipeline_bytes_received_total', 'Dataset bytes stored');
    deps.metrics.describe('rtpipeline_echo_total', 'C-ECHO requests answered');
  }

  /** Adds optional hooks after construction (completion evidence, storage commitment). */
  use(extra: Pick<DicomServerDeps, 'onAssociationReleased' | 'storageCommitment'>): void {
    Object.assign(this.deps, extra);
  }

  get activeAssociations(): number {
    return this.states.size;
  }

  get port(): number {
    const a = this.server?.address();
    return typeof a === 'object' && a ? a.port : this.deps.config.dicom_port;
  }

  /** The TLS listener's port; null without node.tls. */
  get tlsPort(): number | null {
    const a = this.tlsServer?.address();
    return typeof a === 'object' && a ? a.port : (this.deps.config.tls?.port ?? null);
  }

  /** False when node.tls.plain is false: only the TLS listener runs. */
  get plainListening(): boolean {
    return this.server !== undefined;
  }

  async listen(): Promise<void> {
    const { config } = this.deps;
    if (!config.tls || config.tls.plain) {
      this.server = net.createServer({ noDelay: true }, (socket) => this.handleConnection(socket, null));
      await this.bind(this.server, config.dicom_port);
    }
    if (config.tls) {
      const { options, warnings } = tlsServerOptions(config.tls);
      for (const w of warnings) this.deps.log.warn(w);
      this.tlsServer = tls.createServer({ ...options, noDelay: true }, (socket) => this.handleConnection(socket, tlsPeer(socket)));
      keepPeerAddresses(this.tlsServer);
      this.tlsServer.on('tlsClientError', (e, socket) => this.handshakeFailed(e, socket));
      await this.bind(this.tlsServer, config.tls.port);
    }
    this.deps.log.info(
      { aet: config.aet, port: this.server ? this.port : null, tlsPort: this.tlsServer ? this.tlsPort : null, bind: config.bind_address, tls: !!config.tls, tlsMinVersion: config.tls?.min_version, mutualTls: config.tls ? config.tls.require_client_cert : undefined },
      'DICOM listener ready',
    );
  }

  private async bind(server: net.Server, port: number): Promise<void> {
    const { config } = this.deps;
    // A hard cap well above the association limit: over the limit we still want to send a proper
    // A-ASSOCIATE-RJ ("local limit exceeded"), which needs the connection accepted first.
    server.maxConnections = config.max_associations * 2 + 4;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, config.bind_address, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (e) => this.deps.log.error({ err: e, port }, 'DICOM listener error'));
  }

  /** A TLS peer that never got as far as an association (wrong CA, no certificate, TLS 1.1, plain TCP on the TLS port). */
  private handshakeFailed(err: Error, socket: tls.TLSSocket): void {
    const peer = tlsRemote(socket);
    const reason = handshakeFailure(err, socket);
    this.deps.log.warn({ peer, reason, code: (err as NodeJS.ErrnoException).code }, 'association rejected');
    this.deps.metrics.inc('rtpipeline_associations_rejected_total', 1, { reason: 'tls' });
    this.deps.audit?.record({ type: 'association.rejected', outcome: 'failure', peer, callingAet: null, calledAet: null, reason, tls: true });
    socket.destroy();
  }

  private handleConnection(socket: net.Socket, tlsInfo: TlsPeer | null): void {
    const { config, log, metrics } = this.deps;
    socket.setNoDelay(true);
    if (!this.accepting) {
      socket.destroy();
      return;
    }
    const id = `a${(++this.seq).toString(36)}-${randomBytes(2).toString('hex')}`;
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const state: AssociationState = {
      id,
      socket,
      log: log.child({ assoc: id, remote }),
      callingAet: '',
      calledAet: '',
      inFlight: new Set(),
      current: undefined,
      studies: new Set(),
      stored: 0,
      failed: 0,
      bytes: 0,
      startedAt: Date.now(),
      accepted: false,
      address: socket.remoteAddress ?? '',
      peer: remote,
      tls: tlsInfo,
      tally: new ReceiptTally(),
    };
    this.states.add(state);

    const guard = new PduGuard(config.max_pdu_length);
    socket.prependListener('data', (chunk: Buffer) => {
      const violation = guard.feed(chunk);
      if (violation) {
        state.log.warn({ reason: violation }, 'protocol violation: aborting association');
        metrics.inc('rtpipeline_associations_aborted_total');
        socket.destroy();
      }
    });

    const scp = new this.ScpClass(socket, {
      connectTimeout: config.idle_timeout_seconds * 1000,
      associationTimeout: config.association_timeout_seconds * 1000,
      pduTimeout: config.idle_timeout_seconds * 1000,
    });
    // The library's own Server sets `connected` but never `connectedTime`, which disables its
    // association timeout; we set both.
    Object.assign(scp, { connected: true, connectedTime: Date.now(), state });
    scp.on('networkError', (e: Error) => {
      state.log.warn({ err: e.message }, 'association network error');
      // destroy, not end: a dead or hung peer would otherwise keep its association slot.
      socket.destroy();
    });
    socket.on('close', () => {
      const closed = this.onClosed(state).catch((e: Error) => state.log.error({ err: e.message }, 'error while closing association'));
      this.closing.add(closed);
      void closed.finally(() => this.closing.delete(closed));
    });
  }

  private async onClosed(state: AssociationState): Promise<void> {
    await state.current?.discard();
    state.current = undefined;
    await Promise.allSettled([...state.inFlight]);
    for (const s of state.studies) this.deps.activity.remove(s);
    this.states.delete(state);
    if (state.accepted) {
      state.log.info(
        { stored: state.stored, failed: state.failed, bytes: state.bytes, ms: Date.now() - state.startedAt, released: !!state.released },
        'association closed',
      );
      const { id, peer, callingAet, calledAet, stored, failed, bytes } = state;
      reportAssociationClosed({ id, peer, callingAet, calledAet, stored, failed, bytes, ms: Date.now() - state.startedAt, released: !!state.released }, state.tally, this.deps);
    }
    // After the 'received' entries: completion may declare the study complete at once.
    if (state.released && state.studies.size > 0) this.deps.onAssociationReleased?.([...state.studies]);
  }

  /** Builds the Scp subclass bound to this server's dependencies. */
  private scpClass() {
    const server = this;
    const { config, store, metrics, activity } = this.deps;
    return class NodeScp extends Scp {
      declare state: AssociationState;

      override associationRequested(association: Association): void {
        const s = this.state;
        s.callingAet = association.getCallingAeTitle().trim();
        s.calledAet = association.getCalledAeTitle().trim();
        s.log = s.log.child({ callingAet: s.callingAet, calledAet: s.calledAet });
        const reject = (result: number, source: number, reason: number, why: string, label: string) => {
          s.log.warn({ reason: why }, 'association rejected');
          metrics.inc('rtpipeline_associations_rejected_total', 1, { reason: label });
          server.deps.audit?.record({ type: 'association.rejected', outcome: 'failure', peer: s.peer, callingAet: s.callingAet, calledAet: s.calledAet, reason: why, tls: s.tls });
          this.sendAssociationReject(result, source, reason);
        };
        if (!server.accepting) {
          return reject(RejectResult.Transient, RejectSource.ServiceProviderPresentation, RejectReason.TemporaryCongestion, 'node is shutting down', 'shutdown');
        }
        const active = [...server.states].filter((x) => x.accepted).length;
        if (active >= config.max_associations) {
          return reject(RejectResult.Transient, RejectSource.ServiceProviderPresentation, RejectReason.LocalLimitExceeded, `${active} associations already open (node.max_associations)`, 'limit');
        }
        const perPeer = peerLimitRejection([...server.states].filter((x) => x.accepted && x.address === s.address).length, config.max_associations_per_peer, s.address);
        if (perPeer) return reject(perPeer.result, perPeer.source, perPeer.reason, perPeer.why, perPeer.label);
        if (config.check_called_aet && s.calledAet !== config.aet) {
          return reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CalledAeNotRecognized, `called AE "${s.calledAet}" is not this node's AE title "${config.aet}"`, 'called_aet');
        }
        if (config.allowed_callers.length > 0 && !config.allowed_callers.includes(s.callingAet)) {
          return reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CallingAeNotRecognized, `calling AE "${s.callingAet}" is not in node.allowed_callers`, 'calling_aet');
        }
        const certAet = clientAetRejection(config.tls?.client_aets ?? {}, s.tls, s.callingAet);
        if (certAet) return reject(certAet.result, certAet.source, certAet.reason, certAet.why, certAet.label);
        // PC ids are odd numbers 1-255 (PS3.8 §9.3.2.2): more than 128 contexts, or an id out of range,
        // made the library throw while writing the A-ASSOCIATE-AC (an unhandled rejection, a hung peer).
        const badContexts = presentationContextFault(association.getPresentationContexts().map((pc) => pc.id));
        if (badContexts) {
          return reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.NoReasonGiven, badContexts, 'presentation_contexts');
        }
        let accepted = 0;
        for (const pc of association.getPresentationContexts()) {
          const context = association.getPresentationContext(pc.id);
          const abstract = context.getAbstractSyntaxUid();
          const proposed = context.getTransferSyntaxUids();
          const commitment = abstract === STORAGE_COMMITMENT_PUSH_SOP_CLASS && !!server.deps.storageCommitment;
          if (abstract !== VERIFICATION_SOP_CLASS && !isStorageSopClass(abstract) && !commitment) {
            context.setResult(PresentationContextResult.RejectAbstractSyntaxNotSupported);
            s.log.debug({ sopClass: abstract }, 'presentation context rejected: SOP class not supported');
            continue;
          }
          const ts = ACCEPTED_TRANSFER_SYNTAXES.find((t) => proposed.includes(t));
          if (!ts) {
            context.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported);
            s.log.debug({ sopClass: abstract, proposed }, 'presentation context rejected: no supported transfer syntax');
            continue;
          }
          context.setResult(PresentationContextResult.Accept, ts);
          if (commitment) s.commitmentTs = ts;
          s.log.debug({ sopClass: abstract, proposed, accepted: ts }, 'presentation context accepted');
          accepted++;
        }
        if (accepted === 0) s.log.warn('association accepted with no usable presentation context (unsupported SOP classes or transfer syntaxes)');
        // A peer that announces 0 (unlimited) would otherwise get "unlimited" echoed back as our limit.
        if (association.getMaxPduLength() === 0 || association.getMaxPduLength() > config.max_pdu_length) {
          association.setMaxPduLength(config.max_pdu_length);
        }
        s.accepted = true;
        metrics.inc('rtpipeline_associations_total');
        s.log.info({ contexts: accepted, tls: s.tls }, 'association accepted');
        server.deps.audit?.record({ type: 'association.accepted', outcome: 'success', association: s.id, peer: s.peer, callingAet: s.callingAet, calledAet: s.calledAet, tls: s.tls, contexts: accepted });
        try {
          this.sendAssociationAccept();
        } catch (e) {
          s.log.warn({ err: (e as Error).message }, 'cannot encode the A-ASSOCIATE-AC for this request: aborting the association');
          s.socket.destroy();
        }
      }

      override associationReleaseRequested(): void {
        this.state.released = true;
        // Answer only once every store of this association is durable and answered.
        void Promise.allSettled([...this.state.inFlight]).then(() => this.sendAssociationReleaseResponse());
      }

      override abort(): void {
        this.state.log.info('association aborted by peer');
        this.state.socket.destroy();
      }

      override nActionRequest(request: dimse.requests.NActionRequest, callback: (r: dimse.responses.NActionResponse) => void): void {
        const s = this.state;
        const deps = server.deps.storageCommitment;
        if (!deps) {
          const r = dimse.responses.NActionResponse.fromRequest(request);
          r.setStatus(Status.SopClassNotSupported);
          return callback(r);
        }
        handleCommitmentRequest(this, request, callback, { deps, log: s.log, callingAet: s.callingAet, transferSyntaxUid: s.commitmentTs ?? '1.2.840.10008.1.2' });
      }

      override cEchoRequest(request: dimse.requests.CEchoRequest, callback: (r: dimse.responses.CEchoResponse) => void): void {
        metrics.inc('rtpipeline_echo_total');
        const r = CEchoResponse.fromRequest(request);
        r.setStatus(Status.Success);
        callback(r);
      }

      override createStoreWritableStream(pc: PresentationContext, request: CStoreRequest): Writable {
        const s = this.state;
        const meta = {
          sopClassUid: request.getAffectedSopClassUid(),
          sopInstanceUid: request.getAffectedSopInstanceUid(),
          transferSyntaxUid: pc.getAcceptedTransferSyntaxUid() ?? '',
          callingAet: s.callingAet || null,
          remoteAddress: s.socket.remoteAddress ?? null,
          calledAet: s.calledAet || null,
          associationId: s.id,
        };
        // Data on a context we did not accept, or for another SOP class than the context's, is not stored.
        const incoming =
          pc.getResult() !== PresentationContextResult.Accept || !meta.transferSyntaxUid
            ? store.refuse(meta, Status.SopClassNotSupported, 'presentation context was not accepted')
            : pc.getAbstractSyntaxUid() !== meta.sopClassUid
              ? store.refuse(meta, StoreStatus.DataSetDoesNotMatchSopClass, `SOP class ${meta.sopClassUid} sent on a ${pc.getAbstractSyntaxUid()} presentation context`)
              : store.begin(meta);
        incoming.flowControl = { pause: () => s.socket.pause(), resume: () => s.socket.resume() };
        s.current = incoming;
        pending.set(request, incoming);
        const done = incoming.outcome().catch(() => undefined);
        s.inFlight.add(done);
        void done.finally(() => s.inFlight.delete(done));
        return incoming;
      }

      override createDatasetFromStoreWritableStream(_w: Writable, pc: PresentationContext, callback: (d: dimse.Dataset) => void): void {
        this.state.current = undefined;
        // The dataset is on disk; the handler below reads the outcome, not a parsed copy.
        callback(new Dataset({}, pc.getAcceptedTransferSyntaxUid()));
      }

      override cStoreRequest(request: CStoreRequest, callback: (r: dimse.responses.CStoreResponse) => void): void {
        const s = this.state;
        const incoming = pending.get(request);
        pending.delete(request);
        const respond = (status: number, comment?: string) => {
          const r = CStoreResponse.fromRequest(request);
          r.setStatus(status);
          if (comment) r.setErrorComment(comment.slice(0, 64));
          callback(r);
        };
        if (!incoming) {
          s.failed++;
          server.refused(s, StoreStatus.CannotUnderstand, 'no dataset received', request.getAffectedSopInstanceUid());
          return respond(StoreStatus.CannotUnderstand, 'no dataset received');
        }
        void incoming
          .outcome()
          .catch((e: Error): StoreOutcome => ({ ok: false, status: StoreStatus.OutOfResources, reason: `internal error: ${e.message}` }))
          .then((o) => {
          if (o.ok) {
            if (o.kind !== 'duplicate') {
              s.stored++;
              s.bytes += o.size;
              metrics.inc('rtpipeline_instances_received_total');
              metrics.inc('rtpipeline_bytes_received_total', o.size);
              server.deps.onStored?.(o.header.studyInstanceUid);
            } else {
              metrics.inc('rtpipeline_instances_duplicate_total');
            }
            s.tally.add(o.header.studyInstanceUid, o.header.patientId, o.kind, o.size);
            if (!s.studies.has(o.header.studyInstanceUid)) {
              s.studies.add(o.header.studyInstanceUid);
              activity.add(o.header.studyInstanceUid);
            }
            s.log.debug({ sopInstanceUid: o.header.sopInstanceUid, studyUid: o.header.studyInstanceUid, patientId: o.header.patientId, kind: o.kind }, 'instance stored');
            return respond(Status.Success);
          }
          s.failed++;
          metrics.inc('rtpipeline_instances_failed_total', 1, { status: `0x${o.status.toString(16).toUpperCase()}` });
          s.log.warn({ sopInstanceUid: incoming.meta.sopInstanceUid, sopClass: STORAGE_SOP_CLASSES[incoming.meta.sopClassUid] ?? incoming.meta.sopClassUid, status: `0x${o.status.toString(16)}`, reason: o.reason, quarantinedAs: o.quarantinedAs }, 'C-STORE failed');
          server.refused(s, o.status, o.reason, incoming.meta.sopInstanceUid);
          respond(o.status, o.reason);
        });
      }
    };
  }

  /** A C-STORE answered with a failure status: audited with the reason the peer was given. */
  private refused(s: AssociationState, status: number, reason: string, sopInstanceUid: string): void {
    this.deps.audit?.record({ type: 'instance.refused', outcome: 'failure', status: `0x${status.toString(16).toUpperCase().padStart(4, '0')}`, reason, sopInstanceUid, association: s.id, peer: s.peer, callingAet: s.callingAet, calledAet: s.calledAet });
  }

  /**
   * Graceful stop: refuse new associations, let stores in flight finish and be answered, then
   * close the connections. Returns once all are closed or `graceMs` has passed.
   */
  async close(graceMs = 8000): Promise<void> {
    this.accepting = false;
    const closed = new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    const tlsClosed = new Promise<void>((r) => (this.tlsServer ? this.tlsServer.close(() => r()) : r()));
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && [...this.states].some((s) => s.inFlight.size > 0 || s.current)) {
      await new Promise((r) => setTimeout(r, 50));
    }
    // Give peers a moment to release on their own after their last response.
    const releaseBy = Math.min(deadline, Date.now() + 1000);
    while (Date.now() < releaseBy && this.states.size > 0) await new Promise((r) => setTimeout(r, 50));
    for (const s of this.states) s.socket.destroy();
    await Promise.race([Promise.all([closed, tlsClosed]), new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())))]);
    // The reports of the last associations (audit, timeline) are written before the index closes.
    await Promise.race([Promise.allSettled([...this.closing]), new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())))]);
  }
}

/** Why a proposed list of presentation context ids cannot be answered, or undefined. */
export function presentationContextFault(ids: number[]): string | undefined {
  if (ids.length > 128) return `${ids.length} presentation contexts proposed, at most 128 are possible`;
  const bad = ids.find((id) => !Number.isInteger(id) || id < 1 || id > 255 || id % 2 === 0);
  if (bad !== undefined) return `presentation context id ${bad} is not an odd number from 1 to 255`;
  if (new Set(ids).size !== ids.length) return 'the same presentation context id is proposed twice';
  return undefined;
}

/** C-STORE request → the instance its bytes were written to (set before, read after the dataset). */
const pending = new WeakMap<CStoreRequest, IncomingInstance>();
