// Real components: three MariaDB 10.11 instances (one is killed with SIGKILL), the proxy in-process with
// credentials-native (service account) and migrate-replay, 600 mysql2 sessions with state (about 200 on
// the backend that is killed), sysbench
// oltp_read_only through the proxy (errors ignored, autocommit statements: --skip_trx). Also: a backend that dies without being declared
// down produces one failed move, not a loop of them.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { definePlugin, type MigrationOutcome, type TiproxyPlugin } from '../../../src/plugin.js';
import {
  ROOT_PASSWORD, ROOT_USER, SBTEST_DATABASE, SBTEST_PASSWORD, SBTEST_USER, startMariaDBs, type MariaDBInstance,
} from '../../../local-cluster/mariadb.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';
import { sysbench } from '../../harness/sysbench.js';
import { waitFor } from '../../harness/clients.js';

const outcomes: MigrationOutcome[] = [];
const recorder = definePlugin({
  name: 'outcome-recorder',
  version: '1.0.0',
  apply({ hooks }) {
    hooks.afterMigrate.tap('outcome-recorder', (o) => void outcomes.push(o));
  },
}) as TiproxyPlugin<never>;

const SESSIONS = 600;

interface StatefulSession {
  c: Connection;
  i: number;
  statements: Array<{ execute(params: unknown[]): Promise<[unknown, unknown]> }>;
}

describe('failover: a backend dies', () => {
  let dbs: MariaDBInstance[];
  let proxy: TestProxy;
  const addrOf = (d: MariaDBInstance) => `127.0.0.1:${d.port}`;

  before(async () => {
    dbs = await startMariaDBs(3, { name: 'failover', config: { max_connections: SESSIONS + 100 } });
    proxy = await startProxy({
      backends: dbs.map(addrOf),
      plugins: [recorder],
      logLevel: 'info',
      config: {
        plugins: [
          { name: 'credentials-native', config: { 'service-account': { user: ROOT_USER, password: ROOT_PASSWORD } } },
          { name: 'migrate-replay', config: { 'lock-check': 'off' } },
          { name: 'outcome-recorder' },
        ],
      },
    });
    for (const d of dbs) {
      await sysbench('oltp_read_only', 'prepare', {
        host: '127.0.0.1', port: d.port, user: SBTEST_USER, password: SBTEST_PASSWORD, db: SBTEST_DATABASE,
        tables: 2, tableSize: 1000, threads: 2, time: 0,
      });
    }
  });
  after(async () => {
    await proxy?.stop();
    await Promise.all((dbs ?? []).map((d) => d.destroy()));
  });

  it('every idle session on the killed backend answers its next query from another one with its state; sysbench carries on', { timeout: 180_000 }, async () => {
    outcomes.length = 0;
    const sessions: StatefulSession[] = [];
    const open = async (i: number): Promise<StatefulSession> => {
      const c = await mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD });
      await c.query('USE test');
      await c.query(`SET SESSION sql_mode = 'ANSI_QUOTES', SESSION time_zone = '+0${i % 10}:00', @n = ${i}, @s = 'text ${i}'`);
      const statements = [await c.prepare('SELECT ? + 1 AS v'), await c.prepare('SELECT CONCAT(?, @s) AS v'), await c.prepare('SELECT @n * ? AS v')];
      return { c, i, statements };
    };
    for (let i = 0; i < SESSIONS; i += 50) sessions.push(...await Promise.all(Array.from({ length: Math.min(50, SESSIONS - i) }, (_, k) => open(i + k))));
    const backendOf = (s: StatefulSession) => proxy.kernel.sessions.get(s.c.threadId!)!.backend!.addr;
    const victim = dbs[0]!;
    assert.ok(sessions.filter((s) => backendOf(s) === addrOf(victim)).length >= SESSIONS / 4, 'about a third of the sessions on the victim');

    const load = sysbench('oltp_read_only', 'run', {
      host: proxy.host, port: proxy.port, user: SBTEST_USER, password: SBTEST_PASSWORD, db: SBTEST_DATABASE,
      tables: 2, tableSize: 1000, threads: 4, time: 12, extra: ['--mysql-ignore-errors=all', '--skip_trx=on'],
    });
    await new Promise((r) => setTimeout(r, 3000));
    // Who is on the victim when it dies (the balancer may have moved some since they connected).
    const onVictim = sessions.filter((s) => backendOf(s) === addrOf(victim));
    await victim.kill('SIGKILL');
    await waitFor('every session off the dead backend', () => sessions.every((s) => proxy.kernel.sessions.get(s.c.threadId!)?.backend?.addr !== addrOf(victim)), 20_000);

    assert.ok(onVictim.length >= 150, `${onVictim.length} sessions on the victim when it died`);
    const check = async (s: StatefulSession) => {
      const [rows] = await s.c.query<RowDataPacket[]>('SELECT @@port AS port, DATABASE() AS db, @@sql_mode AS mode, @@time_zone AS tz, @n AS n, @s AS s');
      const row = rows[0]!;
      assert.notEqual(row['port'], victim.port);
      assert.deepEqual({ db: row['db'], mode: row['mode'], tz: row['tz'], n: Number(row['n']), s: row['s'] },
        { db: 'test', mode: 'ANSI_QUOTES', tz: `+0${s.i % 10}:00`, n: s.i, s: `text ${s.i}` }, `session ${s.i}`);
      const [[a]] = (await s.statements[0]!.execute([41])) as unknown as [[{ v: number }]];
      const [[b]] = (await s.statements[1]!.execute(['x-'])) as unknown as [[{ v: string }]];
      const [[c]] = (await s.statements[2]!.execute([2])) as unknown as [[{ v: number }]];
      assert.deepEqual([Number(a.v), b.v, Number(c.v)], [42, `x-text ${s.i}`, 2 * s.i], `prepared statements of session ${s.i}`);
    };
    for (let i = 0; i < sessions.length; i += 50) await Promise.all(sessions.slice(i, i + 50).map(check));
    const result = await load;
    assert.ok(result.queries > 0, 'sysbench ran');
    // A sysbench thread with a statement in flight on the dead backend gets one error (9006) and carries
    // on, failed over; none had to reconnect.
    assert.ok(result.errors <= 4, `${result.errors} errors for 4 threads\n${result.raw}`);
    assert.equal(result.reconnects, 0, result.raw);
    const failovers = outcomes.filter((o) => o.kind === 'failover');
    const statefulIds = new Set(onVictim.map((s) => s.c.threadId));
    const ours = failovers.filter((o) => statefulIds.has(o.session.id));
    assert.equal(ours.length, onVictim.length, 'one failover per session that was on the victim');
    assert.ok(ours.every((o) => o.result === 'succeeded'), JSON.stringify(ours.filter((o) => o.result !== 'succeeded').map((o) => o.error)));
    const logged = proxy.logs.filter((l) => l.msg === 'session failed over').length;
    assert.ok(logged >= onVictim.length, `${logged} failovers logged`);
    // The dead backend was never declared down: moves the balancer aimed at it fail once, then stop.
    const failedToVictim = () => outcomes.filter((o) => o.kind === 'planned' && o.result === 'failed' && o.to.addr === addrOf(victim)).length;
    const failedBefore = failedToVictim();
    await new Promise((r) => setTimeout(r, 5000));
    assert.equal(failedToVictim(), failedBefore, 'no further failed moves to the dead backend');
    assert.ok(failedBefore <= 8, `${failedBefore} failed moves to the dead backend`);
    await Promise.all(sessions.map((s) => s.c.end()));
  });

  it('a session whose state the proxy could not see is closed with an error that says why', { timeout: 60_000 }, async () => {
    const live = dbs.slice(1);
    assert.ok(live.length >= 2);
    const c = await mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD, database: 'test' });
    await c.query('SELECT @hidden := 7');
    const home = proxy.kernel.sessions.get(c.threadId!)!.backend!.addr;
    const victim = live.find((d) => addrOf(d) === home)!;
    // A request that cannot succeed is refused when made, and counted: here, a move to its own backend.
    const refusedBefore = proxy.kernel.migrations.dropped.get('target-is-source') ?? 0;
    assert.equal(proxy.kernel.requestMigration(c.threadId!, 'test', home), false);
    assert.equal(proxy.kernel.migrations.dropped.get('target-is-source'), refusedBefore + 1);
    assert.equal(proxy.kernel.migrationRequests.has(c.threadId!), false);
    const closed = new Promise<Error>((resolve) => c.once('error', resolve));
    await victim.kill('SIGKILL');
    const err = await Promise.race([closed, new Promise<Error>((_, reject) => setTimeout(() => reject(new Error('no error within 10 s')), 10_000))]);
    assert.match(err.message, /cannot be re-established/);
    // mysql2 reports an ERR that arrives while no command is pending with the server's code in `code`.
    assert.equal((err as { code?: unknown }).code, 9007);
  });
});
