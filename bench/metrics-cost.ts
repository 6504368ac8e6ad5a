// What the metrics plugin costs on the hot path: sysbench oltp_point_select at 64 threads (tiny queries,
// so per-query overhead dominates) through two tiproxy CLIs on one private MariaDB, one with the
// default plugins (metrics on) and one with `metrics` disabled, interleaved run by run so background
// load on the shared machine hits both alike. Target: metrics cost ≤ 3 % QPS.
// `node --import tsx bench/metrics-cost.ts [--time S] [--repeat N] [--threads N]`
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureBuilt } from '../local-cluster/build.js';
import { SBTEST_PASSWORD, SBTEST_USER, startMariaDB } from '../local-cluster/mariadb.js';
import { tmpRoot } from '../local-cluster/paths.js';
import { sysbench } from '../test/harness/sysbench.js';
import { prepare, type SysbenchData } from './sysbench-runs.js';
import { tiproxy, type Target } from './targets.js';

const TARGET_COST = 0.03;

const { values: v } = parseArgs({ options: { time: { type: 'string', default: '15' }, repeat: { type: 'string', default: '3' }, threads: { type: 'string', default: '64' } } });
const time = Number(v.time);
const repeat = Number(v.repeat);
const threads = Number(v.threads);

ensureBuilt();
const db = await startMariaDB({ name: 'bench-metrics', config: { max_connections: 1000, innodb_buffer_pool_size: '256M' } });
const off = join(tmpRoot, `metrics-off-${process.pid}.yaml`);
writeFileSync(off, 'plugins:\n  - name: metrics\n    enabled: false\n');
const targets: Array<{ label: string; target: Target; qps: number[] }> = [];
try {
  const data: SysbenchData = { database: 'sbtest', tables: 4, tableSize: 10_000 };
  await prepare(db, data);
  targets.push({ label: 'metrics on', target: await tiproxy(db), qps: [] });
  targets.push({ label: 'metrics off', target: await tiproxy(db, { args: ['--config', off] }), qps: [] });
  for (let run = 1; run <= repeat; run++) {
    for (const t of targets) {
      const r = await sysbench('oltp_point_select', 'run', {
        host: '127.0.0.1', port: t.target.port, user: SBTEST_USER, password: SBTEST_PASSWORD, db: data.database,
        tables: data.tables, tableSize: data.tableSize, threads, time, extra: ['--db-ps-mode=disable'],
      });
      if (r.errors > 0) throw new Error(`${t.label}: ${r.errors} sysbench errors`);
      t.qps.push(r.qps);
      process.stderr.write(`  point_select/${threads} ${t.label} #${run}: ${r.qps.toFixed(0)} qps, p95 ${r.p95Ms} ms\n`);
    }
  }
} finally {
  for (const t of targets) await t.target.stop();
  await db.destroy();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const [on, offRow] = targets.map((t) => median(t.qps)) as [number, number];
const cost = 1 - on / offRow;
process.stdout.write([
  `### metrics plugin cost: oltp_point_select, ${threads} threads (median of ${repeat}, ${time} s each)`, '',
  '| tiproxy | QPS |', '|---|---|',
  `| metrics on | ${on.toFixed(0)} |`, `| metrics off | ${offRow.toFixed(0)} |`, '',
  `QPS cost of metrics: ${(cost * 100).toFixed(1)} % (target ≤ ${TARGET_COST * 100} %): ${cost <= TARGET_COST ? 'pass' : 'FAIL'}`, '',
].join('\n'));
