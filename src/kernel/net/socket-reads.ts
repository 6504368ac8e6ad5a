import type { OnReadOpts } from 'node:net';
import type { Writable } from 'node:stream';

/** A connection's first read buffer, and the one it returns to after a large response: greetings, OKs and point-select results fit. */
export const SMALL_READ_BYTES = 2 * 1024;
/** The largest read buffer (what Node's own reads use). */
export const LARGE_READ_BYTES = 64 * 1024;

/**
 * Reads a plain socket with Node's `onread` into a buffer of its own instead of through the Readable
 * stream, which allocates a 64 KiB buffer per read and runs `push`/`emit('data')` for each. The bytes go
 * to one consumer at a time:
 * - the pump (`lend`): reads each chunk synchronously and forwards it; when its write to the client
 *   could not finish at once (the client socket queued it, holding a view of this buffer), the next
 *   read goes into a fresh buffer, so queued bytes are never overwritten;
 * - a PacketChannel (`copyTo`): the proxy's own exchanges keep what they read, so they get copies;
 * - nobody (between consumers): copies wait here and go to the next consumer first.
 * The buffer starts small and grows while reads fill it (a large result), and shrinks again after a
 * small read, so an idle connection holds SMALL_READ_BYTES.
 */
export class SocketReads {
  private buffer = Buffer.allocUnsafeSlow(SMALL_READ_BYTES);
  /** The current buffer is still referenced by a queued write: the next read needs another. */
  private lent = false;
  private lastRead = 0;
  private borrower: ((chunk: Buffer) => void) | null = null;
  /** Where the borrower writes the views: while it still queues bytes, they may be views of the buffer. */
  private sink: Writable | null = null;
  private copier: ((chunk: Buffer) => void) | null = null;
  private waiting: Buffer[] = [];

  /** For net.connect({ onread }). */
  readonly onread: OnReadOpts = {
    buffer: () => this.nextBuffer(),
    callback: (n: number, buf: Uint8Array) => {
      this.lastRead = n;
      this.deliver(buf as Buffer, n);
      return true;
    },
  };

  private nextBuffer(): Buffer {
    const size = this.buffer.length;
    const wanted = this.lastRead === size ? Math.min(size * 4, LARGE_READ_BYTES) : this.lastRead <= SMALL_READ_BYTES / 2 ? SMALL_READ_BYTES : size;
    if (this.lent || wanted !== size) this.buffer = Buffer.allocUnsafeSlow(wanted);
    this.lent = false;
    return this.buffer;
  }

  private deliver(buf: Buffer, n: number): void {
    if (this.borrower !== null) {
      // Read before the call: the pump may hand the socket to a channel inside it.
      const sink = this.sink!;
      this.borrower(buf.subarray(0, n));
      if (sink.writableLength > 0) this.lent = true;
      return;
    }
    const copy = Buffer.from(buf.subarray(0, n));
    if (this.copier !== null) this.copier(copy);
    else this.waiting.push(copy);
  }

  /**
   * The pump reads from now on: `read` gets views of the read buffer, keeps none past the call, and
   * writes them to `sink` only (whose queued bytes may still be views after the call).
   */
  lend(read: (chunk: Buffer) => void, sink: Writable): void {
    this.copier = null;
    this.borrower = read;
    this.sink = sink;
    this.flushWaiting(read);
  }

  /** A PacketChannel reads from now on (null: nobody; bytes wait). */
  copyTo(consumer: ((chunk: Buffer) => void) | null): void {
    this.borrower = null;
    this.sink = null;
    this.copier = consumer;
    if (consumer) this.flushWaiting(consumer);
  }

  private flushWaiting(to: (chunk: Buffer) => void): void {
    if (this.waiting.length === 0) return;
    const waiting = Buffer.concat(this.waiting);
    this.waiting = [];
    to(waiting);
  }
}
