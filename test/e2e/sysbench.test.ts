// Real components: one MariaDB 10.11, the tiproxy CLI (bin/tiproxy, built by the test command), sysbench 1.0.20.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startMariaDB, SBTEST_DATABASE, SBTEST_PASSWORD, SBTEST_USER, type MariaDBInstance } from '../../local-cluster/mariadb.js';
import { startProxyProcess, type ProxyProcess } from '../harness/proxy.js';
import { sysbench } from '../harness/sysbench.js';

describe('sysbench through the proxy', () => {
  let db: MariaDBInstance;
  let proxy: ProxyProcess;
  before(async () => {
    db = await startMariaDB({ name: 'sysbench' });
    proxy = await startProxyProcess(['--backend', `127.0.0.1:${db.port}`, '--log-level', 'info']);
  });
  after(async () => {
    await proxy?.stop();
    await db?.destroy();
  });

  const common = () => ({
    host: '127.0.0.1', port: proxy.port, user: SBTEST_USER, password: SBTEST_PASSWORD, db: SBTEST_DATABASE,
    tables: 8, tableSize: 10000, threads: 4, time: 8,
  });

  it('runs oltp_read_write with zero errors and zero reconnects', async () => {
    await sysbench('oltp_read_write', 'prepare', { ...common(), threads: 4 });
    const result = await sysbench('oltp_read_write', 'run', common());
    // sysbench aborts on any error except the InnoDB deadlocks / lock-wait timeouts it retries and counts
    // as "ignored"; those come from the database (rare with 8 × 10k rows and 4 threads, but possible on a
    // loaded machine), not from the proxy. Anything the proxy did wrong ends the run or shows below.
    assert.ok(result.errors <= Math.max(1, result.transactions / 1000), `too many ignored errors:\n${result.raw}`);
    assert.equal(result.reconnects, 0, result.raw);
    assert.ok(result.transactions > 100, `only ${result.transactions} transactions:\n${result.raw}`);
    // Every session ended cleanly: no backend-side or proxy-side disconnect was logged.
    assert.doesNotMatch(proxy.output(), /"reason":"backend-lost"|"reason":"protocol-error"/);
  });

  it('runs oltp_point_select with server-side prepared statements', async () => {
    const result = await sysbench('oltp_point_select', 'run', { ...common(), time: 4, extra: ['--db-ps-mode=auto'] });
    assert.equal(result.errors, 0, result.raw);
    assert.ok(result.queries > 1000, result.raw);
  });
});
