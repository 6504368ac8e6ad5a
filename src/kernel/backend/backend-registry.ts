import type { BackendEvent, BackendInfo } from '../hooks/hook-types.js';
import { BackendTrafficCounter } from './backend-traffic.js';

/** Mutable record behind a BackendInfo; only the registry and sessions change it. */
export interface BackendRecord extends BackendInfo {
  labels: Record<string, string>;
  healthy: boolean;
  healthReason?: string;
  draining: boolean;
  /** Sessions on this backend: this process's own (changed by sessions) plus remoteConnections. */
  connections: number;
  /**
   * Sessions other worker processes hold on this backend (proxy.workers > 1; always 0 otherwise). Set
   * by BackendRegistry.setRemoteConnections and already included in `connections`, so plugins see
   * cluster-wide totals while sessions keep counting themselves with `connections++/--`.
   */
  remoteConnections: number;
  statusPort?: number;
  serverVersion?: string;
  /** Discovery sources that currently report this backend; it is removed when none does. */
  sources: Set<string>;
  /** Bytes to and from the backend over this process's connections to it. */
  readonly traffic: BackendTrafficCounter;
}

export interface BackendAnnouncement {
  addr: string;
  labels?: Record<string, string>;
  statusPort?: number;
}

export function splitAddr(addr: string): { host: string; port: number } {
  const at = addr.lastIndexOf(':');
  if (at <= 0) throw new Error(`backend address "${addr}" is not host:port`);
  const host = addr.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  const port = Number(addr.slice(at + 1));
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`backend address "${addr}" has no valid port`);
  return { host, port };
}

/**
 * The kernel's list of backends. Discovery plugins announce and withdraw backends per source, health
 * plugins set health, operators drain; every change is published as a backend event.
 */
export class BackendRegistry {
  private readonly records = new Map<string, BackendRecord>();
  /** Other workers' session counts by address, kept for backends announced later too. */
  private remote: ReadonlyMap<string, number> = new Map();

  constructor(private readonly publish: (event: BackendEvent) => void) {}

  list(): BackendRecord[] {
    return [...this.records.values()];
  }

  get(addr: string): BackendRecord | undefined {
    return this.records.get(addr);
  }

  /** Adds or refreshes a backend reported by `source`. */
  announce(source: string, a: BackendAnnouncement): BackendRecord {
    const existing = this.records.get(a.addr);
    if (existing) {
      existing.sources.add(source);
      let changed = false;
      if (a.labels && JSON.stringify(a.labels) !== JSON.stringify(existing.labels)) {
        existing.labels = { ...a.labels };
        changed = true;
      }
      if (a.statusPort !== undefined) existing.statusPort = a.statusPort;
      if (changed) this.publish({ type: 'labels', backend: existing });
      return existing;
    }
    const { host, port } = splitAddr(a.addr);
    const remote = this.remote.get(a.addr) ?? 0;
    const record: BackendRecord = {
      addr: a.addr, host, port, labels: { ...(a.labels ?? {}) }, healthy: true, draining: false,
      connections: remote, remoteConnections: remote,
      sources: new Set([source]), traffic: new BackendTrafficCounter(),
      ...(a.statusPort !== undefined ? { statusPort: a.statusPort } : {}),
    };
    this.records.set(a.addr, record);
    this.publish({ type: 'added', backend: record });
    return record;
  }

  /** `source` no longer reports the backend; removed when no source does. */
  withdraw(source: string, addr: string): void {
    const record = this.records.get(addr);
    if (!record || !record.sources.delete(source) || record.sources.size > 0) return;
    this.records.delete(addr);
    this.publish({ type: 'removed', backend: record });
  }

  /** Replaces the full set `source` reports (for list-style discovery: static, DNS, etcd resync). */
  replaceSource(source: string, announcements: readonly BackendAnnouncement[]): void {
    const keep = new Set(announcements.map((a) => a.addr));
    for (const record of this.list()) if (record.sources.has(source) && !keep.has(record.addr)) this.withdraw(source, record.addr);
    for (const a of announcements) this.announce(source, a);
  }

  /**
   * Sets the sessions other worker processes hold per backend (addresses not listed: 0). Each record's
   * `connections` moves by the change, so it stays "own sessions + other workers' sessions".
   */
  setRemoteConnections(counts: ReadonlyMap<string, number>): void {
    this.remote = new Map(counts);
    for (const record of this.records.values()) {
      const remote = counts.get(record.addr) ?? 0;
      record.connections += remote - record.remoteConnections;
      record.remoteConnections = remote;
    }
  }

  setHealth(addr: string, healthy: boolean, reason: string): void {
    const record = this.records.get(addr);
    if (!record) return;
    record.healthReason = healthy ? '' : reason;
    if (record.healthy === healthy) return;
    record.healthy = healthy;
    this.publish({ type: 'health', backend: record, healthy, reason });
  }

  setDraining(addr: string, draining: boolean): void {
    const record = this.records.get(addr);
    if (!record || record.draining === draining) return;
    record.draining = draining;
    this.publish({ type: 'draining', backend: record, draining });
  }
}
