// Real components: one MariaDB 10.11 instance, the proxy in-process with the contrib rate-limit plugin
// (and tenant-router, for the per-tenant cap), mysql2 as the client. The last suite applies the plugin
// to a bare hook set (no network) to check that disposal releases its timers.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import { pino } from 'pino';
import { startMariaDB, ROOT_PASSWORD, ROOT_USER, type MariaDBInstance } from '../../local-cluster/mariadb.js';
import { startProxy, type TestProxy } from '../harness/proxy.js';
import { createHookSet } from '../../src/kernel/hooks/hook-set.js';
import type { CommandContext, CommandReply, PluginContext, SessionInfo } from '../../src/plugin.js';
import { protocol } from '../../src/plugin.js';
import rateLimit, { TokenBucket, type RateLimitConfig } from '../../plugins-contrib/rate-limit/index.js';
import { rejection, type MysqlError } from '../harness/clients.js';

const PASSWORD = 'rl-pw';
const USERS = ['conn_1', 'qps_1', 'queue_1', 'slow_1', 'ten_1', 'ten_2'];



const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('rate-limit plugin', () => {
  let db: MariaDBInstance;
  let proxy: TestProxy;
  const open: mysql.Connection[] = [];

  async function connect(user: string, password = PASSWORD): Promise<mysql.Connection> {
    const c = await mysql.createConnection({ host: proxy.host, port: proxy.port, user, password });
    open.push(c);
    return c;
  }

  function sessionsOf(user: string): number {
    return [...proxy.kernel.sessions.values()].filter((s) => s.user === user).length;
  }

  before(async () => {
    db = await startMariaDB({ name: 'ratelimit' });
    for (const user of USERS) {
      await db.query(`CREATE USER '${user}'@'%' IDENTIFIED BY '${PASSWORD}'`);
      await db.query(`GRANT ALL PRIVILEGES ON *.* TO '${user}'@'%'`);
    }
    proxy = await startProxy({
      backends: [`127.0.0.1:${db.port}`],
      logLevel: 'info',
      config: {
        plugins: [
          { name: 'tenant-router', config: { tenants: [{ name: 'team', users: ['ten_*'] }] } },
          {
            name: 'rate-limit',
            required: true,
            config: {
              limits: [
                { users: ['conn_*'], 'max-connections': 2 },
                { users: ['qps_*'], qps: 20 },
                { users: ['queue_*'], qps: 50, burst: 10, 'over-limit': 'queue', 'max-queue-ms': 1000 },
                { users: ['slow_*'], qps: 1, 'over-limit': 'queue', 'max-queue-ms': 200 },
                { tenants: ['team'], 'max-connections': 1 },
              ],
            },
          },
        ],
      },
    });
  });

  after(async () => {
    for (const c of open) c.destroy();
    await proxy?.stop();
    await db?.destroy();
  });

  it('refuses a user\'s third session with max-connections 2 (1203), and admits one again after a close', async () => {
    const first = await connect('conn_1');
    await connect('conn_1');
    const err = await rejection(connect('conn_1'));
    assert.equal(err.errno, 1203);
    assert.equal(err.sqlState, '42000');
    assert.match(err.message, /^User 'conn_1' already has more than 2 active connections/);
    // Other users are not counted against conn_1, nor limited by its rule.
    for (let i = 0; i < 3; i++) await connect(ROOT_USER, ROOT_PASSWORD);
    await first.end();
    const deadline = Date.now() + 5000;
    while (sessionsOf('conn_1') > 1 && Date.now() < deadline) await sleep(10);
    const again = await connect('conn_1');
    const [rows] = await again.query('SELECT CURRENT_USER() AS u');
    assert.deepEqual(rows, [{ u: 'conn_1@%' }]);
  });

  it('caps sessions per tenant when the limit names tenants', async () => {
    await connect('ten_1');
    const err = await rejection(connect('ten_2'));
    assert.equal(err.errno, 1203);
    assert.match(err.message, /^Tenant 'team' already has more than 1 active connection \(tiproxy rate-limit\)$/);
  });

  it('qps 20 in refuse mode: a burst of 100 queries gets about burst + elapsed × qps through, the rest 1226', async (t) => {
    const conns = await Promise.all(Array.from({ length: 5 }, () => connect('qps_1')));
    const rootConn = await connect(ROOT_USER, ROOT_PASSWORD);
    const started = performance.now();
    const [limited, unlimited] = await Promise.all([
      Promise.allSettled(conns.flatMap((c) => Array.from({ length: 20 }, (_, i) => c.query('SELECT ? AS i', [i])))),
      Promise.allSettled(Array.from({ length: 50 }, (_, i) => rootConn.query('SELECT ? AS i', [i]))),
    ]);
    const elapsedS = (performance.now() - started) / 1000;
    const ok = limited.filter((r) => r.status === 'fulfilled').length;
    const refused = limited.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    t.diagnostic(`${ok} of 100 succeeded in ${elapsedS.toFixed(3)} s`);
    for (const r of refused) {
      const e = r.reason as MysqlError;
      assert.equal(e.errno, 1226, e.message);
      assert.match(e.message, /^User 'qps_1' has exceeded the 'qps' resource \(current value: 20; tiproxy rate-limit\)$/);
    }
    assert.ok(ok >= 20, `the full bucket (20) gets through: ${ok} in ${elapsedS.toFixed(3)} s`);
    assert.ok(ok <= 20 + Math.ceil(20 * elapsedS) + 1, `no more than burst + refill: ${ok} in ${elapsedS.toFixed(3)} s`);
    assert.ok(refused.length > 0);
    assert.equal(unlimited.filter((r) => r.status === 'fulfilled').length, 50, 'root is not limited');
    // After a refusal the connections are fine, and the bucket refills.
    await sleep(300);
    const [rows] = await conns[0]!.query('SELECT 7 AS n');
    assert.deepEqual(rows, [{ n: 7 }]);
  });

  it('qps 50 in queue mode: 60 queries all succeed, paced to take about a second', async (t) => {
    const conns = await Promise.all(Array.from({ length: 3 }, () => connect('queue_1')));
    const started = performance.now();
    const results = await Promise.allSettled(conns.flatMap((c) => Array.from({ length: 20 }, (_, i) => c.query('SELECT ? AS i', [i]))));
    const elapsedMs = performance.now() - started;
    t.diagnostic(`60 queries in ${elapsedMs.toFixed(0)} ms`);
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.deepEqual(failed.map((r) => (r.reason as Error).message), []);
    // burst 10 immediately, the other 50 at 50/s: ≥ 1.0 s in theory.
    assert.ok(elapsedMs >= 800, `took ${elapsedMs.toFixed(0)} ms`);
    assert.ok(elapsedMs < 5000, `took ${elapsedMs.toFixed(0)} ms`);
  });

  it('queue mode refuses at once what would wait longer than max-queue-ms; prepared executions count too', async () => {
    const c = await connect('slow_1');
    await c.query('SELECT 1'); // the single token
    const started = performance.now();
    const err = await rejection(c.query('SELECT 2'));
    const waitedMs = performance.now() - started;
    assert.equal(err.errno, 1226);
    assert.match(err.message, /exceeded the 'qps' resource \(current value: 1; tiproxy rate-limit\): it would wait \d+ ms, longer than max-queue-ms 200$/);
    assert.ok(waitedMs < 150, `refused without waiting (${waitedMs.toFixed(0)} ms)`);
    // COM_STMT_EXECUTE is limited as well.
    const stmtErr = await rejection(c.execute('SELECT ? AS n', [1]));
    assert.equal(stmtErr.errno, 1226);
    await sleep(1100);
    const [rows] = await c.execute('SELECT ? AS n', [3]);
    assert.deepEqual(rows, [{ n: 3 }]);
  });

  it('fails start-up (when required) on a limit with nothing to limit', async () => {
    await assert.rejects(startProxy({
      backends: [`127.0.0.1:${db.port}`],
      config: { plugins: [{ name: 'rate-limit', required: true, config: { limits: [{ users: ['x'] }] } }] },
    }), /limits\[0\]: sets neither max-connections nor qps/);
  });
});

describe('rate-limit internals', () => {
  it('token bucket: burst, refill, reservations and refunds', () => {
    const b = new TokenBucket(10, 2, 0);
    assert.ok(b.tryTake(0));
    assert.ok(b.tryTake(0));
    assert.ok(!b.tryTake(0));
    assert.ok(b.tryTake(100), 'one token after 100 ms at 10/s');
    assert.ok(!b.tryTake(150));
    assert.ok(b.isFull(1000));
    const q = new TokenBucket(10, 1, 0);
    assert.equal(q.reserve(0), 0);
    assert.equal(q.reserve(0), 100);
    assert.equal(q.reserve(0), 200);
    q.refund();
    assert.equal(q.reserve(0), 200);
  });

  it('disposal releases held commands and clears every timer', async () => {
    const hooks = createHookSet();
    const disposers: Array<() => void | Promise<void>> = [];
    const config: RateLimitConfig = { limits: [{ users: ['u'], qps: 1, 'over-limit': 'queue', 'max-queue-ms': 60_000 }] };
    const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const ctx = {
      hooks, config, proxyConfig: {}, logger: pino({ level: 'silent' }), onDispose: (fn: () => void) => disposers.push(fn),
      backends: {}, sessions: { list: () => [], get: () => undefined, count: () => 0 },
    } as unknown as PluginContext<RateLimitConfig>;
    await rateLimit.apply(ctx);
    const session = { id: 1, user: 'u', labels: new Map<string, string>() } as unknown as SessionInfo;
    const call = (): CommandReply | undefined => hooks.onCommand.for(protocol.COM_QUERY).call({ session, command: protocol.COM_QUERY } as CommandContext);
    assert.equal(call(), undefined, 'the first command has a token');
    const held = call();
    assert.ok(held && 'hold' in held, 'the second one is queued');
    assert.ok(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length > timersBefore);
    for (const fn of disposers) await fn();
    assert.equal(await held.hold, undefined, 'released, not left hanging');
    assert.equal(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length, timersBefore);
  });
});
