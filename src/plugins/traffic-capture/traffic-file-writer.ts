import { Worker } from 'node:worker_threads';
import type { TrafficCompression } from '../../plugin.js';
import {
  COMMAND_HEADER_BYTES, DIGEST_BYTES, JSON_HEADER_BYTES, RECORD_COMMAND, RECORD_JSON, RECORD_RESULT, RECORD_RESULT_DIGEST, RESULT_BYTES,
  type BootRecord, type EndRecord,
} from './traffic-record.js';
import type { WriterThreadInput, WriterThreadMessage, WriterThreadOutput } from './traffic-writer-messages.js';

export interface WriterOptions {
  dir: string;
  /** File name prefix (the worker: "traffic-w0"). */
  prefix: string;
  compress: TrafficCompression;
  /** AES-256 key, or null for plain files. */
  key: Buffer | null;
  /** Start a new file once the current one holds this many bytes (on disk). */
  rotateBytes: number;
  /** … or is this old. */
  rotateSeconds: number;
  /** Record buffers (filling, waiting for the writer thread, or free for reuse) never exceed this many bytes: records beyond are dropped and counted. */
  maxBufferBytes: number;
  /** Called once when writing fails (disk full, directory gone): the capture stops. */
  onError(err: Error): void;
}

/** Records gather in buffers of this size; a full one goes to the writer thread. */
export const RECORD_BUFFER_BYTES = 256 * 1024;
/**
 * A buffer that is not full goes anyway after this long (a quiet proxy's records still reach the disk);
 * not much shorter: each hand-over is a postMessage, which showed in the main thread's profile at 100 ms.
 */
const FLUSH_MS = 1000;
const U32_MAX = 0xffffffff;

/**
 * The writer thread's script: beside this module — the .ts source under tsx (loaded through tsx's
 * loader, which a worker does not inherit), the bundle's traffic-writer-worker.js in dist/.
 */
const WORKER_SOURCE = import.meta.url.endsWith('.ts');
const WORKER_FILE = new URL(WORKER_SOURCE ? './traffic-writer-worker.ts' : './traffic-writer-worker.js', import.meta.url);

function startWriterThread(input: WriterThreadInput): Worker {
  if (!WORKER_SOURCE) return new Worker(WORKER_FILE, { workerData: input });
  // tsx resolved here (beside the source), not from the worker's working directory.
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(WORKER_FILE.href)}); })`;
  return new Worker(boot, { eval: true, workerData: input });
}

/**
 * The main thread's side of writing a capture: encodes records (traffic-record.ts) straight into
 * reused buffers — a few number writes and one payload copy per command, nothing allocated — and
 * transfers each filled buffer to a writer thread that compresses, encrypts and writes it, then hands
 * it back. Memory is bounded: when every buffer the bound allows is waiting for the disk, records are
 * dropped and counted; the proxy never waits for the disk.
 */
export class TrafficFileWriter {
  readonly files: string[] = [];
  dropped = 0;
  records = 0;
  private buf: Buffer | null = null;
  /** A view of `buf` for the record headers: DataView writes are inlined by V8, Buffer#writeUInt32LE & co. are range-checked calls. */
  private view: DataView | null = null;
  private pos = 0;
  private readonly free: Buffer[] = [];
  /** Bytes of all record buffers in existence (filling, free, with the writer thread). */
  private allocated = 0;
  private readonly worker: Worker;
  private readonly timer: NodeJS.Timeout;
  private failed = false;
  private exited = false;
  private closing: Promise<void> | null = null;
  private resolveClosed: (error: string | null) => void = () => {};

  constructor(private readonly opts: WriterOptions) {
    this.worker = startWriterThread({
      dir: opts.dir, prefix: opts.prefix, compress: opts.compress, key: opts.key ? new Uint8Array(opts.key) : null,
      rotateBytes: opts.rotateBytes, rotateSeconds: opts.rotateSeconds,
    });
    this.worker.on('message', (m: WriterThreadOutput) => this.onMessage(m));
    this.worker.on('error', (err) => {
      this.fail(err);
      this.resolveClosed(err.message);
    });
    this.worker.on('exit', () => {
      this.exited = true;
      this.resolveClosed(null);
    });
    this.worker.unref();
    this.timer = setInterval(() => this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  /** Makes room for a record of `size` bytes at this.pos of this.buf; false when it is dropped. */
  private reserve(size: number): boolean {
    if (this.buf !== null && this.pos + size <= this.buf.length) return true;
    if (this.failed || this.closing) {
      this.dropped++;
      return false;
    }
    this.flush();
    const reused = size <= RECORD_BUFFER_BYTES ? this.free.pop() : undefined;
    if (reused) {
      this.buf = reused;
      this.view = new DataView(reused.buffer, reused.byteOffset, reused.length);
    } else {
      const bytes = Math.max(size, RECORD_BUFFER_BYTES);
      if (this.allocated + bytes > this.opts.maxBufferBytes) {
        this.dropped++;
        return false;
      }
      this.allocated += bytes;
      // Not from the shared pool: its whole ArrayBuffer is transferred to the writer thread.
      this.buf = Buffer.allocUnsafeSlow(bytes);
      this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.length);
    }
    this.pos = 0;
    return true;
  }

  /** A command: `kept` bytes of its payload at src[off…] (the payload is `length` long). */
  writeCommand(session: number, ts: number, response: number, src: Buffer, off: number, kept: number, length: number): boolean {
    if (!this.reserve(COMMAND_HEADER_BYTES + kept)) return false;
    const b = this.buf!;
    const v = this.view!;
    const p = this.pos;
    v.setUint8(p, RECORD_COMMAND);
    v.setUint32(p + 1, session, true);
    v.setFloat64(p + 5, ts, true);
    v.setUint32(p + 13, response, true);
    v.setUint32(p + 17, length, true);
    v.setUint32(p + 21, kept, true);
    src.copy(b, p + COMMAND_HEADER_BYTES, off, off + kept);
    this.pos = p + COMMAND_HEADER_BYTES + kept;
    this.records++;
    return true;
  }

  /** A response's outcome; `digest` (20 bytes) when the capture digests result rows. */
  writeResult(session: number, response: number, err: number, affected: number, rows: number, ms: number, statementId: number, digest: Buffer | null): boolean {
    if (!this.reserve(RESULT_BYTES + (digest ? DIGEST_BYTES : 0))) return false;
    const v = this.view!;
    const p = this.pos;
    v.setUint8(p, digest ? RECORD_RESULT_DIGEST : RECORD_RESULT);
    v.setUint32(p + 1, session, true);
    v.setUint32(p + 5, response, true);
    v.setInt32(p + 9, err, true);
    v.setUint32(p + 13, Math.min(affected, U32_MAX), true);
    v.setUint32(p + 17, Math.min(rows, U32_MAX), true);
    v.setFloat64(p + 21, ms, true);
    v.setUint32(p + 29, statementId, true);
    this.pos = p + RESULT_BYTES;
    if (digest) this.pos += digest.copy(this.buf!, this.pos, 0, DIGEST_BYTES);
    this.records++;
    return true;
  }

  /** A session's bootstrap or end (rare: JSON). */
  writeJson(record: BootRecord | EndRecord): boolean {
    const text = JSON.stringify(record);
    const size = Buffer.byteLength(text);
    if (!this.reserve(JSON_HEADER_BYTES + size)) return false;
    const b = this.buf!;
    b[this.pos] = RECORD_JSON;
    b.writeUInt32LE(size, this.pos + 1);
    this.pos += JSON_HEADER_BYTES + b.write(text, this.pos + JSON_HEADER_BYTES, 'utf8');
    this.records++;
    return true;
  }

  /** Hands the filling buffer to the writer thread. */
  private flush(): void {
    const b = this.buf;
    if (b === null || this.pos === 0 || this.failed) return;
    this.buf = null;
    this.view = null;
    this.post({ type: 'data', buffer: b.buffer as ArrayBuffer, length: this.pos }, [b.buffer as ArrayBuffer]);
    this.pos = 0;
  }

  private post(message: WriterThreadMessage, transfer?: ArrayBuffer[]): void {
    this.worker.postMessage(message, transfer);
  }

  private onMessage(m: WriterThreadOutput): void {
    switch (m.type) {
      case 'free': {
        const b = Buffer.from(m.buffer);
        if (b.length === RECORD_BUFFER_BYTES && !this.closing && !this.failed) this.free.push(b);
        else this.allocated -= b.length;
        break;
      }
      case 'file':
        this.files.push(m.name);
        break;
      case 'error':
        this.fail(new Error(m.message));
        break;
      case 'closed':
        this.resolveClosed(m.error);
        break;
    }
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.opts.onError(err);
  }

  /** Writes what is buffered, closes the files and ends the writer thread. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.timer);
      this.worker.ref(); // the files are finished even when nothing else keeps the process running
      this.flush();
      this.buf = null;
      this.view = null;
      this.free.length = 0;
      const closed = new Promise<string | null>((resolve) => (this.resolveClosed = resolve));
      if (this.exited) this.resolveClosed(null);
      else this.post({ type: 'close' });
      const error = await closed;
      await this.worker.terminate();
      if (error) throw new Error(error);
    })();
    return this.closing;
  }
}
