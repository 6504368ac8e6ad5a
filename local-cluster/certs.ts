// Test PKI made with the openssl CLI: a CA, a server certificate valid for 127.0.0.1/localhost, and a
// client certificate. Generated once and cached under .tmp/certs so every test reuses the same files.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tmpRoot } from './paths.js';

const run = promisify(execFile);

export interface Certificates {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

const DAYS = 10;

function pathsIn(dir: string): Certificates {
  return {
    caCert: join(dir, 'ca.pem'),
    caKey: join(dir, 'ca-key.pem'),
    serverCert: join(dir, 'server-cert.pem'),
    serverKey: join(dir, 'server-key.pem'),
    clientCert: join(dir, 'client-cert.pem'),
    clientKey: join(dir, 'client-key.pem'),
  };
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await run('openssl', args, { cwd });
}

/** True when every file exists and the certificates stay valid for at least another day. */
async function usable(certs: Certificates): Promise<boolean> {
  if (!Object.values(certs).every((p) => existsSync(p))) return false;
  try {
    for (const cert of [certs.caCert, certs.serverCert, certs.clientCert]) {
      await run('openssl', ['x509', '-checkend', '86400', '-noout', '-in', cert]);
    }
    return true;
  } catch {
    return false;
  }
}

async function generate(dir: string): Promise<void> {
  const c = pathsIn(dir);
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', String(DAYS),
    '-subj', '/CN=tiproxy-test-ca', '-keyout', c.caKey, '-out', c.caCert,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);

  // Leaf certificates: key + CSR, then signed by the CA with explicit extensions.
  const leaves = [
    { name: 'server', cn: '127.0.0.1', cert: c.serverCert, key: c.serverKey,
      ext: 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' },
    { name: 'client', cn: 'tiproxy-test-client', cert: c.clientCert, key: c.clientKey,
      ext: 'extendedKeyUsage=clientAuth\n' },
  ];
  for (const leaf of leaves) {
    const csr = join(dir, `${leaf.name}.csr`);
    const extFile = join(dir, `${leaf.name}.ext`);
    await writeFile(extFile, `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n${leaf.ext}`);
    await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${leaf.cn}`,
      '-keyout', leaf.key, '-out', csr], dir);
    await openssl(['x509', '-req', '-in', csr, '-CA', c.caCert, '-CAkey', c.caKey, '-CAcreateserial',
      '-days', String(DAYS), '-sha256', '-extfile', extFile, '-out', leaf.cert], dir);
  }
}

let pending: Promise<Certificates> | undefined;

/** Paths of the test CA, server and client certificates/keys (PEM), creating them if needed. */
export function makeCertificates(dir: string = join(tmpRoot, 'certs')): Promise<Certificates> {
  // Parallel callers in one process (e.g. startMariaDBs) share one generation.
  if (dir === join(tmpRoot, 'certs')) return (pending ??= ensure(dir).catch((e) => { pending = undefined; throw e; }));
  return ensure(dir);
}

async function ensure(dir: string): Promise<Certificates> {
  const certs = pathsIn(dir);
  if (await usable(certs)) return certs;
  // Build in a private directory and rename into place so concurrent test processes never see half a PKI.
  const staging = `${dir}.tmp-${process.pid}-${Date.now()}`;
  await mkdir(staging, { recursive: true });
  try {
    await generate(staging);
    await rm(dir, { recursive: true, force: true });
    await rename(staging, dir);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    if (await usable(certs)) return certs; // another process won the race
    throw err;
  }
  return certs;
}
