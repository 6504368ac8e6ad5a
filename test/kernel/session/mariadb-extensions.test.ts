// Real components: two MariaDB 10.11 instances sharing nothing, the proxy in-process (credentials-native
// with a service account and migrate-replay, so sessions can move), the raw client
// (test/harness/raw-client.ts, which negotiates MariaDB's extended capabilities itself) and MariaDB
// Connector/J (Debian's libmariadb-java, run with the JDK's single-file source launcher).
// MariaDB's protocol extensions through the proxy: extended capabilities negotiated per side, extended
// column metadata (type_json, gis), progress reports, COM_STMT_BULK_EXECUTE, also after a migration.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  CLIENT_LONG_PASSWORD, COM_QUERY, COM_STMT_CLOSE, COM_STMT_EXECUTE, COM_STMT_PREPARE, MARIADB_CLIENT_EXTENDED_METADATA,
  MARIADB_CLIENT_PROGRESS, MARIADB_CLIENT_STMT_BULK_OPERATIONS,
} from '../../../src/kernel/protocol/constants.js';
import { definePlugin, type TiproxyPlugin } from '../../../src/plugin.js';
import { startMariaDBs, ROOT_PASSWORD, ROOT_USER, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { waitFor } from '../../harness/clients.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';
import { comQuery, comStmt, comStmtBulkExecute, RawClient, type Packet, type RawClientOptions } from '../../harness/raw-client.js';

const CONNECTOR_J = '/usr/share/java/mariadb-java-client.jar';
const BULK_INSERT_JAVA = fileURLToPath(new URL('../../harness/BulkInsert.java', import.meta.url));
const ALL_EXTENDED = MARIADB_CLIENT_PROGRESS | MARIADB_CLIENT_STMT_BULK_OPERATIONS | MARIADB_CLIENT_EXTENDED_METADATA;

/** Every response end the proxy saw, by session: what it took for the end of each command. */
const results = new Map<number, Array<{ command: number; isError: boolean }>>();
const resultRecorder = definePlugin({
  name: 'result-recorder',
  version: '1.0.0',
  apply({ hooks }) {
    hooks.onResult.tap('result-recorder', (ctx) => {
      const list = results.get(ctx.session.id) ?? [];
      list.push({ command: ctx.command, isError: ctx.isError });
      results.set(ctx.session.id, list);
    });
  },
}) as TiproxyPlugin<never>;

describe('MariaDB protocol extensions through the proxy', () => {
  let dbs: MariaDBInstance[];
  let proxy: TestProxy;
  const addrOf = (d: MariaDBInstance) => `127.0.0.1:${d.port}`;

  before(async () => {
    dbs = await startMariaDBs(2, { name: 'mariadb-ext' });
    for (const d of dbs) {
      await d.query('CREATE TABLE test.ext_types (id INT PRIMARY KEY, j JSON, g GEOMETRY, p POINT, ls LINESTRING)');
      await d.query(`INSERT INTO test.ext_types VALUES (1, '{"a": [1, 2]}', ST_GeomFromText('POINT(1 1)'), POINT(2, 3),
        ST_GeomFromText('LINESTRING(0 0, 1 1, 2 2)'))`);
    }
    proxy = await startProxy({
      backends: dbs.map(addrOf),
      plugins: [resultRecorder],
      config: {
        plugins: [
          { name: 'credentials-native', config: { 'service-account': { user: ROOT_USER, password: ROOT_PASSWORD } } },
          { name: 'migrate-replay' },
          { name: 'result-recorder' },
        ],
      },
    });
  });
  after(async () => {
    await proxy?.stop();
    await Promise.all((dbs ?? []).map((d) => d.destroy()));
  });

  const viaProxy = (extra: Partial<RawClientOptions> = {}) =>
    RawClient.connect({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD, database: 'test', ...extra });
  const direct = (d: MariaDBInstance, extra: Partial<RawClientOptions> = {}) =>
    RawClient.connect({ host: '127.0.0.1', port: d.port, user: ROOT_USER, password: ROOT_PASSWORD, database: 'test', ...extra });

  function backendOf(client: RawClient): MariaDBInstance {
    const addr = proxy.kernel.sessions.get(client.connectionId)!.backend!.addr;
    return dbs.find((d) => addrOf(d) === addr)!;
  }

  /** Moves a session to the other backend and waits until it is there. */
  async function migrate(sessionId: number): Promise<MariaDBInstance> {
    const from = proxy.kernel.sessions.get(sessionId)!.backend!.addr;
    const to = dbs.map(addrOf).find((a) => a !== from)!;
    assert.ok(proxy.kernel.requestMigration(sessionId, 'test', to), 'migration request accepted');
    await waitFor('the session to move', () => proxy.kernel.sessions.get(sessionId)?.backend?.addr === to, 10_000);
    return dbs.find((d) => addrOf(d) === to)!;
  }

  /**
   * MariaDB 10.11 has no counter of its own for COM_STMT_BULK_EXECUTE (nor a general-log word): a bulk
   * command counts once in Com_stmt_execute however many rows it carries, so 1,000 rows landing with
   * one or two executions can only be bulk (row-by-row EXECUTE counts 1,000, a text batch 0).
   */
  async function executions(d: MariaDBInstance): Promise<number> {
    const [row] = await d.query<Array<{ Value: string }>>("SHOW GLOBAL STATUS LIKE 'Com_stmt_execute'");
    return Number(row!.Value);
  }

  it('the greeting offers what the proxy carries of the backends\' extended capabilities; each side negotiates its own', async () => {
    const d = await direct(dbs[0]!, { extendedCapabilities: ALL_EXTENDED });
    assert.equal(d.serverCapabilities & CLIENT_LONG_PASSWORD, 0, 'MariaDB clears CLIENT_MYSQL');
    assert.equal(d.serverExtendedCapabilities, 0x1d, 'MariaDB 10.11: PROGRESS, STMT_BULK_OPERATIONS, EXTENDED_METADATA, CACHE_METADATA');
    await d.close();

    const c = await viaProxy({ extendedCapabilities: ALL_EXTENDED | 0x10 });
    assert.equal(c.serverCapabilities & CLIENT_LONG_PASSWORD, 0, 'the proxy mirrors CLIENT_MYSQL clear');
    assert.equal(c.serverExtendedCapabilities, ALL_EXTENDED, 'all but CACHE_METADATA');
    assert.equal(proxy.kernel.sessions.get(c.connectionId)!.extendedCapabilities, ALL_EXTENDED);
    await c.close();

    // A client that keeps CLIENT_MYSQL set (mysql2, libmysqlclient) negotiates none.
    const mysqlStyle = await viaProxy({ addCapabilities: CLIENT_LONG_PASSWORD });
    assert.equal(proxy.kernel.sessions.get(mysqlStyle.connectionId)!.extendedCapabilities, 0);
    await mysqlStyle.close();
  });

  /** A response's packets with the statement id of a COM_STMT_PREPARE answer zeroed (ids are per connection). */
  function comparable(packets: Packet[]): Array<[number, string]> {
    return packets.map((p, i) => {
      const payload = Buffer.from(p.payload);
      if (i === 0 && payload[0] === 0 && payload.length === 12) payload.writeUInt32LE(0, 1);
      return [p.seq, payload.toString('hex')];
    });
  }

  for (const extended of [true, false]) {
    it(`JSON and geometry column metadata match a direct connection byte for byte, text and binary protocol (${extended ? 'with' : 'without'} EXTENDED_METADATA)`, async () => {
      const opts = extended ? { extendedCapabilities: MARIADB_CLIENT_EXTENDED_METADATA } : {};
      const c = await viaProxy(opts);
      const d = await direct(backendOf(c), opts);
      const sql = "SELECT j, g, p, ls, JSON_OBJECT('k', id) AS jo, ST_AsText(p) AS pt FROM test.ext_types";
      const viaText = await c.commandResults(comQuery(sql));
      const directText = await d.commandResults(comQuery(sql));
      assert.deepEqual(comparable(viaText.packets), comparable(directText.packets), 'text protocol');
      const rows = viaText.results.find((r) => r.kind === 'rows');
      assert.ok(rows && rows.kind === 'rows');
      if (extended) {
        assert.deepEqual(rows.columns.map((col) => col.extended), [{ 1: 'json' }, {}, { 0: 'point' }, { 0: 'linestring' }, { 1: 'json' }, {}]);
      } else {
        assert.ok(rows.columns.every((col) => col.extended === undefined));
      }

      const prepareSql = 'SELECT j, g, p, ls FROM test.ext_types WHERE id = ?';
      const viaPrepare = await c.commandResults(Buffer.concat([Buffer.from([COM_STMT_PREPARE]), Buffer.from(prepareSql)]));
      const directPrepare = await d.commandResults(Buffer.concat([Buffer.from([COM_STMT_PREPARE]), Buffer.from(prepareSql)]));
      assert.deepEqual(comparable(viaPrepare.packets), comparable(directPrepare.packets), 'COM_STMT_PREPARE');
      const id = (r: typeof viaPrepare) => (r.results[0]!.kind === 'prepare' ? r.results[0]!.statementId : -1);
      const param = Buffer.from([0, 1, 0x08, 0, 1, 0, 0, 0, 0, 0, 0, 0]); // null bitmap, bound, LONGLONG 1
      const executeVia = await c.commandResults(comStmt(COM_STMT_EXECUTE, id(viaPrepare), Buffer.from([0, 1, 0, 0, 0]), param));
      const executeDirect = await d.commandResults(comStmt(COM_STMT_EXECUTE, id(directPrepare), Buffer.from([0, 1, 0, 0, 0]), param));
      assert.deepEqual(comparable(executeVia.packets), comparable(executeDirect.packets), 'binary protocol');
      await c.close();
      await d.close();
    });
  }

  it('progress reports of a long ALTER TABLE reach a client that asked for them, and the command ends only at its OK', async () => {
    const c = await viaProxy({ extendedCapabilities: MARIADB_CLIENT_PROGRESS, timeoutMs: 120_000 });
    const db = backendOf(c);
    await db.query('CREATE TABLE test.big (id INT PRIMARY KEY, v VARCHAR(200)) ENGINE=InnoDB');
    await c.query('SET SESSION progress_report_time = 1'); // the shortest interval: reports come after 1 s
    let rows = 0;
    let alters = 0;
    // A table copy long enough for a report: on a fast machine, the table doubles until one comes.
    for (let attempt = 0; attempt < 5 && c.progressReports.length === 0; attempt++) {
      await db.query(`INSERT INTO test.big SELECT seq, REPEAT('x', 180) FROM test.seq_${rows + 1}_to_${rows === 0 ? 100_000 : 2 * rows}`);
      rows = rows === 0 ? 100_000 : 2 * rows;
      results.delete(c.connectionId);
      const alter = await c.commandResults(comQuery('ALTER TABLE test.big FORCE, ALGORITHM=COPY'));
      alters++;
      assert.deepEqual(alter.results.map((r) => r.kind), ['ok'], 'the ALTER ends with its OK');
      // The proxy saw one end, the OK: a progress report taken for an ERR would have ended it early.
      assert.deepEqual(results.get(c.connectionId), [{ command: COM_QUERY, isError: false }], `ALTER ${alters}: what the proxy took for its end`);
    }
    assert.ok(c.progressReports.length >= 1, `progress reports relayed (got ${c.progressReports.length})`);
    // 0xFF, code 0xFFFF, 1, stage, max stage, progress (u24), info: "copy to tmp table".
    assert.equal(c.progressReports[0]!.readUInt16LE(1), 0xffff);
    assert.match(c.progressReports[0]!.toString('latin1', 10), /copy to tmp table/);
    assert.deepEqual(await c.rows('SELECT COUNT(*) FROM test.big'), [[String(rows)]]);
    assert.deepEqual(await c.rows('SELECT 1'), [['1']], 'the session goes on');
    await c.close();
    await db.query('DROP TABLE test.big');
  });

  it('COM_STMT_BULK_EXECUTE is forwarded and its rows land; after a migration its statement id is translated and its parameter types added', async () => {
    for (const d of dbs) await d.query('CREATE TABLE test.raw_bulk (id BIGINT PRIMARY KEY, v VARCHAR(40))');
    const c = await viaProxy({ extendedCapabilities: MARIADB_CLIENT_STMT_BULK_OPERATIONS });
    assert.equal(c.extendedCapabilities, MARIADB_CLIENT_STMT_BULK_OPERATIONS);
    const first = backendOf(c);
    // The statement used has id 3 here; re-prepared elsewhere (after SELECT 2) it gets id 2.
    const closed = await c.prepare('SELECT 1');
    c.send(comStmt(COM_STMT_CLOSE, closed.statementId));
    await c.prepare('SELECT 2');
    const { statementId } = await c.prepare('INSERT INTO test.raw_bulk (id, v) VALUES (?, ?)');
    const rows = (from: number, n: number) => Array.from({ length: n }, (_, k) => [from + k, `row-${from + k}`]);
    const before = await executions(first);
    const r1 = await c.commandResults(comStmtBulkExecute(statementId, rows(1, 500)));
    assert.equal(r1.results[0]!.kind, 'ok');
    assert.equal(r1.results[0]!.kind === 'ok' && r1.results[0]!.ok.affectedRows, 500);
    assert.equal(await executions(first), before + 1);

    const second = await migrate(c.connectionId);
    assert.ok(proxy.kernel.sessions.get(c.connectionId)!.state.idsTranslated, 'the statement has another id on the new backend');
    const beforeSecond = await executions(second);
    // Without types: the new backend never saw them (the proxy adds the ones the first bulk carried).
    const r2 = await c.commandResults(comStmtBulkExecute(statementId, rows(501, 500), false));
    assert.deepEqual(r2.results.map((r) => r.kind), ['ok'], JSON.stringify(r2.results));
    assert.equal(await executions(second), beforeSecond + 1);
    assert.deepEqual(await second.query('SELECT COUNT(*) AS n, MIN(id) AS lo, MAX(id) AS hi FROM test.raw_bulk'), [{ n: 500, lo: 501, hi: 1000 }]);
    assert.deepEqual(await first.query('SELECT COUNT(*) AS n FROM test.raw_bulk'), [{ n: 500 }]);
    await c.close();
  });

  it('Connector/J executeBatch with useBulkStmts goes out as COM_STMT_BULK_EXECUTE and lands every row, also after a migration', {
    skip: !existsSync(CONNECTOR_J) && `MariaDB Connector/J not installed (${CONNECTOR_J}; apt-get install libmariadb-java)`,
  }, async () => {
    for (const d of dbs) await d.query('CREATE TABLE test.jbulk (id INT PRIMARY KEY, v VARCHAR(40))');
    const counts = await Promise.all(dbs.map(executions));
    const url = `jdbc:mariadb://${proxy.host}:${proxy.port}/test?useBulkStmts=true&useServerPrepStmts=false`;
    const child = spawn('java', ['-cp', CONNECTOR_J, BULK_INSERT_JAVA, url, ROOT_USER, ROOT_PASSWORD, 'test.jbulk', '1000', '2'],
      { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const lines = createInterface({ input: child.stdout });
    const seen: string[] = [];
    let session = -1;
    let firstBackend: MariaDBInstance | undefined;
    let secondBackend: MariaDBInstance | undefined;
    for await (const line of lines) {
      seen.push(line);
      if (line === 'waiting') {
        // The Java session is the newest on the proxy.
        session = Math.max(...proxy.kernel.sessions.keys());
        const addr = proxy.kernel.sessions.get(session)!.backend!.addr;
        firstBackend = dbs.find((d) => addrOf(d) === addr);
        secondBackend = await migrate(session);
        child.stdin.write('go\n');
      }
    }
    assert.equal(await exited, 0, `java failed: ${stderr}`);
    assert.deepEqual(seen.filter((l) => l.startsWith('batch')).map((l) => l.split(' ')[1]), ['1', '2'], seen.join('\n'));
    assert.ok(firstBackend && secondBackend && firstBackend !== secondBackend);
    const first = dbs.indexOf(firstBackend);
    const second = dbs.indexOf(secondBackend);
    const firstExecutions = await executions(firstBackend) - counts[first]!;
    const secondExecutions = await executions(secondBackend) - counts[second]!;
    assert.ok(firstExecutions >= 1 && firstExecutions <= 3, `the first 1,000 rows went out as COM_STMT_BULK_EXECUTE (${firstExecutions} executions)`);
    assert.ok(secondExecutions >= 1 && secondExecutions <= 3, `the 1,000 after the migration too (${secondExecutions} executions)`);
    assert.deepEqual(await firstBackend.query('SELECT COUNT(*) AS n, MIN(id) AS lo, MAX(id) AS hi FROM test.jbulk'), [{ n: 1000, lo: 1, hi: 1000 }]);
    assert.deepEqual(await secondBackend.query('SELECT COUNT(*) AS n, MIN(id) AS lo, MAX(id) AS hi FROM test.jbulk'), [{ n: 1000, lo: 1001, hi: 2000 }]);
  });
});
