/**
 * A DICOM Upper Layer fuzzer: builds valid A-ASSOCIATE-RQ, P-DATA-TF and C-STORE datasets, mutates
 * them (at random and knowing their structure), and plays each case over a raw TCP socket against a
 * real node. Seeded: the same seed gives the same cases. The reliability tests run a few hundred
 * cases; bench/soak runs ten thousand.
 */
import net from 'node:net';
import { ctSeriesInstances } from '../../src/dicom/ct-series-writer.js';
import { readPart10Meta } from '../../src/dicom/header.js';
import type { Uid } from '../../src/dicom/uid.js';

// --- seeded randomness ----------------------------------------------------------------------

/** mulberry32: small, fast and good enough to pick mutations reproducibly. */
export function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return {
    next,
    int,
    pick: <T>(xs: readonly T[]): T => xs[int(xs.length)],
    bytes: (n: number) => Buffer.from(Array.from({ length: n }, () => int(256))),
    chance: (p: number) => next() < p,
  };
}
export type Rng = ReturnType<typeof rng>;

// --- PDU building (PS3.8 §9.3) --------------------------------------------------------------

const APP_CONTEXT = '1.2.840.10008.3.1.1.1';
export const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
export const VERIFICATION = '1.2.840.10008.1.1';
export const EXPLICIT_LE = '1.2.840.10008.1.2.1';
export const IMPLICIT_LE = '1.2.840.10008.1.2';

const u16 = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(n & 0xffff); return b; };
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n >>> 0); return b; };
const ae = (s: string | Buffer) => { const b = Buffer.alloc(16, 0x20); (typeof s === 'string' ? Buffer.from(s, 'latin1') : s).copy(b, 0, 0, 16); return b; };
/** A variable item: type, reserved, 16-bit length, value. */
const item = (type: number, value: Buffer, length = value.length) => Buffer.concat([Buffer.from([type, 0]), u16(length), value]);
/** A PDU: type, reserved, 32-bit length, body. */
export const pdu = (type: number, body: Buffer, length = body.length) => Buffer.concat([Buffer.from([type, 0]), u32(length), body]);

export interface PresentationContextSpec { id: number; abstract: string; transfers: string[] }

export interface AssociateSpec {
  called: string | Buffer;
  calling: string | Buffer;
  contexts: PresentationContextSpec[];
  maxPdu: number;
  protocolVersion?: number;
}

export function presentationContextItem(pc: PresentationContextSpec): Buffer {
  const subs = [item(0x30, Buffer.from(pc.abstract)), ...pc.transfers.map((t) => item(0x40, Buffer.from(t)))];
  return item(0x20, Buffer.concat([Buffer.from([pc.id, 0, 0, 0]), ...subs]));
}

export function userInfoItem(maxPdu: number): Buffer {
  return item(0x50, Buffer.concat([item(0x51, u32(maxPdu)), item(0x52, Buffer.from('1.2.826.0.1.3680043.10.1.99')), item(0x55, Buffer.from('RTPFUZZ'))]));
}

/** The items of an A-ASSOCIATE-RQ, kept apart so structure-aware mutations can work on them. */
export function associateItems(s: AssociateSpec): Buffer[] {
  return [item(0x10, Buffer.from(APP_CONTEXT)), ...s.contexts.map(presentationContextItem), userInfoItem(s.maxPdu)];
}

export function associateRq(s: AssociateSpec, items = associateItems(s)): Buffer {
  const fixed = Buffer.concat([u16(s.protocolVersion ?? 1), Buffer.alloc(2), ae(s.called), ae(s.calling), Buffer.alloc(32)]);
  return pdu(0x01, Buffer.concat([fixed, ...items]));
}

/** One PDV: length, presentation context id, message control header, fragment. */
export function pdv(pcId: number, mch: number, data: Buffer, length = data.length + 2): Buffer {
  return Buffer.concat([u32(length), Buffer.from([pcId, mch]), data]);
}
export const pData = (...pdvs: Buffer[]) => pdu(0x04, Buffer.concat(pdvs));
export const releaseRq = () => pdu(0x05, Buffer.alloc(4));

/** An implicit VR little endian element (commands are always implicit VR LE). */
function implicit(group: number, element: number, value: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16LE(group, 0);
  h.writeUInt16LE(element, 2);
  h.writeUInt32LE(value.length, 4);
  return Buffer.concat([h, value]);
}
const uiValue = (uid: string) => { const b = Buffer.from(uid, 'latin1'); return b.length % 2 ? Buffer.concat([b, Buffer.from([0])]) : b; };
const usValue = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b; };

function command(elements: Buffer[]): Buffer {
  const body = Buffer.concat(elements);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(body.length);
  return Buffer.concat([implicit(0, 0, len), body]);
}

export function cStoreRq(messageId: number, sopClass: string, sopInstance: string): Buffer {
  return command([
    implicit(0, 0x0002, uiValue(sopClass)),
    implicit(0, 0x0100, usValue(0x0001)),
    implicit(0, 0x0110, usValue(messageId)),
    implicit(0, 0x0700, usValue(0)),
    implicit(0, 0x0800, usValue(0x0000)),
    implicit(0, 0x1000, uiValue(sopInstance)),
  ]);
}

export function cEchoRq(messageId: number): Buffer {
  return command([implicit(0, 0x0002, uiValue(VERIFICATION)), implicit(0, 0x0100, usValue(0x0030)), implicit(0, 0x0110, usValue(messageId)), implicit(0, 0x0800, usValue(0x0101))]);
}

/** Splits bytes into P-DATA-TF PDUs of at most `maxFragment` bytes each, the last one flagged. */
export function fragments(pcId: number, isCommand: boolean, data: Buffer, maxFragment: number): Buffer[] {
  const out: Buffer[] = [];
  for (let pos = 0; pos < data.length || out.length === 0; pos += maxFragment) {
    const last = pos + maxFragment >= data.length;
    out.push(pData(pdv(pcId, (isCommand ? 1 : 0) | (last ? 2 : 0), data.subarray(pos, pos + maxFragment))));
  }
  return out;
}

// --- a template dataset ---------------------------------------------------------------------

/** A tiny CT (16x16) as an explicit VR LE dataset (no file meta), with fixed-length UIDs to swap. */
export interface DatasetTemplate { dataset: Buffer; sopInstanceUid: string; studyInstanceUid: string }

export function datasetTemplate(studyInstanceUid: string): DatasetTemplate {
  const sopInstanceUid = uidOfLength(1, 60);
  const inst = ctSeriesInstances({
    patientId: 'FUZZ',
    patientName: 'Fuzz^Case',
    studyInstanceUid: studyInstanceUid as Uid,
    seriesInstanceUid: uidOfLength(2, 60) as Uid,
    phantom: { rows: 16, columns: 16, slices: 1, pixelSpacingMm: [4, 4], sliceThicknessMm: 5 },
  }).next().value!;
  const bytes = inst.bytes;
  const meta = readPart10Meta(bytes);
  const dataset = Buffer.from(bytes.subarray(meta.datasetOffset));
  const own = inst.sopInstanceUid;
  // Put our fixed-length UID in place of the writer's, so each case can get a fresh one in place.
  const at = dataset.indexOf(Buffer.from(own, 'latin1'));
  if (at < 0) throw new Error('template: SOP Instance UID not found in the dataset');
  return { dataset: replaceUid(dataset, own, sopInstanceUid), sopInstanceUid, studyInstanceUid };
}

function replaceUid(dataset: Buffer, from: string, to: string): Buffer {
  const at = dataset.indexOf(Buffer.from(from, 'latin1'));
  // The element's length field sits just before the value (explicit VR, short form: 2 bytes).
  const padded = to.length % 2 ? to + '\0' : to;
  const oldPadded = from.length % 2 ? from.length + 1 : from.length;
  const out = Buffer.concat([dataset.subarray(0, at - 2), usValueLE(padded.length), Buffer.from(padded, 'latin1'), dataset.subarray(at + oldPadded)]);
  return out;
}
const usValueLE = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b; };

let uidCounter = 0;
/** A UID of exactly `length` characters under 2.25, unique in this process. */
export function uidOfLength(salt: number, length: number): string {
  const head = `2.25.${process.pid}${salt}${Date.now()}${++uidCounter}`;
  return (head + '1'.repeat(length)).slice(0, length).replace(/\.0(\d)/g, '.1$1');
}

/** The template with a fresh SOP Instance UID of the same length. */
export function freshDataset(t: DatasetTemplate, r: Rng): { dataset: Buffer; sopInstanceUid: string } {
  const uid = t.sopInstanceUid.slice(0, 20) + Array.from({ length: t.sopInstanceUid.length - 20 }, () => String(1 + r.int(9))).join('');
  const dataset = Buffer.from(t.dataset);
  const at = dataset.indexOf(Buffer.from(t.sopInstanceUid, 'latin1'));
  dataset.write(uid, at, 'latin1');
  return { dataset, sopInstanceUid: uid };
}

// --- mutations ------------------------------------------------------------------------------

/** Generic byte-level mutations: flips, overwrites, inserts, deletes, truncation, extension. */
export function mutateBytes(b: Buffer, r: Rng, n = 1 + r.int(4)): Buffer {
  let out = Buffer.from(b);
  for (let k = 0; k < n; k++) {
    const pos = out.length ? r.int(out.length) : 0;
    switch (r.int(6)) {
      case 0: if (out.length) out[pos] ^= 1 << r.int(8); break;
      case 1: if (out.length) out[pos] = r.pick([0x00, 0xff, 0x7f, 0x80, r.int(256)]); break;
      case 2: out = Buffer.concat([out.subarray(0, pos), r.bytes(1 + r.int(16)), out.subarray(pos)]); break;
      case 3: out = Buffer.concat([out.subarray(0, pos), out.subarray(pos + 1 + r.int(16))]); break;
      case 4: out = out.subarray(0, pos); break;
      case 5: out = Buffer.concat([out, r.bytes(1 + r.int(64))]); break;
    }
  }
  return out;
}

const INTERESTING_U32 = [0, 1, 2, 3, 4, 0x7f, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

function aeTitleMutation(r: Rng): string | Buffer {
  return r.pick<string | Buffer>(['', ' '.repeat(16), 'RTPIPELINE\0\0\0', 'A'.repeat(16), Buffer.from([0xff, 0xfe, 0x00, 0x0a]), r.bytes(16), 'rtpipeline', '\\RTP*?', 'RTPIPELINE']);
}

/** A mutated A-ASSOCIATE-RQ (structure-aware half the time, byte-level otherwise). */
export function mutatedAssociate(base: AssociateSpec, r: Rng): Buffer {
  const spec: AssociateSpec = { ...base, contexts: base.contexts.map((c) => ({ ...c, transfers: [...c.transfers] })) };
  if (r.chance(0.3)) spec.called = aeTitleMutation(r);
  if (r.chance(0.3)) spec.calling = aeTitleMutation(r);
  if (r.chance(0.3)) spec.maxPdu = r.pick(INTERESTING_U32);
  if (r.chance(0.2)) spec.protocolVersion = r.int(0x10000);
  if (r.chance(0.3)) {
    switch (r.int(6)) {
      case 0: spec.contexts = []; break;
      case 1: spec.contexts = Array.from({ length: 1 + r.int(200) }, (_, i) => ({ id: (i * 2 + 1) & 0xff, abstract: r.pick([CT_IMAGE_STORAGE, VERIFICATION, '1.2.3', '']), transfers: [EXPLICIT_LE] })); break;
      case 2: spec.contexts[0].transfers = []; break;
      case 3: spec.contexts[0].transfers = Array.from({ length: 1 + r.int(100) }, () => r.pick([EXPLICIT_LE, IMPLICIT_LE, '1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1.99', 'x'.repeat(64)])); break;
      case 4: spec.contexts[0].id = r.pick([0, 2, 255]); break;
      case 5: spec.contexts[0].abstract = 'A'.repeat(r.pick([0, 1, 64, 65, 300])); break;
    }
  }
  const items = associateItems(spec);
  if (r.chance(0.3)) {
    // Item-level damage: wrong item lengths, unknown item types, items dropped or duplicated.
    const i = r.int(items.length);
    switch (r.int(4)) {
      case 0: items[i].writeUInt16BE(r.pick([0, 1, 0xffff, items[i].length + r.int(50)]), 2); break;
      case 1: items[i][0] = r.int(256); break;
      case 2: items.splice(i, 1); break;
      case 3: items.push(...Array.from({ length: 1 + r.int(3) }, () => items[i])); break;
    }
  }
  let out = associateRq(spec, items);
  if (r.chance(0.2)) out.writeUInt32BE(r.pick(INTERESTING_U32.filter((v) => v < 1024 * 1024 * 2)), 2); // PDU length lies
  if (r.chance(0.3)) out = mutateBytes(out, r);
  return out;
}

/** Valid command + dataset of a C-STORE, then structure-aware damage to the dataset. */
export function mutatedDataset(dataset: Buffer, r: Rng): { bytes: Buffer; how: string } {
  const d = Buffer.from(dataset);
  const elementStarts: number[] = [];
  // Walk the top level to know where elements start (the template is explicit VR LE, no sequences at top level we rely on).
  for (let pos = 0; pos + 8 <= d.length; ) {
    elementStarts.push(pos);
    const vr = d.toString('latin1', pos + 4, pos + 6);
    const long = ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN', 'UC', 'UR', 'OD', 'OL', 'OV', 'SV', 'UV'].includes(vr);
    const len = long ? d.readUInt32LE(pos + 8) : d.readUInt16LE(pos + 6);
    pos += (long ? 12 : 8) + (len === 0xffffffff ? 0 : len);
  }
  const at = r.pick(elementStarts);
  switch (r.int(8)) {
    case 0: d.writeUInt16LE(r.int(0x10000), at); d.writeUInt16LE(r.int(0x10000), at + 2); return { bytes: d, how: 'tag' };
    case 1: d.write(r.pick(['ZZ', '\0\0', 'SQ', 'OB', 'UN', 'xx']), at + 4, 'latin1'); return { bytes: d, how: 'vr' };
    case 2: {
      const vr = d.toString('latin1', at + 4, at + 6);
      if (['OB', 'OW', 'SQ', 'UN', 'UT'].includes(vr)) d.writeUInt32LE(r.pick(INTERESTING_U32), at + 8);
      else d.writeUInt16LE(r.pick([0, 1, 0xffff, 0xfffe, 3]), at + 6);
      return { bytes: d, how: 'length' };
    }
    case 3: {
      // An undefined-length sequence that is never closed, or closed wrongly.
      const seq = Buffer.concat([Buffer.from([0x08, 0x00, 0x15, 0x11]), Buffer.from('SQ\0\0'), u32le(0xffffffff), Buffer.from([0xfe, 0xff, 0x00, 0xe0]), u32le(0xffffffff), r.bytes(r.int(40))]);
      return { bytes: Buffer.concat([d.subarray(0, at), seq, r.chance(0.5) ? d.subarray(at) : Buffer.alloc(0)]), how: 'undefined-length sequence' };
    }
    case 4: return { bytes: d.subarray(0, r.int(d.length)), how: 'truncated' };
    case 5: return { bytes: Buffer.concat([d, r.bytes(1 + r.int(300))]), how: 'trailing garbage' };
    case 6: return { bytes: mutateBytes(d, r, 1 + r.int(8)), how: 'bytes' };
    default: {
      // Deeply nested undefined-length sequences (stack exhaustion in a recursive reader).
      const depth = r.pick([40, 500, 5000]);
      const open = Buffer.concat([Buffer.from([0x08, 0x00, 0x15, 0x11]), Buffer.from('SQ\0\0'), u32le(0xffffffff), Buffer.from([0xfe, 0xff, 0x00, 0xe0]), u32le(0xffffffff)]);
      return { bytes: Buffer.concat([d.subarray(0, at), ...Array.from({ length: depth }, () => open)]), how: 'nested sequences' };
    }
  }
}
const u32le = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n >>> 0); return b; };

// --- playing cases --------------------------------------------------------------------------

export type FuzzKind = 'random' | 'associate' | 'pdata' | 'dataset' | 'valid';
export const FUZZ_KINDS: readonly FuzzKind[] = ['random', 'associate', 'pdata', 'dataset', 'valid'];

export interface CaseResult {
  kind: FuzzKind;
  /** What the node did: rejected/accepted the association, answered a C-STORE status, or closed/went silent. */
  outcome: string;
  storeStatus?: number;
  sopInstanceUid?: string;
}

interface Conversation {
  socket: net.Socket;
  received: Buffer;
  closed: boolean;
  waitFor(pred: (b: Buffer) => boolean, ms: number): Promise<boolean>;
  send(b: Buffer): void;
}

function connect(port: number): Promise<Conversation> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const conv: Conversation = {
      socket,
      received: Buffer.alloc(0),
      closed: false,
      async waitFor(pred, ms) {
        const deadline = Date.now() + ms;
        while (!pred(conv.received) && !conv.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
        return pred(conv.received);
      },
      send(b) {
        if (!conv.closed) socket.write(b);
      },
    };
    socket.on('data', (d) => (conv.received = Buffer.concat([conv.received, d])));
    socket.on('close', () => (conv.closed = true));
    socket.on('error', () => (conv.closed = true));
    socket.once('connect', () => resolve(conv));
    socket.once('error', reject);
  });
}

/** The PDU types in a byte stream from the node (stops at a partial PDU). */
export function pduTypes(b: Buffer): number[] {
  const out: number[] = [];
  for (let pos = 0; pos + 6 <= b.length; ) {
    out.push(b[pos]);
    pos += 6 + b.readUInt32BE(pos + 2);
  }
  return out;
}

/** The status of the first C-STORE-RSP / C-ECHO-RSP in the node's P-DATA, if complete. */
export function responseStatus(b: Buffer): number | undefined {
  for (let pos = 0; pos + 6 <= b.length; ) {
    const len = b.readUInt32BE(pos + 2);
    if (b[pos] === 0x04 && pos + 6 + len <= b.length) {
      const body = b.subarray(pos + 6, pos + 6 + len);
      const data = body.subarray(6); // one PDV: length(4) pc(1) mch(1)
      for (let p = 0; p + 8 <= data.length; ) {
        const group = data.readUInt16LE(p);
        const element = data.readUInt16LE(p + 2);
        const l = data.readUInt32LE(p + 4);
        if (group === 0 && element === 0x0900) return data.readUInt16LE(p + 8);
        p += 8 + l;
      }
    }
    pos += 6 + len;
  }
  return undefined;
}

export interface FuzzTarget { port: number; calledAet: string; maxPdu: number }

/** Plays one seeded case and reports what the node did; never throws for anything the node does. */
export async function playCase(target: FuzzTarget, template: DatasetTemplate, seed: number, caseTimeoutMs = 4000): Promise<CaseResult> {
  const r = rng(seed);
  const kind = FUZZ_KINDS[seed % FUZZ_KINDS.length];
  const spec: AssociateSpec = {
    called: target.calledAet,
    calling: 'FUZZER',
    maxPdu: 16384,
    contexts: [{ id: 1, abstract: CT_IMAGE_STORAGE, transfers: [EXPLICIT_LE] }, { id: 3, abstract: VERIFICATION, transfers: [IMPLICIT_LE] }],
  };
  let conv: Conversation;
  try {
    conv = await connect(target.port);
  } catch (e) {
    return { kind, outcome: `connect failed: ${(e as Error).message}` };
  }
  const finish = (outcome: string, extra: Partial<CaseResult> = {}): CaseResult => {
    conv.socket.destroy();
    return { kind, outcome, ...extra };
  };
  try {
    if (kind === 'random') {
      conv.send(r.chance(0.5) ? r.bytes(1 + r.int(2000)) : mutateBytes(pdu(r.int(9), r.bytes(r.int(100))), r));
      await conv.waitFor((b) => b.length > 0, 300);
      return finish(conv.closed ? 'closed' : conv.received.length ? `answered ${pduTypes(conv.received).join(',')}` : 'silent');
    }
    if (kind === 'associate') {
      conv.send(mutatedAssociate(spec, r));
      await conv.waitFor((b) => pduTypes(b).length > 0, 1500);
      const types = pduTypes(conv.received);
      if (types[0] === 0x02) {
        conv.send(releaseRq());
        await conv.waitFor((b) => pduTypes(b).includes(0x06), 1000);
        return finish('accepted');
      }
      return finish(types[0] === 0x03 ? 'rejected' : conv.closed ? 'closed' : 'silent');
    }
    // The other kinds start with a valid association.
    conv.send(associateRq(spec));
    if (!(await conv.waitFor((b) => pduTypes(b)[0] === 0x02, 3000))) return finish(`association not accepted (${pduTypes(conv.received).join(',') || 'nothing'})`);
    conv.received = Buffer.alloc(0);
    const { dataset, sopInstanceUid } = freshDataset(template, r);
    const cmd = cStoreRq(1 + r.int(1000), CT_IMAGE_STORAGE, sopInstanceUid);
    if (kind === 'pdata') {
      const frags = [...fragments(1, true, cmd, 64 + r.int(200)), ...fragments(1, false, dataset, 256 + r.int(4000))];
      let stream: Buffer = Buffer.concat(frags);
      switch (r.int(7)) {
        case 0: { // a PDV length that lies
          const i = r.int(frags.length);
          frags[i].writeUInt32BE(r.pick(INTERESTING_U32), 6);
          stream = Buffer.concat(frags);
          break;
        }
        case 1: { // message control header bits at random
          const i = r.int(frags.length);
          frags[i][11] = r.int(256);
          stream = Buffer.concat(frags);
          break;
        }
        case 2: stream = Buffer.concat([...frags.slice(2), ...frags.slice(0, 2)]); break; // dataset before command
        case 3: { const i = r.int(frags.length); frags[i][10] = r.pick([0, 2, 5, 255]); stream = Buffer.concat(frags); break; } // unknown context id
        case 4: stream = stream.subarray(0, r.int(stream.length)); break; // cut mid-stream
        case 5: stream = Buffer.concat([stream.subarray(0, r.int(stream.length)), pdu(0x04, Buffer.alloc(0), r.pick([0x7fffffff, target.maxPdu + 7, 0xffffffff]))]); break; // oversized announce
        default: stream = mutateBytes(stream, r, 1 + r.int(6));
      }
      conv.send(stream);
      await conv.waitFor((b) => responseStatus(b) !== undefined || pduTypes(b).includes(0x07), 1500);
      const status = responseStatus(conv.received);
      if (status !== undefined) {
        conv.send(releaseRq());
        await conv.waitFor((b) => pduTypes(b).includes(0x06), 1000);
        return finish(`status 0x${status.toString(16)}`, { storeStatus: status, sopInstanceUid });
      }
      return finish(conv.closed ? 'closed' : pduTypes(conv.received).includes(0x07) ? 'aborted' : 'silent');
    }
    const payload = kind === 'dataset' ? mutatedDataset(dataset, r).bytes : dataset;
    for (const f of [...fragments(1, true, cmd, 16000), ...fragments(1, false, payload, 1000 + r.int(15000))]) conv.send(f);
    await conv.waitFor((b) => responseStatus(b) !== undefined || pduTypes(b).includes(0x07), caseTimeoutMs);
    const status = responseStatus(conv.received);
    if (status === undefined) return finish(conv.closed ? 'closed' : 'no response');
    conv.send(releaseRq());
    await conv.waitFor((b) => pduTypes(b).includes(0x06), 1000);
    return finish(`status 0x${status.toString(16)}`, { storeStatus: status, sopInstanceUid });
  } catch (e) {
    return finish(`client error: ${(e as Error).message}`);
  }
}

export interface FuzzSummary {
  cases: number;
  ms: number;
  outcomes: Record<string, number>;
  /** SOP Instance UIDs the node answered Success for. */
  acknowledged: string[];
}

/** Runs `cases` seeded cases, `concurrency` sockets at a time. */
export async function runFuzz(target: FuzzTarget, template: DatasetTemplate, o: { cases: number; seed: number; concurrency: number; onProgress?: (done: number) => void }): Promise<FuzzSummary> {
  const t0 = Date.now();
  const outcomes: Record<string, number> = {};
  const acknowledged: string[] = [];
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < o.cases) {
      const i = next++;
      const res = await playCase(target, template, o.seed * 1_000_003 + i);
      const key = `${res.kind}: ${res.outcome}`;
      outcomes[key] = (outcomes[key] ?? 0) + 1;
      if (res.storeStatus === 0 && res.sopInstanceUid) acknowledged.push(res.sopInstanceUid);
      if (++done % 500 === 0) o.onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  return { cases: o.cases, ms: Date.now() - t0, outcomes, acknowledged };
}
