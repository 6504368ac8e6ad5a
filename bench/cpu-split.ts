// User vs system CPU per 10k queries for HAProxy, bare Node relays (pipe, and the onread floor) and tiproxy (oltp_point_select, 64
// threads, 8 s, twice): shows where tiproxy's extra CPU goes. Extra arguments go to the tiproxy CLI.
//   node --import tsx bench/cpu-split.ts [tiproxy args…]
import { readFileSync } from 'node:fs';
import { startMariaDB, SBTEST_USER, SBTEST_PASSWORD, SBTEST_DATABASE } from '../local-cluster/mariadb.js';
import { sysbench } from '../test/harness/sysbench.js';
import { floorRelay, haproxy, nodePipe, tiproxy } from './targets.js';
// /proc/<pid>/stat counts in clock ticks (USER_HZ, 100 on Linux).
const ticks = 100;
const stat = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return { user: Number(f[11]) / ticks, sys: Number(f[12]) / ticks }; };
const db = await startMariaDB({ name: 'split' });
const common = { host: '127.0.0.1', user: SBTEST_USER, password: SBTEST_PASSWORD, db: SBTEST_DATABASE, tables: 1, tableSize: 10000 };
await sysbench('oltp_read_write', 'prepare', { ...common, port: db.port, threads: 1, time: 1 });
const args = process.argv.slice(2);
for (const rep of [1, 2]) for (const make of [haproxy, nodePipe, floorRelay, (d: typeof db) => tiproxy(d, { args })]) {
  const t = await make(db);
  await new Promise((r) => setTimeout(r, 300));
  const a = stat(t.pid!);
  const r = await sysbench('oltp_point_select', 'run', { ...common, port: t.port, threads: 64, time: 8, extra: ['--db-ps-mode=disable'] });
  const b = stat(t.pid!);
  const k = r.queries / 10000;
  console.log(`${t.name.padEnd(9)} rep${rep} ${r.qps.toFixed(0)} QPS  user ${((b.user - a.user) / k).toFixed(3)}  sys ${((b.sys - a.sys) / k).toFixed(3)}  total ${((b.user + b.sys - a.user - a.sys) / k).toFixed(3)} s/10k`);
  await t.stop();
}
await db.destroy();
