/**
 * Checks, as the bytes stream in, that a dataset is well formed down to its last byte: every element
 * header is complete, every explicit VR is a real VR, every value fits, every sequence and item is
 * closed, and the dataset ends exactly at an element boundary. Values are skipped, never buffered,
 * so the check costs a few comparisons per element whatever the pixel data's size.
 *
 * Why: the node identifies an instance from its first bytes only. Without this, a C-STORE cut short
 * inside the pixel data, or with a length field that runs past the end, was acknowledged and kept:
 * a file no reader can open, sent on to the pipeline and the PACS.
 */

const ITEM = 0xfffee000;
const ITEM_DELIM = 0xfffee00d;
const SEQ_DELIM = 0xfffee0dd;
const UNDEFINED = 0xffffffff;
const PIXEL_DATA = 0x7fe00010;
const MAX_DEPTH = 64;

const VRS = new Set('AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV'.split(' '));
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/** An open sequence, item or run of encapsulated fragments; `end` is undefined for undefined length. */
interface Frame {
  kind: 'sequence' | 'item' | 'fragments';
  end: number | undefined;
  explicit: boolean;
  tag: number;
}

function hex(tag: number): string {
  return `(${(tag >>> 16).toString(16).padStart(4, '0')},${(tag & 0xffff).toString(16).padStart(4, '0')})`.toUpperCase();
}

export class DatasetStructure {
  private pos = 0;
  private skip = 0;
  private skipping: number | undefined;
  private readonly header = Buffer.alloc(12);
  private headerFill = 0;
  private readonly stack: Frame[] = [];
  private error: string | undefined;

  constructor(private readonly explicit: boolean) {}

  /** The first structural fault seen so far, if any (feeding stops mattering after one). */
  get fault(): string | undefined {
    return this.error;
  }

  feed(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length && !this.error) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        this.pos += n;
        i += n;
        continue;
      }
      if (!this.closeEndedFrames()) return;
      const want = this.headerLength();
      const n = Math.min(want - this.headerFill, chunk.length - i);
      chunk.copy(this.header, this.headerFill, i, i + n);
      this.headerFill += n;
      i += n;
      // An explicit VR header is 8 bytes, or 12 for the long VRs: known once the VR is in.
      if (this.headerFill === want && this.headerLength() === want) {
        this.pos += want;
        this.headerFill = 0;
        this.element(want);
      }
    }
  }

  /** Call after the last byte: the reason the dataset is malformed, or undefined when it is whole. */
  end(): string | undefined {
    if (this.error) return this.error;
    if (this.skip > 0) return `the dataset ends inside the value of ${hex(this.skipping ?? 0)}: ${this.skip} bytes missing (truncated)`;
    if (this.headerFill > 0) return `the dataset ends inside an element header at offset ${this.pos} (truncated)`;
    if (!this.closeEndedFrames()) return this.error;
    const open = this.stack[this.stack.length - 1];
    if (open) return `the dataset ends inside the ${open.kind} of ${hex(open.tag)}, which is never closed (truncated or missing delimiter)`;
    return undefined;
  }

  private fail(reason: string): false {
    this.error ??= `${reason} (at byte ${this.pos} of the dataset)`;
    return false;
  }

  /** Pops the defined-length frames that end here; an element that crossed their end is a fault. */
  private closeEndedFrames(): boolean {
    for (let top = this.stack[this.stack.length - 1]; top?.end !== undefined && this.pos >= top.end; top = this.stack[this.stack.length - 1]) {
      if (this.pos > top.end) return this.fail(`an element runs past the end of the ${top.kind} of ${hex(top.tag)}`);
      this.stack.pop();
    }
    return true;
  }

  private get top(): Frame | undefined {
    return this.stack[this.stack.length - 1];
  }

  private get explicitHere(): boolean {
    return this.top ? this.top.explicit : this.explicit;
  }

  /** Bytes of the header being read: 8, or 12 once an explicit long VR is known. */
  private headerLength(): number {
    if (this.headerFill < 6 || !this.explicitHere) return 8;
    const tag = ((this.header.readUInt16LE(0) << 16) | this.header.readUInt16LE(2)) >>> 0;
    if (tag === ITEM || tag === ITEM_DELIM || tag === SEQ_DELIM) return 8;
    return LONG_VRS.has(this.header.toString('latin1', 4, 6)) ? 12 : 8;
  }

  private push(frame: Frame): void {
    if (this.stack.length >= MAX_DEPTH) {
      this.fail(`sequences nested deeper than ${MAX_DEPTH} levels`);
      return;
    }
    this.stack.push(frame);
  }

  private element(headerBytes: number): void {
    const h = this.header;
    const tag = ((h.readUInt16LE(0) << 16) | h.readUInt16LE(2)) >>> 0;
    const top = this.top;
    const delimiterOrItem = tag === ITEM || tag === ITEM_DELIM || tag === SEQ_DELIM;
    let vr: string | null = null;
    let length: number;
    if (delimiterOrItem || !this.explicitHere) {
      length = h.readUInt32LE(4);
    } else {
      vr = h.toString('latin1', 4, 6);
      if (!VRS.has(vr)) {
        this.fail(`element ${hex(tag)} has no valid VR (bytes 0x${h.subarray(4, 6).toString('hex')})`);
        return;
      }
      length = headerBytes === 12 ? h.readUInt32LE(8) : h.readUInt16LE(6);
    }

    // Inside a sequence or a run of fragments only items and the sequence delimiter may appear.
    if (top && top.kind !== 'item') {
      if (tag === SEQ_DELIM) {
        if (top.end !== undefined) return void this.fail(`a sequence delimiter inside the defined-length sequence ${hex(top.tag)}`);
        if (length !== 0) return void this.fail('a sequence delimiter with a non-zero length');
        this.stack.pop();
        return;
      }
      if (tag !== ITEM) return void this.fail(`expected an item in the ${top.kind} of ${hex(top.tag)}, found ${hex(tag)}`);
      if (top.kind === 'fragments') {
        if (length === UNDEFINED) return void this.fail('an encapsulated pixel data fragment of undefined length');
        this.skipValue(tag, length);
        return;
      }
      this.push({ kind: 'item', end: length === UNDEFINED ? undefined : this.pos + length, explicit: top.explicit, tag: top.tag });
      return;
    }
    // In a dataset (top level or an item).
    if (tag === ITEM_DELIM) {
      if (!top || top.end !== undefined) return void this.fail('an item delimiter outside an undefined-length item');
      if (length !== 0) return void this.fail('an item delimiter with a non-zero length');
      this.stack.pop();
      return;
    }
    if (tag === ITEM || tag === SEQ_DELIM) return void this.fail(`${tag === ITEM ? 'an item' : 'a sequence delimiter'} outside a sequence`);
    if (length === UNDEFINED) {
      if (tag === PIXEL_DATA && (vr === 'OB' || vr === 'OW' || vr === null)) {
        this.push({ kind: 'fragments', end: undefined, explicit: this.explicitHere, tag });
        return;
      }
      if (vr !== null && vr !== 'SQ' && vr !== 'UN') return void this.fail(`element ${hex(tag)} (${vr}) has an undefined length, which only sequences may have`);
      // An undefined-length UN is a sequence in implicit VR (PS3.5 §6.2.2).
      this.push({ kind: 'sequence', end: undefined, explicit: this.explicitHere && vr !== 'UN', tag });
      return;
    }
    if (vr === 'SQ') {
      this.push({ kind: 'sequence', end: this.pos + length, explicit: this.explicitHere, tag });
      return;
    }
    this.skipValue(tag, length);
  }

  private skipValue(tag: number, length: number): void {
    const top = this.top;
    if (top?.end !== undefined && this.pos + length > top.end) {
      this.fail(`the value of ${hex(tag)} (${length} bytes) runs past the end of the ${top.kind} of ${hex(top.tag)}`);
      return;
    }
    this.skip = length;
    this.skipping = tag;
  }
}
