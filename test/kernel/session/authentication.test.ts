// Real components: one MariaDB 10.11 instance (mysql_native_password and ed25519 accounts), the proxy
// in-process (logs captured at debug level), mysql2 and the `mariadb` command-line client as clients.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import type { RowDataPacket } from 'mysql2/promise';
import {
  ED25519_PASSWORD, ED25519_USER, NATIVE_PASSWORD, NATIVE_USER, ROOT_PASSWORD, ROOT_USER, TEST_DATABASE, startMariaDB,
  type MariaDBInstance,
} from '../../../local-cluster/mariadb.js';
import { runMariadbCli } from '../../harness/mariadb-cli.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';

const CLIENT_PLUGIN_DIR = '/usr/lib/x86_64-linux-gnu/libmariadb3/plugin';
const WRONG_PASSWORD = 'definitely-not-the-password';

interface MysqlError extends Error {
  errno?: number;
  code?: string;
  sqlState?: string;
}

async function loginError(options: mysql.ConnectionOptions): Promise<MysqlError> {
  try {
    const c = await mysql.createConnection(options);
    await c.end();
  } catch (err) {
    return err as MysqlError;
  }
  assert.fail('the login should have been refused');
}

describe('authentication through the proxy', () => {
  let db: MariaDBInstance;
  let proxy: TestProxy;
  const connect = (options: mysql.ConnectionOptions) => mysql.createConnection({ host: proxy.host, port: proxy.port, ...options });

  before(async () => {
    db = await startMariaDB({ name: 'auth' });
    proxy = await startProxy({ backends: [`127.0.0.1:${db.port}`], logLevel: 'debug' });
  });
  after(async () => {
    await proxy?.stop();
    await db?.destroy();
  });

  it('relays a mysql_native_password login and the backend sees that user', async () => {
    const c = await connect({ user: NATIVE_USER, password: NATIVE_PASSWORD });
    try {
      const [rows] = await c.query<RowDataPacket[]>('SELECT CURRENT_USER() AS cu, USER() AS u');
      assert.equal(rows[0]!.cu, `${NATIVE_USER}@%`);
      assert.match(rows[0]!.u as string, new RegExp(`^${NATIVE_USER}@`));
      const session = proxy.kernel.sessions.get(c.threadId!);
      assert.ok(session, 'the greeting id names a live proxy session');
      assert.equal(session.user, NATIVE_USER);
    } finally {
      await c.end();
    }
  });

  it('relays an ed25519 login from the mariadb CLI (client_ed25519 plugin)', async () => {
    const r = await runMariadbCli([
      '-h127.0.0.1', `-P${proxy.port}`, `-u${ED25519_USER}`, `-p${ED25519_PASSWORD}`, `--plugin-dir=${CLIENT_PLUGIN_DIR}`,
      '--batch', '--skip-column-names', '-e', `SELECT CURRENT_USER(); SELECT plugin FROM mysql.user WHERE user = '${ED25519_USER}'`,
    ]);
    assert.equal(r.code, 0, `mariadb CLI failed: ${r.stderr}`);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines[0], `${ED25519_USER}@%`);
    assert.equal(lines[1], 'ed25519');
  });

  it('an ed25519 login with a wrong password gets the backend\'s ERROR 1045', async () => {
    const r = await runMariadbCli([
      '-h127.0.0.1', `-P${proxy.port}`, `-u${ED25519_USER}`, `-p${WRONG_PASSWORD}`, `--plugin-dir=${CLIENT_PLUGIN_DIR}`, '-e', 'SELECT 1',
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /ERROR 1045 \(28000\).*Access denied for user 'ed_user'/);
  });

  it('a wrong password reaches the client as the backend\'s own ERR 1045', async () => {
    const err = await loginError({ host: proxy.host, port: proxy.port, user: NATIVE_USER, password: WRONG_PASSWORD });
    assert.equal(err.errno, 1045, `got ${err.errno} ${err.message}`);
    assert.equal(err.code, 'ER_ACCESS_DENIED_ERROR');
    assert.equal(err.sqlState, '28000');
    // MariaDB's text: "Access denied for user 'native_user'@'127.0.0.1' (using password: YES)".
    assert.match(err.message, /^Access denied for user 'native_user'@'[^']+' \(using password: YES\)$/);
    // The same text the backend gives a direct client.
    const direct = await loginError({ host: '127.0.0.1', port: db.port, user: NATIVE_USER, password: WRONG_PASSWORD });
    assert.equal(err.message, direct.message);
  });

  it('an unknown user gets the backend\'s ERR 1045 too', async () => {
    const err = await loginError({ host: proxy.host, port: proxy.port, user: 'no_such_user', password: 'x' });
    assert.equal(err.errno, 1045);
    assert.match(err.message, /no_such_user/);
  });

  it('logs in with a default database', async () => {
    const c = await connect({ user: NATIVE_USER, password: NATIVE_PASSWORD, database: TEST_DATABASE });
    try {
      const [rows] = await c.query<RowDataPacket[]>('SELECT DATABASE() AS db');
      assert.equal(rows[0]!.db, TEST_DATABASE);
      assert.equal(proxy.kernel.sessions.get(c.threadId!)?.database, TEST_DATABASE);
    } finally {
      await c.end();
    }
  });

  it('a default database that does not exist gets the backend\'s error', async () => {
    const err = await loginError({ host: proxy.host, port: proxy.port, user: NATIVE_USER, password: NATIVE_PASSWORD, database: 'no_such_db' });
    assert.equal(err.errno, 1049, `got ${err.errno} ${err.message}`);
    assert.match(err.message, /no_such_db/);
  });

  it('COM_CHANGE_USER switches to another user', async () => {
    const c = await connect({ user: NATIVE_USER, password: NATIVE_PASSWORD });
    try {
      await c.changeUser({ user: ROOT_USER, password: ROOT_PASSWORD, database: TEST_DATABASE });
      const [rows] = await c.query<RowDataPacket[]>('SELECT CURRENT_USER() AS cu, DATABASE() AS db');
      assert.equal(rows[0]!.cu, `${ROOT_USER}@%`);
      assert.equal(rows[0]!.db, TEST_DATABASE);
      const session = proxy.kernel.sessions.get(c.threadId!);
      assert.equal(session?.user, ROOT_USER);
      assert.equal(session?.database, TEST_DATABASE);
      // And back, on the same connection, which keeps working.
      await c.changeUser({ user: NATIVE_USER, password: NATIVE_PASSWORD });
      const [again] = await c.query<RowDataPacket[]>('SELECT CURRENT_USER() AS cu');
      assert.equal(again[0]!.cu, `${NATIVE_USER}@%`);
    } finally {
      await c.end();
    }
  });

  it('COM_CHANGE_USER with a wrong password gets ERR 1045', async () => {
    const c = await connect({ user: NATIVE_USER, password: NATIVE_PASSWORD });
    try {
      await assert.rejects(c.changeUser({ user: ROOT_USER, password: WRONG_PASSWORD }), (err: MysqlError) => {
        assert.equal(err.errno, 1045, `got ${err.errno} ${err.message}`);
        assert.match(err.message, /Access denied for user 'root'/);
        return true;
      });
      // The session keeps the user it had, as the backend does.
      assert.equal(proxy.kernel.sessions.get(c.threadId!)?.user, NATIVE_USER);
    } finally {
      c.destroy();
    }
  });

  it('never logs a password', async () => {
    // Give the asynchronous log sink a moment after the last session closed.
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(proxy.logs.some((l) => l.msg === 'session opened'), 'logs were captured');
    const text = JSON.stringify(proxy.logs);
    for (const secret of [NATIVE_PASSWORD, ED25519_PASSWORD, ROOT_PASSWORD, WRONG_PASSWORD]) {
      assert.ok(!text.includes(secret), `a log line contains the password ${JSON.stringify(secret)}`);
    }
  });
});
