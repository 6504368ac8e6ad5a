// Real components: two MariaDB 10.11 instances (ed25519 plugin, users from the harness), test
// certificates from the harness CA, the proxy in-process with client TLS, credentials-cleartext and
// migrate-replay; mysql2 and the `mariadb` CLI as clients.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import mysql, { type Connection } from 'mysql2/promise';
import { makeCertificates, type Certificates } from '../../../local-cluster/certs.js';
import { rejection, waitFor } from '../../harness/clients.js';
import { runMariadbCli } from '../../harness/mariadb-cli.js';
import {
  ED25519_PASSWORD, ED25519_USER, NATIVE_PASSWORD, NATIVE_USER, startMariaDBs, type MariaDBInstance,
} from '../../../local-cluster/mariadb.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';

describe('credentials-cleartext', () => {
  let dbs: MariaDBInstance[];
  let certs: Certificates;
  let proxy: TestProxy;
  const addrOf = (d: MariaDBInstance) => `127.0.0.1:${d.port}`;

  before(async () => {
    [dbs, certs] = await Promise.all([startMariaDBs(2, { name: 'cleartext' }), makeCertificates()]);
    proxy = await startProxy({
      backends: dbs.map(addrOf),
      config: {
        security: { 'server-tls': { cert: certs.serverCert, key: certs.serverKey } },
        plugins: [{ name: 'credentials-cleartext', config: { users: ['ed_*'] } }, { name: 'migrate-replay' }],
      },
    });
  });
  after(async () => {
    await proxy?.stop();
    await Promise.all((dbs ?? []).map((d) => d.destroy()));
  });

  function connect(opts: { user?: string; password?: string; tls?: boolean } = {}): Promise<Connection> {
    return mysql.createConnection({
      host: proxy.host, port: proxy.port, user: opts.user ?? ED25519_USER, password: opts.password ?? ED25519_PASSWORD, database: 'test',
      enableCleartextPlugin: true,
      ...(opts.tls === false ? {} : { ssl: { ca: readFileSync(certs.caCert, 'utf8') } }),
    });
  }

  const backendOf = (id: number) => proxy.kernel.sessions.get(id)?.backend?.addr;
  const other = (addr: string | undefined) => dbs.map(addrOf).find((a) => a !== addr)!;

  async function newSession(known: Set<number>): Promise<number> {
    // Logged in: it has a backend.
    const fresh = () => [...proxy.kernel.sessions.values()].find((s) => !known.has(s.id) && s.backend);
    await waitFor('the CLI session', () => fresh() !== undefined);
    return fresh()!.id;
  }

  async function moveAndWait(id: number, timeoutMs = 5000): Promise<void> {
    const from = backendOf(id);
    assert.ok(proxy.kernel.requestMigration(id, 'test', other(from)), 'request accepted');
    await waitFor('migration request settled', () => !proxy.kernel.migrationRequests.has(id), timeoutMs);
  }

  it('logs an ed25519 user in over TLS by asking the client for its password, and moves the session with it', async () => {
    // mysql2 has no client_ed25519: this login only works because the proxy answers the backend itself.
    const c = await connect();
    const [[who]] = (await c.query('SELECT CURRENT_USER() AS u, @@port AS port')) as unknown as [[{ u: string; port: number }]];
    assert.equal(who.u, `${ED25519_USER}@%`);
    await c.query("SET @kept = 'ed-state'");
    const from = backendOf(c.threadId!);
    await moveAndWait(c.threadId!);
    assert.equal(backendOf(c.threadId!), other(from));
    const [[row]] = (await c.query('SELECT @kept AS kept, @@port AS port, CURRENT_USER() AS u')) as unknown as [[{ kept: string; port: number; u: string }]];
    assert.equal(row.kept, 'ed-state');
    assert.equal(`127.0.0.1:${row.port}`, other(from));
    assert.equal(row.u, `${ED25519_USER}@%`);
    await c.end();
  });

  it('passes the backend\'s refusal of a wrong password to the client', async () => {
    const err = await rejection(connect({ password: 'not-the-password' }));
    assert.equal(err.errno, 1045);
    assert.match(err.message, /Access denied for user 'ed_user'/);
  });

  it('works with the mariadb CLI, whose session moves between two statements', async () => {
    const before = new Set(proxy.kernel.sessions.keys());
    const cli = runMariadbCli([
      '-h127.0.0.1', `-P${proxy.port}`, `-u${ED25519_USER}`, `-p${ED25519_PASSWORD}`, '--ssl', `--ssl-ca=${certs.caCert}`,
      '--batch', '--skip-column-names', 'test',
    ], { input: "SET @v = 'from-cli';\nSELECT SLEEP(1.5);\nSELECT @v, @@port;\n" });
    const id = await newSession(before);
    const from = backendOf(id);
    assert.ok(proxy.kernel.requestMigration(id, 'test', other(from)));
    const r = await cli;
    assert.equal(r.code, 0, r.stderr);
    const last = r.stdout.trim().split('\n').at(-1)!.split('\t');
    assert.deepEqual(last, ['from-cli', String(Number(other(from).split(':')[1]))]);
  });

  it('relays an ed25519 login over plaintext password-blind; that session cannot move and its request is dropped', async () => {
    const from = new Set(proxy.kernel.sessions.keys());
    const cli = runMariadbCli([
      '-h127.0.0.1', `-P${proxy.port}`, `-u${ED25519_USER}`, `-p${ED25519_PASSWORD}`, '--skip-ssl', '--batch', '--skip-column-names', 'test',
    ], { input: 'SELECT SLEEP(1.5);\nSELECT @@port;\n' });
    const id = await newSession(from);
    const home = backendOf(id);
    assert.ok(proxy.kernel.requestMigration(id, 'test', other(home)));
    const r = await cli;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n').at(-1), String(Number(home!.split(':')[1])));
    const veto = proxy.logs.find((l) => l.conn === id && /migration vetoed/.test(l.msg));
    assert.match(String(veto?.msg), /no credentials for user ed_user/);
    assert.equal(proxy.kernel.migrationRequests.has(id), false, 'request dropped');
  });

  it('leaves users outside its patterns alone (relayed), even over TLS', async () => {
    const c = await connect({ user: NATIVE_USER, password: NATIVE_PASSWORD });
    const session = proxy.kernel.sessions.get(c.threadId!)!;
    assert.equal(session.authExchange?.plugin, 'mysql_native_password');
    await c.end();
  });
});
