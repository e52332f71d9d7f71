/**
 * Storage Commitment Push Model, SCP role (PS3.4 Annex J). A sender that has stored a study asks,
 * with N-ACTION (action type 1), that we take responsibility for a list of SOP instances. We
 * answer the N-ACTION at once, check each instance against the index, and report the outcome with
 * N-EVENT-REPORT on the same association (event type 1: all committed; 2: some failed, listed in
 * the Failed SOP Sequence with a reason). For study completion this is the sender's explicit
 * "done": a study whose instances are all committed is complete at once.
 *
 * The report goes on the same association only: a sender that releases before it arrives (or asks
 * for it on a new association) does not get it, but the commitment is recorded all the same.
 */
import dimse from 'dcmjs-dimse';
import type { Logger } from '../log.js';

const { Dataset } = dimse;
const { NActionResponse } = dimse.responses;
const { NEventReportRequest } = dimse.requests;
const { Status } = dimse.constants;

export const STORAGE_COMMITMENT_PUSH_SOP_CLASS = '1.2.840.10008.1.20.1';
/** The well-known SOP instance of the push model. */
export const STORAGE_COMMITMENT_PUSH_SOP_INSTANCE = '1.2.840.10008.1.20.1.1';
const REQUEST_STORAGE_COMMITMENT = 1;
const EVENT_ALL_COMMITTED = 1;
const EVENT_SOME_FAILED = 2;

/** Failure Reason (0008,1197) values, PS3.3 C.14.1.1. */
export const FailureReason = {
  ProcessingFailure: 0x0110,
  NoSuchObjectInstance: 0x0112,
  ClassInstanceConflict: 0x0119,
} as const;

export interface SopReference {
  sopClassUid: string;
  sopInstanceUid: string;
}

export interface CommitmentRequest {
  transactionUid: string;
  referenced: SopReference[];
}

export interface CommitmentOutcome {
  transactionUid: string;
  committed: SopReference[];
  failed: (SopReference & { reason: number })[];
}

/** Reads Transaction UID and Referenced SOP Sequence from the N-ACTION dataset (naturalised). */
export function parseCommitmentRequest(elements: Record<string, unknown> | undefined): CommitmentRequest | { error: string } {
  if (!elements) return { error: 'N-ACTION without a dataset' };
  const tx = typeof elements.TransactionUID === 'string' ? elements.TransactionUID.trim() : '';
  if (!tx) return { error: 'N-ACTION dataset has no Transaction UID (0008,1195)' };
  const seq = elements.ReferencedSOPSequence;
  const items = Array.isArray(seq) ? seq : seq && typeof seq === 'object' ? [seq] : [];
  if (items.length === 0) return { error: 'N-ACTION dataset has no Referenced SOP Sequence (0008,1199) items' };
  const referenced: SopReference[] = [];
  for (const item of items as Record<string, unknown>[]) {
    const sopClassUid = String(item?.ReferencedSOPClassUID ?? '').trim();
    const sopInstanceUid = String(item?.ReferencedSOPInstanceUID ?? '').trim();
    if (!sopClassUid || !sopInstanceUid) return { error: 'a Referenced SOP Sequence item lacks its SOP Class or Instance UID' };
    referenced.push({ sopClassUid, sopInstanceUid });
  }
  return { transactionUid: tx, referenced };
}

/** Pure: which references we hold (same SOP class), which we do not and why. */
export function checkCommitment(req: CommitmentRequest, lookup: (sopInstanceUid: string) => { sopClassUid: string } | undefined): CommitmentOutcome {
  const out: CommitmentOutcome = { transactionUid: req.transactionUid, committed: [], failed: [] };
  for (const r of req.referenced) {
    const held = lookup(r.sopInstanceUid);
    if (!held) out.failed.push({ ...r, reason: FailureReason.NoSuchObjectInstance });
    else if (held.sopClassUid !== r.sopClassUid) out.failed.push({ ...r, reason: FailureReason.ClassInstanceConflict });
    else out.committed.push(r);
  }
  return out;
}

/** The N-EVENT-REPORT-RQ that reports the outcome. */
export function commitmentEventReport(o: CommitmentOutcome, transferSyntaxUid: string): dimse.requests.NEventReportRequest {
  const rq = new NEventReportRequest(STORAGE_COMMITMENT_PUSH_SOP_CLASS, STORAGE_COMMITMENT_PUSH_SOP_INSTANCE, o.failed.length > 0 ? EVENT_SOME_FAILED : EVENT_ALL_COMMITTED);
  const ref = (r: SopReference) => ({ ReferencedSOPClassUID: r.sopClassUid, ReferencedSOPInstanceUID: r.sopInstanceUid });
  const elements: Record<string, unknown> = { TransactionUID: o.transactionUid };
  if (o.committed.length > 0) elements.ReferencedSOPSequence = o.committed.map(ref);
  if (o.failed.length > 0) elements.FailedSOPSequence = o.failed.map((f) => ({ ...ref(f), FailureReason: f.reason }));
  rq.setDataset(new Dataset(elements, transferSyntaxUid));
  return rq;
}

/** What the node does with a commitment (record it, complete studies, timeline). */
export interface CommitmentDeps {
  lookup: (sopInstanceUid: string) => { sopClassUid: string; studyUid: string } | undefined;
  onCommitted: (o: CommitmentOutcome & { studies: string[]; callingAet: string }) => void;
}

/** The part of our Scp the handler needs: it answers, then sends the report on the same association. */
interface ScpLike {
  sendRequests(requests: dimse.requests.Request | dimse.requests.Request[]): void;
}

/**
 * Handles one N-ACTION-RQ. The N-ACTION-RSP (Success, or Processing Failure for a malformed
 * request) goes out first; the N-EVENT-REPORT-RQ follows on the same association.
 */
export function handleCommitmentRequest(
  scp: ScpLike,
  request: dimse.requests.NActionRequest,
  callback: (r: dimse.responses.NActionResponse) => void,
  ctx: { deps: CommitmentDeps; log: Logger; callingAet: string; transferSyntaxUid: string },
): void {
  const rsp = NActionResponse.fromRequest(request);
  if (request.getActionTypeId() !== REQUEST_STORAGE_COMMITMENT) {
    rsp.setStatus(0x0123); // No such action type
    ctx.log.warn({ actionType: request.getActionTypeId() }, 'storage commitment N-ACTION with an unknown action type refused');
    return callback(rsp);
  }
  const parsed = parseCommitmentRequest(request.getDataset()?.getElements());
  if ('error' in parsed) {
    rsp.setStatus(Status.ProcessingFailure);
    rsp.setErrorComment(parsed.error.slice(0, 64));
    ctx.log.warn({ reason: parsed.error }, 'storage commitment request refused');
    return callback(rsp);
  }
  const outcome = checkCommitment(parsed, ctx.deps.lookup);
  const studies = [...new Set(outcome.committed.map((r) => ctx.deps.lookup(r.sopInstanceUid)?.studyUid).filter((s): s is string => !!s))];
  rsp.setStatus(Status.Success);
  callback(rsp);
  ctx.log.info({ transactionUid: outcome.transactionUid, committed: outcome.committed.length, failed: outcome.failed.length, studies }, 'storage commitment requested');
  try {
    ctx.deps.onCommitted({ ...outcome, studies, callingAet: ctx.callingAet });
  } catch (e) {
    ctx.log.error({ err: (e as Error).message, transactionUid: outcome.transactionUid }, 'storage commitment could not be recorded');
  }
  // After the response is on the wire: the report is a new DIMSE message from us.
  setImmediate(() => {
    try {
      scp.sendRequests(commitmentEventReport(outcome, ctx.transferSyntaxUid));
    } catch (e) {
      ctx.log.warn({ err: (e as Error).message, transactionUid: outcome.transactionUid }, 'storage commitment report not sent on this association');
    }
  });
}
