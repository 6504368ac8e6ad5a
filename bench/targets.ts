// The things a benchmark run compares, started side by side on 127.0.0.1: the MariaDB itself
// (direct), HAProxy in `mode tcp`, tiproxy (the real CLI, optionally with client TLS) and, for the
// memory floor, a bare Node `socket.pipe` proxy — each with the PID whose CPU and RSS we read.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Certificates } from '../local-cluster/certs.js';
import type { MariaDBInstance } from '../local-cluster/mariadb.js';
import { repoRoot, tmpRoot } from '../local-cluster/paths.js';
import { freePort } from '../local-cluster/ports.js';
import { spawnTracked, stopProcess } from '../local-cluster/processes.js';
import { accepts, startProxyProcess } from '../test/harness/proxy.js';

export type TargetName = 'direct' | 'haproxy' | 'floor' | 'floor-tls' | 'tiproxy-base' | 'tiproxy' | 'tiproxy-tls' | 'node-pipe';

export interface Target {
  name: TargetName;
  port: number;
  /** Process whose CPU and RSS are charged to this target (none for direct). */
  pid?: number;
  /** Clients must use TLS to this target. */
  tls?: boolean;
  stop(): Promise<void>;
}

/**
 * 10,000 idle sessions hold 20,000 sockets in a proxy. With CAP_SYS_RESOURCE, prlimit lifts a running
 * process's limits past that; without it (containers, including this project's machines: hard limit
 * 20,000) nothing changes and bench/run.ts sizes the memory suite to what fits. True when raised.
 */
export function raiseFdLimit(pid: number, n = 65_536): boolean {
  try {
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${n}:${n}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** This process's file-descriptor limit (children inherit it unless raiseFdLimit succeeds). */
export function fdLimit(): number {
  const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m ? Number(m[1]) : Infinity;
}

export function direct(db: MariaDBInstance): Target {
  return { name: 'direct', port: db.port, stop: async () => {} };
}

/** Spawns a long-running proxy child and waits until it accepts connections (none prints a ready line). */
async function spawnProxy(name: TargetName, port: number, cmd: string, args: string[]): Promise<Target> {
  const child = spawnTracked(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  for (const deadline = Date.now() + 30_000; !(await accepts(port));) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stopProcess(child);
      throw new Error(`${name} did not start`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  raiseFdLimit(child.pid!);
  return { name, port, pid: child.pid!, stop: () => stopProcess(child) };
}

export async function haproxy(db: MariaDBInstance): Promise<Target> {
  const port = await freePort();
  const cfg = join(tmpRoot, `haproxy-${port}.cfg`);
  // One thread, like tiproxy's one event loop. No global maxconn: HAProxy then derives it from the fd
  // limit (refusing to start when a set one does not fit); the frontend's own default would be lower.
  writeFileSync(cfg, [
    'global', '  nbthread 1',
    'defaults', '  mode tcp', '  maxconn 100000', '  timeout connect 5s', '  timeout client 1h', '  timeout server 1h',
    `frontend sql`, `  bind 127.0.0.1:${port}`, '  default_backend db',
    'backend db', `  server db1 127.0.0.1:${db.port}`, '',
  ].join('\n'));
  return spawnProxy('haproxy', port, 'haproxy', ['-db', '-f', cfg]);
}

/**
 * A bare Node TCP relay: two sockets piped per client, nothing else. Its per-connection RSS is the
 * floor any Node proxy pays, so tiproxy's number minus this one is what sessions themselves cost.
 */
export async function nodePipe(db: MariaDBInstance): Promise<Target> {
  const port = await freePort();
  const script = `const net = require('node:net');
net.createServer((c) => { const b = net.connect(${db.port}, '127.0.0.1'); c.pipe(b).pipe(c);
  c.on('error', () => b.destroy()); b.on('error', () => c.destroy()); }).listen(${port}, '127.0.0.1');`;
  return spawnProxy('node-pipe', port, process.execPath, ['-e', script]);
}

/**
 * The floor relay (bench/floor-relay.ts): the cheapest relay Node can be with public APIs. `pipe` is
 * the same as node-pipe; `onread` (the default) reads backend sockets into a reused buffer.
 */
export async function floorRelay(db: MariaDBInstance, mode: 'onread' | 'pipe' = 'onread', tls?: Certificates): Promise<Target> {
  const port = await freePort();
  const script = join(repoRoot, 'bench', 'floor-relay.ts');
  const args = ['--import', 'tsx', script, '--port', String(port), '--backend-port', String(db.port), '--mode', mode];
  if (tls) args.push('--tls-cert', tls.serverCert, '--tls-key', tls.serverKey);
  const target = await spawnProxy(tls ? 'floor-tls' : 'floor', port, process.execPath, args);
  return tls ? { ...target, tls: true } : target;
}

/**
 * Another build of tiproxy (a checkout with `npm run build` done, at `dir`) as 'tiproxy-base': for a
 * before/after comparison in one interleaved run (`npm run bench -- --baseline DIR`).
 */
export async function tiproxyBaseline(db: MariaDBInstance, dir: string, args: string[] = []): Promise<Target> {
  const port = await freePort();
  return spawnProxy('tiproxy-base', port, process.execPath, [join(dir, 'bin', 'tiproxy'), '--addr', `127.0.0.1:${port}`,
    '--api-addr', `127.0.0.1:${await freePort()}`, '--backend', `127.0.0.1:${db.port}`, '--log-level', 'warn', ...args]);
}

export interface TiproxyOptions {
  /** Extra CLI arguments, e.g. ['--plugin-dir', 'bench/plugins']. */
  args?: string[];
  /** Offer TLS to clients with this server certificate (client → proxy; the backend leg stays plain). */
  tls?: Certificates;
}

export async function tiproxy(db: MariaDBInstance, opts: TiproxyOptions = {}): Promise<Target> {
  const args = ['--backend', `127.0.0.1:${db.port}`, '--log-level', 'warn', ...(opts.args ?? [])];
  if (opts.tls) {
    const cfg = join(tmpRoot, `tiproxy-bench-tls-${process.pid}.yaml`);
    writeFileSync(cfg, `security:\n  server-tls:\n    cert: ${JSON.stringify(opts.tls.serverCert)}\n    key: ${JSON.stringify(opts.tls.serverKey)}\n`);
    args.push('--config', cfg);
  }
  // A loaded machine can take many seconds to start the CLI.
  const p = await startProxyProcess(args, { startTimeoutMs: 60_000 });
  raiseFdLimit(p.child.pid!);
  return { name: opts.tls ? 'tiproxy-tls' : 'tiproxy', port: p.port, pid: p.child.pid!, tls: Boolean(opts.tls), stop: () => p.stop() };
}
