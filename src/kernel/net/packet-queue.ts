import { MAX_PACKET_PAYLOAD, PACKET_HEADER_LENGTH } from '../protocol/constants.js';
import { framePackets } from '../protocol/payload-writer.js';

export interface Packet {
  payload: Buffer;
  seq: number;
}

/**
 * Packet-at-a-time reading of bytes pushed into it, for the conversations the proxy drives itself
 * (handshakes, logins, COM_CHANGE_USER, its own queries). Not used on the hot path: the pump reads raw
 * chunks. `drain()` hands back unread bytes, framed again, so nothing is lost when a stream goes back
 * to the pump.
 */
export class PacketQueue {
  private buffered: Buffer = Buffer.alloc(0);
  private readonly ready: Packet[] = [];
  private parts: Buffer[] = [];
  private waiter: { resolve: (p: Packet) => void; reject: (e: Error) => void; timer?: NodeJS.Timeout } | null = null;
  private failure: Error | null = null;
  /** The buffered packet's header passed headerCheck (it runs once per packet, as soon as the header is in). */
  private checkedHeader = false;
  /**
   * Set while an untrusted peer talks (the client's login): sees each packet header as soon as it
   * arrives and returns an Error to fail the queue at once (an impossible length or sequence id), so a
   * peer cannot make the proxy wait for, or buffer, bytes a valid packet would never have.
   */
  headerCheck: ((length: number, seq: number) => Error | null) | null = null;

  push(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    for (;;) {
      if (this.buffered.length < PACKET_HEADER_LENGTH) break;
      const length = this.buffered.readUIntLE(0, 3);
      if (this.headerCheck && !this.checkedHeader) {
        const refused = this.headerCheck(length, this.buffered[3]!);
        if (refused) {
          this.buffered = Buffer.alloc(0);
          this.parts = [];
          return this.fail(refused);
        }
        this.checkedHeader = true;
      }
      if (this.buffered.length < PACKET_HEADER_LENGTH + length) break;
      const seq = this.buffered[3]!;
      this.parts.push(this.buffered.subarray(PACKET_HEADER_LENGTH, PACKET_HEADER_LENGTH + length));
      this.buffered = this.buffered.subarray(PACKET_HEADER_LENGTH + length);
      this.checkedHeader = false;
      if (length === MAX_PACKET_PAYLOAD) continue;
      const payload = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
      this.parts = [];
      this.deliver({ payload, seq });
    }
  }

  /** Unread packets and bytes, as raw bytes, emptied out of the queue. */
  drain(): Buffer {
    const out = Buffer.concat([...this.ready.map((p) => framePackets(p.payload, p.seq).packet), this.buffered]);
    this.ready.length = 0;
    this.buffered = Buffer.alloc(0);
    return out;
  }

  private deliver(p: Packet): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      if (w.timer) clearTimeout(w.timer);
      w.resolve(p);
    } else this.ready.push(p);
  }

  /** The stream ended or failed: pending and later reads reject with `err`. */
  fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      if (w.timer) clearTimeout(w.timer);
      w.reject(err);
    }
  }

  /** Clears a previous failure (the queue was re-bound to a new stream). */
  revive(): void {
    this.failure = null;
  }

  read(timeoutMs = 0, what = 'packet'): Promise<Packet> {
    const p = this.ready.shift();
    if (p) return Promise.resolve(p);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      if (timeoutMs > 0) {
        this.waiter.timer = setTimeout(() => {
          this.waiter = null;
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs);
      }
    });
  }
}
