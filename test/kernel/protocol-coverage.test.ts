// Protocol coverage through the proxy against a real server.
// Real components started here: ONE MariaDB 10.11 instance (local-cluster/mariadb.ts) and the proxy
// in-process (test/harness/proxy.ts). Clients: mysql2, the raw client (test/harness/raw-client.ts, for
// commands mysql2 cannot send and exact capability flags), and the mariadb / mariadb-admin CLIs.
// After every test a fresh session must still work through the same proxy.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { after, afterEach, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import type { ConnectionOptions, FieldPacket, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import {
  CLIENT_COMPRESS, CLIENT_DEPRECATE_EOF, COM_DEBUG, COM_FIELD_LIST, COM_INIT_DB, COM_PING, COM_PROCESS_INFO, COM_REFRESH,
  COM_RESET_CONNECTION, COM_SET_OPTION, COM_STATISTICS, COM_STMT_CLOSE, COM_STMT_FETCH, COM_STMT_RESET, COM_STMT_SEND_LONG_DATA,
  COM_TIME, CURSOR_TYPE_READ_ONLY, MYSQL_OPTION_MULTI_STATEMENTS_OFF, MYSQL_OPTION_MULTI_STATEMENTS_ON,
  SERVER_STATUS_CURSOR_EXISTS, SERVER_STATUS_LAST_ROW_SENT,
} from '../../src/kernel/protocol/constants.js';
import type { Session } from '../../src/kernel/session/session.js';
import {
  NATIVE_PASSWORD, NATIVE_USER, ROOT_PASSWORD, ROOT_USER, TEST_DATABASE, startMariaDB, type MariaDBInstance,
} from '../../local-cluster/mariadb.js';
import { waitFor } from '../harness/clients.js';
import { runMariadbCli } from '../harness/mariadb-cli.js';
import { tmpRoot } from '../../local-cluster/paths.js';
import { startProxy, type TestProxy } from '../harness/proxy.js';
import {
  MYSQL_TYPE, RawClient, binaryRow, comQuery, comSimple, comStmt, comStmtExecute, textRow, type RawClientOptions, type ResultItem,
} from '../harness/raw-client.js';

const run = promisify(execFile);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const u16 = (v: number) => Buffer.from([v & 0xff, v >> 8]);
const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
};

/** Result items in a compact comparable form. */
function summarize(items: ResultItem[]): unknown[] {
  return items.map((r) => {
    switch (r.kind) {
      case 'rows': return { rows: r.rows.map((row) => textRow(row, r.columns.length)), columns: r.columns.map((c) => c.name), complete: r.complete };
      case 'ok': return { ok: r.ok.affectedRows };
      case 'error': return { error: r.error.code };
      default: return r;
    }
  });
}

describe('protocol coverage through the proxy (MariaDB 10.11)', () => {
  let db: MariaDBInstance;
  let proxy: TestProxy;
  const scratch = join(tmpRoot, `protocol-coverage-${process.pid}`);

  const mysqlOpts = (extra: ConnectionOptions = {}): ConnectionOptions => ({
    host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD, database: TEST_DATABASE, ...extra,
  });
  const connect = (extra: ConnectionOptions = {}) => mysql.createConnection(mysqlOpts(extra));
  const raw = (extra: Partial<RawClientOptions> = {}) => RawClient.connect({
    host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD, database: TEST_DATABASE, ...extra,
  });
  const cliArgs = () => ['-h127.0.0.1', `-P${proxy.port}`, `-u${ROOT_USER}`, `-p${ROOT_PASSWORD}`];
  const sessionOf = (proxyConnectionId: number): Session => {
    const s = proxy.kernel.sessions.get(proxyConnectionId);
    assert.ok(s, `proxy session ${proxyConnectionId} exists`);
    return s;
  };

  before(async () => {
    db = await startMariaDB({ name: 'protocov', config: { max_allowed_packet: '256M' } });
    proxy = await startProxy({ backends: [`127.0.0.1:${db.port}`], logLevel: 'debug' });
    await mkdir(scratch, { recursive: true });
    for (const sql of [
      'CREATE TABLE test.items (id INT PRIMARY KEY, name VARCHAR(50), price DECIMAL(10,2), qty BIGINT, note TEXT NULL, at DATETIME NULL)',
      `INSERT INTO test.items VALUES (1, 'apple', 1.50, 10, NULL, '2024-01-02 03:04:05'), (2, 'bänana', 0.25, 200, 'ripe', NULL),
        (3, 'cherry', 12.00, -3, '', '1999-12-31 23:59:59'), (4, 'date', 3.10, 9007199254740993, 'x', NULL), (5, 'elder', 0.00, 0, NULL, NULL)`,
      'CREATE TABLE test.empty_t (a INT, b VARCHAR(10))',
      `CREATE PROCEDURE test.two_results() BEGIN SELECT 1 AS x; SELECT 'two' AS y, 2 AS z; END`,
      'CREATE PROCEDURE test.out_param(IN x INT, OUT y INT) BEGIN SELECT x AS inside; SET y = x * 2; END',
      'CREATE TABLE test.t1 (a INT PRIMARY KEY)',
      'INSERT INTO test.t1 VALUES (1), (2), (3), (4), (5)',
      'CREATE TABLE test.t2 (a INT, b INT)',
      'INSERT INTO test.t2 VALUES (1, 10), (3, 30), (3, 31)',
      'CREATE TABLE test.blobs (id INT PRIMARY KEY, b LONGBLOB)',
      'CREATE TABLE test.longdata (id INT PRIMARY KEY, body LONGTEXT CHARACTER SET utf8mb4)',
      'CREATE TABLE test.infile_t (id INT PRIMARY KEY, name VARCHAR(64))',
      'CREATE TABLE test.typed (i INT, s VARCHAR(100), d DOUBLE, n INT NULL, b BLOB, dt DATETIME, big BIGINT)',
    ]) await db.query(sql);
  });

  afterEach(async () => {
    // The proxy keeps serving new sessions after every scenario.
    const c = await connect();
    try {
      const [rows] = await c.query<RowDataPacket[]>('SELECT 1 + 1 AS two, @@port AS port');
      assert.deepEqual(rows, [{ two: 2, port: db.port }]);
    } finally {
      await c.end();
    }
  });

  after(async () => {
    await proxy?.stop();
    await db?.destroy();
    await rm(scratch, { recursive: true, force: true });
  });

  it('text queries: values of several types, affected rows and insert ids', async () => {
    const c = await connect({ dateStrings: true, supportBigNumbers: true, bigNumberStrings: true });
    try {
      const [rows] = await c.query<RowDataPacket[]>('SELECT id, name, price, qty, note, at FROM items ORDER BY id');
      assert.deepEqual(rows.map((r) => ({ ...r })), [
        { id: 1, name: 'apple', price: '1.50', qty: '10', note: null, at: '2024-01-02 03:04:05' },
        { id: 2, name: 'bänana', price: '0.25', qty: '200', note: 'ripe', at: null },
        { id: 3, name: 'cherry', price: '12.00', qty: '-3', note: '', at: '1999-12-31 23:59:59' },
        { id: 4, name: 'date', price: '3.10', qty: '9007199254740993', note: 'x', at: null },
        { id: 5, name: 'elder', price: '0.00', qty: '0', note: null, at: null },
      ]);
      await c.query('CREATE TEMPORARY TABLE tmp_auto (id INT AUTO_INCREMENT PRIMARY KEY, v INT)');
      const [ins] = await c.query<ResultSetHeader>('INSERT INTO tmp_auto (v) VALUES (1), (2), (3)');
      assert.equal(ins.affectedRows, 3);
      assert.equal(ins.insertId, 1);
      const [upd] = await c.query<ResultSetHeader>('UPDATE tmp_auto SET v = v + 1 WHERE v >= 2');
      assert.equal(upd.affectedRows, 2);
      assert.match(upd.info, /Rows matched: 2 {2}Changed: 2/);
      const [[sum]] = await c.query<RowDataPacket[]>('SELECT SUM(v) AS s, COUNT(*) AS n FROM tmp_auto');
      assert.deepEqual({ ...sum }, { s: '8', n: '3' }); // bigNumberStrings: COUNT(*) is a BIGINT
    } finally {
      await c.end();
    }
  });

  it('multi-statements, a stored procedure returning two result sets plus an OK, OUT parameters', async () => {
    const c = await connect({ multipleStatements: true });
    try {
      const [results] = await c.query<RowDataPacket[][]>('SELECT 1 AS a; SELECT 2 AS b, 3 AS c; SET @m = 7; SELECT @m AS m');
      assert.equal(results.length, 4);
      assert.deepEqual(results[0], [{ a: 1 }]);
      assert.deepEqual(results[1], [{ b: 2, c: 3 }]);
      assert.equal((results[2] as unknown as ResultSetHeader).affectedRows, 0);
      assert.deepEqual(results[3], [{ m: 7 }]);

      const [call] = await c.query<RowDataPacket[][]>('CALL two_results()');
      assert.equal(call.length, 3);
      assert.deepEqual(call[0], [{ x: 1 }]);
      assert.deepEqual(call[1], [{ y: 'two', z: 2 }]);
      assert.equal((call[2] as unknown as ResultSetHeader).constructor.name, 'ResultSetHeader');

      // The same procedure through the binary protocol (COM_STMT_EXECUTE with CLIENT_PS_MULTI_RESULTS).
      const [callBinary] = await c.execute<RowDataPacket[][]>('CALL two_results()');
      assert.deepEqual(callBinary[0], [{ x: 1 }]);
      assert.deepEqual(callBinary[1], [{ y: 'two', z: 2 }]);
      assert.equal((callBinary[2] as unknown as ResultSetHeader).constructor.name, 'ResultSetHeader');

      // OUT parameters through the binary protocol: an extra result set flagged SERVER_PS_OUT_PARAMS.
      const r = await raw();
      try {
        const stmt = await r.prepare('CALL out_param(?, ?)');
        const res = await r.commandResults(comStmtExecute(stmt.statementId, [21, null]));
        assert.deepEqual(res.results.map((x) => (x.kind === 'rows' ? binaryRow(x.rows[0]!, x.columns) : x.kind)), [[21], [42], 'ok']);
        const outParams = res.results[1]!;
        assert.ok(outParams.kind === 'rows' && outParams.status & 0x1000, 'SERVER_PS_OUT_PARAMS');
      } finally {
        await r.close();
      }

      // An error in the second statement: the first result arrives, then the error; the session goes on.
      await assert.rejects(c.query('SELECT 1 AS a; SELECT * FROM no_such_table; SELECT 3'), { errno: 1146 });
      const [[after1]] = await c.query<RowDataPacket[]>('SELECT 42 AS v');
      assert.equal(after1!.v, 42);
    } finally {
      await c.end();
    }
  });

  it('binary prepared statements (mysql2 execute): params of several types, re-execution, unprepare', async () => {
    const c = await connect({ dateStrings: true, supportBigNumbers: true, bigNumberStrings: true });
    try {
      const session = sessionOf(c.threadId);
      const blob = Buffer.from([0, 1, 2, 0xfe, 0xff, 0x00, 0x80]);
      const [echo] = await c.execute<RowDataPacket[]>(
        'SELECT ? AS i, ? AS s, ? AS d, ? AS n, ? AS b, CAST(? AS DATETIME) AS dt, ? AS big',
        [42, 'héllo wörld', 2.5, null, blob, '2024-05-06 07:08:09', '9007199254740993']);
      assert.equal(echo.length, 1);
      const r = echo[0]!;
      assert.equal(Number(r.i), 42);
      assert.equal(r.s, 'héllo wörld');
      assert.equal(Number(r.d), 2.5);
      assert.equal(r.n, null);
      assert.ok(Buffer.isBuffer(r.b) ? r.b.equals(blob) : Buffer.from(r.b as string, 'binary').equals(blob));
      assert.equal(r.dt, '2024-05-06 07:08:09');
      assert.equal(String(r.big), '9007199254740993');

      const insert = 'INSERT INTO typed (i, s, d, n, b, dt, big) VALUES (?, ?, ?, ?, ?, ?, ?)';
      for (let k = 0; k < 3; k++) {
        const [res] = await c.execute<ResultSetHeader>(insert, [k, `row ${k}`, k / 4, k === 1 ? null : k * 10, Buffer.from([k, 0xff]), `2020-01-0${k + 1} 00:00:00`, BigInt(2 ** 53) + BigInt(k)]);
        assert.equal(res.affectedRows, 1);
      }
      const [typed] = await c.execute<RowDataPacket[]>('SELECT i, s, d, n, b, dt, big FROM typed WHERE i >= ? ORDER BY i', [0]);
      assert.deepEqual(typed.map((t) => [t.i, t.s, t.d, t.n, (t.b as Buffer).toString('hex'), t.dt, String(t.big)]), [
        [0, 'row 0', 0, 0, '00ff', '2020-01-01 00:00:00', '9007199254740992'],
        [1, 'row 1', 0.25, null, '01ff', '2020-01-02 00:00:00', '9007199254740993'],
        [2, 'row 2', 0.5, 20, '02ff', '2020-01-03 00:00:00', '9007199254740994'],
      ]);
      // The proxy saw each PREPARE's OK (mysql2 caches: one per distinct SQL text).
      assert.equal(session.state.statements.size, 3);
      c.unprepare(insert);
      c.unprepare('SELECT i, s, d, n, b, dt, big FROM typed WHERE i >= ? ORDER BY i');
      await c.query('DO 0'); // COM_STMT_CLOSE has no reply: let it reach the proxy
      assert.equal(session.state.statements.size, 1);
      const [[count]] = await c.query<RowDataPacket[]>("SHOW SESSION STATUS LIKE 'Com_stmt_close'");
      assert.equal(count!.Value, '2', 'both COM_STMT_CLOSE reached the backend');
      // A closed statement re-prepared by mysql2 works again.
      const [again] = await c.execute<RowDataPacket[]>('SELECT i, s, d, n, b, dt, big FROM typed WHERE i >= ? ORDER BY i', [2]);
      assert.equal(again.length, 1);
      await assert.rejects(c.execute('SELECT nope FROM typed WHERE i = ?', [1]), { errno: 1054 });
    } finally {
      await c.end();
    }
  });

  for (const deprecateEof of [true, false]) {
    it(`COM_STMT_SEND_LONG_DATA and COM_STMT_RESET (raw client, DEPRECATE_EOF ${deprecateEof ? 'on' : 'off'})`, async () => {
      const c = await raw({ deprecateEof });
      try {
        const session = sessionOf(c.connectionId);
        await c.query('DELETE FROM longdata');
        const stmt = await c.prepare('INSERT INTO longdata (id, body) VALUES (?, ?)');
        assert.equal(stmt.params.length, 2);
        const longData = (param: number, data: Buffer) => c.send(comStmt(COM_STMT_SEND_LONG_DATA, stmt.statementId, u16(param), data));

        // Long data then RESET: the server forgets it, and so does the proxy's safe-point bookkeeping.
        longData(1, Buffer.from('garbage that must not be stored'));
        await c.query('DO 0');
        assert.equal(session.unsafeReason(), 'long-data-pending');
        const reset = await c.commandResults(comStmt(COM_STMT_RESET, stmt.statementId));
        assert.deepEqual(reset.results.map((r) => r.kind), ['ok']);
        assert.equal(session.unsafeReason(), null);

        // Three pieces of long data (17 MB, multibyte text), then EXECUTE with that param left out.
        // The middle piece is a COM_STMT_SEND_LONG_DATA of more than 16 MiB (continuation packets, no reply).
        const pieces = [Buffer.from('first ☃ piece;'), Buffer.alloc(17 * 1024 * 1024, 'x'), Buffer.from(';last ünïcode')];
        for (const p of pieces) longData(1, p);
        const exec = await c.commandResults(comStmtExecute(stmt.statementId, [7, { longData: MYSQL_TYPE.BLOB }]));
        assert.deepEqual(exec.results.map((r) => r.kind === 'ok' ? r.ok.affectedRows : r), [1]);
        assert.equal(session.unsafeReason(), null, 'execute consumed the long data');
        const expected = Buffer.concat(pieces);
        const rows = await c.rows('SELECT LENGTH(body), SHA2(body, 256), body FROM longdata WHERE id = 7');
        assert.deepEqual(rows[0]!.slice(0, 2), [String(expected.length), sha256(expected)]);
        assert.equal(sha256(Buffer.from(rows[0]![2]!, 'utf8')), sha256(expected), 'the text comes back as sent');

        c.send(comStmt(COM_STMT_CLOSE, stmt.statementId));
        await c.query('DO 0');
        assert.equal(session.state.statements.size, 0);
        assert.equal(c.unreadBytes, 0);
      } finally {
        await c.close();
      }
    });

    it(`server-side cursor with COM_STMT_FETCH in two batches (raw client, DEPRECATE_EOF ${deprecateEof ? 'on' : 'off'})`, async () => {
      const c = await raw({ deprecateEof });
      try {
        const session = sessionOf(c.connectionId);
        const stmt = await c.prepare('SELECT id, name, qty FROM items WHERE id >= ? ORDER BY id');
        const exec = await c.commandResults(comStmtExecute(stmt.statementId, [1], CURSOR_TYPE_READ_ONLY));
        assert.equal(exec.results.length, 1);
        const opened = exec.results[0]!;
        assert.ok(opened.kind === 'rows');
        assert.deepEqual(opened.columns.map((col) => col.name), ['id', 'name', 'qty']);
        assert.equal(opened.rows.length, 0, 'rows come with FETCH');
        assert.ok(opened.status & SERVER_STATUS_CURSOR_EXISTS);
        assert.equal(session.unsafeReason(), 'cursor-open');

        const fetch = async (n: number) => {
          const r = await c.commandResults(comStmt(COM_STMT_FETCH, stmt.statementId, u32(n)));
          assert.equal(r.results.length, 1);
          const set = r.results[0]!;
          assert.ok(set.kind === 'rows' && set.complete);
          return { rows: set.rows.map((row) => binaryRow(row, opened.columns)), status: set.status };
        };
        const first = await fetch(3);
        assert.deepEqual(first.rows, [[1, 'apple', 10n], [2, 'bänana', 200n], [3, 'cherry', -3n]]);
        assert.ok(first.status & SERVER_STATUS_CURSOR_EXISTS);
        assert.equal(first.status & SERVER_STATUS_LAST_ROW_SENT, 0);
        assert.equal(session.unsafeReason(), 'cursor-open');

        const second = await fetch(3);
        assert.deepEqual(second.rows, [[4, 'date', 9007199254740993n], [5, 'elder', 0n]]);
        assert.ok(second.status & SERVER_STATUS_LAST_ROW_SENT);
        assert.equal(session.unsafeReason(), null, 'the cursor is exhausted');

        // A fetch on a closed cursor is an error reply, and the session stays in step.
        const stale = await c.commandResults(comStmt(COM_STMT_FETCH, stmt.statementId, u32(1)));
        assert.equal(stale.results.at(-1)?.kind, 'error');
        // Re-execute without a cursor: all rows at once.
        const plain = await c.commandResults(comStmtExecute(stmt.statementId, [4]));
        const set = plain.results[0]!;
        assert.ok(set.kind === 'rows');
        assert.deepEqual(set.rows.map((row) => binaryRow(row, set.columns)), [[4, 'date', 9007199254740993n], [5, 'elder', 0n]]);

        // COM_STMT_RESET closes an open cursor (server and proxy agree).
        await c.commandResults(comStmtExecute(stmt.statementId, [2], CURSOR_TYPE_READ_ONLY));
        assert.deepEqual((await fetch(1)).rows, [[2, 'bänana', 200n]]);
        assert.equal(session.unsafeReason(), 'cursor-open');
        assert.deepEqual((await c.commandResults(comStmt(COM_STMT_RESET, stmt.statementId))).results.map((x) => x.kind), ['ok']);
        assert.equal(session.unsafeReason(), null);
        const afterReset = await c.commandResults(comStmt(COM_STMT_FETCH, stmt.statementId, u32(1)));
        assert.equal(afterReset.results.at(-1)?.kind, 'error');
        assert.equal(c.unreadBytes, 0);
      } finally {
        await c.close();
      }
    });
  }

  it('LOAD DATA LOCAL INFILE: mysql2 stream, the mariadb CLI and the raw client', async () => {
    const lines = Array.from({ length: 20_000 }, (_, i) => `${i + 1},name-${i + 1}-${'z'.repeat(i % 13)}`);
    const file = Buffer.from(lines.join('\n') + '\n');
    const c = await connect({ infileStreamFactory: () => Readable.from([file.subarray(0, 100_000), file.subarray(100_000)]) });
    try {
      await c.query('DELETE FROM infile_t');
      const [res] = await c.query<ResultSetHeader>("LOAD DATA LOCAL INFILE 'virtual.csv' INTO TABLE infile_t FIELDS TERMINATED BY ',' (id, name)");
      assert.equal(res.affectedRows, 20_000);
      await c.query('SET SESSION group_concat_max_len = 4294967295');
      const [[stats]] = await c.query<RowDataPacket[]>("SELECT COUNT(*) AS n, MIN(id) AS lo, MAX(id) AS hi, SHA2(GROUP_CONCAT(name ORDER BY id SEPARATOR ','), 256) AS h FROM infile_t");
      const expectedNames = lines.map((l) => l.slice(l.indexOf(',') + 1)).join(',');
      assert.deepEqual({ ...stats }, { n: 20_000, lo: 1, hi: 20_000, h: sha256(Buffer.from(expectedNames)) });
      assert.equal(sessionOf(c.threadId).unsafeReason(), null, 'the upload is over');
    } finally {
      await c.end();
    }

    // mysql2 without a stream factory answers the server's request with an empty file and reports an error.
    const refusing = await connect();
    try {
      await assert.rejects(refusing.query("LOAD DATA LOCAL INFILE 'nothing.csv' INTO TABLE infile_t"), /LOCAL INFILE/);
      const [[still]] = await refusing.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM infile_t');
      assert.equal(still!.n, 20_000);
      assert.equal(sessionOf(refusing.threadId).unsafeReason(), null);
    } finally {
      await refusing.end();
    }

    const path = join(scratch, 'cli.csv');
    await writeFile(path, 'a1\tfrom cli one\na2\tfrom cli two\na3\tfrom cli three\n');
    const cli = await runMariadbCli([...cliArgs(), '--local-infile=1', '-B', '-N', '-e',
      `DELETE FROM test.infile_t; LOAD DATA LOCAL INFILE '${path}' INTO TABLE test.infile_t (@k, name) SET id = CAST(SUBSTR(@k, 2) AS UNSIGNED); SELECT id, name FROM test.infile_t ORDER BY id`]);
    assert.equal(cli.stderr, '');
    assert.equal(cli.code, 0);
    assert.equal(cli.stdout, '1\tfrom cli one\n2\tfrom cli two\n3\tfrom cli three\n');

    for (const deprecateEof of [true, false]) {
      const big = Buffer.from(Array.from({ length: 50_000 }, (_, i) => `${i},r${i}`).join('\n'));
      const big2 = Buffer.from(Array.from({ length: 1000 }, (_, i) => `${100_000 + i},s${i}`).join('\n'));
      const files: Record<string, Buffer> = { 'raw.csv': big, 'raw2.csv': big2 };
      const r = await raw({ deprecateEof, multiStatements: true, onLocalInfile: (name) => files[name] ?? Buffer.alloc(0) });
      try {
        const res = await r.query("DELETE FROM infile_t; LOAD DATA LOCAL INFILE 'raw.csv' INTO TABLE infile_t FIELDS TERMINATED BY ','; SELECT COUNT(*), SUM(id) FROM infile_t");
        assert.equal(res.length, 3);
        assert.equal(res[0]!.kind, 'ok');
        assert.deepEqual(summarize(res.slice(1)), [
          { ok: 50_000 },
          { rows: [['50000', String((49_999 * 50_000) / 2)]], columns: ['COUNT(*)', 'SUM(id)'], complete: true },
        ]);
        assert.deepEqual(await r.rows('SELECT name FROM infile_t WHERE id = 49999'), [['r49999']]);
        // Two uploads in one multi-statement: upload mode starts and ends twice within one response.
        const twice = await r.query("DELETE FROM infile_t; LOAD DATA LOCAL INFILE 'raw.csv' INTO TABLE infile_t FIELDS TERMINATED BY ','; " +
          "LOAD DATA LOCAL INFILE 'raw2.csv' INTO TABLE infile_t FIELDS TERMINATED BY ','; SELECT COUNT(*) FROM infile_t");
        assert.deepEqual(summarize(twice.slice(1)), [
          { ok: 50_000 }, { ok: 1000 }, { rows: [['51000']], columns: ['COUNT(*)'], complete: true },
        ]);
        assert.equal(sessionOf(r.connectionId).unsafeReason(), null);
      } finally {
        await r.close();
      }
    }
  });

  it('COM_CHANGE_USER (mysql2 changeUser) switches the backend user; a bad password is refused', async () => {
    const c = await connect();
    try {
      const session = sessionOf(c.threadId);
      await c.query('SET @before = 1');
      await c.changeUser({ user: NATIVE_USER, password: NATIVE_PASSWORD, database: TEST_DATABASE });
      const [[who]] = await c.query<RowDataPacket[]>('SELECT CURRENT_USER() AS cu, USER() AS u, @before AS b, DATABASE() AS d');
      assert.equal(who!.cu, `${NATIVE_USER}@%`);
      assert.match(String(who!.u), new RegExp(`^${NATIVE_USER}@`));
      assert.equal(who!.b, null, 'COM_CHANGE_USER resets the session');
      assert.equal(who!.d, TEST_DATABASE);
      assert.equal(session.user, NATIVE_USER);
      await c.changeUser({ user: ROOT_USER, password: ROOT_PASSWORD });
      const [[back]] = await c.query<RowDataPacket[]>('SELECT CURRENT_USER() AS cu');
      assert.equal(back!.cu, `${ROOT_USER}@%`);
      // Prepared statements keep working after a change of user (mysql2 clears its cache).
      const [rows] = await c.execute<RowDataPacket[]>('SELECT ? + 1 AS v', [1]);
      assert.equal(Number(rows[0]!.v), 2);
    } finally {
      await c.end();
    }
    const bad = await connect();
    try {
      await assert.rejects(bad.changeUser({ user: NATIVE_USER, password: 'wrong' }), { errno: 1045 });
    } finally {
      bad.destroy();
    }
  });

  it('COM_RESET_CONNECTION clears user variables and prepared statements (raw client)', async () => {
    const c = await raw();
    try {
      const session = sessionOf(c.connectionId);
      await c.query('SET @x = 5');
      assert.deepEqual(await c.rows('SELECT @x'), [['5']]);
      await c.prepare('SELECT 1');
      assert.equal(session.state.statements.size, 1);
      const reset = await c.commandResults(comSimple(COM_RESET_CONNECTION));
      assert.deepEqual(reset.results.map((r) => r.kind), ['ok']);
      assert.deepEqual(await c.rows('SELECT @x, DATABASE()'), [[null, TEST_DATABASE]]);
      assert.equal(session.state.statements.size, 0);
    } finally {
      await c.close();
    }
  });

  it('COM_PING (mysql2 and raw client)', async () => {
    const c = await connect();
    try {
      await c.ping();
      await c.ping();
    } finally {
      await c.end();
    }
    const r = await raw();
    try {
      const res = await r.commandResults(comSimple(COM_PING));
      assert.deepEqual(res.results.map((x) => x.kind), ['ok']);
    } finally {
      await r.close();
    }
  });

  it('other single-reply commands: COM_PROCESS_INFO, COM_DEBUG, COM_REFRESH; unsupported ones get a readable ERR', async () => {
    for (const deprecateEof of [true, false]) {
      const r = await raw({ deprecateEof });
      try {
        const info = await r.commandResults(comSimple(COM_PROCESS_INFO));
        const list = info.results[0]!;
        assert.ok(list.kind === 'rows' && list.complete);
        assert.deepEqual(list.columns.map((col) => col.name).slice(0, 3), ['Id', 'User', 'Host']);
        const ids = list.rows.map((row) => Number(textRow(row, list.columns.length)[0]));
        assert.ok(ids.includes(sessionOf(r.connectionId).backendConnectionId), 'the backend thread is listed');
        assert.deepEqual((await r.commandResults(comSimple(COM_DEBUG))).results.map((x) => x.kind), ['eof']);
        assert.deepEqual((await r.commandResults(comSimple(COM_REFRESH, Buffer.from([0x04])))).results.map((x) => x.kind), ['ok']);
        const refused = await r.commandResults(comSimple(COM_TIME));
        assert.equal(refused.results.length, 1);
        const err = refused.results[0]!;
        assert.ok(err.kind === 'error');
        assert.equal(err.error.code, 1047);
        assert.match(err.error.message, /COM_TIME is not supported through tiproxy/);
        assert.deepEqual(await r.rows('SELECT 12'), [['12']]);
      } finally {
        await r.close();
      }
    }
  });

  it('pipelined commands (raw client): responses come back complete and in order', async () => {
    for (const deprecateEof of [true, false]) {
      const r = await raw({ deprecateEof, multiStatements: true });
      try {
        const prepare = Buffer.concat([Buffer.from([0x16]), Buffer.from('SELECT ? + 1 AS v, name FROM items WHERE id = 1')]);
        const responses = await r.pipeline([
          comQuery('SELECT id FROM items ORDER BY id LIMIT 2'),
          prepare,
          comStmtExecute(0xffffffff, [41]), // MariaDB: -1 = the statement prepared last (as Connector/J pipelines it)
          comSimple(COM_PING),
          comQuery('SELECT * FROM no_such_table'),
          comQuery('SELECT 1 AS a; SELECT 2 AS b'),
          comSimple(COM_STATISTICS),
          comQuery('SELECT a, (SELECT b FROM t2 WHERE t2.a <= t1.a) AS sub FROM t1'),
          comSimple(COM_FIELD_LIST, 't2\0'),
          comQuery('SELECT 13'),
        ]);
        assert.deepEqual(summarize(responses[0]!.results), [{ rows: [['1'], ['2']], columns: ['id'], complete: true }]);
        assert.equal(responses[1]!.results[0]!.kind, 'prepare');
        const exec = responses[2]!.results[0]!;
        assert.ok(exec.kind === 'rows');
        assert.deepEqual(exec.rows.map((row) => binaryRow(row, exec.columns)), [[42n, 'apple']]);
        assert.deepEqual(responses[3]!.results.map((x) => x.kind), ['ok']);
        assert.deepEqual(summarize(responses[4]!.results), [{ error: 1146 }]);
        assert.deepEqual(summarize(responses[5]!.results), [
          { rows: [['1']], columns: ['a'], complete: true }, { rows: [['2']], columns: ['b'], complete: true },
        ]);
        assert.equal(responses[6]!.results[0]!.kind, 'info');
        assert.deepEqual(summarize(responses[7]!.results), [{ rows: [['1', '10'], ['2', '10']], columns: ['a', 'sub'], complete: false }, { error: 1242 }]);
        const fields = responses[8]!.results[0]!;
        assert.ok(fields.kind === 'rows');
        assert.deepEqual(fields.columns.map((col) => col.name), ['a', 'b']);
        assert.deepEqual(summarize(responses[9]!.results), [{ rows: [['13']], columns: ['13'], complete: true }]);
        assert.equal(r.unreadBytes, 0);
        await waitFor('the proxy to see every response end', () => sessionOf(r.connectionId).unsafeReason() === null);

        // Pipelined PREPAREs (one failing): the proxy keeps each statement's own SQL (migration re-prepares it).
        const session = sessionOf(r.connectionId);
        const prepared = await r.pipeline([
          Buffer.from('\x16SELECT 1 AS first'), Buffer.from('\x16SELECT nope FROM nowhere'), Buffer.from('\x16SELECT 2 AS third'),
        ]);
        assert.deepEqual(prepared.map((x) => x.results[0]!.kind), ['prepare', 'error', 'prepare']);
        for (const [k, sql] of [[0, 'SELECT 1 AS first'], [2, 'SELECT 2 AS third']] as const) {
          const st = prepared[k]!.results[0]!;
          assert.ok(st.kind === 'prepare');
          assert.equal(session.state.statements.get(st.statementId)?.sql.toString(), sql);
        }

        // More than 256 commands in flight at once: every response is followed, none is "unsolicited".
        const logsBefore = proxy.logs.length;
        const many = await r.pipeline(Array.from({ length: 600 }, (_, k) => (k % 5 === 4 ? comSimple(COM_PING) : comQuery(`SELECT ${k}`))));
        assert.equal(many.length, 600);
        assert.deepEqual(summarize(many[599]!.results), [{ ok: 0 }]);
        assert.deepEqual(summarize(many[598]!.results), [{ rows: [['598']], columns: ['598'], complete: true }]);
        assert.deepEqual(proxy.logs.slice(logsBefore).filter((l) => l.conn === r.connectionId && /no command was outstanding/.test(l.msg)), []);
        assert.equal(session.unsafeReason(), null);
      } finally {
        await r.close();
      }
    }
  });

  it('a statement with 300 parameters and 300 columns (prepare definitions, wide binary rows)', async () => {
    const n = 300;
    const sql = `SELECT ${Array.from({ length: n }, (_, i) => `? AS c${i}`).join(', ')}`;
    const values = Array.from({ length: n }, (_, i) => (i % 3 === 0 ? null : i % 3 === 1 ? i : `s${i}`));
    for (const deprecateEof of [true, false]) {
      const r = await raw({ deprecateEof });
      try {
        const stmt = await r.prepare(sql);
        assert.equal(stmt.params.length, n);
        assert.equal(stmt.columns.length, n);
        const res = await r.commandResults(comStmtExecute(stmt.statementId, values));
        const set = res.results[0]!;
        assert.ok(set.kind === 'rows' && set.rows.length === 1);
        const row = binaryRow(set.rows[0]!, set.columns).map((v) => (typeof v === 'bigint' ? Number(v) : v));
        assert.deepEqual(row, values);
        assert.equal(sessionOf(r.connectionId).state.statements.get(stmt.statementId)?.params, n);
      } finally {
        await r.close();
      }
    }
    const c = await connect();
    try {
      const [rows] = await c.execute<RowDataPacket[]>(sql, values);
      assert.deepEqual(Object.values(rows[0]!).map((v) => (typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v)), values);
    } finally {
      await c.end();
    }
  });

  it('COM_INIT_DB: mariadb CLI "use" and the raw client', async () => {
    const counter = async () => Number((await db.query<RowDataPacket[]>("SHOW GLOBAL STATUS LIKE 'Com_change_db'"))[0]!.Value);
    const before1 = await counter();
    const cli = await runMariadbCli([...cliArgs(), '-B', '-e', 'use test; select database()']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(cli.stdout, 'database()\ntest\n');
    assert.ok((await counter()) > before1, 'the CLI sent COM_INIT_DB');

    await db.query('CREATE DATABASE IF NOT EXISTS other_db');
    const r = await raw({ database: '' });
    try {
      const session = sessionOf(r.connectionId);
      assert.deepEqual(await r.rows('SELECT DATABASE()'), [[null]]);
      const ok = await r.commandResults(comSimple(COM_INIT_DB, 'other_db'));
      assert.deepEqual(ok.results.map((x) => x.kind), ['ok']);
      assert.deepEqual(await r.rows('SELECT DATABASE()'), [['other_db']]);
      assert.equal(session.database, 'other_db');
      const bad = await r.commandResults(comSimple(COM_INIT_DB, 'no_such_db'));
      assert.deepEqual(bad.results.map((x) => (x.kind === 'error' ? x.error.code : x.kind)), [1049]);
      assert.equal(session.database, 'other_db');
      assert.deepEqual(await r.rows('SELECT DATABASE()'), [['other_db']]);
      // A name of the maximum length (64 characters, longer than the command prefix the proxy inspects).
      const longName = `db_${'x'.repeat(61)}`;
      await db.query(`CREATE DATABASE IF NOT EXISTS ${longName}`);
      assert.deepEqual((await r.commandResults(comSimple(COM_INIT_DB, longName))).results.map((x) => x.kind), ['ok']);
      assert.deepEqual(await r.rows('SELECT DATABASE()'), [[longName]]);
      assert.equal(session.database, longName);
    } finally {
      await r.close();
    }
  });

  it('COM_FIELD_LIST (raw client) lists the columns of a table', async () => {
    for (const deprecateEof of [true, false]) {
      const r = await raw({ deprecateEof });
      try {
        const res = await r.commandResults(comSimple(COM_FIELD_LIST, 'items\0'));
        assert.equal(res.results.length, 1);
        const list = res.results[0]!;
        assert.ok(list.kind === 'rows');
        assert.deepEqual(list.columns.map((c) => c.name), ['id', 'name', 'price', 'qty', 'note', 'at']);
        assert.deepEqual(list.columns.map((c) => c.table), Array(6).fill('items'));
        const wild = await r.commandResults(comSimple(COM_FIELD_LIST, 'items\0n%'));
        assert.ok(wild.results[0]!.kind === 'rows');
        assert.deepEqual(wild.results[0].columns.map((c) => c.name), ['name', 'note']);
        const missing = await r.commandResults(comSimple(COM_FIELD_LIST, 'no_such_table\0'));
        assert.deepEqual(missing.results.map((x) => (x.kind === 'error' ? x.error.code : x.kind)), [1146]);
        assert.deepEqual(await r.rows('SELECT 5'), [['5']]);
      } finally {
        await r.close();
      }
    }
  });

  it('COM_STATISTICS: mariadb-admin status through the proxy prints Uptime', async () => {
    const { stdout } = await run('mariadb-admin', ['--no-defaults', ...cliArgs(), 'status'], { timeout: 15_000 });
    assert.match(stdout, /^Uptime: \d+ {2}Threads: \d+ {2}Questions: \d+/);
    const r = await raw();
    try {
      const res = await r.commandResults(comSimple(COM_STATISTICS));
      assert.equal(res.results.length, 1);
      assert.ok(res.results[0]!.kind === 'info');
      assert.match(res.results[0].text, /^Uptime: \d+/);
      assert.deepEqual(await r.rows('SELECT 6'), [['6']]);
    } finally {
      await r.close();
    }
  });

  it('COM_SET_OPTION turns multi-statements off and on (raw client)', async () => {
    for (const deprecateEof of [true, false]) {
      const r = await raw({ deprecateEof, multiStatements: false });
      try {
        await assert.rejects(r.query('SELECT 1; SELECT 2'), { code: 1064 });
        const on = await r.commandResults(Buffer.concat([Buffer.from([COM_SET_OPTION]), u16(MYSQL_OPTION_MULTI_STATEMENTS_ON)]));
        assert.deepEqual(on.results.map((x) => x.kind), ['eof']);
        assert.deepEqual(summarize(await r.query('SELECT 1 AS a; SELECT 2 AS b')), [
          { rows: [['1']], columns: ['a'], complete: true },
          { rows: [['2']], columns: ['b'], complete: true },
        ]);
        const off = await r.commandResults(Buffer.concat([Buffer.from([COM_SET_OPTION]), u16(MYSQL_OPTION_MULTI_STATEMENTS_OFF)]));
        assert.deepEqual(off.results.map((x) => x.kind), ['eof']);
        await assert.rejects(r.query('SELECT 1; SELECT 2'), { code: 1064 });
        assert.deepEqual(await r.rows('SELECT 3'), [['3']]);
      } finally {
        await r.close();
      }
    }
  });

  it('COM_QUIT: the proxy logs client-quit and the backend thread goes away', async () => {
    const processlistHas = async (id: number) =>
      (await db.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ?', [id]))[0]!.n > 0;

    const r = await raw();
    const thread = Number((await r.rows('SELECT CONNECTION_ID()'))[0]![0]);
    assert.equal(sessionOf(r.connectionId).backendConnectionId, thread);
    assert.ok(await processlistHas(thread));
    await r.quit();
    assert.equal(r.closed, true, 'the proxy closed the client connection');
    await waitFor('the session-closed log line', () => proxy.logs.some((l) => l.msg === 'session closed' && l.conn === r.connectionId));
    const line = proxy.logs.find((l) => l.msg === 'session closed' && l.conn === r.connectionId)!;
    assert.equal(line.reason, 'client-quit');
    assert.equal(line.side, 'client');
    assert.equal(proxy.kernel.sessions.has(r.connectionId), false);
    await waitFor(`backend thread ${thread} to leave the processlist`, async () => !(await processlistHas(thread)));

    // mysql2's end() sends COM_QUIT too.
    const c = await connect();
    const [[row]] = await c.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
    const id = c.threadId;
    await c.end();
    await waitFor('mysql2 session closed', () => proxy.logs.some((l) => l.msg === 'session closed' && l.conn === id));
    assert.equal(proxy.logs.find((l) => l.msg === 'session closed' && l.conn === id)!.reason, 'client-quit');
    await waitFor(`backend thread ${row!.id} to leave the processlist`, async () => !(await processlistHas(row!.id)));
  });

  it('a 20 MB BLOB goes in and comes back byte-exact, through both protocols', async () => {
    const blob = randomBytes(20 * 1024 * 1024);
    const digest = sha256(blob);
    const c = await connect({ maxPreparedStatements: 4 });
    try {
      await c.query('DELETE FROM blobs');
      const [viaExecute] = await c.execute<ResultSetHeader>('INSERT INTO blobs (id, b) VALUES (?, ?)', [1, blob]);
      assert.equal(viaExecute.affectedRows, 1);
      const [viaQuery] = await c.query<ResultSetHeader>('INSERT INTO blobs (id, b) VALUES (?, ?)', [2, blob]);
      assert.equal(viaQuery.affectedRows, 1);
      const [server] = await c.query<RowDataPacket[]>('SELECT id, LENGTH(b) AS len, SHA2(b, 256) AS h FROM blobs ORDER BY id');
      assert.deepEqual(server.map((s) => ({ ...s })), [{ id: 1, len: blob.length, h: digest }, { id: 2, len: blob.length, h: digest }]);

      const [textRows] = await c.query<RowDataPacket[]>('SELECT id, b FROM blobs ORDER BY id');
      assert.equal(textRows.length, 2);
      for (const row of textRows) assert.equal(sha256(row.b as Buffer), digest, `text protocol, id ${row.id}`);
      const [binRows] = await c.execute<RowDataPacket[]>('SELECT id, b FROM blobs WHERE id >= ? ORDER BY id', [1]);
      assert.equal(binRows.length, 2);
      for (const row of binRows) assert.equal(sha256(row.b as Buffer), digest, `binary protocol, id ${row.id}`);
      const [[small]] = await c.query<RowDataPacket[]>('SELECT 1 AS still_in_step');
      assert.equal(small!.still_in_step, 1);
    } finally {
      await c.end();
    }
    // The raw client in both EOF modes: a 20 MB text row starts with 0xFE (8-byte length) — with
    // DEPRECATE_EOF only the packet length tells it from the terminating OK — and rows whose payload is
    // exactly 0xFFFFFF bytes are followed by an empty continuation packet.
    const exactText = 0xffffff - 4; // lenenc 0xFD + 3 bytes
    const exactBinary = 0xffffff - 6; // 0x00 header + 1 NULL-bitmap byte + 0xFD + 3 bytes
    for (const deprecateEof of [true, false]) {
      const r = await raw({ deprecateEof });
      try {
        const res = await r.query('SELECT b FROM blobs WHERE id = 1');
        assert.ok(res.length === 1 && res[0]!.kind === 'rows' && res[0].complete);
        assert.equal(res[0].rows.length, 1);
        assert.equal(res[0].rows[0]![0], 0xfe, 'the row starts with 0xFE');
        assert.equal(sha256(res[0].rows[0]!.subarray(9)), digest);

        const exact = await r.commandResults(Buffer.concat([Buffer.from([0x03]), Buffer.from(`SELECT SUBSTR(b, 1, ${exactText}) FROM blobs WHERE id = 1`)]));
        assert.deepEqual(exact.packets.map((p) => p.payload.length).slice(-2), [0xffffff, deprecateEof ? 7 : 5]);
        const exactRow = exact.results[0]!;
        assert.ok(exactRow.kind === 'rows' && exactRow.rows.length === 1);
        assert.equal(sha256(exactRow.rows[0]!.subarray(4)), sha256(blob.subarray(0, exactText)));

        const stmt = await r.prepare('SELECT SUBSTR(b, 1, ?) FROM blobs WHERE id = 1');
        const bin = await r.commandResults(comStmtExecute(stmt.statementId, [exactBinary]));
        const binRow = bin.results[0]!;
        assert.ok(binRow.kind === 'rows' && binRow.rows.length === 1);
        assert.equal(binRow.rows[0]!.length, 0xffffff);
        assert.equal(sha256(binaryRow(binRow.rows[0]!, binRow.columns)[0] as Buffer), sha256(blob.subarray(0, exactBinary)));

        assert.deepEqual(await r.rows('SELECT 11'), [['11']]);
        assert.equal(sessionOf(r.connectionId).unsafeReason(), null);
        assert.equal(r.unreadBytes, 0);
      } finally {
        await r.close();
      }
    }
  });

  it('empty results: zero rows with columns, and statements with no result set', async () => {
    const c = await connect();
    try {
      const [rows, fields] = await c.query<RowDataPacket[]>('SELECT a, b FROM empty_t');
      assert.deepEqual(rows, []);
      assert.deepEqual((fields as FieldPacket[]).map((f) => f.name), ['a', 'b']);
      const [none] = await c.query<RowDataPacket[]>('SELECT 1 AS one FROM DUAL WHERE 0');
      assert.deepEqual(none, []);
      const [ok] = await c.query<ResultSetHeader>('DO 1');
      assert.equal(ok.affectedRows, 0);
      const [upd] = await c.query<ResultSetHeader>('UPDATE empty_t SET a = 1');
      assert.equal(upd.affectedRows, 0);
      const [execEmpty] = await c.execute<RowDataPacket[]>('SELECT a, b FROM empty_t WHERE a = ?', [1]);
      assert.deepEqual(execEmpty, []);
    } finally {
      await c.end();
    }
    for (const deprecateEof of [true, false]) {
      const r = await raw({ deprecateEof, multiStatements: true });
      try {
        assert.deepEqual(summarize(await r.query('SELECT a, b FROM empty_t; DO 1; SELECT 1 AS one FROM DUAL WHERE 0')), [
          { rows: [], columns: ['a', 'b'], complete: true },
          { ok: 0 },
          { rows: [], columns: ['one'], complete: true },
        ]);
      } finally {
        await r.close();
      }
    }
  });

  it('an error mid-result (ERR 1242 after some rows) leaves the connection usable', async () => {
    const sql = 'SELECT a, (SELECT b FROM t2 WHERE t2.a <= t1.a) AS sub FROM t1';
    for (const deprecateEof of [true, false]) {
      const r = await raw({ deprecateEof });
      try {
        const res = await r.query(sql);
        assert.deepEqual(summarize(res), [{ rows: [['1', '10'], ['2', '10']], columns: ['a', 'sub'], complete: false }, { error: 1242 }]);
        assert.deepEqual(await r.rows('SELECT 7'), [['7']]);
        assert.equal(r.unreadBytes, 0);
      } finally {
        await r.close();
      }
    }
    const c = await connect();
    try {
      await assert.rejects(c.query(sql), { errno: 1242 });
      const [[row]] = await c.query<RowDataPacket[]>('SELECT 8 AS v');
      assert.equal(row!.v, 8);
      assert.equal(sessionOf(c.threadId).unsafeReason(), null);
      await assert.rejects(c.execute(sql.replace('t1.a', '?'), [3]), { errno: 1242 });
      const [[row2]] = await c.execute<RowDataPacket[]>('SELECT ? AS v', [9]);
      assert.equal(Number(row2!.v), 9);
    } finally {
      await c.end();
    }
  });

  it('DEPRECATE_EOF on and off give the same rows (mysql2, raw client, mariadb CLI)', async () => {
    const sql = 'SELECT id, name, price, qty, note FROM items ORDER BY id';
    const expected = [
      ['1', 'apple', '1.50', '10', null], ['2', 'bänana', '0.25', '200', 'ripe'], ['3', 'cherry', '12.00', '-3', ''],
      ['4', 'date', '3.10', '9007199254740993', 'x'], ['5', 'elder', '0.00', '0', null],
    ];
    for (const deprecateEof of [true, false]) {
      const r = await raw({ deprecateEof });
      try {
        assert.equal((sessionOf(r.connectionId).capabilities & CLIENT_DEPRECATE_EOF) !== 0, deprecateEof, 'negotiated as asked');
        assert.deepEqual(await r.rows(sql), expected);
        const stmt = await r.prepare(sql);
        const exec = await r.commandResults(comStmtExecute(stmt.statementId, []));
        const set = exec.results[0]!;
        assert.ok(set.kind === 'rows');
        assert.deepEqual(set.rows.map((row) => binaryRow(row, set.columns).map((v) => (v === null ? null : String(v)))), expected);
      } finally {
        await r.close();
      }
    }
    // mysql2 3.x does not implement CLIENT_DEPRECATE_EOF (it has no such flag, so '-DEPRECATE_EOF' is inert):
    // it always negotiates EOF packets.
    for (const flags of [[], ['-DEPRECATE_EOF']]) {
      const c = await connect({ flags, supportBigNumbers: true, bigNumberStrings: true, decimalNumbers: false });
      try {
        assert.equal(sessionOf(c.threadId).capabilities & CLIENT_DEPRECATE_EOF, 0);
        const [rows] = await c.query<RowDataPacket[]>({ sql, rowsAsArray: true });
        assert.deepEqual(rows.map((row) => (row as unknown as unknown[]).map((v) => (v === null ? null : String(v)))), expected);
      } finally {
        await c.end();
      }
    }
    // The mariadb CLI: libmariadb (Connector/C) does not ask for CLIENT_DEPRECATE_EOF, so it is a second,
    // non-Node client on EOF packets.
    const seen: number[] = [];
    const known = new Set(proxy.kernel.sessions.keys());
    const cliRun = runMariadbCli([...cliArgs(), '-B', '-N', '-e', `SELECT SLEEP(0.3); ${sql}`, TEST_DATABASE]);
    await waitFor('the CLI session', () => {
      for (const [id, s] of proxy.kernel.sessions) if (!known.has(id) && s.user === ROOT_USER) seen.push(s.capabilities);
      return seen.length > 0;
    });
    const cli = await cliRun;
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(seen[0]! & CLIENT_DEPRECATE_EOF, 0, 'libmariadb uses EOF packets');
    const cliRows = cli.stdout.trimEnd().split('\n').slice(1).map((l) => l.split('\t').map((v) => (v === 'NULL' ? null : v)));
    assert.deepEqual(cliRows, expected);
  });

  it('zlib compression (mysql2 compress: true): small and 5 MB results, statements, the session is compressed', async () => {
    const size = 5 * 1024 * 1024;
    const infile = Buffer.from(Array.from({ length: 30_000 }, (_, k) => `${k + 1},compressed ${k + 1}`).join('\n'));
    const c = await connect({ compress: true, multipleStatements: true, infileStreamFactory: () => Readable.from([infile]) });
    try {
      const session = sessionOf(c.threadId);
      assert.ok(session.capabilities & CLIENT_COMPRESS);
      assert.equal(session.client.isCompressed, true);
      const opened = proxy.logs.find((l) => l.msg === 'session opened' && l.conn === c.threadId);
      assert.equal(opened?.compressed, true);

      const [[one]] = await c.query<RowDataPacket[]>('SELECT 1 AS one, REPEAT(\'ab\', 10) AS s');
      assert.deepEqual({ ...one }, { one: 1, s: 'ab'.repeat(10) });
      const [[big]] = await c.query<RowDataPacket[]>(`SELECT REPEAT('x', ${size}) AS big`);
      assert.equal((big!.big as string).length, size);
      assert.equal(big!.big, 'x'.repeat(size));

      // Incompressible data both ways (the compressor must fall back to stored frames).
      const random = randomBytes(size);
      await c.execute('REPLACE INTO blobs (id, b) VALUES (?, ?)', [3, random]);
      const [[back]] = await c.execute<RowDataPacket[]>('SELECT b, SHA2(b, 256) AS h FROM blobs WHERE id = ?', [3]);
      assert.equal(back!.h, sha256(random));
      assert.equal(sha256(back!.b as Buffer), sha256(random));

      const [many] = await c.query<RowDataPacket[]>('SELECT seq FROM seq_1_to_20000');
      assert.equal(many.length, 20_000);
      assert.equal(many[19_999]!.seq, 20_000);
      const [multi] = await c.query<RowDataPacket[][]>('SELECT 1 AS a; SELECT 2 AS b');
      assert.deepEqual(multi, [[{ a: 1 }], [{ b: 2 }]]);
      await c.ping();
      await assert.rejects(c.query('SELECT * FROM no_such_table'), { errno: 1146 });
      // LOAD DATA LOCAL INFILE: the upload arrives in compressed frames.
      await c.query('DELETE FROM infile_t');
      const [loaded] = await c.query<ResultSetHeader>("LOAD DATA LOCAL INFILE 'z.csv' INTO TABLE infile_t FIELDS TERMINATED BY ','");
      assert.equal(loaded.affectedRows, 30_000);
      const [[check]] = await c.query<RowDataPacket[]>('SELECT COUNT(*) AS n, MAX(name) AS m FROM infile_t');
      assert.deepEqual({ ...check }, { n: 30_000, m: 'compressed 9999' });
      // COM_CHANGE_USER's authentication exchange runs over the compressed protocol too.
      await c.changeUser({ user: NATIVE_USER, password: NATIVE_PASSWORD });
      const [[who]] = await c.query<RowDataPacket[]>('SELECT CURRENT_USER() AS cu, 99 AS v');
      assert.deepEqual({ ...who }, { cu: `${NATIVE_USER}@%`, v: 99 });
    } finally {
      await c.end();
    }
    // A C client (libmariadb) on the compressed protocol: it checks the compressed sequence ids.
    const cli = await runMariadbCli([...cliArgs(), '--compress', '-B', '-N', '-e',
      `SELECT LENGTH(REPEAT('x', ${size})); SELECT REPEAT('ab', 3000000); SELECT id, name FROM items ORDER BY id LIMIT 2`, TEST_DATABASE]);
    assert.equal(cli.stderr, '');
    assert.equal(cli.code, 0);
    const lines = cli.stdout.split('\n');
    assert.equal(lines[0], String(size));
    assert.equal(lines[1], 'ab'.repeat(3_000_000));
    assert.deepEqual(lines.slice(2), ['1\tapple', '2\tbänana', '']);
  });
});
