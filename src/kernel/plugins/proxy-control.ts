import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FrozenConfig } from '../config/proxy-config.js';

/**
 * Where the proxy is in its life. "graceful-wait": SIGTERM arrived and the proxy reports itself
 * unhealthy for proxy.graceful-wait-before-shutdown seconds while still serving SQL (TiProxy's order, so
 * load balancers stop first); "closing": the SQL listener is closed and sessions are being closed.
 */
export type ProxyPhase = 'running' | 'graceful-wait' | 'closing';

export interface GenerationSummary {
  readonly id: number;
  /** Applied plugins in order, with their versions. */
  readonly plugins: ReadonlyArray<{ readonly name: string; readonly version: string }>;
  /** Sessions still on an older generation (they adopt this one at their next safe point). */
  readonly sessionsOnOlder: number;
  /** Epoch milliseconds when the generation was built. */
  readonly createdAt: number;
}

/** The last failure to compile the plugin directory (cleared by the next successful compile). */
export interface PluginCompileFailure {
  readonly message: string;
  readonly file?: string;
  readonly line?: number;
  readonly column?: number;
  /** Epoch milliseconds. */
  readonly at: number;
}

/** Facts about one session the kernel knows beyond SessionInfo. */
export interface SessionControlFacts {
  /** Generation whose plugins serve the session. */
  readonly generation: number;
  /** Why the session cannot move right now (a transaction, a command in flight, a veto), or null. */
  readonly notMovable: string | null;
  /** A move was asked for ("pending") or is under way ("running"). */
  readonly migration: 'pending' | 'running' | null;
}

/** A node:http request handler; the kernel owns the socket, a plugin answers the requests. */
export type HttpHandler = (request: IncomingMessage, response: ServerResponse) => void;

/**
 * The running proxy as management plugins (the admin API) steer it; one per generation (state that
 * must outlive a reload goes in ctx.keep).
 */
export interface ProxyControl {
  /** The running configuration (newer than ctx.proxyConfig after a reload). */
  config(): FrozenConfig;
  /**
   * Deep-merges a partial configuration into the running one (objects merge, `plugins` entries merge by
   * name, other arrays are replaced), validates it with the same schemas as the file and applies it as
   * a new generation. Throws ConfigError (naming the key path) when it is invalid; the running
   * generation stays on any error. Not written to the config file.
   */
  applyConfig(patch: unknown): Promise<GenerationSummary>;
  /** Recompiles the plugin directory (when there is one) and rebuilds the generation with the running config. */
  reloadPlugins(): Promise<GenerationSummary>;
  /** The generation new sessions get. */
  generation(): GenerationSummary;
  /** Hook failures so far, by "plugin/hook". */
  pluginErrors(): ReadonlyMap<string, number>;
  pluginCompileFailure(): PluginCompileFailure | null;
  phase(): ProxyPhase;
  /** undefined when no such session exists. */
  sessionFacts(sessionId: number): SessionControlFacts | undefined;
  /** Sessions whose migration is under way now. */
  runningMigrations(): readonly number[];
  /** Closes a session (its client gets the connection closed); false when there is none. */
  closeSession(sessionId: number, reason: string): boolean;
  /**
   * Answers the proxy's HTTP port (api.addr) with `handler` while this generation is current. The
   * kernel owns the listening socket, so it survives reloads: requests started on an older generation's
   * handler finish there, new ones go to the newest generation that serves.
   */
  serveHttp(handler: HttpHandler): void;
  /** Where the HTTP port listens, once it does. */
  httpAddress(): { host: string; port: number; tls: boolean } | null;
  /** Where the SQL port listens, once it does (the bound port when proxy.addr names port 0). */
  sqlAddress(): { host: string; port: number } | null;
}
