import type { Logger } from 'pino';
import type { FrozenConfig } from '../config/proxy-config.js';
import type { BackendAnnouncement } from '../backend/backend-registry.js';
import type { HookSet } from '../hooks/hook-set.js';
import type { BackendCredentials, BackendInfo, BackendSql, SessionInfo } from '../hooks/hook-types.js';

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
