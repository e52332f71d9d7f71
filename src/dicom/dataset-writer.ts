/**
 * A small explicit VR little endian dataset encoder: text elements and sequences, written straight
 * into one growing buffer. Sequences and items use undefined length with delimitation items, so
 * nothing is measured or written twice. Elements must come in ascending tag order within each
 * dataset (checked: a wrong order is a bug in the caller, and readers would reject the file).
 *
 * Text is written as latin1, which is what SpecificCharacterSet ISO_IR 100 declares.
 */

/** The text VRs with a 2-byte length in explicit VR (PS3.5 Table 7.1-2). */
export type TextVr = 'AE' | 'AS' | 'CS' | 'DA' | 'DS' | 'DT' | 'IS' | 'LO' | 'LT' | 'PN' | 'SH' | 'ST' | 'TM' | 'UI';

/** The largest value a 2-byte length can announce, kept even. */
export const MAX_SHORT_VALUE_BYTES = 0xfffe;

const ITEM = 0xfffee000;
const ITEM_DELIMITATION = 0xfffee00d;
const SEQUENCE_DELIMITATION = 0xfffee0dd;
const UNDEFINED_LENGTH = 0xffffffff;

export class DatasetWriter {
  private buf: Buffer;
  private pos = 0;
  /** Last tag written at each nesting level (datasets inside items are levels of their own). */
  private readonly lastTag: number[] = [-1];

  constructor(private readonly initialBytes = 1 << 16) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  /** A text element; several values are joined with backslashes. Padded to even length with a space,
   *  or a NUL for UI (PS3.5 6.2). */
  text(tag: number, vr: TextVr, value: string | readonly string[]): this {
    const joined = typeof value === 'string' ? value : value.join('\\');
    const length = joined.length + (joined.length & 1);
    if (length > MAX_SHORT_VALUE_BYTES) throw new RangeError(`${tagName(tag)} ${vr}: value of ${joined.length} bytes does not fit a 16-bit length`);
    this.header(tag, vr, length);
    this.ensure(length);
    this.pos += this.buf.write(joined, this.pos, 'latin1');
    if (joined.length & 1) this.buf[this.pos++] = vr === 'UI' ? 0 : 0x20;
    return this;
  }

  /** A sequence of undefined length: one item (of undefined length) per element of `items`. */
  sequence<T>(tag: number, items: readonly T[], writeItem: (w: this, item: T, index: number) => void): this {
    this.order(tag);
    this.tagVr(tag, 'SQ');
    this.u16(0);
    this.u32(UNDEFINED_LENGTH);
    items.forEach((item, index) => {
      this.tagOnly(ITEM);
      this.u32(UNDEFINED_LENGTH);
      this.lastTag.push(-1);
      writeItem(this, item, index);
      this.lastTag.pop();
      this.tagOnly(ITEM_DELIMITATION);
      this.u32(0);
    });
    this.tagOnly(SEQUENCE_DELIMITATION);
    this.u32(0);
    return this;
  }

  /** The bytes written so far; the writer starts over empty in a new buffer, keeping its tag order,
   *  so that a dataset can be cut into parts around elements that are filled in later. */
  take(): Buffer {
    const out = this.buf.subarray(0, this.pos);
    this.buf = Buffer.allocUnsafe(this.initialBytes);
    this.pos = 0;
    return out;
  }

  private header(tag: number, vr: TextVr, length: number): void {
    this.order(tag);
    this.tagVr(tag, vr);
    this.u16(length);
  }

  private order(tag: number): void {
    const level = this.lastTag.length - 1;
    if (tag <= this.lastTag[level]) throw new Error(`dataset-writer: ${tagName(tag)} written after ${tagName(this.lastTag[level])} (tags must ascend)`);
    this.lastTag[level] = tag;
  }

  private tagVr(tag: number, vr: string): void {
    this.ensure(6);
    this.buf.writeUInt16LE(tag >>> 16, this.pos);
    this.buf.writeUInt16LE(tag & 0xffff, this.pos + 2);
    this.buf[this.pos + 4] = vr.charCodeAt(0);
    this.buf[this.pos + 5] = vr.charCodeAt(1);
    this.pos += 6;
  }

  private tagOnly(tag: number): void {
    this.ensure(4);
    this.buf.writeUInt16LE(tag >>> 16, this.pos);
    this.buf.writeUInt16LE(tag & 0xffff, this.pos + 2);
    this.pos += 4;
  }

  private u16(v: number): void {
    this.ensure(2);
    this.pos = this.buf.writeUInt16LE(v, this.pos);
  }

  private u32(v: number): void {
    this.ensure(4);
    this.pos = this.buf.writeUInt32LE(v, this.pos);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const bigger = Buffer.allocUnsafe(size);
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }
}

function tagName(tag: number): string {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
  return `(${hex(tag >>> 16)},${hex(tag & 0xffff)})`;
}
