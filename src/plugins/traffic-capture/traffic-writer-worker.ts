/**
 * The capture's writer thread (a worker_thread started by TrafficFileWriter): receives filled record
 * buffers, compresses each into one gzip member or zstd frame, encrypts, writes, rotates files, and hands every buffer
 * back for reuse — so neither compression nor encryption nor disk I/O runs on the proxy's main thread.
 * Everything here is synchronous: this thread does nothing else.
 */
import { closeSync, openSync, readlinkSync, writeSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { gzipSync } from 'node:zlib';
import type { CipherGCM } from 'node:crypto';
import { fileCipher } from './traffic-encryption.js';
import { zstdCompress } from './zstd-codec.js';
import { WRITER_NICE_STEP, type WriterThreadInput, type WriterThreadMessage, type WriterThreadOutput } from './traffic-writer-messages.js';

/**
 * Serving queries comes first. On Linux this thread lowers its own scheduling priority, so on busy
 * cores the compression runs in the time the proxy and the database leave, instead of taking it from
 * them; a writer that falls too far behind makes the main thread drop records and count them (bounded
 * memory). Elsewhere, or when not allowed, the thread keeps the process's priority.
 */
function lowerPriority(): void {
  try {
    // /proc/thread-self → "<pid>/task/<tid>": setpriority on a thread id changes that thread alone.
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, Math.min(19, getPriority(tid) + WRITER_NICE_STEP));
  } catch {
    // not Linux, or the priority cannot be changed here
  }
}
lowerPriority();

const settings = workerData as WriterThreadInput;
const key = settings.key ? Buffer.from(settings.key) : null;
const port = parentPort!;

interface OpenFile {
  fd: number;
  cipher: CipherGCM | null;
  bytes: number;
  openedAt: number;
}

/** The file name says how its batches are compressed (the reader goes by it). */
const COMPRESSED_SUFFIX = { gzip: '.gz', zstd: '.zst', none: '' } as const;

let current: OpenFile | null = null;
let seq = 0;
let failed = false;

function post(message: WriterThreadOutput, transfer?: ArrayBuffer[]): void {
  port.postMessage(message, transfer);
}

function open(): OpenFile {
  seq++;
  const name = `${settings.prefix}-${String(seq).padStart(5, '0')}.bin${COMPRESSED_SUFFIX[settings.compress]}${key ? '.enc' : ''}`;
  const fd = openSync(join(settings.dir, name), 'wx');
  const f: OpenFile = { fd, cipher: null, bytes: 0, openedAt: Date.now() };
  if (key) {
    const c = fileCipher(key);
    writeSync(fd, c.header);
    f.cipher = c.cipher;
  }
  post({ type: 'file', name });
  return f;
}

function writeOut(f: OpenFile, data: Buffer): void {
  const out = f.cipher ? f.cipher.update(data) : data;
  for (let off = 0; off < out.length;) off += writeSync(f.fd, out, off);
  f.bytes += out.length;
}

function finish(f: OpenFile): void {
  // The auth tag follows the ciphertext (traffic-encryption.ts).
  if (f.cipher) {
    const last = f.cipher.final();
    if (last.length > 0) writeSync(f.fd, last);
    writeSync(f.fd, f.cipher.getAuthTag());
  }
  closeSync(f.fd);
}

function write(data: Buffer): void {
  let f = current;
  if (f && (f.bytes >= settings.rotateBytes || Date.now() - f.openedAt >= settings.rotateSeconds * 1000)) {
    finish(f);
    f = current = null;
  }
  f ??= current = open();
  writeOut(f, settings.compress === 'gzip' ? gzipSync(data, { level: 1 }) : settings.compress === 'zstd' ? zstdCompress(data) : data);
}

port.on('message', (m: WriterThreadMessage) => {
  if (m.type === 'data') {
    if (!failed) {
      try {
        write(Buffer.from(m.buffer, 0, m.length));
      } catch (err) {
        failed = true;
        post({ type: 'error', message: (err as Error).message });
      }
    }
    post({ type: 'free', buffer: m.buffer, written: m.length }, [m.buffer]);
    return;
  }
  // close
  let message: string | null = null;
  try {
    if (current && !failed) finish(current);
  } catch (err) {
    message = (err as Error).message;
  }
  current = null;
  post({ type: 'closed', error: message });
});
