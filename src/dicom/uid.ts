import { createHash, randomBytes } from 'node:crypto';

/** A DICOM UID (PS3.5 §9.1): digits and dots, at most 64 characters. Branded so that a study UID
 *  cannot be passed where a file name or patient id is expected without validation. */
export type Uid = string & { readonly __brand: 'Uid' };

const UID_RE = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/;

/** Lenient check used at the network edge: real senders emit leading zeros in components, so we only
 *  insist on the character set and length, which is what makes a UID safe as a path component. */
const UID_SAFE_RE = /^[0-9]+(\.[0-9]+)*$/;

export function isUid(value: string): value is Uid {
  return value.length > 0 && value.length <= 64 && UID_SAFE_RE.test(value);
}

export function isStrictUid(value: string): value is Uid {
  return value.length > 0 && value.length <= 64 && UID_RE.test(value);
}

/** Trims the padding a UID may carry on the wire (trailing NUL or space) and validates it. */
export function parseUid(raw: string | undefined | null): Uid | undefined {
  if (raw == null) return undefined;
  const trimmed = raw.replace(/[\0 ]+$/g, '').trim();
  return isUid(trimmed) ? trimmed : undefined;
}

/** Our implementation root: the UUID-derived form "2.25.<uuid as decimal>" (PS3.5 §B.2) needs no registration. */
export function newUid(): Uid {
  const hex = randomBytes(16).toString('hex');
  return `2.25.${BigInt('0x' + hex).toString(10)}` as Uid;
}

export const IMPLEMENTATION_CLASS_UID = '2.25.277112440363234839813605493556274029971' as Uid;
export const IMPLEMENTATION_VERSION_NAME = 'RTPIPELINE_010';

/** 2.25.<128-bit integer> (PS3.5 B.2) from a hash of `parts`, with UUID version-8 / variant bits
 *  set: the same parts give the same UID (deterministic outputs, re-runs after a crash). */
export function contentUid(...parts: (string | Buffer)[]): Uid {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  const bytes = h.digest().subarray(0, 16);
  bytes[6] = (bytes[6] & 0x0f) | 0x80;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  return `2.25.${BigInt('0x' + bytes.toString('hex')).toString(10)}` as Uid;
}
