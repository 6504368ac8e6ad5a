// sysbench 1.0.20 runs against a MySQL endpoint (a backend or the proxy), with its text report parsed.
import { spawnTracked } from '../../local-cluster/processes.js';

export type SysbenchTest =
  | 'oltp_read_write'
  | 'oltp_read_only'
  | 'oltp_write_only'
  | 'oltp_point_select'
  | 'oltp_insert'
  | 'oltp_update_index'
  | 'oltp_update_non_index'
  | 'oltp_delete'
  | 'select_random_points'
  | 'select_random_ranges'
  | 'bulk_insert';

export type SysbenchPhase = 'prepare' | 'run' | 'cleanup';

export interface SysbenchOptions {
  host: string;
  port: number;
  user: string;
  password: string;
  db: string;
  tables: number;
  tableSize: number;
  threads: number;
  /** Seconds (run phase). */
  time: number;
  extra?: string[];
  /** Called once a second with sysbench's interval report (adds --report-interval=1): the second and its QPS. */
  onInterval?(second: number, qps: number): void;
}

export interface SysbenchResult {
  queries: number;
  transactions: number;
  errors: number;
  reconnects: number;
  qps: number;
  tps: number;
  p95Ms: number;
  raw: string;
}

const INTERVAL_LINE = /^\[ (\d+)s \] thds: \d+ tps: [\d.]+ qps: ([\d.]+)/;

/** Runs one sysbench phase; rejects with the output when sysbench exits non-zero. */
export function sysbench(test: SysbenchTest, phase: SysbenchPhase, opts: SysbenchOptions): Promise<SysbenchResult> {
  const args = [
    test,
    '--db-driver=mysql',
    `--mysql-host=${opts.host}`,
    `--mysql-port=${opts.port}`,
    `--mysql-user=${opts.user}`,
    `--mysql-password=${opts.password}`,
    `--mysql-db=${opts.db}`,
    '--mysql-ssl=off',
    `--tables=${opts.tables}`,
    `--table-size=${opts.tableSize}`,
    `--threads=${opts.threads}`,
    `--time=${opts.time}`,
    ...(opts.extra ?? []),
    ...(opts.onInterval ? ['--report-interval=1'] : []),
    phase,
  ];
  return new Promise((resolve, reject) => {
    const child = spawnTracked('sysbench', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let raw = '';
    let pending = '';
    child.stdout?.on('data', (d: Buffer) => {
      const text = d.toString();
      raw += text;
      if (!opts.onInterval) return;
      // "[ 5s ] thds: 64 tps: 12345.67 qps: 12345.67 (r/w/o: …) lat (ms,95%): 9.22 err/s: 0.00 reconn/s: 0.00"
      const lines = (pending + text).split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        const m = INTERVAL_LINE.exec(line);
        if (m) opts.onInterval(Number(m[1]), Number(m[2]));
      }
    });
    child.stderr?.on('data', (d: Buffer) => { raw += d.toString(); });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code !== 0) reject(new Error(`sysbench ${test} ${phase} exited with ${signal ?? code}\n${raw}`));
      else resolve(parseSysbench(raw));
    });
  });
}

/** Parses sysbench 1.0.20's report; fields absent (prepare/cleanup) are 0. */
export function parseSysbench(raw: string): SysbenchResult {
  // Lines look like "    queries:        200    (189.00 per sec.)".
  const count = (label: string): { total: number; perSec: number } => {
    const m = new RegExp(`^\\s*${label}:\\s+(\\d+)\\s+\\(([\\d.]+) per sec\\.\\)`, 'm').exec(raw);
    return m ? { total: Number(m[1]), perSec: Number(m[2]) } : { total: 0, perSec: 0 };
  };
  const queries = count('queries');
  const transactions = count('transactions');
  const p95 = /^\s*95th percentile:\s+([\d.]+)/m.exec(raw);
  return {
    queries: queries.total,
    transactions: transactions.total,
    errors: count('ignored errors').total,
    reconnects: count('reconnects').total,
    qps: queries.perSec,
    tps: transactions.perSec,
    p95Ms: p95 ? Number(p95[1]) : 0,
    raw,
  };
}
