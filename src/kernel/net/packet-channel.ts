import type { Duplex } from 'node:stream';
import { MAX_PACKET_PAYLOAD, PACKET_HEADER_LENGTH } from '../protocol/constants.js';
import { framePackets } from '../protocol/payload-writer.js';

export interface Packet {
  payload: Buffer;
  seq: number;
}

/**
 * Packet-at-a-time conversation over a socket, for the parts of a session the proxy drives itself
 * (handshakes, logins, its own queries). Not used on the hot path: the pump reads raw chunks.
 * `detach()` hands back any bytes received after the last packet read so nothing is lost when the
 * socket moves to the pump.
 */
export class PacketChannel {
  private buffered: Buffer = Buffer.alloc(0);
  private readonly ready: Packet[] = [];
  private waiter: { resolve: (p: Packet) => void; reject: (e: Error) => void; timer?: NodeJS.Timeout } | null = null;
  private failure: Error | null = null;
  private readonly onData = (chunk: Buffer): void => this.receive(chunk);
  private readonly onEnd = (): void => this.fail(new Error('connection closed by peer'));
  private readonly onError = (err: Error): void => this.fail(err);
  private parts: Buffer[] = [];

  constructor(private socket: Duplex, initial?: Buffer) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
    if (initial && initial.length > 0) this.receive(initial);
  }

  /** Swap the underlying socket (after a TLS upgrade); unread bytes stay. */
  rebind(socket: Duplex): void {
    this.unbind();
    this.socket = socket;
    this.failure = null;
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  private unbind(): void {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
  }

  /** Stop reading; returns bytes received but not yet consumed as packets. */
  detach(): Buffer {
    this.unbind();
    const leftover = [...this.ready.map((p) => framePackets(p.payload, p.seq).packet), this.buffered];
    this.ready.length = 0;
    this.buffered = Buffer.alloc(0);
    return Buffer.concat(leftover);
  }

  /** Bytes received but not yet framed into packets. */
  get unread(): number {
    return this.buffered.length;
  }

  private receive(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    for (;;) {
      if (this.buffered.length < PACKET_HEADER_LENGTH) break;
      const length = this.buffered.readUIntLE(0, 3);
      if (this.buffered.length < PACKET_HEADER_LENGTH + length) break;
      const seq = this.buffered[3]!;
      this.parts.push(this.buffered.subarray(PACKET_HEADER_LENGTH, PACKET_HEADER_LENGTH + length));
      this.buffered = this.buffered.subarray(PACKET_HEADER_LENGTH + length);
      if (length === MAX_PACKET_PAYLOAD) continue;
      const payload = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
      this.parts = [];
      this.deliver({ payload, seq });
    }
  }

  private deliver(p: Packet): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      if (w.timer) clearTimeout(w.timer);
      w.resolve(p);
    } else this.ready.push(p);
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      if (w.timer) clearTimeout(w.timer);
      w.reject(err);
    }
  }

  /** Next packet; rejects on close, error or after `timeoutMs`. */
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

  write(payload: Buffer, seq: number): number {
    const { packet, nextSeq } = framePackets(payload, seq);
    this.socket.write(packet);
    return nextSeq;
  }
}
