import type { BackendAnnouncement } from '../../plugin.js';

/**
 * The key layout TiDB uses to register in PD's etcd, which `tiproxyctl register` copies for any
 * MySQL-protocol server:
 *   <prefix><ip:port>/info  JSON {version, git_hash, status_port, deploy_path, start_timestamp, labels}, no lease
 *   <prefix><ip:port>/ttl   UnixNano timestamp as a string, under a lease (TiDB: 45 s, re-put every 30 s)
 * A server is up iff its ttl key exists; info without ttl means it is down (or was SIGKILLed and its
 * lease expired).
 */
export const DEFAULT_TOPOLOGY_PREFIX = '/topology/tidb/';

/** What TiDB writes into the info key (fields we do not use are kept for logs). */
export interface TopologyInfo {
  version?: string;
  git_hash?: string;
  status_port?: number;
  deploy_path?: string;
  start_timestamp?: number;
  labels?: Record<string, string>;
}

export function infoKey(prefix: string, addr: string): string {
  return `${prefix}${addr}/info`;
}

export function ttlKey(prefix: string, addr: string): string {
  return `${prefix}${addr}/ttl`;
}

/** "<prefix>1.2.3.4:4000/info" → { addr: "1.2.3.4:4000", kind: "info" }; other keys → undefined. */
export function parseTopologyKey(prefix: string, key: string): { addr: string; kind: 'info' | 'ttl' } | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const rest = key.slice(prefix.length);
  const slash = rest.lastIndexOf('/');
  if (slash <= 0) return undefined;
  const kind = rest.slice(slash + 1);
  if (kind !== 'info' && kind !== 'ttl') return undefined;
  const addr = rest.slice(0, slash);
  // host:port, the host possibly a bracketed IPv6 address; anything else is not a SQL endpoint.
  if (!/^(\[[0-9A-Fa-f:.]+\]|[^/:\s]+):\d{1,5}$/.test(addr)) return undefined;
  return { addr, kind };
}

/** Parses an info value; malformed JSON yields undefined (the backend is still served, without labels). */
export function parseTopologyInfo(value: string): TopologyInfo | undefined {
  try {
    const parsed: unknown = JSON.parse(value);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
    const raw = parsed as Record<string, unknown>;
    const info: TopologyInfo = {};
    if (typeof raw['version'] === 'string') info.version = raw['version'];
    if (typeof raw['git_hash'] === 'string') info.git_hash = raw['git_hash'];
    if (typeof raw['deploy_path'] === 'string') info.deploy_path = raw['deploy_path'];
    if (typeof raw['start_timestamp'] === 'number') info.start_timestamp = raw['start_timestamp'];
    const port = raw['status_port'];
    if (typeof port === 'number' && Number.isInteger(port) && port > 0 && port <= 65535) info.status_port = port;
    const labels = raw['labels'];
    if (typeof labels === 'object' && labels !== null && !Array.isArray(labels)) {
      info.labels = {};
      for (const [k, v] of Object.entries(labels)) if (typeof v === 'string') info.labels[k] = v;
    }
    return info;
  } catch {
    return undefined;
  }
}

/** The registration state of one address, as read from etcd. */
export interface TopologyEntry {
  info?: TopologyInfo;
  /** The ttl key exists: the server is up. */
  alive: boolean;
}

/** The backends that are up, sorted by address. */
export function announcementsOf(entries: ReadonlyMap<string, TopologyEntry>): BackendAnnouncement[] {
  const out: BackendAnnouncement[] = [];
  for (const [addr, entry] of entries) {
    if (!entry.alive) continue;
    out.push({
      addr,
      labels: { ...(entry.info?.labels ?? {}) },
      ...(entry.info?.status_port !== undefined ? { statusPort: entry.info.status_port } : {}),
    });
  }
  return out.sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0));
}

/** A ttl value like TiDB's: the current time in nanoseconds since the epoch, as a decimal string. */
export function unixNanoNow(): string {
  return (BigInt(Date.now()) * 1_000_000n).toString();
}
