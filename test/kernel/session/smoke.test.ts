// Real components: one MariaDB 10.11 instance, the proxy in-process, mysql2 as the client.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import { startMariaDB, ROOT_PASSWORD, ROOT_USER, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';

describe('a session through the proxy', () => {
  let db: MariaDBInstance;
  let proxy: TestProxy;
  before(async () => {
    db = await startMariaDB({ name: 'smoke' });
    proxy = await startProxy({ backends: [`127.0.0.1:${db.port}`] });
  });
  after(async () => {
    await proxy?.stop();
    await db?.destroy();
  });

  it('reaches the backend and returns its rows', async () => {
    const c = await mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD });
    const [rows] = await c.query('SELECT @@port AS port, 1 + 1 AS two');
    assert.deepEqual(rows, [{ port: db.port, two: 2 }]);
    await c.end();
  });

  it('gives the client the proxy connection id, not the backend thread id', async () => {
    const c = await mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD });
    const session = proxy.kernel.sessions.get(c.threadId!);
    assert.ok(session, 'the greeting id names a live proxy session');
    const [rows] = await c.query('SELECT CONNECTION_ID() AS id');
    assert.equal((rows as Array<{ id: number }>)[0]!.id, session.backendConnectionId);
    await c.end();
  });
});
