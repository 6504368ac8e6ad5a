// Checks the MariaDB harness against observable facts, so later failures can be trusted to be the proxy's.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import mysql from 'mysql2/promise';
import type { RowDataPacket } from 'mysql2/promise';
import {
  ED25519_PASSWORD, ED25519_USER, NATIVE_PASSWORD, NATIVE_USER, ROOT_PASSWORD, ROOT_USER,
  startMariaDB, startMariaDBs, type MariaDBInstance,
} from '../../local-cluster/mariadb.js';
import { runMariadbCli } from '../harness/mariadb-cli.js';

function tcpConnect(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => { socket.destroy(); resolve(); });
    socket.once('error', reject);
  });
}

describe('MariaDB harness', () => {
  let plain: MariaDBInstance[] = [];
  let secure: MariaDBInstance | undefined;

  before(async () => {
    await startMariaDB({ name: 'warmup' }).then((m) => m.destroy()); // builds the template on a fresh machine
    const t0 = performance.now();
    plain = await startMariaDBs(2, { name: 'harness' });
    const t1 = performance.now();
    secure = await startMariaDB({ name: 'harness-tls', requireTls: true });
    const t2 = performance.now();
    console.log(`2 instances in parallel: ${Math.round(t1 - t0)} ms; 1 TLS instance: ${Math.round(t2 - t1)} ms`);
  });

  after(async () => {
    await Promise.all([...plain, ...(secure ? [secure] : [])].map((m) => m.destroy()));
  });

  test('two instances listen on different ports and report their own port', async () => {
    const [a, b] = plain;
    assert.ok(a && b);
    assert.notEqual(a.port, b.port);
    for (const m of [a, b]) {
      const conn = await mysql.createConnection({ host: m.host, port: m.port, user: ROOT_USER, password: ROOT_PASSWORD });
      const [rows] = await conn.query<RowDataPacket[]>('SELECT @@port AS port');
      await conn.end();
      assert.equal(Number(rows[0]?.port), m.port);
    }
  });

  test('native_user logs in directly with mysql_native_password', async () => {
    const m = plain[0]!;
    const conn = await mysql.createConnection({ host: m.host, port: m.port, user: NATIVE_USER, password: NATIVE_PASSWORD });
    const [rows] = await conn.query<RowDataPacket[]>('SELECT CURRENT_USER() AS u');
    await conn.end();
    assert.equal(rows[0]?.u, `${NATIVE_USER}@%`);
  });

  test('ed_user logs in directly with ed25519 (mariadb CLI; mysql2 has no client_ed25519)', async () => {
    const m = plain[0]!;
    const r = await runMariadbCli(['-h127.0.0.1', `-P${m.port}`, `-u${ED25519_USER}`, `-p${ED25519_PASSWORD}`,
      '-N', '-B', '-e', "SELECT CURRENT_USER(), (SELECT plugin FROM mysql.user WHERE user='ed_user')"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `${ED25519_USER}@%\ted25519`);
  });

  test('root@127.0.0.1 without a password is gone (it would shadow root@%)', async () => {
    const m = plain[0]!;
    await assert.rejects(mysql.createConnection({ host: m.host, port: m.port, user: ROOT_USER }), /Access denied/);
  });

  test('a TLS client sees a cipher; a plain client is refused when TLS is required', async () => {
    const m = secure!;
    assert.ok(m.tls);
    const conn = await mysql.createConnection({
      host: m.host, port: m.port, user: ROOT_USER, password: ROOT_PASSWORD,
      ssl: { ca: readFileSync(m.tls.ca, 'utf8') }, // verifies the server cert for 127.0.0.1
    });
    const [rows] = await conn.query<RowDataPacket[]>("SHOW SESSION STATUS LIKE 'Ssl_cipher'");
    await conn.end();
    assert.ok(String(rows[0]?.Value ?? '').length > 0, 'Ssl_cipher is empty');
    // MariaDB 10.11 answers an insecure login under require_secure_transport with plain ER_ACCESS_DENIED (1045).
    await assert.rejects(
      mysql.createConnection({ host: m.host, port: m.port, user: ROOT_USER, password: ROOT_PASSWORD }),
      (err: { errno?: number }) => err.errno === 1045,
    );
  });

  test('the mariadb CLI returns a query value', async () => {
    const m = plain[1]!;
    const r = await runMariadbCli(['-h127.0.0.1', `-P${m.port}`, `-u${ROOT_USER}`, `-p${ROOT_PASSWORD}`, '-N', '-B'],
      { input: 'SELECT 6*7;\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '42');
  });

  test('query() helper runs as root', async () => {
    const rows = await plain[1]!.query<RowDataPacket[]>('SELECT CURRENT_USER() AS u, @@max_connections AS mc');
    assert.equal(rows[0]?.u, 'root@%');
    assert.equal(Number(rows[0]?.mc), 2000);
  });

  test('after stop() the port refuses connections; start() brings it back on the same port', async () => {
    const m = plain[1]!;
    await m.query('CREATE TABLE test.survives (id INT PRIMARY KEY)');
    await m.query('INSERT INTO test.survives VALUES (7)');
    const oldPid = m.pid;
    await m.stop();
    await assert.rejects(tcpConnect(m.port), (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED');
    const t0 = performance.now();
    await m.start();
    console.log(`restart: ${Math.round(performance.now() - t0)} ms`);
    assert.notEqual(m.pid, oldPid);
    const rows = await m.query<RowDataPacket[]>('SELECT id, @@port AS port FROM test.survives');
    assert.deepEqual([Number(rows[0]?.id), Number(rows[0]?.port)], [7, m.port]);
  });

  test('kill() is a crash: the port refuses connections, and start() recovers', async () => {
    const m = plain[0]!;
    await m.kill();
    await assert.rejects(tcpConnect(m.port), (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED');
    await m.start();
    const rows = await m.query<RowDataPacket[]>('SELECT 1 AS one');
    assert.equal(Number(rows[0]?.one), 1);
  });
});
