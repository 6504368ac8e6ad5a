// What traffic capture costs the proxy: sysbench oltp_point_select at 64 threads (tiny queries, so
// per-command overhead dominates) through one tiproxy CLI on a private MariaDB, runs alternating
// between no capture and a running capture (started and cancelled through the admin API), so
// background load on the shared machine hits both alike. Then the last capture is replayed (read-only,
// 10×) against the same server: the replayer's throughput in commands/s. Target: capture ≤ 5 % QPS.
// `node --import tsx bench/traffic-capture-cost.ts [--time S] [--repeat N] [--threads N]`
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureBuilt } from '../local-cluster/build.js';
import { ROOT_PASSWORD, ROOT_USER, SBTEST_PASSWORD, SBTEST_USER, startMariaDB } from '../local-cluster/mariadb.js';
import { tmpRoot } from '../local-cluster/paths.js';
import { replayTraffic } from '../src/cli/traffic/traffic-replay.js';
import { startProxyProcess } from '../test/harness/proxy.js';
import { sysbench } from '../test/harness/sysbench.js';
import { prepare, type SysbenchData } from './sysbench-runs.js';

const TARGET_COST = 0.05;
const { values: v } = parseArgs({ options: { time: { type: 'string', default: '15' }, repeat: { type: 'string', default: '3' }, threads: { type: 'string', default: '64' } } });
const time = Number(v.time);
const repeat = Number(v.repeat);
const threads = Number(v.threads);

ensureBuilt();
const db = await startMariaDB({ name: 'bench-capture', config: { max_connections: 1000, innodb_buffer_pool_size: '256M' } });
const dir = mkdtempSync(join(tmpRoot, 'bench-capture-'));
const qps = { off: [] as number[], on: [] as number[] };
let lastCapture = '';
let captured = { commands: 0, dropped: 0 };
let replay: Awaited<ReturnType<typeof replayTraffic>> | null = null;
const proxy = await startProxyProcess(['--backend', `127.0.0.1:${db.port}`, '--log-level', 'warn']);
try {
  const data: SysbenchData = { database: 'sbtest', tables: 4, tableSize: 10_000 };
  await prepare(db, data);
  const api = async (path: string, body: unknown) => {
    const r = await fetch(`http://127.0.0.1:${proxy.apiPort}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
    return r.json() as Promise<{ commands: number; dropped: number }>;
  };
  for (let run = 1; run <= repeat; run++) {
    for (const mode of ['off', 'on'] as const) {
      if (mode === 'on') {
        lastCapture = join(dir, `run-${run}`);
        await api('/api/traffic/capture', { output: lastCapture, duration: time * 4 });
      }
      const r = await sysbench('oltp_point_select', 'run', {
        host: '127.0.0.1', port: proxy.port, user: SBTEST_USER, password: SBTEST_PASSWORD, db: data.database,
        tables: data.tables, tableSize: data.tableSize, threads, time, extra: ['--db-ps-mode=disable'],
      });
      if (mode === 'on') captured = await api('/api/traffic/cancel', {});
      if (r.errors > 0) throw new Error(`capture ${mode}: ${r.errors} sysbench errors`);
      qps[mode].push(r.qps);
      process.stderr.write(`  point_select/${threads} capture ${mode} #${run}: ${r.qps.toFixed(0)} qps, p95 ${r.p95Ms} ms${mode === 'on' ? `, ${captured.commands} captured, ${captured.dropped} dropped` : ''}\n`);
    }
  }
  replay = await replayTraffic({
    input: lastCapture, target: `127.0.0.1:${db.port}`, user: ROOT_USER, password: ROOT_PASSWORD, speed: 10, readOnly: true, shard: null, key: null, connectTimeoutMs: 10_000,
  });
} finally {
  await proxy.stop();
  await db.destroy();
  rmSync(dir, { recursive: true, force: true });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const cost = 1 - median(qps.on) / median(qps.off);
process.stdout.write([
  `### traffic capture cost: oltp_point_select, ${threads} threads (median of ${repeat}, ${time} s each)`, '',
  '| tiproxy | QPS |', '|---|---|', `| no capture | ${median(qps.off).toFixed(0)} |`, `| capturing | ${median(qps.on).toFixed(0)} |`, '',
  `QPS cost of capture: ${(cost * 100).toFixed(1)} % (target ≤ ${TARGET_COST * 100} %): ${cost <= TARGET_COST ? 'pass' : 'FAIL'}; last capture: ${captured.commands} commands, ${captured.dropped} dropped`,
  replay ? `replay of the last capture (read-only, 10×, ${replay.summary.sessions} sessions): ${replay.summary.replayed} commands in ${replay.summary.seconds} s = ${replay.summary.commandsPerSecond} commands/s, ${replay.summary.differences} differences` : '', '',
].join('\n'));
