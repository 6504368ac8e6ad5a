// The playground itself, like `tiup playground`: an etcd (the PD of a TiDB cluster), a MariaDB Galera
// cluster whose nodes share one data set (as TiDB servers share TiKV), each node announced in etcd by
// `tiproxyctl register`, and the real tiproxy CLI discovering them there with migration on
// (credentials-native with a users file, migrate-replay). It stays in the foreground, answers
// scale-out / scale-in requests on its control endpoint, and stops everything on Ctrl-C.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import mysql from 'mysql2/promise';
import { join } from 'node:path';
import { startEtcd, type EtcdInstance } from '../../local-cluster/etcd.js';
import { startGaleraCluster, type GaleraCluster, type GaleraNode } from '../../local-cluster/galera.js';
import { ROOT_PASSWORD, ROOT_USER } from '../../local-cluster/mariadb.js';
import { repoRoot } from '../../local-cluster/paths.js';
import { spawnTracked, stopProcess } from '../../local-cluster/processes.js';
import { startRegistrar, type RegistrarProcess } from '../../local-cluster/registrar.js';
import { startControlServer } from './control.js';
import { removeState, runningState, writeState, type PlaygroundBackend, type PlaygroundState } from './state.js';

export interface PlaygroundOptions {
  /** Directory of the state file, the proxy config and the users file. */
  dir: string;
  sqlPort: number;
  apiPort: number;
  /** Galera nodes at start. */
  backends: number;
}

/** The proxy config: etcd discovery, quick health checks and evacuation, migration on. */
function proxyConfig(o: PlaygroundOptions, etcd: string, usersFile: string): string {
  return [
    '# Written by scripts/playground.ts; edit it and the running proxy reloads it.',
    'proxy:',
    `  addr: "127.0.0.1:${o.sqlPort}"`,
    `  pd-addrs: "${etcd}"`,
    'api:',
    `  addr: "127.0.0.1:${o.apiPort}"`,
    'log:',
    '  level: info',
    'plugins:',
    '  - name: discovery-etcd',
    '  - name: health',
    '    config: { interval: 1, timeout: 1, retries: 2 }',
    // A deregistered backend's sessions leave within about a second (default: 5 s per backend).
    '  - name: balance',
    "    config: { rebalance: { evacuate-seconds: 1 } }",
    '  - name: tls-policy',
    // The proxy checks each login against the stored hash and can then log in as that user on any node.
    '  - name: credentials-native',
    `    config: { users-file: "${usersFile}" }`,
    '  - name: migrate-replay',
    '',
  ].join('\n');
}

/** `user:*HASH` for every mysql_native_password account, read from the cluster (they are the same on every node). */
async function writeUsersFile(node: GaleraNode, path: string): Promise<void> {
  const rows = await node.query<Array<{ user: string; hash: string }>>(
    "SELECT User AS user, MAX(Password) AS hash FROM mysql.user WHERE Password LIKE '*%' GROUP BY User");
  writeFileSync(path, `# Written by scripts/playground.ts from mysql.user.\n${rows.map((r) => `${r.user}:${r.hash}`).join('\n')}\n`, { mode: 0o600 });
}

/** One login and query through the proxy: it listens and has a backend it considers healthy. */
async function serves(port: number): Promise<boolean> {
  try {
    const conn = await mysql.createConnection({ host: '127.0.0.1', port, user: ROOT_USER, password: ROOT_PASSWORD, connectTimeout: 2000 });
    try {
      await conn.query('SELECT 1');
      return true;
    } finally {
      await conn.end();
    }
  } catch {
    return false;
  }
}

async function waitServing(proxy: ChildProcess, port: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await serves(port))) {
    if (proxy.exitCode !== null || proxy.signalCode !== null) throw new Error(`tiproxy exited (${proxy.exitCode ?? proxy.signalCode}) before serving on 127.0.0.1:${port}`);
    if (Date.now() > deadline) throw new Error(`tiproxy did not serve a client on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Fails at once (not after the cluster has started) when a port the proxy needs is taken. */
async function assertFree(port: number, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(`127.0.0.1:${port} (${what}) is ${err.code === 'EADDRINUSE' ? 'already in use' : `not usable: ${err.message}`}; pick another with ${what === 'SQL' ? '--port' : '--api-port'}`)));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
  });
}

export async function runPlayground(o: PlaygroundOptions): Promise<void> {
  mkdirSync(o.dir, { recursive: true });
  const log = (line: string) => process.stdout.write(`[playground] ${line}\n`);
  const running = runningState(o.dir);
  if (running) throw new Error(`a playground is already running (pid ${running.pid}, SQL ${running.sql}); stop it with Ctrl-C, or use another --dir`);
  await assertFree(o.sqlPort, 'SQL');
  await assertFree(o.apiPort, 'API');

  log(`starting etcd and a ${o.backends}-node MariaDB Galera cluster`);
  let etcd: EtcdInstance | undefined;
  let cluster: GaleraCluster | undefined;
  const registrars = new Map<string, RegistrarProcess>();
  let proxy: ChildProcess | undefined;
  let state: PlaygroundState | undefined;
  let stopping: Promise<void> | undefined;

  const stop = (code: number): Promise<void> => (stopping ??= (async () => {
    log('stopping');
    if (proxy) await stopProcess(proxy, { signal: 'SIGTERM', timeoutMs: 20_000 });
    await Promise.all([...registrars.values()].map((r) => r.stop('SIGTERM')));
    await cluster?.destroy();
    await etcd?.destroy();
    await removeState(o.dir);
    process.exit(code);
  })());
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  const register = async (node: GaleraNode): Promise<RegistrarProcess> => {
    // The TiDB way: info + ttl keys under /topology/tidb/, kept alive by a lease.
    const r = startRegistrar(['--pd-addrs', etcd!.endpoint, '--addr', node.addr, '--labels', `node=node${node.index}`], { built: true });
    registrars.set(node.addr, r);
    await r.registered();
    return r;
  };
  const backendOf = (node: GaleraNode): PlaygroundBackend => ({
    addr: node.addr, node: node.index, pid: node.pid, registrarPid: registrars.get(node.addr)?.child.pid ?? -1,
  });
  const save = async (): Promise<void> => {
    state!.backends = cluster!.nodes.map(backendOf);
    await writeState(o.dir, state!);
  };
  const nodeAt = (addr: string): GaleraNode => {
    const node = cluster!.nodes.find((n) => n.addr === addr);
    if (!node) throw new Error(`${addr} is not a playground backend (backends: ${cluster!.nodes.map((n) => n.addr).join(', ')})`);
    return node;
  };

  try {
    [etcd, cluster] = await Promise.all([
      startEtcd({ name: 'playground' }),
      // metadata_lock_info lets migrate-replay see GET_LOCK locks (a session holding one cannot move).
      startGaleraCluster({ size: o.backends, name: 'playground', config: { plugin_load_add: 'metadata_lock_info' } }),
    ]);
    for (const node of cluster.nodes) await register(node);
    const usersFile = join(o.dir, 'users');
    await writeUsersFile(cluster.nodes[0]!, usersFile);
    const configPath = join(o.dir, 'proxy.yaml');
    writeFileSync(configPath, proxyConfig(o, etcd.endpoint, usersFile));

    const control = await startControlServer([
      { method: 'GET', path: '/state', handler: async () => state },
      {
        method: 'POST', path: '/backends', handler: async () => {
          log('scale-out: a new Galera node joins the cluster (state transfer by rsync)');
          const node = await cluster!.addNode();
          await register(node);
          await save();
          log(`scale-out: ${node.addr} (node${node.index}) is Synced and registered in etcd`);
          return backendOf(node);
        },
      },
      {
        method: 'POST', path: '/backends/:addr/deregister', handler: async ([addr]) => {
          const node = nodeAt(addr!);
          const registered = cluster!.nodes.filter((n) => registrars.has(n.addr));
          if (registrars.has(node.addr) && registered.length <= 1) throw new Error(`${addr} is the last registered backend; scale out first`);
          await registrars.get(node.addr)?.stop('SIGTERM');
          registrars.delete(node.addr);
          await save();
          log(`scale-in: ${addr} deregistered from etcd; the proxy moves its sessions away`);
          return backendOf(node);
        },
      },
      {
        method: 'DELETE', path: '/backends/:addr', handler: async ([addr]) => {
          const node = nodeAt(addr!);
          if (registrars.has(node.addr)) throw new Error(`${addr} is still registered; deregister it first`);
          await cluster!.removeNode(node);
          await save();
          log(`scale-in: ${addr} (node${node.index}) stopped and removed from the cluster`);
          return { addr };
        },
      },
    ]);

    proxy = spawnTracked(process.execPath, [join(repoRoot, 'bin/tiproxy'), '--config', configPath], { stdio: ['ignore', 'inherit', 'inherit'] });
    proxy.once('exit', (code, signal) => {
      if (stopping) return;
      process.stderr.write(`[playground] tiproxy exited (${code ?? signal}); stopping the playground\n`);
      void stop(1);
    });
    await waitServing(proxy, o.sqlPort);

    state = {
      pid: process.pid, control: control.addr, sql: `127.0.0.1:${o.sqlPort}`, api: `127.0.0.1:${o.apiPort}`,
      etcd: etcd.endpoint, etcdPid: etcd.pid, proxyPid: proxy.pid ?? -1, config: configPath,
      user: ROOT_USER, password: ROOT_PASSWORD, cluster: cluster.name, backends: [],
    };
    await save();
    process.stdout.write(banner(state, o.dir));
  } catch (err) {
    process.stderr.write(`[playground] start-up failed: ${err instanceof Error ? err.message : String(err)}\n`);
    await stop(1);
  }
}

function banner(s: PlaygroundState, dir: string): string {
  const [, sqlPort] = s.sql.split(':');
  return [
    '',
    'tiproxy playground is up',
    `  SQL:       ${s.sql}   mariadb -h127.0.0.1 -P${sqlPort} -u${s.user} -p${s.password}`,
    `  API:       http://${s.api}/api/backends`,
    `  Console:   http://${s.api}/`,
    `  etcd:      ${s.etcd}   (backends registered under /topology/tidb/ by tiproxyctl register)`,
    `  backends:  MariaDB Galera cluster ${s.cluster}, one data set on every node:`,
    ...s.backends.map((b) => `               node${b.node}  ${b.addr}`),
    `  migration: on (credentials-native users file, migrate-replay)`,
    `  config:    ${s.config}   state: ${join(dir, 'state.json')}`,
    '',
    'While it runs, in another terminal:',
    '  ./scripts/playground.sh scale-out          add a Galera node; the proxy moves sessions to it',
    '  ./scripts/playground.sh scale-in [ADDR]    drain a node, wait until it is empty, remove it',
    '',
    'Ctrl-C stops the proxy, the backends and etcd.',
    '',
  ].join('\n');
}
