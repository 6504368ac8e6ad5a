/**
 * The fleet service (`ctx.services.get('fleet')`): proxies sharing one etcd (discovery-etcd with
 * pd-addrs) register there and drain backends together. Part of the public API so the admin API, the
 * console or an in-house plugin can use it without depending on discovery-etcd.
 */
export interface FleetService {
  /**
   * Writes the cluster-wide drain mark of `backend` (host:port): every proxy watching the etcd drains
   * it. The first mark stays when one exists (its `by`, `at` and `reason` are kept). Rejects when etcd
   * cannot be written.
   */
  drain(backend: string, reason: string): Promise<FleetDrainMark>;
  /** Deletes the drain mark (every proxy undrains the backend); false when there was none. */
  undrain(backend: string): Promise<boolean>;
  /** The drain marks as this proxy last saw them in etcd, by backend address. */
  drainMarks(): ReadonlyMap<string, FleetDrainMark>;
  /** The proxies registered in etcd (alive: their leased ttl key exists), read now. */
  proxies(): Promise<FleetProxy[]>;
  /** The address this proxy registered under, or null before it registered. */
  self(): string | null;
}

/** The value of a drain mark key (JSON). */
export interface FleetDrainMark {
  readonly backend: string;
  /** Who drained it: the registered address of the proxy whose API was asked. */
  readonly by: string;
  /** ISO 8601 time of the drain. */
  readonly at: string;
  readonly reason: string;
}

/** One proxy's registration (its info key, and whether its ttl key exists). */
export interface FleetProxy {
  /** SQL address it registered under (host:port). */
  readonly addr: string;
  /** host:port of its HTTP API, or null when it has none. */
  readonly apiAddr: string | null;
  readonly apiTls: boolean;
  readonly version: string;
  /** Epoch seconds. */
  readonly startTimestamp: number | null;
  readonly alive: boolean;
}
