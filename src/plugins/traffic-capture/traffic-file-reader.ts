import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { decryptFile, isEncrypted } from './traffic-encryption.js';
import { META_FILE, TRAFFIC_FORMAT_VERSION, type CaptureMeta, type TrafficRecord } from './traffic-record.js';

export interface CaptureContents {
  meta: CaptureMeta | null;
  records: TrafficRecord[];
  /** Lines that were not records (a file cut short by a crash ends in one). */
  badLines: number;
}

/** Capture files of a directory, in the order they were written (worker, then sequence). */
export function captureFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    throw new Error(`cannot read the capture directory ${dir}: ${(err as Error).message}`);
  }
  return names.filter((n) => /^traffic-w\d+-\d+\.jsonl(\.gz)?(\.enc)?$/.test(n)).sort();
}

/** Reads every record of a capture directory (decrypting with `key` when the files are encrypted). */
export function readCapture(dir: string, key: Buffer | null): CaptureContents {
  let meta: CaptureMeta | null = null;
  try {
    meta = JSON.parse(readFileSync(join(dir, META_FILE), 'utf8')) as CaptureMeta;
  } catch {
    // A capture cut short (the proxy was killed) has no final meta.json; its files are still readable.
  }
  if (meta && meta.format !== TRAFFIC_FORMAT_VERSION) throw new Error(`${dir}: capture format ${meta.format} is not supported (this version reads ${TRAFFIC_FORMAT_VERSION})`);
  const files = captureFiles(dir);
  if (files.length === 0) throw new Error(`${dir} holds no capture files (traffic-w*-*.jsonl*)`);
  const records: TrafficRecord[] = [];
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
    }
    for (const line of data.toString('utf8').split('\n')) {
      if (line === '') continue;
      try {
        records.push(JSON.parse(line) as TrafficRecord);
      } catch {
        badLines++;
      }
    }
  }
  return { meta, records, badLines };
}
