// Real components: three MariaDB 10.11 instances (TLS enabled, plaintext only, and TLS required via
// require_secure_transport), test certificates from the harness CA (openssl), several in-process proxies
// (security.server-tls / sql-tls / require-backend-tls), and mysql2 plus the `mariadb` CLI as clients.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import type { RowDataPacket } from 'mysql2/promise';
import { CLIENT_PLUGIN_AUTH, CLIENT_PROTOCOL_41, CLIENT_SECURE_CONNECTION, DEFAULT_CHARSET_ID } from '../../../src/kernel/protocol/constants.js';
import { buildSslRequest } from '../../../src/kernel/protocol/handshake-packets.js';
import { framePackets } from '../../../src/kernel/protocol/payload-writer.js';
import { makeCertificates, type Certificates } from '../../../local-cluster/certs.js';
import { runMariadbCli } from '../../harness/mariadb-cli.js';
import { ROOT_PASSWORD, ROOT_USER, startMariaDB, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { startProxy, type LogLine, type TestProxy } from '../../harness/proxy.js';

interface MysqlError extends Error {
  errno?: number;
  code?: string;
}

function tlsConfig(certs: Certificates, extra: { serverMin?: '1.2' | '1.3'; requireBackendTls?: boolean } = {}): Record<string, unknown> {
  return {
    security: {
      'server-tls': { cert: certs.serverCert, key: certs.serverKey, ...(extra.serverMin ? { 'min-tls-version': extra.serverMin } : {}) },
      'sql-tls': { ca: certs.caCert },
      ...(extra.requireBackendTls ? { 'require-backend-tls': true } : {}),
    },
  };
}

async function sslCipher(c: mysql.Connection): Promise<string> {
  const [rows] = await c.query<RowDataPacket[]>("SHOW STATUS LIKE 'Ssl_cipher'");
  return String(rows[0]!.Value);
}

async function connectError(options: mysql.ConnectionOptions): Promise<MysqlError> {
  let c: mysql.Connection | undefined;
  try {
    c = await mysql.createConnection(options);
    await c.query('SELECT 1');
  } catch (err) {
    return err as MysqlError;
  } finally {
    c?.destroy();
  }
  assert.fail('the connection should have failed');
}

/** Waits until a log line matches (logs are written asynchronously after the client sees the outcome). */
async function waitForLog(proxy: TestProxy, match: (l: LogLine) => boolean, from = 0, timeoutMs = 3000): Promise<LogLine> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = proxy.logs.slice(from).find(match);
    if (line) return line;
    if (Date.now() > deadline) assert.fail(`no matching log line; logs:\n${proxy.logs.map((l) => JSON.stringify(l)).join('\n')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('TLS', () => {
  let certs: Certificates;
  let ca: string;
  let tlsDb: MariaDBInstance;
  let plainDb: MariaDBInstance;
  let requireTlsDb: MariaDBInstance;
  const proxies: TestProxy[] = [];
  const proxyFor = async (db: MariaDBInstance, config: Record<string, unknown>) => {
    const p = await startProxy({ backends: [`127.0.0.1:${db.port}`], config, logLevel: 'debug' });
    proxies.push(p);
    return p;
  };

  before(async () => {
    certs = await makeCertificates();
    ca = readFileSync(certs.caCert, 'utf8');
    [tlsDb, plainDb, requireTlsDb] = await Promise.all([
      startMariaDB({ name: 'tls', tls: true }),
      startMariaDB({ name: 'plain' }),
      startMariaDB({ name: 'tlsreq', requireTls: true }),
    ]);
  });
  after(async () => {
    for (const p of proxies) await p.stop();
    await Promise.all([tlsDb?.destroy(), plainDb?.destroy(), requireTlsDb?.destroy()]);
  });

  describe('client ↔ proxy', () => {
    let proxy: TestProxy;
    before(async () => {
      proxy = await proxyFor(tlsDb, tlsConfig(certs));
    });

    it('the mariadb CLI connects with --ssl-verify-server-cert and the backend leg follows the client into TLS', async () => {
      const r = await runMariadbCli([
        '-h127.0.0.1', `-P${proxy.port}`, `-u${ROOT_USER}`, `-p${ROOT_PASSWORD}`,
        '--ssl', `--ssl-ca=${certs.caCert}`, '--ssl-verify-server-cert',
        '--batch', '--skip-column-names', '-e', "SHOW STATUS LIKE 'Ssl_cipher'; SELECT 'marker-cli-tls'",
      ]);
      assert.equal(r.code, 0, `mariadb CLI failed: ${r.stderr}`);
      const [cipherLine, marker] = r.stdout.trim().split('\n');
      const [name, value] = cipherLine!.split('\t');
      assert.equal(name, 'Ssl_cipher');
      assert.ok(value && value.length > 0, `the backend reports a TLS cipher, got ${JSON.stringify(r.stdout)}`);
      assert.equal(marker, 'marker-cli-tls');
      const opened = await waitForLog(proxy, (l) => l.msg === 'session opened' && l.user === ROOT_USER && l.tls === true);
      assert.equal(opened.tls, true);
    });

    it('a mysql2 TLS session is marked tls in kernel.sessions and its backend leg is TLS too', async () => {
      const c = await mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD, ssl: { ca } });
      try {
        const session = proxy.kernel.sessions.get(c.threadId!);
        assert.ok(session);
        assert.equal(session.tls, true);
        assert.equal(session.backendConn?.tls, true);
        assert.notEqual(await sslCipher(c), '');
      } finally {
        await c.end();
      }
    });

    it('an SSLRequest and the TLS ClientHello in one TCP segment still make a TLS session', async () => {
      // Regression: the ClientHello used to stay in the proxy's packet queue and the TLS handshake hung.
      const raw = netConnect({ host: proxy.host, port: proxy.port });
      raw.on('error', () => {});
      try {
        await new Promise<void>((resolve, reject) => {
          raw.once('data', () => resolve()); // the greeting (one small packet)
          raw.once('error', reject);
        });
        raw.cork();
        raw.write(framePackets(buildSslRequest(CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH, 1 << 24, DEFAULT_CHARSET_ID), 1).packet);
        const secure = tlsConnect({ socket: raw, ca, servername: undefined, checkServerIdentity: () => undefined });
        setImmediate(() => raw.uncork()); // after the ClientHello was queued behind the SSLRequest
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('TLS handshake did not complete')), 3000);
          secure.once('secureConnect', () => {
            clearTimeout(timer);
            resolve();
          });
          secure.once('error', (err) => {
            clearTimeout(timer);
            reject(err);
          });
        });
        assert.ok(secure.authorized, String(secure.authorizationError));
        secure.destroy();
      } finally {
        raw.destroy();
      }
    });

    it('TLS is optional: a plaintext client works on the same proxy (and its backend leg stays plaintext)', async () => {
      const c = await mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD });
      try {
        const session = proxy.kernel.sessions.get(c.threadId!);
        assert.equal(session?.tls, false);
        assert.equal(session?.backendConn?.tls, false);
        assert.equal(await sslCipher(c), '');
      } finally {
        await c.end();
      }
    });

    it('min-tls-version 1.2 refuses a TLSv1.1 client (node tls options)', async () => {
      const err = await connectError({
        host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD,
        // SECLEVEL=0 lets this client offer TLSv1.1 at all; the proxy must still refuse it.
        ssl: { ca, minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' },
      });
      assert.match(err.message, /protocol|version/i, `unexpected error: ${err.message}`);
      const closed = await waitForLog(proxy, (l) => l.msg === 'session closed' && typeof l.detail === 'string' && /version|protocol/i.test(l.detail));
      assert.equal(closed.side, 'client', 'a client TLS failure is the client\'s side');
      assert.match(closed.detail as string, /TLS handshake with the client failed/);
    });

    it('min-tls-version 1.2 refuses the mariadb CLI with --tls-version=TLSv1.1', async () => {
      const from = proxy.logs.length;
      const r = await runMariadbCli([
        '-h127.0.0.1', `-P${proxy.port}`, `-u${ROOT_USER}`, `-p${ROOT_PASSWORD}`,
        '--ssl', `--ssl-ca=${certs.caCert}`, '--tls-version=TLSv1.1', '-e', 'SELECT 1',
      ]);
      assert.notEqual(r.code, 0, `the CLI connected over TLSv1.1: ${r.stdout}`);
      assert.match(r.stderr, /ERROR 2026 .*protocol version/);
      // The refusal is the proxy's (it answers with a protocol_version alert), not the client library's.
      const closed = await waitForLog(proxy, (l) => l.msg === 'session closed' && /unsupported protocol/.test(String(l.detail)), from);
      assert.equal(closed.side, 'client');
    });

    it('a TLSv1.2 client is accepted at min-tls-version 1.2', async () => {
      const c = await mysql.createConnection({
        host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD, ssl: { ca, maxVersion: 'TLSv1.2' },
      });
      try {
        assert.equal(proxy.kernel.sessions.get(c.threadId!)?.tls, true);
        const [rows] = await c.query<RowDataPacket[]>('SELECT 1 AS one');
        assert.equal(rows[0]!.one, 1);
      } finally {
        await c.end();
      }
    });

    it('min-tls-version 1.3 refuses a TLSv1.2 client and accepts TLSv1.3', async () => {
      const strict = await proxyFor(tlsDb, tlsConfig(certs, { serverMin: '1.3' }));
      const err = await connectError({
        host: strict.host, port: strict.port, user: ROOT_USER, password: ROOT_PASSWORD, ssl: { ca, maxVersion: 'TLSv1.2' },
      });
      assert.match(err.message, /protocol|version/i, `unexpected error: ${err.message}`);
      const c = await mysql.createConnection({
        host: strict.host, port: strict.port, user: ROOT_USER, password: ROOT_PASSWORD, ssl: { ca, minVersion: 'TLSv1.3' },
      });
      try {
        assert.equal(strict.kernel.sessions.get(c.threadId!)?.tls, true);
      } finally {
        await c.end();
      }
    });

    it('a client asking for TLS from a proxy without server-tls gets a clear refusal', async () => {
      const noTls = await proxyFor(tlsDb, {});
      // mysql2 refuses on its own when the server does not offer TLS; the CLI with --ssl does too.
      const err = await connectError({ host: noTls.host, port: noTls.port, user: ROOT_USER, password: ROOT_PASSWORD, ssl: { ca } });
      assert.match(err.message, /does not support secure connection|ssl|tls/i);
    });
  });

  describe('proxy ↔ backend', () => {
    it('require-backend-tls: a plaintext client gets a TLS backend leg (Ssl_cipher non-empty)', async () => {
      const proxy = await proxyFor(tlsDb, tlsConfig(certs, { requireBackendTls: true }));
      const c = await mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD });
      try {
        const session = proxy.kernel.sessions.get(c.threadId!);
        assert.equal(session?.tls, false);
        assert.equal(session?.backendConn?.tls, true);
        assert.notEqual(await sslCipher(c), '');
      } finally {
        await c.end();
      }
    });

    it('require-backend-tls against a backend without TLS: the client gets error 9002 saying why', async () => {
      const proxy = await proxyFor(plainDb, tlsConfig(certs, { requireBackendTls: true }));
      const err = await connectError({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD });
      assert.equal(err.errno, 9002, `got ${err.errno}: ${err.message}`);
      assert.match(err.message, /does not offer TLS/);
      assert.match(err.message, /TLS to backends is required/);
      assert.doesNotMatch(err.message, /unknown error/i);
      // The mariadb CLI shows the same message.
      const r = await runMariadbCli(['-h127.0.0.1', `-P${proxy.port}`, `-u${ROOT_USER}`, `-p${ROOT_PASSWORD}`, '-e', 'SELECT 1']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /ERROR 9002 .*does not offer TLS/);
    });

    it('sql-tls verifies the backend certificate: with a CA that did not sign it the login fails and says why', async () => {
      // The server certificate stands in for an unrelated CA: it is not the issuer of the backend's cert.
      const proxy = await proxyFor(tlsDb, {
        security: { 'sql-tls': { ca: certs.serverCert }, 'require-backend-tls': true },
      });
      const err = await connectError({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD });
      // 9001 "no backend available (... TLS failed: ...)" — every backend failed to verify — or 9002.
      assert.ok(err.errno === 9001 || err.errno === 9002, `got ${err.errno}: ${err.message}`);
      assert.match(err.message, /TLS failed: .*certificate/);
    });

    it('a backend with require_secure_transport works through the proxy when the client uses TLS', async () => {
      const proxy = await proxyFor(requireTlsDb, tlsConfig(certs));
      const c = await mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD, ssl: { ca } });
      try {
        assert.notEqual(await sslCipher(c), '');
        const [rows] = await c.query<RowDataPacket[]>('SELECT @@require_secure_transport AS r');
        assert.equal(rows[0]!.r, 1);
      } finally {
        await c.end();
      }
      // Under follow-client a plaintext client gets a plaintext backend leg, which the backend refuses with
      // its own error: MariaDB says 1045 "Access denied", exactly as it does to a direct plaintext client.
      const err = await connectError({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD });
      const direct = await connectError({ host: '127.0.0.1', port: requireTlsDb.port, user: ROOT_USER, password: ROOT_PASSWORD });
      assert.equal(err.errno, direct.errno);
      assert.equal(err.message, direct.message);
    });
  });
});
