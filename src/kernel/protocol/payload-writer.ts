import { MAX_PACKET_PAYLOAD, PACKET_HEADER_LENGTH } from './constants.js';

/** Growable payload builder for packets the proxy composes itself (greetings, OK/ERR, handshakes). */
export class PayloadWriter {
  private buf: Buffer;
  private len = 0;

  constructor(initial = 128) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.len++] = v & 0xff;
    return this;
  }

  u16(v: number): this {
    this.ensure(2);
    this.buf.writeUInt16LE(v & 0xffff, this.len);
    this.len += 2;
    return this;
  }

  u24(v: number): this {
    this.ensure(3);
    this.buf.writeUIntLE(v & 0xffffff, this.len, 3);
    this.len += 3;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.len);
    this.len += 4;
    return this;
  }

  lenenc(v: number): this {
    if (v < 0xfb) return this.u8(v);
    if (v <= 0xffff) return this.u8(0xfc).u16(v);
    if (v <= 0xffffff) return this.u8(0xfd).u24(v);
    this.ensure(9);
    this.buf[this.len++] = 0xfe;
    this.buf.writeBigUInt64LE(BigInt(v), this.len);
    this.len += 8;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  zeros(n: number): this {
    this.ensure(n);
    this.buf.fill(0, this.len, this.len + n);
    this.len += n;
    return this;
  }

  string(s: string): this {
    return this.bytes(Buffer.from(s, 'utf8'));
  }

  nulString(s: string): this {
    return this.string(s).u8(0);
  }

  lenencBytes(b: Uint8Array): this {
    return this.lenenc(b.length).bytes(b);
  }

  lenencString(s: string): this {
    return this.lenencBytes(Buffer.from(s, 'utf8'));
  }

  payload(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

/**
 * Frames a payload as one or more packets (payloads of 0xFFFFFF bytes continue in the next packet,
 * and an exact multiple ends with an empty packet). Returns the buffer and the next sequence id.
 */
export function framePackets(payload: Uint8Array, seq: number): { packet: Buffer; nextSeq: number } {
  const count = Math.floor(payload.length / MAX_PACKET_PAYLOAD) + 1;
  const out = Buffer.allocUnsafe(payload.length + count * PACKET_HEADER_LENGTH);
  let src = 0;
  let dst = 0;
  for (let i = 0; i < count; i++) {
    const n = Math.min(MAX_PACKET_PAYLOAD, payload.length - src);
    out.writeUIntLE(n, dst, 3);
    out[dst + 3] = seq & 0xff;
    seq++;
    out.set(payload.subarray(src, src + n), dst + 4);
    src += n;
    dst += n + 4;
  }
  return { packet: out, nextSeq: seq & 0xff };
}
