import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './uid.js';

/** Encodes one explicit VR little endian element with a 2-byte length (UI, AE, SH) or OB. */
function element(group: number, elem: number, vr: 'UI' | 'AE' | 'SH' | 'OB' | 'UL', value: Buffer): Buffer {
  if (vr === 'OB') {
    const h = Buffer.alloc(12);
    h.writeUInt16LE(group, 0);
    h.writeUInt16LE(elem, 2);
    h.write('OB', 4, 'latin1');
    h.writeUInt32LE(value.length, 8);
    return Buffer.concat([h, value]);
  }
  const h = Buffer.alloc(8);
  h.writeUInt16LE(group, 0);
  h.writeUInt16LE(elem, 2);
  h.write(vr, 4, 'latin1');
  h.writeUInt16LE(value.length, 6);
  return Buffer.concat([h, value]);
}

/** Pads to even length: NUL for UI, space for text (PS3.5 §6.2). */
function padded(text: string, pad: '\0' | ' '): Buffer {
  return Buffer.from(text.length % 2 === 0 ? text : text + pad, 'latin1');
}

export interface Part10HeaderFields {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** Calling AE of the association the instance came in on (0002,0016). */
  sourceAeTitle?: string;
}

/**
 * Preamble, "DICM" and group 0002 for a dataset stored as received, so the file on disk is a
 * standard Part 10 file whose dataset bytes are exactly what the sender transmitted.
 */
export function part10Header(f: Part10HeaderFields): Buffer {
  const body = [
    element(0x0002, 0x0001, 'OB', Buffer.from([0x00, 0x01])),
    element(0x0002, 0x0002, 'UI', padded(f.sopClassUid, '\0')),
    element(0x0002, 0x0003, 'UI', padded(f.sopInstanceUid, '\0')),
    element(0x0002, 0x0010, 'UI', padded(f.transferSyntaxUid, '\0')),
    element(0x0002, 0x0012, 'UI', padded(IMPLEMENTATION_CLASS_UID, '\0')),
    element(0x0002, 0x0013, 'SH', padded(IMPLEMENTATION_VERSION_NAME, ' ')),
  ];
  if (f.sourceAeTitle) body.push(element(0x0002, 0x0016, 'AE', padded(f.sourceAeTitle.trim().slice(0, 16), ' ')));
  const groupBody = Buffer.concat(body);
  const groupLength = Buffer.alloc(12);
  groupLength.writeUInt16LE(0x0002, 0);
  groupLength.writeUInt16LE(0x0000, 2);
  groupLength.write('UL', 4, 'latin1');
  groupLength.writeUInt16LE(4, 6);
  groupLength.writeUInt32LE(groupBody.length, 8);
  const preamble = Buffer.alloc(132);
  preamble.write('DICM', 128, 'latin1');
  return Buffer.concat([preamble, groupLength, groupBody]);
}
