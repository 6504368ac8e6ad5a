/** What the capture's main thread and its writer thread (traffic-writer-worker.ts) say to each other. */
import type { TrafficCompression } from '../../plugin.js';

/** The writer thread's settings (its workerData). */
export interface WriterThreadInput {
  dir: string;
  /** File name prefix (the worker: "traffic-w0"). */
  prefix: string;
  compress: TrafficCompression;
  /** AES-256 key, or null for plain files. */
  key: Uint8Array | null;
  /** Start a new file once the current one holds this many bytes (on disk). */
  rotateBytes: number;
  /** … or is this old. */
  rotateSeconds: number;
}

/** Main thread → writer: a filled buffer (transferred), or the end. */
export type WriterThreadMessage =
  | { type: 'data'; buffer: ArrayBuffer; length: number }
  | { type: 'close' };

/** Writer → main thread: a buffer written (transferred back for reuse), a new file, a failure, the end. */
export type WriterThreadOutput =
  | { type: 'free'; buffer: ArrayBuffer; written: number }
  | { type: 'file'; name: string }
  | { type: 'error'; message: string }
  | { type: 'closed'; error: string | null };

/** How much lower than the proxy's main thread the writer thread runs (nice steps; 19 is the lowest). */
export const WRITER_NICE_STEP = 10;
