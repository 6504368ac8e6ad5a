// Runs sysbench cases against every target interleaved (case 1 on direct, HAProxy, tiproxy; then the
// next repeat; then case 2 ...), so that background load on the shared machine hits all targets alike
// instead of one target's whole series. Each sample carries the proxy's CPU (from /proc) and the
// bytes MariaDB sent (its Bytes_sent counter), which gives MB/s for big result sets.
import type { MariaDBInstance } from '../local-cluster/mariadb.js';
import { SBTEST_PASSWORD, SBTEST_USER } from '../local-cluster/mariadb.js';
import { sysbench, type SysbenchOptions, type SysbenchTest } from '../test/harness/sysbench.js';
import { cpuSeconds } from './cpu.js';
import { cell, medians, vsHaproxy } from './report.js';
import type { Target } from './targets.js';

export interface SysbenchData {
  database: string;
  tables: number;
  tableSize: number;
}

export interface SysbenchCase {
  /** Groups the repeats of one case in the report, e.g. "oltp_point_select/64". */
  key: string;
  test: SysbenchTest;
  threads: number;
  data: SysbenchData;
  extra?: string[];
}

export interface SysbenchSample {
  key: string;
  test: SysbenchTest;
  threads: number;
  target: string;
  run: number;
  qps: number;
  p95Ms: number;
  queries: number;
  errors: number;
  /** Proxy CPU seconds per 10,000 queries; NaN for direct. */
  cpuPer10k: number;
  /** Result bytes MariaDB sent per second of queries (same for every target: a cross-check). */
  mbPerSec: number;
}

function options(data: SysbenchData, port: number, threads: number, time: number): SysbenchOptions {
  return {
    host: '127.0.0.1', port, user: SBTEST_USER, password: SBTEST_PASSWORD, db: data.database,
    tables: data.tables, tableSize: data.tableSize, threads, time,
  };
}

/** Creates the database and sysbench's tables straight on MariaDB. */
export async function prepare(db: MariaDBInstance, data: SysbenchData): Promise<void> {
  await db.query(`CREATE DATABASE IF NOT EXISTS \`${data.database}\``);
  await sysbench('oltp_read_write', 'prepare', options(data, db.port, Math.min(4, data.tables), 0));
}

async function bytesSent(db: MariaDBInstance): Promise<number> {
  const rows = await db.query<Array<{ Value: string }>>("SHOW GLOBAL STATUS LIKE 'Bytes_sent'");
  return Number(rows[0]?.Value ?? NaN);
}

export async function runInterleaved(
  db: MariaDBInstance, cases: SysbenchCase[], targets: Target[], time: number, repeat: number,
): Promise<SysbenchSample[]> {
  const samples: SysbenchSample[] = [];
  for (const c of cases) {
    for (let run = 1; run <= repeat; run++) {
      for (const target of targets) {
        const cpuBefore = target.pid ? cpuSeconds(target.pid) : NaN;
        const bytesBefore = await bytesSent(db);
        // Text protocol like most applications (and TiProxy's report); prepared statements are a separate case.
        const r = await sysbench(c.test, 'run', {
          ...options(c.data, target.port, c.threads, time), extra: ['--db-ps-mode=disable', ...(c.extra ?? [])],
        });
        const cpu = target.pid ? cpuSeconds(target.pid) - cpuBefore : NaN;
        const bytesPerQuery = r.queries ? ((await bytesSent(db)) - bytesBefore) / r.queries : NaN;
        const sample: SysbenchSample = {
          key: c.key, test: c.test, threads: c.threads, target: target.name, run,
          qps: r.qps, p95Ms: r.p95Ms, queries: r.queries, errors: r.errors,
          cpuPer10k: r.queries ? (cpu / r.queries) * 10_000 : NaN,
          mbPerSec: (bytesPerQuery * r.qps) / 1e6,
        };
        samples.push(sample);
        process.stderr.write(`  ${c.key} ${target.name} #${run}: ${r.qps.toFixed(0)} qps, p95 ${r.p95Ms} ms, ` +
          `cpu/10k ${Number.isNaN(sample.cpuPer10k) ? '-' : sample.cpuPer10k.toFixed(3)} s, ${sample.mbPerSec.toFixed(1)} MB/s\n`);
      }
    }
  }
  return samples;
}

export interface SysbenchSummary {
  key: string;
  target: string;
  first: SysbenchSample;
  runs: number;
  qps: number;
  p95Ms: number;
  cpuPer10k: number;
  mbPerSec: number;
  errors: number;
  qpsVsHaproxy: number;
  cpuVsHaproxy: number;
}

/** Medians per case × target and the ratios to HAProxy the targets are stated in. */
export function summarise(samples: SysbenchSample[]): SysbenchSummary[] {
  const rows = medians(samples, (s) => s.key, ['qps', 'p95Ms', 'cpuPer10k', 'mbPerSec', 'errors'] as const);
  return rows.map((r) => ({
    ...r,
    qpsVsHaproxy: vsHaproxy(rows, r, (x) => x.qps),
    cpuVsHaproxy: vsHaproxy(rows, r, (x) => x.cpuPer10k),
  }));
}

/** The columns both sysbench suites print after their own leading ones. */
export const SUMMARY_HEADER = ['target', 'QPS', 'p95 ms', 'MB/s', 'proxy CPU s / 10k q', 'QPS vs HAProxy', 'CPU vs HAProxy'];
export function summaryCells(r: SysbenchSummary): string[] {
  return [r.target, cell(r.qps), cell(r.p95Ms, 2), cell(r.mbPerSec, 1), cell(r.cpuPer10k, 3), cell(r.qpsVsHaproxy, 2), cell(r.cpuVsHaproxy, 2)];
}
