// Real components: one MariaDB 10.11 instance, the proxy in-process with the contrib query-guard plugin
// (and tenant-router, for the tenant filter), mysql2 as the client (text and binary protocol).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import { startMariaDB, ROOT_PASSWORD, ROOT_USER, TEST_DATABASE, type MariaDBInstance } from '../../local-cluster/mariadb.js';
import { startProxy, type TestProxy } from '../harness/proxy.js';
import { stripComments } from '../../plugins-contrib/query-guard/index.js';
import { rejection } from '../harness/clients.js';

const PASSWORD = 'guard-pw';
const APP_USER = 'guard_app_1';
const TENANT_USER = 'guard_t_1';
const DROP_MESSAGE = 'DROP TABLE is not allowed for application users';



describe('query-guard plugin', () => {
  let db: MariaDBInstance;
  let proxy: TestProxy;
  const open: mysql.Connection[] = [];

  async function connect(user: string, password = PASSWORD): Promise<mysql.Connection> {
    const c = await mysql.createConnection({ host: proxy.host, port: proxy.port, user, password, database: TEST_DATABASE });
    open.push(c);
    return c;
  }

  async function tableExists(name: string): Promise<boolean> {
    const rows = await db.query<unknown[]>('SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?', [TEST_DATABASE, name]);
    return rows.length > 0;
  }

  before(async () => {
    db = await startMariaDB({ name: 'guard' });
    for (const user of [APP_USER, TENANT_USER]) {
      await db.query(`CREATE USER '${user}'@'%' IDENTIFIED BY '${PASSWORD}'`);
      await db.query(`GRANT ALL PRIVILEGES ON *.* TO '${user}'@'%'`);
    }
    proxy = await startProxy({
      backends: [`127.0.0.1:${db.port}`],
      config: {
        plugins: [
          { name: 'tenant-router', config: { tenants: [{ name: 't1', users: ['guard_t_*'] }] } },
          {
            name: 'query-guard',
            required: true,
            config: {
              rules: [
                { pattern: '\\bDROP\\s+TABLE\\b', users: ['guard_app_*'], code: 1142, message: DROP_MESSAGE },
                { pattern: '\\bSLEEP\\s*\\(', commands: ['query'] },
                { pattern: '\\bforbidden_in_t1\\b', tenants: ['t1'], code: 9003, 'sql-state': 'HY000', message: 'not in tenant t1' },
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

  it('refuses DROP TABLE for the listed users with the configured code and message; the session stays usable', async () => {
    await db.query(`CREATE TABLE ${TEST_DATABASE}.keep_me (id INT)`);
    const c = await connect(APP_USER);
    const err = await rejection(c.query('DROP TABLE keep_me'));
    assert.equal(err.errno, 1142);
    assert.equal(err.sqlState, '42000');
    assert.equal(err.message, DROP_MESSAGE);
    assert.ok(await tableExists('keep_me'), 'the statement never reached the backend');
    const [rows] = await c.query('SELECT 1 + 1 AS two');
    assert.deepEqual(rows, [{ two: 2 }]);
    // Another refusal and more statements on the same connection, to be sure nothing got out of step.
    await rejection(c.query('drop table if exists keep_me'));
    const [again] = await c.query('SELECT COUNT(*) AS n FROM keep_me');
    assert.deepEqual(again, [{ n: 0 }]);
  });

  it('is not fooled by comments and whitespace between the keywords', async () => {
    const c = await connect(APP_USER);
    for (const sql of ['DROP/**/TABLE keep_me', '/* hi */ drop\n\t  table keep_me', 'DROP -- x\nTABLE keep_me', '/*!50000 DROP */ TABLE keep_me']) {
      const err = await rejection(c.query(sql));
      assert.equal(err.errno, 1142, sql);
    }
    assert.ok(await tableExists('keep_me'));
  });

  it('lets root (not in the rule\'s users) drop tables', async () => {
    await db.query(`CREATE TABLE ${TEST_DATABASE}.drop_me (id INT)`);
    const c = await connect(ROOT_USER, ROOT_PASSWORD);
    await c.query('DROP TABLE drop_me');
    assert.ok(!(await tableExists('drop_me')));
  });

  it('refuses matching prepared statements (COM_STMT_PREPARE), and prepares the rest', async () => {
    const c = await connect(APP_USER);
    const err = await rejection(c.prepare('DROP TABLE keep_me'));
    assert.equal(err.errno, 1142);
    assert.equal(err.message, DROP_MESSAGE);
    const viaExecute = await rejection(c.execute('DROP TABLE keep_me'));
    assert.equal(viaExecute.errno, 1142);
    assert.ok(await tableExists('keep_me'));
    const [rows] = await c.execute('SELECT ? + 1 AS n', [41]);
    assert.deepEqual(rows, [{ n: 42 }]);
  });

  it('lets non-matching statements through', async () => {
    const c = await connect(APP_USER);
    await c.query('CREATE TABLE flows (id INT PRIMARY KEY, note VARCHAR(50))');
    await c.query("INSERT INTO flows VALUES (1, 'dropped the table?'), (2, 'x')");
    await c.execute('UPDATE flows SET note = ? WHERE id = ?', ['y', 2]);
    const [rows] = await c.query('SELECT id, note FROM flows ORDER BY id');
    assert.deepEqual(rows, [{ id: 1, note: 'dropped the table?' }, { id: 2, note: 'y' }]);
    await c.query('TRUNCATE TABLE flows');
  });

  it('uses the default code and a message naming the rule, and only checks the listed commands', async () => {
    const c = await connect(ROOT_USER, ROOT_PASSWORD);
    const err = await rejection(c.query('SELECT SLEEP(0)'));
    assert.equal(err.errno, 1142);
    assert.equal(err.message, 'statement refused by tiproxy query-guard rule 2 (/\\bSLEEP\\s*\\(/i)');
    // commands: [query] — a prepared statement goes through.
    const [rows] = await c.execute('SELECT SLEEP(?) AS s', [0]);
    assert.deepEqual(rows, [{ s: 0 }]);
  });

  it('applies tenant rules only to that tenant\'s sessions', async () => {
    const t1 = await connect(TENANT_USER);
    const err = await rejection(t1.query('SELECT 1 AS forbidden_in_t1'));
    assert.equal(err.errno, 9003);
    assert.equal(err.sqlState, 'HY000');
    assert.equal(err.message, 'not in tenant t1');
    const other = await connect(APP_USER);
    const [rows] = await other.query('SELECT 1 AS forbidden_in_t1');
    assert.deepEqual(rows, [{ forbidden_in_t1: 1 }]);
  });

  it('refuses to start (when required) with an invalid pattern', async () => {
    await assert.rejects(startProxy({
      backends: [`127.0.0.1:${db.port}`],
      config: { plugins: [{ name: 'query-guard', required: true, config: { rules: [{ pattern: '(unclosed' }] } }] },
    }), /rules\[0\]\.pattern: Invalid regular expression/);
  });

  it('refuses to start (when required) with a pattern that cannot be matched in linear time, naming the rule and the construct', async () => {
    await assert.rejects(startProxy({
      backends: [`127.0.0.1:${db.port}`],
      config: { plugins: [{ name: 'query-guard', required: true, config: { rules: [{ pattern: 'SLEEP' }, { pattern: '(drop)\\s+\\1' }] } }] },
    }), /rules\[1\]\.pattern: the backreference "\\1" at character \d+ cannot be matched in linear time/);
  });
});

describe('query-guard comment stripping', () => {
  it('removes comments, keeps literals and executable comments, collapses whitespace', () => {
    assert.equal(stripComments('DROP/**/TABLE t'), 'DROP TABLE t');
    assert.equal(stripComments('  drop \n\t table  x ; '), 'drop table x ;');
    assert.equal(stripComments("SELECT 'a /* kept */  b' -- gone\n, 1"), "SELECT 'a /* kept */  b' , 1");
    assert.equal(stripComments('/*!50000 DROP */ TABLE x'), 'DROP TABLE x');
    assert.equal(stripComments('/*M!100100 DROP*/TABLE x'), 'DROP TABLE x');
    assert.equal(stripComments('SELECT 1 # gone\nFROM t'), 'SELECT 1 FROM t');
    assert.equal(stripComments('SELECT "it\'\'s\\" -- " x'), 'SELECT "it\'\'s\\" -- " x');
    assert.equal(stripComments('SELECT 1--2'), 'SELECT 1--2', '-- without a space is an operator');
    assert.equal(stripComments('`we``ird /*` /* c */ z'), '`we``ird /*` z');
    assert.equal(stripComments('a /* unterminated'), 'a');
  });
});
