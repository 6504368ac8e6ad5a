import type { OnReadOpts } from 'node:net';
import type { Writable } from 'node:stream';

/** The buffer every connection reads into while its reads are small; what lands there is copied out. */
export const SHARED_READ_BYTES = 16 * 1024;
/** A connection whose read filled the shared buffer (a large result) reads into one of its own, this big. */
export const OWN_READ_BYTES = 64 * 1024;
/** A read this small into its own buffer sends the connection back to the shared one (the large result ended). */
const BACK_TO_SHARED_BYTES = 4 * 1024;

/** One for the process: reads run one at a time on the event loop, and nothing keeps a view of it. */
let sharedBuffer: Buffer | null = null;

/**
 * Reads a plain socket with Node's `onread` instead of through the Readable stream, which allocates a
 * 64 KiB buffer per read and runs `push`/`emit('data')` for each. While reads are small they go into one
 * buffer shared by all connections and are copied out (an idle connection holds no buffer); once a read
 * fills it, the connection reads into a 64 KiB buffer of its own, lent to the pump without copying, until
 * a small read ends the large response. The bytes go to one consumer at a time:
 * - the pump (`lend`): reads each chunk synchronously and writes it to the client; when that write could
 *   not finish at once (the client socket queued it, holding a view of the connection's own buffer), the
 *   next read goes into a fresh buffer, so queued bytes are never overwritten;
 * - a PacketChannel (`copyTo`): the proxy's own exchanges keep what they read, so they get copies;
 * - nobody (between consumers): copies wait here and go to the next consumer first.
 */
export class SocketReads {
  /** The connection's own buffer while it reads a large response; null: it reads into the shared one. */
  private own: Buffer | null = null;
  /** `own` is still referenced by a queued write: the next read needs another. */
  private lent = false;
  private lastRead = 0;
  private borrower: ((chunk: Buffer) => void) | null = null;
  /** Where the borrower writes the views: while it still queues bytes, they may be views of `own`. */
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

  /** Whether the read being delivered went into the connection's own buffer (its chunk is a lent view, not a copy). */
  get lendsViews(): boolean {
    return this.own !== null;
  }

  /** Node asks after each read (and once at the start) where the next read goes. */
  private nextBuffer(): Buffer {
    if (this.own === null ? this.lastRead < SHARED_READ_BYTES : this.lastRead <= BACK_TO_SHARED_BYTES) {
      this.own = null;
      return (sharedBuffer ??= Buffer.allocUnsafeSlow(SHARED_READ_BYTES));
    }
    if (this.own === null || this.lent) this.own = Buffer.allocUnsafeSlow(OWN_READ_BYTES);
    this.lent = false;
    return this.own;
  }

  private deliver(buf: Buffer, n: number): void {
    if (this.borrower !== null && buf === this.own) {
      // Read before the call: the pump may hand the socket to a channel inside it.
      const sink = this.sink!;
      this.borrower(buf.subarray(0, n));
      if (sink.writableLength > 0) this.lent = true;
      return;
    }
    const copy = Buffer.allocUnsafe(n);
    buf.copy(copy, 0, 0, n);
    if (this.borrower !== null) this.borrower(copy);
    else if (this.copier !== null) this.copier(copy);
    else this.waiting.push(copy);
  }

  /**
   * The pump reads from now on: `read` gets copies of small reads and views of the connection's own
   * buffer for large ones, keeps no chunk past the call, and writes them to `sink` only (whose queued
   * bytes may still be views after the call).
   */
  lend(read: (chunk: Buffer) => void, sink: Writable): void {
    this.copier = null;
    this.borrower = read;
    this.sink = sink;
    this.flushWaiting(read);
  }

  /** A PacketChannel reads from now on. */
  copyTo(consumer: (chunk: Buffer) => void): void {
    this.borrower = null;
    this.sink = null;
    this.copier = consumer;
    this.flushWaiting(consumer);
  }

  /**
   * `reader` (the pump or a channel) stops reading, if it still is the reader: one that was already
   * replaced takes nothing from its successor. Until the next reader, bytes wait.
   */
  release(reader: (chunk: Buffer) => void): void {
    if (this.copier === reader) this.copier = null;
    if (this.borrower === reader) {
      this.borrower = null;
      this.sink = null;
    }
  }

  private flushWaiting(to: (chunk: Buffer) => void): void {
    if (this.waiting.length === 0) return;
    const waiting = Buffer.concat(this.waiting);
    this.waiting = [];
    to(waiting);
  }
}
