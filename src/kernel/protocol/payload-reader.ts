/**
 * Sequential reader over one packet payload (handshake, OK, ERR, auth packets — not the hot path).
 * Throws MalformedPacketError when a field runs past the end, so callers can answer with a clear error.
 */
export class MalformedPacketError extends Error {
  constructor(what: string) {
    super(`malformed packet: ${what}`);
    this.name = 'MalformedPacketError';
  }
}

export class PayloadReader {
  pos: number;
  constructor(readonly buf: Buffer, start = 0, readonly end = buf.length) {
    this.pos = start;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.end) throw new MalformedPacketError(`${what} runs past the end of the packet`);
  }

  u8(what = 'u8'): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }

  u16(what = 'u16'): number {
    this.need(2, what);
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }

  u24(what = 'u24'): number {
    this.need(3, what);
    const v = this.buf.readUIntLE(this.pos, 3);
    this.pos += 3;
    return v;
  }

  u32(what = 'u32'): number {
    this.need(4, what);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  /** Length-encoded integer; values above 2^53 are not used by anything the proxy reads. */
  lenenc(what = 'length-encoded integer'): number {
    const first = this.u8(what);
    if (first < 0xfb) return first;
    if (first === 0xfc) return this.u16(what);
    if (first === 0xfd) return this.u24(what);
    if (first === 0xfe) {
      this.need(8, what);
      const v = Number(this.buf.readBigUInt64LE(this.pos));
      this.pos += 8;
      return v;
    }
    throw new MalformedPacketError(`${what}: invalid length prefix 0x${first.toString(16)}`);
  }

  bytes(n: number, what = 'bytes'): Buffer {
    this.need(n, what);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  skip(n: number, what = 'filler'): void {
    this.need(n, what);
    this.pos += n;
  }

  /** NUL-terminated bytes; a missing NUL takes the rest of the payload (some clients omit it at the end). */
  nulBytes(): Buffer {
    const nul = this.buf.indexOf(0, this.pos);
    const stop = nul === -1 || nul >= this.end ? this.end : nul;
    const v = this.buf.subarray(this.pos, stop);
    this.pos = stop === this.end ? this.end : stop + 1;
    return v;
  }

  nulString(): string {
    return this.nulBytes().toString('utf8');
  }

  lenencBytes(what = 'length-encoded string'): Buffer {
    return this.bytes(this.lenenc(what), what);
  }

  lenencString(what = 'length-encoded string'): string {
    return this.lenencBytes(what).toString('utf8');
  }

  rest(): Buffer {
    const v = this.buf.subarray(this.pos, this.end);
    this.pos = this.end;
    return v;
  }
}
