import { networkInterfaces } from 'node:os';
import type { FleetProxy } from '../../plugin.js';
import { parseTopologyKey } from './topology.js';

/**
 * Where proxies register, as TiProxy does in PD: `<prefix><sql host:port>/info` (JSON, no lease) and
 * `<prefix><sql host:port>/ttl` under a lease kept alive while the proxy runs.
 */
export const DEFAULT_FLEET_PREFIX = '/topology/tiproxy/';

/** What a proxy writes into its info key: TiProxy's fields plus where its HTTP API answers. */
export interface ProxyTopologyInfo {
  version: string;
  git_hash: string;
  ip: string;
  port: string;
  /** Port of the HTTP API (TiProxy's status port), as a string like TiProxy writes it. */
  status_port: string;
  /** host:port of the HTTP API as clients reach it. */
  api_addr: string | null;
  api_tls: boolean;
  deploy_path: string;
  /** Epoch seconds. */
  start_timestamp: number;
  pid: number;
}

const UNSPECIFIED = new Set(['0.0.0.0', '::', '']);

/**
 * The host other machines reach a listener on: `advertise` when set; the bound host unless it is the
 * wildcard; else this machine's first non-internal IPv4 address (TiProxy's choice), else 127.0.0.1.
 */
export function advertisedHost(boundHost: string, advertise: string): string {
  if (advertise) return advertise;
  if (!UNSPECIFIED.has(boundHost)) return boundHost;
  for (const list of Object.values(networkInterfaces())) {
    for (const nic of list ?? []) if (nic.family === 'IPv4' && !nic.internal) return nic.address;
  }
  return '127.0.0.1';
}

export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The proxies under `prefix` in a key → value map of it, sorted by address. */
export function fleetProxiesOf(prefix: string, kvs: Iterable<readonly [string, string]>): FleetProxy[] {
  const byAddr = new Map<string, { info?: Partial<ProxyTopologyInfo>; alive: boolean }>();
  for (const [key, value] of kvs) {
    const parsed = parseTopologyKey(prefix, key);
    if (!parsed) continue;
    const entry = byAddr.get(parsed.addr) ?? { alive: false };
    if (parsed.kind === 'ttl') entry.alive = true;
    else {
      try {
        const info: unknown = JSON.parse(value);
        if (typeof info === 'object' && info !== null && !Array.isArray(info)) entry.info = info as Partial<ProxyTopologyInfo>;
      } catch {
        // a malformed info key: the proxy is listed without its API address
      }
    }
    byAddr.set(parsed.addr, entry);
  }
  return [...byAddr.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([addr, { info, alive }]) => ({
    addr,
    apiAddr: typeof info?.api_addr === 'string' && info.api_addr ? info.api_addr : null,
    apiTls: info?.api_tls === true,
    version: typeof info?.version === 'string' ? info.version : '',
    startTimestamp: typeof info?.start_timestamp === 'number' ? info.start_timestamp : null,
    alive,
  }));
}
