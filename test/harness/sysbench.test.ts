// Checks that the sysbench wrapper drives a real run and parses its report.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { SBTEST_DATABASE, SBTEST_PASSWORD, SBTEST_USER, startMariaDB, type MariaDBInstance } from '../../local-cluster/mariadb.js';
import { sysbench, type SysbenchOptions } from './sysbench.js';

let db: MariaDBInstance;
before(async () => { db = await startMariaDB({ name: 'sysbench' }); });
after(async () => { await db?.destroy(); });

test('sysbench prepare/run/cleanup against MariaDB reports queries, tps and p95', async () => {
  const opts: SysbenchOptions = {
    host: db.host, port: db.port, user: SBTEST_USER, password: SBTEST_PASSWORD, db: SBTEST_DATABASE,
    tables: 1, tableSize: 1000, threads: 2, time: 2,
  };
  await sysbench('oltp_read_write', 'prepare', opts);
  const r = await sysbench('oltp_read_write', 'run', opts);
  await sysbench('oltp_read_write', 'cleanup', opts);
  assert.ok(r.transactions > 0, r.raw);
  // 20 queries per committed oltp_read_write transaction, plus those of transactions that hit an ignored
  // error (InnoDB deadlocks between the threads are normal here) or were cut off when time ran out.
  assert.ok(r.queries >= r.transactions * 20, r.raw);
  assert.ok(r.queries < (r.transactions + r.errors + opts.threads) * 20, r.raw);
  assert.ok(r.errors < r.transactions / 10, r.raw);
  assert.equal(r.reconnects, 0);
  assert.ok(r.qps > 0 && r.tps > 0 && r.p95Ms > 0, r.raw);
});
