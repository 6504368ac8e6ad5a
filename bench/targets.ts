// The things a benchmark run compares, started side by side on 127.0.0.1: the MariaDB itself
// (direct), HAProxy in `mode tcp`, and tiproxy (the real CLI), each with the PID whose CPU we read.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MariaDBInstance } from '../test/harness/mariadb.js';
import { tmpRoot } from '../test/harness/paths.js';
import { freePort } from '../test/harness/ports.js';
import { spawnTracked, stopProcess } from '../test/harness/processes.js';
import { startProxyProcess } from '../test/harness/proxy.js';

export interface Target {
  name: 'direct' | 'haproxy' | 'tiproxy';
  port: number;
  /** Process whose CPU time is charged to this target (none for direct). */
  pid?: number;
  stop(): Promise<void>;
}

export function direct(db: MariaDBInstance): Target {
  return { name: 'direct', port: db.port, stop: async () => {} };
}

export async function haproxy(db: MariaDBInstance): Promise<Target> {
  const port = await freePort();
  const cfg = join(tmpRoot, `haproxy-${port}.cfg`);
  writeFileSync(cfg, [
    'global', '  maxconn 8000', '  nbthread 1',
    'defaults', '  mode tcp', '  timeout connect 5s', '  timeout client 1h', '  timeout server 1h',
    `frontend sql`, `  bind 127.0.0.1:${port}`, '  default_backend db',
    'backend db', `  server db1 127.0.0.1:${db.port}`, '',
  ].join('\n'));
  const child = spawnTracked('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'inherit'] });
  await new Promise((r) => setTimeout(r, 500));
  if (child.exitCode !== null) throw new Error('haproxy did not start');
  return { name: 'haproxy', port, pid: child.pid!, stop: () => stopProcess(child) };
}

export async function tiproxy(db: MariaDBInstance, extraArgs: string[] = []): Promise<Target> {
  const p = await startProxyProcess(['--backend', `127.0.0.1:${db.port}`, '--log-level', 'warn', ...extraArgs]);
  return { name: 'tiproxy', port: p.port, pid: p.child.pid!, stop: () => p.stop() };
}
