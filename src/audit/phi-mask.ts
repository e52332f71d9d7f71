import fs from 'node:fs';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';

/**
 * Patient ids replaced by a salted hash: the same patient gets the same token in the audit trail
 * and in the ordinary logs (so an auditor can follow one patient across both), but the token
 * cannot be turned back into the id without the salt, which stays on the node (mode 0600).
 */
export type IdMasker = (patientId: string) => string;

/** `pid-` and the first 16 hex digits (64 bits) of SHA-256(salt ‖ 0x00 ‖ id). */
export function patientIdMasker(salt: string): IdMasker {
  return (id) => `pid-${createHash('sha256').update(salt).update('\0').update(id).digest('hex').slice(0, 16)}`;
}

/**
 * The node's salt: read from `file`, or created once (32 random bytes, hex) with mode 0600. Created
 * with O_EXCL so two processes starting at once agree on one salt.
 */
export function loadOrCreateSalt(file: string): string {
  try {
    const text = fs.readFileSync(file, 'utf8').trim();
    if (/^[0-9a-f]{32,}$/.test(text)) return text;
    throw new Error(`${file} does not hold a hex salt; restore it from a backup (ids masked with another salt will not match), or remove it to start a new one`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const salt = randomBytes(32).toString('hex');
  try {
    const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    try {
      fs.writeSync(fd, `${salt}\n`);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    return salt;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateSalt(file);
    throw e;
  }
}

/** Where the node keeps its salt. */
export function saltFile(dataDir: string): string {
  return path.join(path.resolve(dataDir), 'audit', 'salt');
}

const ID_KEY = /^(patient_?id|PatientID)$/i;
const NAME_KEY = /^(patient_?name|PatientName)$/i;

export type PhiMode = 'full' | 'masked' | 'none';

/** A key that names a patient id or name (handled by key, not by searching its text). */
export function isPhiKey(key: string): boolean {
  return ID_KEY.test(key) || NAME_KEY.test(key);
}

/**
 * `obj` with patient ids masked ('masked'), removed ('none') or kept ('full'), and patient names
 * always removed, at any depth up to 5 (log objects are shallow). Returns `obj` itself when nothing
 * changes, so the common case allocates nothing.
 */
export function scrubPhi<T>(obj: T, mode: PhiMode, mask: IdMasker | undefined, depth = 0): T {
  if (depth > 5 || typeof obj !== 'object' || obj === null || Buffer.isBuffer(obj) || obj instanceof Error) return obj;
  if (Array.isArray(obj)) {
    let out: unknown[] | undefined;
    obj.forEach((v, i) => {
      const s = scrubPhi(v, mode, mask, depth + 1);
      if (s !== v) (out ??= [...obj])[i] = s;
    });
    return (out ?? obj) as T;
  }
  if (Object.getPrototypeOf(obj) !== Object.prototype && Object.getPrototypeOf(obj) !== null) return obj;
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
    let next: unknown = v;
    let drop = false;
    if (NAME_KEY.test(k)) drop = true;
    else if (ID_KEY.test(k) && typeof v === 'string') {
      if (mode === 'none') drop = true;
      else if (mode === 'masked') next = mask ? mask(v) : '[masked]';
    } else next = scrubPhi(v, mode, mask, depth + 1);
    if (drop || next !== v) {
      out ??= { ...(obj as Record<string, unknown>) };
      if (drop) delete out[k];
      else out[k] = next;
    }
  }
  return (out ?? obj) as T;
}

/** Patient ids found at the top of a log object or child bindings (to scrub them from messages too). */
export function patientIdsIn(obj: unknown): string[] {
  if (typeof obj !== 'object' || obj === null) return [];
  const ids: string[] = [];
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) if (ID_KEY.test(k) && typeof v === 'string' && v.length > 0) ids.push(v);
  return ids;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `text` with each id (as a whole token, not inside a longer word) replaced by its masked form. */
export function scrubIdsInText(text: string, ids: Iterable<string>, replacement: (id: string) => string): string {
  let out = text;
  for (const id of ids) {
    if (id.length === 0 || !out.includes(id)) continue;
    out = out.replace(new RegExp(`(?<![A-Za-z0-9])${escapeRe(id)}(?![A-Za-z0-9])`, 'g'), () => replacement(id));
  }
  return out;
}
