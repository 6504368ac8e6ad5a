import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { decryptFile, isEncrypted } from './traffic-encryption.js';
import { zstdAvailable, zstdDecompress, zstdUnavailable } from './zstd-codec.js';
import {
  COMMAND_HEADER_BYTES, DIGEST_BYTES, JSON_HEADER_BYTES, META_FILE_PATTERN, READABLE_FORMATS, RECORD_COMMAND, RECORD_JSON, RECORD_RESULT,
  RECORD_RESULT_DIGEST, RESULT_BYTES, type BootRecord, type CaptureMeta, type CommandRecord, type EndRecord, type ResultRecord, type TrafficRecord,
} from './traffic-record.js';

export interface CaptureContents {
  meta: CaptureMeta | null;
  records: TrafficRecord[];
  /** Lines or records that could not be read (a file cut short by a crash ends in one). */
  badLines: number;
}

/** Format 1's command line: the payload in base64. */
type JsonCommandRecord = Omit<CommandRecord, 'p'> & { p: string };

/** Commands of a session waiting for their result record (format 2 writes them apart). */
interface SessionPairing {
  next: number;
  waiting: Array<{ response: number; record: CommandRecord }>;
}

/** Capture files of a directory, in the order they were written (worker, then sequence). */
export function captureFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    throw new Error(`cannot read the capture directory ${dir}: ${(err as Error).message}`);
  }
  return names.filter((n) => /^traffic-w\d+-\d+\.(jsonl|bin)(\.gz|\.zst)?(\.enc)?$/.test(n)).sort();
}

/** Reads every record of a capture directory (decrypting with `key` when the files are encrypted). */
export function readCapture(dir: string, key: Buffer | null): CaptureContents {
  const files = captureFiles(dir);
  const meta = readMeta(dir);
  if (files.length === 0) throw new Error(`${dir} holds no capture files (traffic-w*-*.bin* or .jsonl*)`);
  const zstdFile = files.find((n) => n.includes('.zst'));
  if (zstdFile && !zstdAvailable()) throw new Error(zstdUnavailable(`${dir}: the capture is zstd-compressed (${zstdFile}); reading it`));
  const records: TrafficRecord[] = [];
  const pairing = new Map<number, SessionPairing>();
  let badLines = 0;
  for (const name of files) {
    let data: Buffer = readFileSync(join(dir, name));
    if (name.endsWith('.enc') || isEncrypted(data)) data = decryptFile(data, key, name);
    if (name.includes('.gz')) {
      try {
        data = gunzipSync(data, { finishFlush: 2 /* Z_SYNC_FLUSH: keep what a cut-off file holds */ });
      } catch (err) {
        throw new Error(`${name}: not a readable gzip file: ${(err as Error).message}`);
      }
    } else if (name.includes('.zst')) {
      try {
        data = zstdDecompress(data);
      } catch (err) {
        throw new Error(`${name}: not a readable zstd file: ${(err as Error).message}`);
      }
    }
    badLines += name.includes('.bin') ? decodeBinary(data, records, pairing) : decodeJsonLines(data, records);
  }
  return { meta, records, badLines };
}

/** The capture's meta: meta.json, or every worker's meta-w<N>.json totalled (proxy.workers > 1); null when there is none. */
export function readMeta(dir: string): CaptureMeta | null {
  const metas: CaptureMeta[] = [];
  for (const name of readdirSync(dir).filter((n) => META_FILE_PATTERN.test(n)).sort()) {
    let meta: CaptureMeta;
    try {
      meta = JSON.parse(readFileSync(join(dir, name), 'utf8')) as CaptureMeta;
    } catch {
      continue; // a capture cut short (the proxy was killed) may lack its final meta; its files are still readable
    }
    if (!READABLE_FORMATS.includes(meta.format)) {
      throw new Error(`${dir}: capture format ${meta.format} is not supported (this version reads formats ${READABLE_FORMATS.join(', ')})`);
    }
    metas.push(meta);
  }
  if (metas.length <= 1) return metas[0] ?? null;
  const sum = (key: 'commands' | 'dropped' | 'truncated' | 'sessions') => metas.reduce((n, m) => n + (m[key] ?? 0), 0);
  const statuses = metas.map((m) => m.status);
  const errors = metas.map((m) => m.error).filter((e): e is string => e !== null);
  return {
    ...metas[0]!,
    status: (['failed', 'running', 'canceled', 'done'] as const).find((s) => statuses.includes(s)) ?? 'done',
    startedAt: Math.min(...metas.map((m) => m.startedAt)),
    endedAt: metas.some((m) => m.endedAt === null) ? null : Math.max(...metas.map((m) => m.endedAt ?? 0)),
    resultDigest: metas.every((m) => m.resultDigest === true),
    files: metas.flatMap((m) => m.files), commands: sum('commands'), dropped: sum('dropped'), truncated: sum('truncated'), sessions: sum('sessions'),
    error: errors.length > 0 ? errors.join('; ') : null,
  };
}

/** Format 1: one JSON record per line. Returns the lines that were not records. */
function decodeJsonLines(data: Buffer, out: TrafficRecord[]): number {
  let bad = 0;
  for (const line of data.toString('utf8').split('\n')) {
    if (line === '') continue;
    try {
      const r = JSON.parse(line) as BootRecord | EndRecord | JsonCommandRecord;
      out.push(r.t === 'cmd' ? { ...r, p: Buffer.from(r.p, 'base64') } : r);
    } catch {
      bad++;
    }
  }
  return bad;
}

/** Format 2: binary records (traffic-record.ts); results are attached to their commands. Returns 1 when the data ends inside a record. */
function decodeBinary(data: Buffer, out: TrafficRecord[], pairing: Map<number, SessionPairing>): number {
  const sessionOf = (s: number) => {
    let p = pairing.get(s);
    if (!p) pairing.set(s, (p = { next: 0, waiting: [] }));
    return p;
  };
  let p = 0;
  while (p < data.length) {
    const type = data[p]!;
    if (type === RECORD_COMMAND) {
      if (p + COMMAND_HEADER_BYTES > data.length) return 1;
      const kept = data.readUInt32LE(p + 21);
      if (p + COMMAND_HEADER_BYTES + kept > data.length) return 1;
      const s = data.readUInt32LE(p + 1);
      const response = data.readUInt32LE(p + 13);
      const payload = data.subarray(p + COMMAND_HEADER_BYTES, p + COMMAND_HEADER_BYTES + kept);
      const session = sessionOf(s);
      const record: CommandRecord = {
        t: 'cmd', s, ts: data.readDoubleLE(p + 5), i: session.next++, c: kept > 0 ? payload[0]! : 0, p: payload, len: data.readUInt32LE(p + 17),
      };
      out.push(record);
      if (response > 0) session.waiting.push({ response, record });
      p += COMMAND_HEADER_BYTES + kept;
    } else if (type === RECORD_RESULT || type === RECORD_RESULT_DIGEST) {
      const size = RESULT_BYTES + (type === RECORD_RESULT_DIGEST ? DIGEST_BYTES : 0);
      if (p + size > data.length) return 1;
      const r: ResultRecord = { err: data.readInt32LE(p + 9), aff: data.readUInt32LE(p + 13), rows: data.readUInt32LE(p + 17), ms: data.readDoubleLE(p + 21) };
      const stmt = data.readUInt32LE(p + 29);
      if (stmt !== 0) r.stmt = stmt;
      if (type === RECORD_RESULT_DIGEST) r.digest = data.toString('hex', p + RESULT_BYTES, p + size);
      attachResult(sessionOf(data.readUInt32LE(p + 1)), data.readUInt32LE(p + 5), r);
      p += size;
    } else if (type === RECORD_JSON) {
      if (p + JSON_HEADER_BYTES > data.length) return 1;
      const size = data.readUInt32LE(p + 1);
      if (p + JSON_HEADER_BYTES + size > data.length) return 1;
      try {
        out.push(JSON.parse(data.toString('utf8', p + JSON_HEADER_BYTES, p + JSON_HEADER_BYTES + size)) as BootRecord | EndRecord);
      } catch {
        return 1;
      }
      p += JSON_HEADER_BYTES + size;
    } else {
      return 1; // not a record: the rest of the file cannot be framed
    }
  }
  return 0;
}

/** Gives the result to the command that was waiting for it; commands before it got none (their answer was not seen). */
function attachResult(session: SessionPairing, response: number, result: ResultRecord): void {
  const w = session.waiting;
  while (w.length > 0) {
    const head = w[0]!;
    if (head.response > response) return; // its command went out before the capture started
    w.shift();
    if (head.response === response) {
      head.record.r = result;
      return;
    }
  }
}
