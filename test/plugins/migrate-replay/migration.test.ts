// Real components: two MariaDB 10.11 instances (metadata_lock_info installed; the first with
// performance_schema on, the second off), the proxy in-process with
// credentials-native (service account) and migrate-replay, mysql2 clients.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readCapture } from '../../../src/plugins/traffic-capture/traffic-file-reader.js';
import type { CommandRecord } from '../../../src/plugins/traffic-capture/traffic-record.js';
import mysql, { type Connection } from 'mysql2/promise';
import { definePlugin, type TiproxyPlugin } from '../../../src/plugin.js';
import { startMariaDB, ROOT_PASSWORD, ROOT_USER, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A test plugin that can make a target backend die in the middle of restoring state. */
let beforeRestore: (() => Promise<void>) | null = null;
const restoreSaboteur = definePlugin({
  name: 'restore-saboteur',
  version: '1.0.0',
  apply({ hooks }) {
    hooks.restoreState.tapPromise({ name: 'restore-saboteur', stage: -10 }, async () => {
      if (beforeRestore) await beforeRestore();
    });
  },
}) as TiproxyPlugin<never>;

describe('session migration by state replay', () => {
  let dbs: MariaDBInstance[];
  let proxy: TestProxy;
  const addrOf = (d: MariaDBInstance) => `127.0.0.1:${d.port}`;

  before(async () => {
    dbs = await Promise.all([startMariaDB({ name: 'migrate-ps', config: { performance_schema: 'ON' } }), startMariaDB({ name: 'migrate' })]);
    for (const d of dbs) {
      await d.query("INSTALL SONAME 'metadata_lock_info'");
      await d.query('CREATE TABLE IF NOT EXISTS test.kv (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB');
      await d.query("INSERT IGNORE INTO test.kv VALUES (1, 'one'), (2, 'two')");
      await d.query('SET GLOBAL innodb_lock_wait_timeout = 1');
    }
    proxy = await startProxy({
      backends: dbs.map(addrOf),
      plugins: [restoreSaboteur],
      config: {
        plugins: [
          { name: 'credentials-native', config: { 'service-account': { user: ROOT_USER, password: ROOT_PASSWORD } } },
          { name: 'migrate-replay' },
          { name: 'restore-saboteur' },
        ],
      },
    });
  });
  after(async () => {
    await proxy?.stop();
    await Promise.all((dbs ?? []).map((d) => d.destroy()));
  });

  async function connect(database = 'test'): Promise<Connection> {
    return mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD, database });
  }

  function backendOf(c: Connection): string {
    return proxy.kernel.sessions.get(c.threadId!)!.backend!.addr;
  }

  function otherThan(addr: string): string {
    return dbs.map(addrOf).find((a) => a !== addr)!;
  }

  /** Requests a move and waits for it to finish (or for `ms` to pass). */
  async function migrate(c: Connection, ms = 5000): Promise<{ from: string; to: string }> {
    const from = backendOf(c);
    const to = otherThan(from);
    assert.ok(proxy.kernel.requestMigration(c.threadId!, 'test', to), 'request accepted');
    const deadline = Date.now() + ms;
    while (Date.now() < deadline && proxy.kernel.migrationRequests.has(c.threadId!) && backendOf(c) === from) await sleep(20);
    return { from, to };
  }

  function lastMigrationLog(conn: number): Record<string, unknown> | undefined {
    return [...proxy.logs].reverse().find((l) => l.conn === conn && /^migration |session migrated/.test(l.msg));
  }

  it('moves a session with its database, variables, user variables, prepared statements and pending SET TRANSACTION', async () => {
    const c = await connect();
    await c.query("SET SESSION sql_mode = 'ANSI_QUOTES,STRICT_ALL_TABLES', time_zone = '+03:00'");
    await c.query('SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci');
    await c.query("SET @i = 42, @s = 'héllo', @n = NULL, @b = UNHEX('00FF7F80')");
    const statements = ['SELECT v FROM kv WHERE id = ?', 'SELECT ? + 1 AS r', "SELECT CONCAT(?, 'x') AS r"];
    const before = await Promise.all([
      c.execute(statements[0]!, [1]), c.execute(statements[1]!, [1]), c.execute(statements[2]!, ['a']),
    ]);
    await c.query('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE');
    const session = proxy.kernel.sessions.get(c.threadId!)!;
    const idsBefore = [...session.state.statements.keys()].sort();
    assert.equal(idsBefore.length, 3);

    const { from, to } = await migrate(c);
    assert.equal(backendOf(c), to, `moved: ${JSON.stringify(lastMigrationLog(c.threadId!))}`);
    assert.notEqual(from, to);

    // First statement after the move: the pending SERIALIZABLE applies to this transaction on the new
    // backend, so its plain SELECT takes a shared lock and a direct writer there times out.
    await c.query('BEGIN');
    await c.query('SELECT v FROM kv WHERE id = 2');
    const direct = await mysql.createConnection({ host: '127.0.0.1', port: Number(to.split(':')[1]), user: ROOT_USER, password: ROOT_PASSWORD, database: 'test' });
    await assert.rejects(direct.query("UPDATE kv SET v = 'deux' WHERE id = 2"), (e: { errno?: number }) => e.errno === 1205);
    await direct.end();
    await c.query('COMMIT');

    const [[state]] = (await c.query(
      'SELECT DATABASE() AS db, @@sql_mode AS mode, @@time_zone AS tz, @@character_set_client AS cs, @@collation_connection AS coll, '
      + '@i AS i, @s AS s, @n AS n, HEX(@b) AS b, @@port AS port',
    )) as unknown as [[Record<string, unknown>]];
    assert.equal(state.port, Number(to.split(':')[1]));
    assert.equal(state.db, 'test');
    assert.equal(state.mode, 'ANSI_QUOTES,STRICT_ALL_TABLES');
    assert.equal(state.tz, '+03:00');
    assert.equal(state.cs, 'utf8mb4');
    assert.equal(state.coll, 'utf8mb4_unicode_ci');
    assert.equal(Number(state.i), 42);
    assert.equal(state.s, 'héllo');
    assert.equal(state.n, null);
    assert.equal(state.b, '00FF7F80');

    // The client keeps its statement ids; the proxy translates them for the new backend.
    assert.deepEqual([...session.state.statements.keys()].sort(), idsBefore);
    const afterRows = await Promise.all([
      c.execute(statements[0]!, [1]), c.execute(statements[1]!, [1]), c.execute(statements[2]!, ['a']),
    ]);
    assert.deepEqual(afterRows.map((r) => r[0]), before.map((r) => r[0]));

    await c.end();
  });

  it('gives statements prepared after a move ids of their own: none takes the id of a statement re-prepared under another', async () => {
    const c = await connect();
    // Ids 1-3 on the first backend; only 3 stays open, so the move re-prepares it as id 1 there.
    const closedFirst = await c.prepare('SELECT 1 AS r');
    const closedSecond = await c.prepare('SELECT 2 AS r');
    const kept = await c.prepare('SELECT v FROM kv WHERE id = ?');
    closedFirst.close();
    closedSecond.close();
    await c.query('SELECT 1'); // COM_STMT_CLOSE has no answer: this round trip makes sure both went before the move
    const { to } = await migrate(c);
    assert.equal(backendOf(c), to);
    // A traffic capture runs meanwhile: the statements the proxy prepares itself must be in it as the client saw them.
    const output = mkdtempSync(join(tmpdir(), 'tiproxy-moved-prepare-'));
    rmSync(output, { recursive: true });
    const api = (path: string, body: unknown) => fetch(`http://127.0.0.1:${proxy.apiPort}${path}`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    assert.equal((await api('/api/traffic/capture', { output, duration: 60 })).status, 201);
    // The new backend numbers these 2, 3, 4, 5: without ids of the proxy's own, 3 would be `kept`'s.
    const added = [];
    for (let i = 0; i < 4; i++) added.push({ i, stmt: await c.prepare(`SELECT CONCAT('added-', ?, '-${i}') AS r`) });
    const idOf = (st: unknown) => (st as { statement: { id: number } }).statement.id;
    const ids = [idOf(kept), ...added.map((a) => idOf(a.stmt))];
    assert.equal(new Set(ids).size, ids.length, `distinct statement ids for the client: ${ids.join(', ')}`);
    const [keptRows] = (await kept.execute([2])) as unknown as [Array<{ v: string }>];
    assert.deepEqual(keptRows.map((r) => r.v), ['two'], 'the statement prepared before the move runs its own SQL');
    for (const { i, stmt } of added) {
      const [rows] = (await stmt.execute(['x'])) as unknown as [Array<{ r: string }>];
      assert.equal(rows[0]!.r, `added-x-${i}`);
    }
    assert.equal((await api('/api/traffic/cancel', {})).status, 200);
    const captured = readCapture(output, null).records.filter((r): r is CommandRecord => r.t === 'cmd' && r.s === c.threadId);
    const prepares = captured.filter((r) => r.c === 0x16);
    assert.deepEqual(prepares.map((r) => r.r?.stmt), ids.slice(1), 'each PREPARE captured with the id the client got');
    const executes = captured.filter((r) => r.c === 0x17).map((r) => r.p.readUInt32LE(1));
    assert.deepEqual(executes, [idOf(kept), ...ids.slice(1)], 'and the EXECUTEs name those ids');
    rmSync(output, { recursive: true, force: true });
    // And they move again, all of them.
    await migrate(c);
    assert.equal(backendOf(c), otherThan(to));
    const [again] = (await kept.execute([1])) as unknown as [Array<{ v: string }>];
    assert.deepEqual(again.map((r) => r.v), ['one']);
    const [last] = (await added[3]!.stmt.execute(['y'])) as unknown as [Array<{ r: string }>];
    assert.equal(last[0]!.r, 'added-y-3');
    await c.end();
  });

  it('moves a session in a transaction only after COMMIT', async () => {
    const c = await connect();
    await c.query('BEGIN');
    await c.query("UPDATE kv SET v = 'uno' WHERE id = 1");
    const from = backendOf(c);
    assert.ok(proxy.kernel.requestMigration(c.threadId!, 'test', otherThan(from)));
    await sleep(1500);
    assert.equal(backendOf(c), from, 'still on the old backend inside the transaction');
    await c.query('COMMIT');
    const deadline = Date.now() + 3000;
    while (backendOf(c) === from && Date.now() < deadline) await sleep(20);
    assert.equal(backendOf(c), otherThan(from), 'moved after COMMIT');
    const [[row]] = (await c.query('SELECT @@port AS port')) as unknown as [[{ port: number }]];
    assert.equal(`127.0.0.1:${row.port}`, otherThan(from));
    await c.end();
  });

  it('moves a session that never commits when it starts its next transaction (COMMIT old, move, BEGIN new)', async () => {
    const c = await connect();
    await c.query('BEGIN');
    await c.query("UPDATE kv SET v = 'eins' WHERE id = 1");
    const from = backendOf(c);
    const to = otherThan(from);
    assert.ok(proxy.kernel.requestMigration(c.threadId!, 'test', to));
    await sleep(1200);
    assert.equal(backendOf(c), from, 'not moved inside the transaction');
    await c.query('BEGIN'); // implicitly commits the first transaction
    assert.equal(backendOf(c), to, 'moved between the two transactions');
    const [[row]] = (await c.query('SELECT @@in_transaction AS t, @@port AS port')) as unknown as [[{ t: number; port: number }]];
    assert.equal(row.t, 1, 'the new transaction is open on the new backend');
    assert.equal(`127.0.0.1:${row.port}`, to);
    await c.query('COMMIT');
    // The first transaction's write was committed on the old backend.
    const old = dbs.find((d) => addrOf(d) === from)!;
    const committed = await old.query<Array<{ v: string }>>('SELECT v FROM test.kv WHERE id = 1');
    assert.equal(committed[0]!.v, 'eins');
    await c.end();
  });

  /** Puts the session on `db` first (a clean session moves freely). */
  async function placeOn(c: Connection, db: MariaDBInstance): Promise<void> {
    if (backendOf(c) !== addrOf(db)) await migrate(c);
    assert.equal(backendOf(c), addrOf(db));
  }

  async function scalar(c: Connection, sql: string): Promise<unknown> {
    const [[row]] = (await c.query(sql)) as unknown as [[Record<string, unknown>]];
    return Object.values(row)[0];
  }

  it('moves SQL-level prepared statements as the server lists them (performance_schema on), including one prepared from a variable', async () => {
    const c = await connect();
    await placeOn(c, dbs[0]!);
    await c.query("SET @q = 'SELECT ? * 2 AS r', @p = 21");
    await c.query('PREPARE doubled FROM @q');
    await c.query("PREPARE `with space` FROM 'SELECT CONCAT(?, ''!'') AS r'");
    await c.query("SET @q = 'SELECT 0'"); // the statement keeps the text it was prepared from
    const { to } = await migrate(c);
    assert.equal(backendOf(c), to, `moved: ${JSON.stringify(lastMigrationLog(c.threadId!))}`);
    assert.equal(Number(await scalar(c, 'SELECT @@port')), dbs[1]!.port);
    const [[doubled]] = (await c.query('EXECUTE doubled USING @p')) as unknown as [[{ r: number }]];
    assert.equal(Number(doubled.r), 42);
    const [[shout]] = (await c.query("EXECUTE `with space` USING 'hi'")) as unknown as [[{ r: string }]];
    assert.equal(shout.r, 'hi!');
    await c.end();
  });

  it('replays a PREPARE from a literal when performance_schema is off, and refuses to move one prepared from a variable until it is deallocated', async () => {
    const c = await connect();
    await placeOn(c, dbs[1]!);
    await c.query("PREPARE plus100 FROM 'SELECT ? + 100 AS r'");
    await c.query("SET @q = 'SELECT ? - 1 AS r'");
    await c.query('PREPARE fromvar FROM @q');
    await migrate(c, 3000);
    assert.equal(backendOf(c), addrOf(dbs[1]!));
    assert.match(String(lastMigrationLog(c.threadId!)?.msg), /migration vetoed: SQL-level prepared statement fromvar was prepared from a variable/);

    await c.query('DEALLOCATE PREPARE fromvar');
    // The request stays after a veto and is tried again a few seconds later, now successfully.
    assert.ok(proxy.kernel.migrationRequests.has(c.threadId!), 'request kept after a veto');
    const deadline = Date.now() + 8000;
    while (backendOf(c) === addrOf(dbs[1]!) && Date.now() < deadline) await sleep(50);
    assert.equal(backendOf(c), addrOf(dbs[0]!), `moved: ${JSON.stringify(lastMigrationLog(c.threadId!))}`);
    const [[row]] = (await c.query('EXECUTE plus100 USING 1')) as unknown as [[{ r: number }]];
    assert.equal(Number(row.r), 101);
    await assert.rejects(c.query('EXECUTE fromvar USING 1'), (e: { errno?: number }) => e.errno === 1243); // unknown prepared statement
    await c.end();
  });

  for (const [what, setup, reason] of [
    ['a temporary table', 'CREATE TEMPORARY TABLE tmp1 (x INT)', /temporary tables/],
    ['a GET_LOCK lock', "SELECT GET_LOCK('migration-test', 1)", /user-level lock/],
    ['LOCK TABLES', 'LOCK TABLES kv READ', /LOCK TABLES/],
  ] as const) {
    it(`does not move a session holding ${what}, and says why`, async () => {
      const c = await connect();
      await c.query(setup);
      const from = backendOf(c);
      await migrate(c, 3000);
      assert.equal(backendOf(c), from);
      const log = lastMigrationLog(c.threadId!);
      assert.ok(log, 'the veto is logged');
      assert.match(String(log.msg), /migration vetoed/);
      assert.match(String(log.msg), reason);
      const [[row]] = (await c.query('SELECT 1 AS one')) as unknown as [[{ one: number }]];
      assert.equal(row.one, 1);
      await c.end();
    });
  }

  it('keeps the session on its old backend when the target dies during the migration', async () => {
    const c = await connect();
    await c.query('SET @keep = 7');
    const from = backendOf(c);
    const victim = dbs.find((d) => addrOf(d) !== from)!;
    beforeRestore = async () => {
      beforeRestore = null;
      await victim.kill('SIGKILL');
    };
    try {
      await migrate(c, 5000);
      assert.equal(backendOf(c), from);
      assert.match(String(lastMigrationLog(c.threadId!)?.msg), /migration failed/);
      const [[row]] = (await c.query('SELECT @keep AS k, @@port AS port')) as unknown as [[{ k: number; port: number }]];
      assert.equal(Number(row.k), 7);
      assert.equal(`127.0.0.1:${row.port}`, from);
    } finally {
      beforeRestore = null;
      await victim.start();
      await c.end();
    }
  });
});
