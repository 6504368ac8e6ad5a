// One command: `node --import tsx bench/sysbench-compare.ts [--time 20] [--repeat 2] [--threads 8,64]
//   [--tests oltp_point_select,oltp_read_only,oltp_read_write]`
// Starts one MariaDB, HAProxy and tiproxy, prepares sysbench data, then runs each test × thread count
// against direct / haproxy / tiproxy interleaved, `repeat` times, and prints a markdown table (and writes
// JSON to bench/results/). CPU per 10k queries is the proxy process's own CPU time from /proc.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startMariaDB, SBTEST_DATABASE, SBTEST_PASSWORD, SBTEST_USER } from '../test/harness/mariadb.js';
import { repoRoot } from '../test/harness/paths.js';
import { sysbench, type SysbenchTest } from '../test/harness/sysbench.js';
import { cpuSeconds } from './cpu.js';
import { direct, haproxy, tiproxy, type Target } from './targets.js';

const { values } = parseArgs({
  options: {
    time: { type: 'string', default: '15' },
    repeat: { type: 'string', default: '2' },
    threads: { type: 'string', default: '8,64' },
    tests: { type: 'string', default: 'oltp_point_select,oltp_read_only,oltp_read_write' },
    'table-size': { type: 'string', default: '10000' },
    'tiproxy-args': { type: 'string', default: '' },
  },
});
const time = Number(values.time);
const repeat = Number(values.repeat);
const threadCounts = values.threads.split(',').map(Number);
const tests = values.tests.split(',') as SysbenchTest[];

interface Row { test: string; threads: number; target: string; run: number; qps: number; p95Ms: number; cpuPer10k: number | null; errors: number }

const db = await startMariaDB({ name: 'bench', config: { max_connections: 5000, innodb_buffer_pool_size: '256M' } });
const targets: Target[] = [direct(db), await haproxy(db), await tiproxy(db, values['tiproxy-args'] ? values['tiproxy-args'].split(' ') : [])];
const base = { host: '127.0.0.1', user: SBTEST_USER, password: SBTEST_PASSWORD, db: SBTEST_DATABASE, tables: 4, tableSize: Number(values['table-size']) };
await sysbench('oltp_read_write', 'prepare', { ...base, port: db.port, threads: 4, time: 0 });

const rows: Row[] = [];
try {
  for (const test of tests) {
    for (const threads of threadCounts) {
      for (let run = 1; run <= repeat; run++) {
        for (const target of targets) {
          const before = target.pid ? cpuSeconds(target.pid) : 0;
          const r = await sysbench(test, 'run', { ...base, port: target.port, threads, time, extra: ['--db-ps-mode=disable'] });
          const used = target.pid ? cpuSeconds(target.pid) - before : null;
          const row: Row = {
            test, threads, target: target.name, run, qps: r.qps, p95Ms: r.p95Ms, errors: r.errors,
            cpuPer10k: used === null || r.queries === 0 ? null : (used / r.queries) * 10_000,
          };
          rows.push(row);
          process.stderr.write(`${test} t=${threads} ${target.name} #${run}: ${r.qps.toFixed(0)} qps, p95 ${r.p95Ms} ms, cpu/10k ${row.cpuPer10k?.toFixed(3) ?? '-'}\n`);
        }
      }
    }
  }
} finally {
  for (const t of targets) await t.stop();
  await db.destroy();
}

// Median over repeats per (test, threads, target), then ratios to HAProxy.
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const lines = ['| test | threads | target | QPS | p95 ms | CPU s / 10k q | QPS vs HAProxy | CPU vs HAProxy |', '|---|---|---|---|---|---|---|---|'];
for (const test of tests) {
  for (const threads of threadCounts) {
    const pick = (name: string) => rows.filter((r) => r.test === test && r.threads === threads && r.target === name);
    const ha = pick('haproxy');
    const haQps = median(ha.map((r) => r.qps));
    const haCpu = median(ha.map((r) => r.cpuPer10k ?? 0));
    for (const name of ['direct', 'haproxy', 'tiproxy']) {
      const rs = pick(name);
      const qps = median(rs.map((r) => r.qps));
      const cpu = rs[0]?.cpuPer10k === null ? null : median(rs.map((r) => r.cpuPer10k ?? 0));
      lines.push(`| ${test} | ${threads} | ${name} | ${qps.toFixed(0)} | ${median(rs.map((r) => r.p95Ms)).toFixed(2)} | ${cpu === null ? '–' : cpu.toFixed(3)} | ${(qps / haQps).toFixed(2)} | ${cpu === null ? '–' : (cpu / haCpu).toFixed(2)} |`);
    }
  }
}
const table = lines.join('\n');
process.stdout.write(`${table}\n`);
const out = join(repoRoot, 'bench', 'results');
mkdirSync(out, { recursive: true });
const file = join(out, `sysbench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ time, repeat, node: process.version, rows }, null, 2));
process.stderr.write(`wrote ${file}\n`);
