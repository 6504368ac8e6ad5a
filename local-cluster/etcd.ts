// Real etcd servers for tests: one private single-member etcd per instance on 127.0.0.1, with its own
// client and peer ports and its own data directory under .tmp/etcd. Stopped by PID only; restartable on
// the same ports and data (what a "PD went away and came back" test needs).
import type { ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeCertificates } from './certs.js';
import { InstanceDirs } from './instance-dirs.js';
import { freePort } from './ports.js';
import { bootServer, stopProcess } from './processes.js';

export interface EtcdOptions {
  /** Prefix of the instance directory and member name. */
  name?: string;
  /**
   * Serve clients over TLS with the test PKI (server cert for 127.0.0.1) and require client
   * certificates signed by the test CA.
   */
  tls?: boolean;
}

export interface EtcdTls {
  ca: string;
  cert: string;
  key: string;
}

export interface EtcdInstance {
  readonly host: '127.0.0.1';
  readonly clientPort: number;
  readonly peerPort: number;
  /** "127.0.0.1:<clientPort>", the form `pd-addrs` takes. */
  readonly endpoint: string;
  /** "http(s)://127.0.0.1:<clientPort>" */
  readonly url: string;
  readonly dataDir: string;
  /** Client certificate and CA to talk to a TLS instance (paths). */
  readonly tls?: EtcdTls;
  /** PID of the current etcd process (-1 when stopped). */
  readonly pid: number;
  running(): boolean;
  /** SIGTERM and wait for exit; data is kept so start() can restart. */
  stop(): Promise<void>;
  /** Sends a signal (SIGKILL by default) and waits for exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Restarts a stopped instance on the same ports and data directory; resolves once healthy. */
  start(): Promise<void>;
  /** stop() and delete the instance directory. */
  destroy(): Promise<void>;
}

const instanceDirs = new InstanceDirs('etcd', 'etcd.pid');

/** GET /health on the client port; true when etcd answers {"health":"true"}. */
function healthy(url: string, tls: EtcdTls | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const options = { timeout: 1000, ...(tls ? { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key) } : {}) };
    const req = (tls ? httpsRequest : httpRequest)(`${url}/health`, options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(res.statusCode === 200 && /"health":\s*"true"/.test(body)));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
    req.end();
  });
}

/** Starts one private etcd on free 127.0.0.1 ports; resolves once it reports healthy. */
export async function startEtcd(opts: EtcdOptions = {}): Promise<EtcdInstance> {
  const certs = opts.tls ? await makeCertificates() : undefined;
  const tls: EtcdTls | undefined = certs ? { ca: certs.caCert, cert: certs.clientCert, key: certs.clientKey } : undefined;
  const clientPort = await freePort();
  const peerPort = await freePort();
  const name = `${opts.name ?? 'etcd'}-${clientPort}`;
  const dir = instanceDirs.claim(name);
  const dataDir = join(dir, 'data');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });

  const scheme = tls ? 'https' : 'http';
  const url = `${scheme}://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name', name, '--data-dir', dataDir,
    '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `${name}=${peer}`, '--initial-cluster-state', 'new', '--initial-cluster-token', name,
    '--logger', 'zap', '--log-level', 'warn', '--log-outputs', join(dir, 'etcd.log'),
    ...(certs ? ['--cert-file', certs.serverCert, '--key-file', certs.serverKey, '--trusted-ca-file', certs.caCert, '--client-cert-auth'] : []),
  ];

  let child: ChildProcess | undefined;
  const running = () => child !== undefined && child.exitCode === null && child.signalCode === null;

  const boot = async (timeoutMs = 15_000): Promise<void> => {
    child = await bootServer('etcd', args, {
      what: `etcd on port ${clientPort}`, spawn: { cwd: dir }, ready: () => healthy(url, tls), readiness: 'become healthy',
      logTail: () => logTail(dir), timeoutMs, pollMs: 50,
      // The PID file protects the instance directory from being swept while etcd runs.
      onSpawn: async (proc) => { if (proc.pid !== undefined) await writeFile(join(dir, 'etcd.pid'), String(proc.pid)); },
    });
  };

  try {
    await boot();
  } catch (err) {
    await instanceDirs.release(dir);
    throw err;
  }

  const instance: EtcdInstance = {
    host: '127.0.0.1',
    clientPort,
    peerPort,
    endpoint: `127.0.0.1:${clientPort}`,
    url,
    dataDir,
    ...(tls ? { tls } : {}),
    get pid() {
      return running() ? child!.pid ?? -1 : -1;
    },
    running,
    async stop() {
      if (child && running()) await stopProcess(child, { signal: 'SIGTERM', timeoutMs: 15_000 });
    },
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child && running()) await stopProcess(child, { signal, timeoutMs: 15_000 });
    },
    async start() {
      if (running()) throw new Error(`etcd on port ${clientPort} is already running (pid ${child?.pid})`);
      await boot();
    },
    async destroy() {
      await instance.stop();
      await instanceDirs.release(dir);
    },
  };
  return instance;
}

function logTail(dir: string, lines = 20): string {
  try {
    return readFileSync(join(dir, 'etcd.log'), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no etcd log)';
  }
}
