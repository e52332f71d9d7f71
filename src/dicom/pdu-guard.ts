/**
 * Watches the raw byte stream of an association for PDUs that announce more than we agreed to.
 * dcmjs-dimse accumulates a whole PDU before parsing it, whatever length its header claims, so a
 * bogus 4 GB length is a memory-exhaustion attack; this guard lets the SCP abort before that.
 */
export class PduGuard {
  private header = Buffer.alloc(6);
  private headerFill = 0;
  private remaining = 0;

  constructor(
    /** Largest P-DATA-TF variable field we accept (the max PDU length we announce). */
    private readonly maxDataPdu: number,
    /** Largest other PDU (association negotiation): generous, but bounded. */
    private readonly maxOtherPdu = 1024 * 1024,
  ) {}

  /** Returns a description of the first violation in this chunk, or undefined when all is well. */
  feed(chunk: Buffer): string | undefined {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - pos);
        this.remaining -= take;
        pos += take;
        continue;
      }
      const take = Math.min(6 - this.headerFill, chunk.length - pos);
      chunk.copy(this.header, this.headerFill, pos, pos + take);
      this.headerFill += take;
      pos += take;
      if (this.headerFill < 6) break;
      this.headerFill = 0;
      const type = this.header[0];
      const length = this.header.readUInt32BE(2);
      if (type < 1 || type > 7) return `unknown PDU type 0x${type.toString(16).padStart(2, '0')}`;
      const limit = type === 4 ? this.maxDataPdu : this.maxOtherPdu;
      if (length > limit) return `PDU type ${type} announces ${length} bytes, more than the ${limit} allowed`;
      this.remaining = length;
    }
    return undefined;
  }
}
