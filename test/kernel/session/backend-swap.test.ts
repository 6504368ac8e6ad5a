// Real components: two MariaDB 10.11 instances, the proxy in-process, mysql2 as the client.
// The seam migration builds on: a session's backend connection can be replaced at a safe point only.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import { BackendConnection } from '../../../src/kernel/session/backend-connection.js';
import { loginWithCredentials } from '../../../src/kernel/session/backend-login.js';
import { DEFAULT_CHARSET_ID } from '../../../src/kernel/protocol/constants.js';
import { startMariaDBs, ROOT_PASSWORD, ROOT_USER, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';

describe('swapping a session\'s backend connection', () => {
  let dbs: MariaDBInstance[];
  let proxy: TestProxy;
  before(async () => {
    dbs = await startMariaDBs(2, { name: 'swap' });
    proxy = await startProxy({ backends: dbs.map((d) => `127.0.0.1:${d.port}`) });
  });
  after(async () => {
    await proxy?.stop();
    await Promise.all((dbs ?? []).map((d) => d.destroy()));
  });

  async function dialOther(sessionId: number): Promise<BackendConnection> {
    const session = proxy.kernel.sessions.get(sessionId)!;
    const other = proxy.kernel.backends.list().find((b) => b.addr !== session.backend!.addr)!;
    const conn = await BackendConnection.dial({
      backend: other, options: { tls: 'off', proxyProtocol: false, connectTimeoutMs: 2000 }, tls: {},
      capabilities: session.capabilities, charset: DEFAULT_CHARSET_ID,
    });
    await loginWithCredentials(conn, { kind: 'cleartext', user: ROOT_USER, password: ROOT_PASSWORD },
      { capabilities: session.capabilities, charset: DEFAULT_CHARSET_ID, database: '', timeoutMs: 2000 });
    return conn;
  }

  it('moves an idle session to another backend without the client noticing', async () => {
    const c = await mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD });
    const [[before]] = (await c.query('SELECT @@port AS port')) as unknown as [[{ port: number }]];
    const session = proxy.kernel.sessions.get(c.threadId!)!;
    const next = await dialOther(c.threadId!);
    const old = session.swapBackend(next);
    old.destroy();
    const [[afterSwap]] = (await c.query('SELECT @@port AS port')) as unknown as [[{ port: number }]];
    assert.notEqual(afterSwap.port, before.port);
    assert.equal(session.backend!.addr, `127.0.0.1:${afterSwap.port}`);
    await c.end();
  });

  it('refuses to swap inside a transaction and leaves the session untouched', async () => {
    const c = await mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD });
    await c.query('BEGIN');
    const session = proxy.kernel.sessions.get(c.threadId!)!;
    const next = await dialOther(c.threadId!);
    assert.throws(() => session.swapBackend(next), /not at a safe point \(in-transaction\)/);
    next.destroy();
    const [[row]] = (await c.query('SELECT @@in_transaction AS t')) as unknown as [[{ t: number }]];
    assert.equal(row.t, 1);
    await c.query('COMMIT');
    await c.end();
  });

  it('refuses a credentialed login with a wrong password using the backend\'s own error', async () => {
    const c = await mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD });
    const session = proxy.kernel.sessions.get(c.threadId!)!;
    const conn = await BackendConnection.dial({
      backend: proxy.kernel.backends.get(session.backend!.addr)!, options: { tls: 'off', proxyProtocol: false, connectTimeoutMs: 2000 },
      tls: {}, capabilities: session.capabilities, charset: DEFAULT_CHARSET_ID,
    });
    await assert.rejects(
      loginWithCredentials(conn, { kind: 'cleartext', user: ROOT_USER, password: 'not-the-password' },
        { capabilities: session.capabilities, charset: DEFAULT_CHARSET_ID, database: '', timeoutMs: 2000 }),
      (err: Error & { code?: number }) => err.code === 1045 && /Access denied/.test(err.message),
    );
    conn.destroy();
    await c.end();
  });
});
