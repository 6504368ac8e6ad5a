// The running playground's state file (<dir>/state.json): how `scale-out` / `scale-in`, run as separate
// commands, find the playground process (its control endpoint), the proxy's SQL and API addresses, the
// etcd endpoint and every backend with its PIDs. Written by the playground on every change, removed
// when it stops.
import { existsSync, readFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpRoot } from '../../local-cluster/paths.js';
import { isAlive } from '../../local-cluster/processes.js';

export const DEFAULT_PLAYGROUND_DIR = join(tmpRoot, 'playground');

export interface PlaygroundBackend {
  /** "127.0.0.1:<SQL port>", as the proxy and etcd name it. */
  addr: string;
  /** Galera node number (wsrep_node_name node<N>). */
  node: number;
  pid: number;
  /** PID of its `tiproxyctl register`, -1 once deregistered. */
  registrarPid: number;
}

export interface PlaygroundState {
  /** PID of the playground process (it owns every other process). */
  pid: number;
  /** "127.0.0.1:<port>" of the playground's control endpoint (scale-out / scale-in talk to it). */
  control: string;
  /** The proxy's SQL address. */
  sql: string;
  /** The proxy's API address (api.addr). */
  api: string;
  etcd: string;
  etcdPid: number;
  proxyPid: number;
  /** The proxy's config file. */
  config: string;
  user: string;
  password: string;
  cluster: string;
  backends: PlaygroundBackend[];
}

export function statePath(dir: string): string {
  return join(dir, 'state.json');
}

/** Writes atomically, so a reader never sees half a file. */
export async function writeState(dir: string, state: PlaygroundState): Promise<void> {
  const tmp = `${statePath(dir)}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`);
  await rename(tmp, statePath(dir));
}

export function removeState(dir: string): Promise<void> {
  return rm(statePath(dir), { force: true });
}

/** The state of the playground running with this directory, or undefined. */
export function runningState(dir: string): PlaygroundState | undefined {
  const path = statePath(dir);
  if (!existsSync(path)) return undefined;
  const state = JSON.parse(readFileSync(path, 'utf8')) as PlaygroundState;
  return isAlive(state.pid) ? state : undefined;
}

/** The running playground's state; throws a message for the operator when none is running. */
export function readRunningState(dir: string): PlaygroundState {
  const state = runningState(dir);
  if (!state) throw new Error(`no playground is running with ${statePath(dir)}; start one with ./scripts/playground.sh`);
  return state;
}
