import type { Duplex } from 'node:stream';
import { framePackets } from '../protocol/payload-writer.js';
import { PacketQueue, type Packet } from './packet-queue.js';
import type { SocketReads } from './socket-reads.js';

export type { Packet };

/** A PacketQueue bound to a socket: for the proxy's own conversations with a backend. */
export class PacketChannel {
  readonly queue = new PacketQueue();
  private readonly onData = (chunk: Buffer): void => this.queue.push(chunk);
  private readonly onEnd = (): void => this.queue.fail(new Error('connection closed by peer'));
  private readonly onError = (err: Error): void => this.queue.fail(err);

  /** `reads`: the socket is read with onread (socket-reads.ts), which hands this channel copies instead of 'data' events. */
  constructor(private socket: Duplex, initial?: Buffer, private reads: SocketReads | null = null) {
    this.bind(socket);
    if (initial && initial.length > 0) this.queue.push(initial);
  }

  private bind(socket: Duplex): void {
    if (this.reads) this.reads.copyTo(this.onData);
    else socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  /** Swap the underlying socket (after a TLS upgrade); unread bytes stay. */
  rebind(socket: Duplex): void {
    this.unbind();
    this.socket = socket;
    this.reads = null;
    this.queue.revive();
    this.bind(socket);
  }

  private unbind(): void {
    if (this.reads) this.reads.release(this.onData);
    else this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
  }

  /** Stop reading; returns bytes received but not consumed. */
  detach(): Buffer {
    this.unbind();
    return this.queue.drain();
  }

  /** Several commands (each starting at sequence 0) in one socket write: a pipeline costs one syscall, not one per command. */
  writeCommands(payloads: readonly Buffer[]): void {
    this.socket.write(Buffer.concat(payloads.map((payload) => framePackets(payload, 0).packet)));
  }

  read(timeoutMs = 0, what = 'packet'): Promise<Packet> {
    return this.queue.read(timeoutMs, what);
  }

  write(payload: Buffer, seq: number): number {
    const { packet, nextSeq } = framePackets(payload, seq);
    this.socket.write(packet);
    return nextSeq;
  }
}
