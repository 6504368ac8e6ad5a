// Real components: two MariaDB 10.11 instances (metadata_lock_info installed), the proxy in-process with
// credentials-native (service account), migrate-replay and a plugin counting the queries run on the
// old backend during capture, mysql2 clients.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mysql, { type Connection } from 'mysql2/promise';
import { definePlugin, MigrationVetoError, type BackendSql, type StateTransferContext, type TiproxyPlugin } from '../../../src/plugin.js';
import { startMariaDB, ROOT_PASSWORD, ROOT_USER, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { stateFromLedger } from '../../../src/plugins/migrate-replay/failover.js';
import { replay } from '../../../src/plugins/migrate-replay/restore.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Queries (and pipelines) the old backend received during the last capture. */
let captureQueries: string[] = [];
const captureCounter = definePlugin({
  name: 'capture-counter',
  version: '1.0.0',
  apply({ hooks }) {
    hooks.captureState.tapPromise({ name: 'capture-counter', stage: -10 }, async (state, ctx) => {
      captureQueries = [];
      const source = ctx.source as (BackendSql & { query: BackendSql['query']; pipeline?: BackendSql['pipeline'] }) | null;
      if (!source) return state;
      const query = source.query.bind(source);
      source.query = (sql) => {
        captureQueries.push(sql);
        return query(sql);
      };
      const pipeline = source.pipeline?.bind(source);
      if (pipeline) {
        source.pipeline = (steps) => {
          captureQueries.push(`pipeline of ${steps.length}`);
          return pipeline(steps);
        };
      }
      return state;
    });
  },
}) as TiproxyPlugin<never>;

describe('cheap capture and restore (migrate-replay)', () => {
  let dbs: MariaDBInstance[];
  let proxy: TestProxy;
  const addrOf = (d: MariaDBInstance) => `127.0.0.1:${d.port}`;

  before(async () => {
    dbs = await Promise.all([startMariaDB({ name: 'cheap-capture-a' }), startMariaDB({ name: 'cheap-capture-b' })]);
    for (const d of dbs) {
      await d.query("INSTALL SONAME 'metadata_lock_info'");
      await d.query('CREATE DATABASE IF NOT EXISTS shop');
      await d.query('CREATE TABLE IF NOT EXISTS shop.items (id INT PRIMARY KEY, name VARCHAR(20)) ENGINE=InnoDB');
      await d.query("INSERT IGNORE INTO shop.items VALUES (1, 'one'), (2, 'two')");
    }
    proxy = await startProxy({
      backends: dbs.map(addrOf),
      plugins: [captureCounter],
      config: {
        plugins: [
          { name: 'credentials-native', config: { 'service-account': { user: ROOT_USER, password: ROOT_PASSWORD } } },
          { name: 'migrate-replay' },
          { name: 'capture-counter' },
        ],
      },
    });
  });
  after(async () => {
    await proxy?.stop();
    await Promise.all((dbs ?? []).map((d) => d.destroy()));
  });

  const connect = (): Promise<Connection> =>
    mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD, database: 'test' });
  const backendOf = (c: Connection) => proxy.kernel.sessions.get(c.threadId!)!.backend!.addr;
  const trackedOf = (c: Connection) => proxy.kernel.sessions.get(c.threadId!)!.tracked;

  /** Moves the session to the other backend and waits for the move; fails the test with the log line if it did not happen. */
  async function migrate(c: Connection): Promise<void> {
    const from = backendOf(c);
    const to = dbs.map(addrOf).find((a) => a !== from)!;
    assert.ok(proxy.kernel.requestMigration(c.threadId!, 'test', to), 'request accepted');
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && backendOf(c) === from) await sleep(20);
    const last = [...proxy.logs].reverse().find((l) => l.conn === c.threadId && /^migration |session migrated/.test(l.msg));
    assert.equal(backendOf(c), to, `moved: ${JSON.stringify(last)}`);
  }

  async function rows(c: Connection, sql: string): Promise<Array<Record<string, unknown>>> {
    return (await c.query(sql))[0] as Array<Record<string, unknown>>;
  }

  const USER_VARIABLES = 'SELECT VARIABLE_NAME AS name, VARIABLE_TYPE AS type, CHARACTER_SET_NAME AS cs, HEX(VARIABLE_VALUE) AS v '
    + 'FROM information_schema.USER_VARIABLES ORDER BY VARIABLE_NAME';

  it('moves database (from USE), variables, user variables of every type, prepared statements and SET TRANSACTION with one query on the old backend', async () => {
    const c = await connect();
    await c.query('USE shop');
    await c.query("SET SESSION sql_mode = 'ANSI_QUOTES,STRICT_ALL_TABLES', time_zone = '+05:00'");
    await c.query('SET NAMES utf8mb4 COLLATE utf8mb4_bin');
    await c.query("SET @i = -42, @big = 18446744073709551615, @d = 12.50, @r = 1e3, @s = CONVERT('héllo' USING latin1), @u = 'ünï', @b = UNHEX('00FF7F80'), @n = NULL");
    await c.query("PREPARE plus FROM 'SELECT ? + 100 AS r'");
    const statements = ['SELECT name FROM items WHERE id = ?', 'SELECT ? * 2 AS r', "SELECT CONCAT(?, '!') AS r"];
    const before = await Promise.all([c.execute(statements[0]!, [1]), c.execute(statements[1]!, [21]), c.execute(statements[2]!, ['hey'])]);
    const variablesBefore = await rows(c, USER_VARIABLES);
    await c.query('SET TRANSACTION READ ONLY');
    assert.equal(trackedOf(c).unseenChanges, null, 'every change was seen');

    await migrate(c);
    assert.equal(captureQueries.length, 1, `one capture query: ${captureQueries.join(' | ')}`);

    // The pending READ ONLY applies to the first transaction on the new backend.
    await c.query('BEGIN');
    await assert.rejects(c.query("INSERT INTO items VALUES (3, 'three')"), (e: { errno?: number }) => e.errno === 1792);
    await c.query('ROLLBACK');

    const [state] = await rows(c, 'SELECT DATABASE() AS db, @@sql_mode AS mode, @@time_zone AS tz, @@character_set_client AS cs, '
      + '@@collation_connection AS coll, @@port AS port');
    assert.deepEqual({ ...state }, {
      db: 'shop', mode: 'ANSI_QUOTES,STRICT_ALL_TABLES', tz: '+05:00', cs: 'utf8mb4', coll: 'utf8mb4_bin', port: Number(backendOf(c).split(':')[1]),
    });
    assert.deepEqual(await rows(c, USER_VARIABLES), variablesBefore, 'same names, types, character sets and bytes');
    const [typed] = await rows(c, 'SELECT @i + 1 AS i, @r / 8 AS r, HEX(@b) AS b, @n IS NULL AS n, CHARSET(@s) AS scs');
    assert.deepEqual({ ...typed }, { i: -41, r: 125, b: '00FF7F80', n: 1, scs: 'latin1' });
    const [[plus]] = (await c.query('EXECUTE plus USING 1')) as unknown as [[{ r: number }]];
    assert.equal(Number(plus.r), 101);
    const afterRows = await Promise.all([c.execute(statements[0]!, [1]), c.execute(statements[1]!, [21]), c.execute(statements[2]!, ['hey'])]);
    assert.deepEqual(afterRows.map((r) => r[0]), before.map((r) => r[0]));
    await c.end();
  });

  it('asks the old backend nothing for a session that only changed its database', async () => {
    const c = await connect();
    await c.query('USE shop');
    await c.query('SELECT * FROM items');
    await migrate(c);
    assert.deepEqual(captureQueries, []);
    const [row] = await rows(c, 'SELECT DATABASE() AS db');
    assert.equal(row!.db, 'shop');
    await c.end();
  });

  it('asks the old backend nothing when every SET assigned literals: the ledger is replayed, in order, with the same types', async () => {
    const c = await connect();
    await c.query('USE shop');
    await c.query("SET SESSION sql_mode = 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION', time_zone = '+02:00'");
    await c.query('SET NAMES latin1');
    await c.query("SET @tenant = 41, @label = 'tenant-41', @ratio = 1e3, @price = 12.50");
    await c.query('SET @tenant = 42');
    await c.query('SET NAMES utf8mb4');
    await c.query("PREPARE plus FROM 'SELECT ? + 100 AS r'");
    const [stmt] = await c.execute('SELECT name FROM items WHERE id = ?', [2]);
    const variablesBefore = await rows(c, USER_VARIABLES);
    await migrate(c);
    assert.deepEqual(captureQueries, [], 'no capture query on the old backend');
    assert.deepEqual(await rows(c, USER_VARIABLES), variablesBefore, 'same names, types, character sets and bytes');
    const [state] = await rows(c, 'SELECT DATABASE() AS db, @@sql_mode AS mode, @@time_zone AS tz, @@character_set_client AS cs, @tenant AS t');
    assert.deepEqual({ ...state }, { db: 'shop', mode: 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION', tz: '+02:00', cs: 'utf8mb4', t: 42 });
    const [[plus]] = (await c.query('EXECUTE plus USING 1')) as unknown as [[{ r: number }]];
    assert.equal(Number(plus.r), 101);
    assert.deepEqual((await c.execute('SELECT name FROM items WHERE id = ?', [2]))[0], stmt);
    await c.end();
  });

  it('asks the old backend when a SET computed its value on the server (the ledger would compute it again)', async () => {
    const c = await connect();
    await c.query('SET @started = UNIX_TIMESTAMP(NOW(6))');
    const [before] = await rows(c, 'SELECT @started AS s');
    await sleep(20);
    await migrate(c);
    assert.equal(captureQueries.length, 1, `one capture query: ${captureQueries.join(' | ')}`);
    const [after] = await rows(c, 'SELECT @started AS s');
    assert.deepEqual(after, before, 'the value as computed on the old backend, not recomputed');
    await c.end();
  });

  it('falls back to asking for everything after SELECT @x := …, and the variable moves', async () => {
    const c = await connect();
    await c.query('SET @seen = 1');
    await c.query("SELECT @x := 7 AS x, @y := 'why' AS y");
    assert.match(String(trackedOf(c).unseenChanges), /@var :=/);
    await migrate(c);
    assert.ok(captureQueries.length >= 1 && /SESSION_VARIABLES/.test(captureQueries[0]!), `full capture: ${captureQueries.join(' | ')}`);
    const [row] = await rows(c, 'SELECT @x AS x, @y AS y, @seen AS seen');
    assert.deepEqual({ ...row }, { x: 7, y: 'why', seen: 1 });
    await c.end();
  });

  it('checks locks with the server only after GET_LOCK, and refuses to move a session holding one', async () => {
    const c = await connect();
    await c.query("SELECT GET_LOCK('cheap-capture', 1)");
    assert.equal(trackedOf(c).mayHoldLocks, true);
    const from = backendOf(c);
    assert.ok(proxy.kernel.requestMigration(c.threadId!, 'test', dbs.map(addrOf).find((a) => a !== from)!));
    const deadline = Date.now() + 3000;
    let veto: Record<string, unknown> | undefined;
    while (Date.now() < deadline && !veto) {
      veto = [...proxy.logs].reverse().find((l) => l.conn === c.threadId && /migration vetoed/.test(l.msg));
      await sleep(20);
    }
    assert.match(String(veto?.msg), /user-level lock/);
    assert.equal(backendOf(c), from);
    await c.query("SELECT RELEASE_LOCK('cheap-capture')");
    await c.end();
  });

  describe('failover: the state rebuilt from what the proxy saw', () => {
    /** Replays a session's ledger on a fresh connection to the other backend, as a failover does. */
    async function replayOnOther(c: Connection): Promise<BackendSql & { close(): void }> {
      const other = dbs.map(addrOf).find((a) => a !== backendOf(c))!;
      const target = await proxy.kernel.openBackendSql(other, { kind: 'cleartext', user: ROOT_USER, password: ROOT_PASSWORD });
      const ctx = { target, statements: [], remapStatement: () => {} } as unknown as StateTransferContext;
      const session = proxy.kernel.sessions.get(c.threadId!)!;
      const state = stateFromLedger(session);
      await replay(state.setStatements, state, ctx);
      return target;
    }

    it('replays SET statements from literals, in order, and SQL-level PREPAREs', async () => {
      const c = await connect();
      await c.query("SET NAMES latin1");
      await c.query("SET @s = 'x', @n = 10");
      await c.query("SET SESSION sql_mode = 'ANSI'");
      await c.query('SET @n = 11');
      await c.query("SET NAMES utf8mb4");
      await c.query("PREPARE twice FROM 'SELECT ? * 2'");
      const target = await replayOnOther(c);
      try {
        const row = (await target.query('SELECT @s, CHARSET(@s), @n, @@sql_mode, @@character_set_client')).rows[0];
        assert.deepEqual(row, ['x', 'latin1', '11', 'REAL_AS_FLOAT,PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE,ANSI', 'utf8mb4']);
        assert.deepEqual((await target.query('EXECUTE twice USING 4')).rows, [['8']]);
      } finally {
        target.close();
        await c.end();
      }
    });

    for (const [what, statements, reason] of [
      ['a value computed on the server', ['SET @t = NOW()'], /computed on the server: SET @t = NOW\(\)/],
      ['an assignment outside SET', ['SELECT @x := 1'], /@var :=/],
      ['a PREPARE from a variable', ["SET @q = 'SELECT 1'", 'PREPARE p FROM @q'], /prepared from a variable/],
      ['a temporary table', ['CREATE TEMPORARY TABLE t1 (x INT)'], /temporary tables/],
      ['GET_LOCK', ["SELECT GET_LOCK('x', 0)", "SELECT RELEASE_LOCK('x')"], /GET_LOCK/],
    ] as const) {
      it(`refuses, with the reason, a session with ${what}`, async () => {
        const c = await connect();
        for (const sql of statements) await c.query(sql);
        assert.throws(() => stateFromLedger(proxy.kernel.sessions.get(c.threadId!)!), (err: unknown) =>
          err instanceof MigrationVetoError && !err.retry && reason.test(err.message));
        await c.end();
      });
    }
  });
});
