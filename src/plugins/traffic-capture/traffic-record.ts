/**
 * The capture file format (docs/traffic.md). Format 2: binary records, gzip- or zstd-compressed (one gzip
 * member or zstd frame per batch) and optionally AES-256-GCM-encrypted, rotated into
 * traffic-w<worker>-<seq>.bin[.gz|.zst][.enc]
 * files, with a meta.json beside them. Format 1 (JSON lines, .jsonl.gz) is still read. The replayer
 * (src/cli/traffic/) reads what the reader makes of either.
 *
 * Binary records, little-endian, one after another:
 *   COMMAND   u8 1, u32 session, f64 ts (ms since the start), u32 response (0: no response), u32 length,
 *             u32 kept, kept payload bytes (command byte first; kept < length when truncated)
 *   RESULT    u8 2, u32 session, u32 response, i32 err (0: OK), u32 affected, u32 rows (both saturate),
 *             f64 ms, u32 statement id (COM_STMT_PREPARE)
 *   RESULT_DIGEST  as RESULT, then 20 bytes: SHA-1 of the result rows
 *   JSON      u8 4, u32 length, a UTF-8 JSON BootRecord or EndRecord
 * A command and its result are written as they happen; the reader pairs them by session and response.
 */

import type { TrafficCompression } from '../../plugin.js';

export const TRAFFIC_FORMAT_VERSION = 2;
/** Formats this version reads. */
export const READABLE_FORMATS: readonly number[] = [1, 2];
export const META_FILE = 'meta.json';

/** A worker's meta file: meta.json in a single process (worker 0), meta-w<N>.json for worker N of proxy.workers > 1. */
export function metaFileName(worker: number): string {
  return worker === 0 ? META_FILE : `meta-w${worker}.json`;
}

/** Meta files of any worker. */
export const META_FILE_PATTERN = /^meta(-w\d+)?\.json$/;

/** Names a capture directory holds: a new capture needs a directory without them. */
export const isCaptureFile = (name: string): boolean => name.startsWith('traffic-') || META_FILE_PATTERN.test(name);

export const RECORD_COMMAND = 1;
export const RECORD_RESULT = 2;
export const RECORD_RESULT_DIGEST = 3;
export const RECORD_JSON = 4;
/** Bytes of a COMMAND record before its payload. */
export const COMMAND_HEADER_BYTES = 1 + 4 + 8 + 4 + 4 + 4;
export const RESULT_BYTES = 1 + 4 + 4 + 4 + 4 + 4 + 8 + 4;
export const DIGEST_BYTES = 20;
export const JSON_HEADER_BYTES = 1 + 4;

/** A session's state when the capture first saw it (sessions open before the capture started included). */
export interface BootRecord {
  t: 'boot';
  /** Session (proxy connection) id. */
  s: number;
  /** Milliseconds since the capture started. */
  ts: number;
  user: string;
  db: string;
  /** SET statements that shaped the session, oldest first (what the proxy saw). */
  sets: string[];
  /** SQL-level PREPARE statements in effect. */
  prepares: string[];
  /** Protocol-level prepared statements: the client's id and the SQL. */
  stmts: Array<{ id: number; sql: string; params: number }>;
  /** The session was inside a transaction (its start was not captured). */
  inTx: boolean;
  /** Why the proxy could not follow all state changes (the replay may differ), or null. */
  unseen: string | null;
}

/** What the server answered, on the source. */
export interface ResultRecord {
  /** ERR code, 0 for success. */
  err: number;
  /** Rows affected. */
  aff: number;
  /** Result-set rows returned. */
  rows: number;
  /** Duration in milliseconds. */
  ms: number;
  /** For COM_STMT_PREPARE: the statement id the client got (its executes name it). */
  stmt?: number;
  /** SHA-1 (hex) of the result rows, when the capture was started with a result digest. */
  digest?: string;
}

/** A captured command as the reader gives it (either format). */
export interface CommandRecord {
  t: 'cmd';
  s: number;
  ts: number;
  /** Position of the command in the session's capture (0, 1, …): the replay order. */
  i: number;
  /** Command byte. */
  c: number;
  /** The payload, command byte first. Shorter than `len` when truncated. */
  p: Buffer;
  /** The payload's whole length in bytes. */
  len: number;
  /** The outcome; absent for commands the server does not answer or whose answer was not seen. */
  r?: ResultRecord;
}

export interface EndRecord {
  t: 'end';
  s: number;
  ts: number;
}

export type TrafficRecord = BootRecord | CommandRecord | EndRecord;

/** meta.json: what a capture did, written when it ends (and at start, marked running). */
export interface CaptureMeta {
  format: number;
  status: 'running' | 'done' | 'canceled' | 'failed';
  /** Epoch milliseconds; record `ts` values count from here. */
  startedAt: number;
  endedAt: number | null;
  compress: TrafficCompression;
  encrypted: boolean;
  /** Results carry a digest of their rows. */
  resultDigest?: boolean;
  files: string[];
  commands: number;
  /** Records dropped because the writer fell behind (memory bound). */
  dropped: number;
  /** Commands whose payload was recorded only in part. */
  truncated: number;
  sessions: number;
  error: string | null;
}
