/**
 * The capture file format (docs/traffic.md): JSON lines, one record per line, gzip-compressed and
 * optionally AES-256-GCM-encrypted, rotated into traffic-<worker>-<seq>.jsonl.gz[.enc] files, with a
 * meta.json beside them. The replayer (src/cli/traffic/) reads what this file describes.
 */

export const TRAFFIC_FORMAT_VERSION = 1;
export const META_FILE = 'meta.json';

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
}

export interface CommandRecord {
  t: 'cmd';
  s: number;
  ts: number;
  /** Position of the command in the session's capture (0, 1, …): the replay order. */
  i: number;
  /** Command byte. */
  c: number;
  /** The payload, command byte first, base64. Shorter than `len` when truncated. */
  p: string;
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
  compress: 'gzip' | 'none';
  encrypted: boolean;
  files: string[];
  commands: number;
  /** Records dropped because the writer fell behind (memory bound). */
  dropped: number;
  /** Commands whose payload was recorded only in part. */
  truncated: number;
  sessions: number;
  error: string | null;
}
