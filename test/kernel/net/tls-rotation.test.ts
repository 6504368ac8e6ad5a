// Real components: a MariaDB 10.11 instance with TLS whose certificate names it only by IP
// (subjectAltName=IP:127.0.0.1, no DNS name), certificates made with openssl from the harness CA, the
// proxy in-process with security.server-tls and security.sql-tls, mysql2 and raw TLS clients.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { makeCertificates, type Certificates } from '../../../local-cluster/certs.js';
import { tmpRoot } from '../../../local-cluster/paths.js';
import { ROOT_PASSWORD, ROOT_USER, startMariaDB, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { CLIENT_PLUGIN_AUTH, CLIENT_PROTOCOL_41, CLIENT_SECURE_CONNECTION, DEFAULT_CHARSET_ID } from '../../../src/kernel/protocol/constants.js';
import { buildSslRequest } from '../../../src/kernel/protocol/handshake-packets.js';
import { framePackets } from '../../../src/kernel/protocol/payload-writer.js';
import { waitFor } from '../../harness/clients.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';

const run = promisify(execFile);

/** A server certificate signed by the harness CA whose only name is `san` (e.g. IP:127.0.0.1). */
async function leaf(certs: Certificates, dir: string, name: string, san: string): Promise<{ cert: string; key: string }> {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.pem`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`);
  await run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', key, '-out', csr]);
  await run('openssl', ['x509', '-req', '-in', csr, '-CA', certs.caCert, '-CAkey', certs.caKey, '-CAcreateserial', '-days', '2', '-sha256', '-extfile', ext, '-out', cert]);
  return { cert, key };
}

/** The certificate the proxy presents to a client asking for TLS (SSLRequest, then a TLS handshake). */
async function proxyCertificate(proxy: TestProxy): Promise<PeerCertificate> {
  const raw = netConnect({ host: proxy.host, port: proxy.port });
  try {
    await new Promise<void>((resolve, reject) => {
      raw.once('data', () => resolve());
      raw.once('error', reject);
    });
    raw.write(framePackets(buildSslRequest(CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH, 1 << 24, DEFAULT_CHARSET_ID), 1).packet);
    const secure = tlsConnect({ socket: raw, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    const cert = secure.getPeerCertificate();
    secure.destroy();
    return cert;
  } finally {
    raw.destroy();
  }
}

describe('TLS by address and certificate rotation', () => {
  let certs: Certificates;
  let dir: string;
  let db: MariaDBInstance;
  let proxy: TestProxy;
  const served = { cert: '', key: '' };
  let first: { cert: string; key: string };
  let second: { cert: string; key: string };

  before(async () => {
    certs = await makeCertificates();
    dir = mkdtempSync(join(tmpRoot, 'tls-rotation-'));
    const ipOnly = await leaf(certs, dir, 'backend-ip-only', 'IP:127.0.0.1');
    first = await leaf(certs, dir, 'proxy-first', 'IP:127.0.0.1');
    second = await leaf(certs, dir, 'proxy-second', 'IP:127.0.0.1');
    served.cert = join(dir, 'served.pem');
    served.key = join(dir, 'served.key');
    copyFileSync(first.cert, served.cert);
    copyFileSync(first.key, served.key);
    db = await startMariaDB({ name: 'tls-ip-only', tls: true, config: { 'ssl-cert': ipOnly.cert, 'ssl-key': ipOnly.key } });
    proxy = await startProxy({
      backends: [`127.0.0.1:${db.port}`], logLevel: 'info',
      config: { security: { 'server-tls': { cert: served.cert, key: served.key }, 'sql-tls': { ca: certs.caCert }, 'require-backend-tls': true } },
    });
  });
  after(async () => {
    await proxy?.stop();
    await db?.destroy();
  });

  it('verifies a backend certificate that names it only by IP address (sql-tls.ca) and logs in over TLS', async () => {
    const c = await mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD });
    try {
      const [rows] = await c.query<RowDataPacket[]>("SHOW STATUS LIKE 'Ssl_cipher'");
      assert.notEqual(String(rows[0]!['Value']), '', 'the backend leg is TLS');
      assert.equal(proxy.kernel.sessions.get(c.threadId!)?.backendConn?.tls, true);
    } finally {
      await c.end();
    }
  });

  it('serves a certificate replaced on disk to the next client without a restart; open sessions carry on', { timeout: 30_000 }, async () => {
    const fingerprint = (path: string) => new X509Certificate(readFileSync(path)).fingerprint256;
    assert.equal((await proxyCertificate(proxy)).fingerprint256, fingerprint(first.cert));
    const open = await mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD, ssl: { ca: readFileSync(certs.caCert, 'utf8') } });
    try {
      const reloadsBefore = proxy.kernel.tls.reloads;
      // Replaced the way deploy tools do: write aside, rename over. Key first: for a moment the pair does not match.
      writeFileSync(`${served.key}.new`, readFileSync(second.key));
      renameSync(`${served.key}.new`, served.key);
      writeFileSync(`${served.cert}.new`, readFileSync(second.cert));
      renameSync(`${served.cert}.new`, served.cert);
      const ms = await waitFor('the new certificate to be served', async () => (await proxyCertificate(proxy)).fingerprint256 === fingerprint(second.cert), 5000, 100);
      assert.ok(ms <= 3000, `took ${ms} ms`);
      assert.ok(proxy.kernel.tls.reloads > reloadsBefore);
      const [rows] = await open.query<RowDataPacket[]>('SELECT 1 AS one');
      assert.equal(rows[0]!['one'], 1, 'a session opened before the rotation keeps working');
      const fresh = await mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD, ssl: { ca: readFileSync(certs.caCert, 'utf8') } });
      await fresh.end();
    } finally {
      await open.end();
    }
  });
});
