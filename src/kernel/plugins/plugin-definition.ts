import type { Logger } from 'pino';
import type { FrozenConfig } from '../config/proxy-config.js';
import type { BackendAnnouncement } from '../backend/backend-registry.js';
import type { HookSet } from '../hooks/hook-set.js';
import type { BackendCredentials, BackendInfo, BackendSql, SessionInfo } from '../hooks/hook-types.js';
import type { ProxyControl } from './proxy-control.js';
import type { TrafficObservation } from './traffic-observation.js';

/** The backend list as plugins may use it. */
export interface BackendDirectory {
  list(): readonly BackendInfo[];
  get(addr: string): BackendInfo | undefined;
  /** Replace everything this plugin reports (static lists, DNS answers, etcd resyncs). */
  replace(announcements: readonly BackendAnnouncement[]): void;
  announce(announcement: BackendAnnouncement): void;
  withdraw(addr: string): void;
  setHealth(addr: string, healthy: boolean, reason: string): void;
  setDraining(addr: string, draining: boolean): void;
  /** Bytes on the wire between this process and the backend (its sessions, migrations, service connections). */
  traffic(addr: string): BackendTraffic | undefined;
}

/** Counted per backend connection from its socket's own counters when it closes, plus the open ones. */
export interface BackendTraffic {
  /** Bytes read from the backend. */
  readonly received: number;
  /** Bytes written to the backend. */
  readonly sent: number;
}

export interface SessionDirectory {
  list(): readonly SessionInfo[];
  get(id: number): SessionInfo | undefined;
  count(): number;
}

/** A request to move a session to another backend at its next safe point. */
export interface MigrationRequest {
  readonly sessionId: number;
  /** Why (logged and counted): "rebalance", "drain", "unhealthy", "admin", … */
  readonly reason: string;
  /** A specific target backend; otherwise selectBackend picks one (reason "migration"). */
  readonly to?: string;
  readonly requestedAt: number;
}

export interface MigrationDirectory {
  /**
   * Asks the kernel to move a session; false if the session does not exist, already has a request, or
   * cannot move at all (an earlier veto with retry: false, e.g. no credentials for its user).
   */
  request(sessionId: number, reason: string, to?: string): boolean;
  /** Requests not yet carried out. */
  pending(): readonly MigrationRequest[];
  /** Withdraws a request not yet started; false if there was none (or it is running now). */
  cancel(sessionId: number): boolean;
  /** Why the session cannot be moved at all until something changes (a veto with retry: false), or null. */
  unmovableReason(sessionId: number): string | null;
  /**
   * Requests that ended without a move, by why: refused when made ("target-is-source",
   * "target-unavailable") or dropped after failing ("no-other-backend", "failed"). Counts since start.
   */
  dropped(): ReadonlyMap<string, number>;
  /** How the kernel paces moves right now (it adapts to what foreground traffic feels). */
  pacing(): MigrationPacingSnapshot;
}

/** The migration scheduler's pacing as of now. */
export interface MigrationPacingSnapshot {
  /** Moves allowed to run at once (0 while a probe measures the undisturbed foreground rate). */
  readonly concurrency: number;
  /** Moves running now. */
  readonly running: number;
  /** Foreground commands per second with no move running, as last measured; null until measured. */
  readonly undisturbedRate: number | null;
  /** Milliseconds between two move starts when even one at a time hurts the foreground (0: not spaced). */
  readonly gapMs: number;
}

/** Calls, failures and time of one plugin's taps on one hook, over every generation since start. */
export interface HookStats {
  readonly plugin: string;
  /** Hook name; lifecycle hooks as "lifecycle.init" etc. */
  readonly hook: string;
  readonly calls: number;
  readonly errors: number;
  /** Time spent in the taps (for async taps: until they settled), in seconds. */
  readonly seconds: number;
}

/** Outcomes of generation rebuilds (config reloads, plugin-dir changes) since start. */
export interface ReloadStats {
  readonly succeeded: number;
  readonly failed: number;
  /** Why the last failed one failed (config error, apply failure, hot plugin compile error), or null. */
  readonly lastError: string | null;
}

/** The plugin host as plugins may observe it (metrics, the admin API). */
export interface PluginHostInfo {
  /** Id of the generation new sessions get. */
  generation(): number;
  hookStats(): readonly HookStats[];
  reloads(): ReloadStats;
}

/**
 * The processes serving sessions. With proxy.workers > 1 each worker runs its own plugins; a plugin
 * that must answer for the whole proxy (a metrics scrape, a session list) asks every worker.
 */
export interface WorkerGroup {
  /** This process: 1..count, or 0 in a single-process proxy. */
  readonly id: number;
  /** Processes serving sessions (1 in a single-process proxy). */
  readonly count: number;
  /**
   * Answers `topic` when any worker (this one included) asks all of them; `fn` gets the asker's payload
   * (undefined when it sent none). The newest generation's answer replaces older ones; answers cross
   * processes, so they must be plain JSON values.
   */
  answer(topic: string, fn: (payload: unknown) => unknown): void;
  /**
   * Every worker's answer to `topic` (this one's included; in a single process, just this one's), each
   * given `payload` (a plain JSON value: it crosses processes; an order such as "start this capture").
   * Workers that do not answer within `timeoutMs` (default 5000) or have no answer are left out.
   */
  askAll(topic: string, timeoutMs?: number, payload?: unknown): Promise<unknown[]>;
}

/**
 * Services plugins offer each other, by name (fastify's decorators, typed). A plugin that provides one
 * declares its type by augmenting this interface:
 *   declare module 'tiproxy/plugin' { interface TiproxyServices { myService: MyService } }
 * Services live as long as the generation that provided them; look them up when needed, not in apply()
 * (the provider may come later in the plugin list).
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface TiproxyServices {}

export interface ServiceRegistry {
  /** Offers a service under `name`; a second provider of the same name in one generation is an error. */
  provide<K extends keyof TiproxyServices & string>(name: K, service: TiproxyServices[K]): void;
  get<K extends keyof TiproxyServices & string>(name: K): TiproxyServices[K] | undefined;
}

/** Everything a plugin's apply() receives. */
export interface PluginContext<C> {
  readonly hooks: HookSet;
  /** This plugin's config, validated against its schema, defaults applied, frozen. */
  readonly config: C;
  /** The whole proxy config (read-only). */
  readonly proxyConfig: FrozenConfig;
  readonly backends: BackendDirectory;
  readonly sessions: SessionDirectory;
  readonly migrations: MigrationDirectory;
  /** Services of this generation's plugins (the metrics registry, …). */
  readonly services: ServiceRegistry;
  /** Generation, per-hook statistics and reload outcomes of the plugin host. */
  readonly plugins: PluginHostInfo;
  /** The worker processes of this proxy (one, unless proxy.workers > 1). */
  readonly workers: WorkerGroup;
  /**
   * A value this plugin keeps across generations of the same proxy (counters that must survive a
   * reload): `create` runs on the first call for `key`, later generations get the same object.
   */
  keep<T>(key: string, create: () => T): T;
  /**
   * A connection of the plugin's own to a backend (service accounts: reading password hashes, TiDB's
   * config). Close it when done.
   */
  openBackendSql(addr: string, credentials: Exclude<BackendCredentials, { kind: 'relay' }>): Promise<BackendSql & { close(): void }>;
  /** A pino child logger bound to { plugin: name }. */
  readonly logger: Logger;
  /** Runs when this plugin's generation is retired (timers, watchers, sockets). */
  onDispose(fn: () => void | Promise<void>): void;
  /**
   * True once a newer generation has replaced this one (a reload). The old generation lives on until
   * its last session adopts the new one: background loops (discovery, health checks, rebalancing)
   * should pause meanwhile so two generations never fight over the same backends.
   */
  superseded(): boolean;
  /**
   * The running proxy as a whole, for management plugins (the admin API): its config, generations,
   * plugin errors, shutdown phase, sessions to close, and the HTTP port.
   */
  readonly proxy: ProxyControl;
  /**
   * Traffic observation for capture plugins: turns hooks.observeCommand / observeResult on and off for
   * every session, and lists a session's prepared statements (for a bootstrap of sessions already open).
   */
  readonly traffic: TrafficObservation;
}

export interface JsonSchema {
  [key: string]: unknown;
}

export interface TiproxyPlugin<C = Record<string, unknown>> {
  readonly name: string;
  readonly version: string;
  /** JSON Schema for `plugins[i].config`; defaults are applied from it. */
  readonly configSchema?: JsonSchema;
  /** Taps hooks and starts services. May be async; a failure leaves the plugin out (or fails start-up if required). */
  apply(ctx: PluginContext<C>): void | Promise<void>;
  dispose?(): void | Promise<void>;
}

/** Identity function that gives plugin authors type inference for their config. */
export function definePlugin<C = Record<string, unknown>>(plugin: TiproxyPlugin<C>): TiproxyPlugin<C> {
  return plugin;
}
