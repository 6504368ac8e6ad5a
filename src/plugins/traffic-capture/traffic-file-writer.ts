import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { createGzip } from 'node:zlib';
import type { CipherGCM } from 'node:crypto';
import { fileCipher } from './traffic-encryption.js';

export interface WriterOptions {
  dir: string;
  /** File name prefix (the worker: "traffic-w0"). */
  prefix: string;
  compress: 'gzip' | 'none';
  /** AES-256 key, or null for plain files. */
  key: Buffer | null;
  /** Start a new file once the current one holds this many bytes (on disk). */
  rotateBytes: number;
  /** … or is this old. */
  rotateSeconds: number;
  /** Lines waiting for the disk beyond this many bytes are dropped (and counted), never queued. */
  maxBufferBytes: number;
  /** Called once when writing fails (disk full, directory gone): the capture stops. */
  onError(err: Error): void;
}

/** How long lines gather before they go to the compressor together. */
const FLUSH_MS = 20;
const FLUSH_BYTES = 256 * 1024;

interface OpenFile {
  name: string;
  head: Writable;
  file: WriteStream;
  cipher: CipherGCM | null;
  openedAt: number;
  closed: Promise<void>;
}

/**
 * Writes capture lines to rotated, compressed (and encrypted) files. Memory is bounded: lines are
 * batched, and when the batch plus what the compressor and the file still hold exceed maxBufferBytes the
 * line is refused (the caller counts it as dropped) — the proxy never waits for the disk.
 */
export class TrafficFileWriter {
  readonly files: string[] = [];
  dropped = 0;
  lines = 0;
  private batch: string[] = [];
  private batchBytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private current: OpenFile | null = null;
  private seq = 0;
  private failed = false;
  private readonly closing: Array<Promise<void>> = [];

  constructor(private readonly opts: WriterOptions) {}

  /** Queues one line (without its newline); false when it was dropped. */
  write(line: string): boolean {
    if (this.failed) return false;
    const size = line.length + 1;
    if (this.batchBytes + size + this.buffered() > this.opts.maxBufferBytes) {
      this.dropped++;
      return false;
    }
    this.batch.push(line);
    this.batchBytes += size;
    this.lines++;
    if (this.batchBytes >= FLUSH_BYTES) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
    return true;
  }

  /** Bytes handed to the compressor/cipher/file stream and not yet on disk. */
  private buffered(): number {
    const f = this.current;
    return f ? f.head.writableLength + (f.cipher?.writableLength ?? 0) + f.file.writableLength : 0;
  }

  private flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.batch.length === 0 || this.failed) return;
    let f = this.current;
    if (f && (f.file.bytesWritten >= this.opts.rotateBytes || Date.now() - f.openedAt >= this.opts.rotateSeconds * 1000)) {
      this.closing.push(this.finish(f));
      f = this.current = null;
    }
    f ??= this.current = this.open();
    const text = this.batch.join('\n') + '\n';
    this.batch = [];
    this.batchBytes = 0;
    f.head.write(text);
  }

  private open(): OpenFile {
    this.seq++;
    const ext = (this.opts.compress === 'gzip' ? '.jsonl.gz' : '.jsonl') + (this.opts.key ? '.enc' : '');
    const name = `${this.opts.prefix}-${String(this.seq).padStart(5, '0')}${ext}`;
    const file = createWriteStream(join(this.opts.dir, name), { flags: 'wx' });
    let cipher: CipherGCM | null = null;
    let head: Writable = file;
    if (this.opts.key) {
      const c = fileCipher(this.opts.key);
      file.write(c.header);
      cipher = c.cipher;
      // The auth tag follows the ciphertext, so the file is ended by hand once the cipher is done.
      cipher.pipe(file, { end: false });
      cipher.once('end', () => {
        file.write(c.cipher.getAuthTag());
        file.end();
      });
      head = cipher;
    }
    if (this.opts.compress === 'gzip') {
      const gzip = createGzip({ level: 1 });
      gzip.pipe(head);
      head = gzip;
    }
    const closed = new Promise<void>((resolve) => {
      file.once('close', resolve);
      file.once('error', (err) => {
        this.fail(err);
        resolve();
      });
    });
    this.files.push(name);
    return { name, head, file, cipher, openedAt: Date.now(), closed };
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.opts.onError(err);
  }

  private finish(f: OpenFile): Promise<void> {
    f.head.end();
    return f.closed;
  }

  /** Writes what is queued and closes the files. */
  async close(): Promise<void> {
    this.flush();
    if (this.current) this.closing.push(this.finish(this.current));
    this.current = null;
    await Promise.all(this.closing);
  }
}
