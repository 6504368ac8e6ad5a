import { createServer, type Server, type Socket } from 'node:net';
import type { ConnectionOptions, SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { BackendRegistry, splitAddr, type BackendRecord } from './backend/backend-registry.js';
import type { FrozenConfig, ProxyConfig } from './config/proxy-config.js';
import { buildConfig, freezeConfig } from './config/config-loader.js';
import { mergeConfigPatch } from './config/config-patch.js';
import { ConnectionAdmission } from './net/connection-admission.js';
import { HttpListener } from './net/http-listener.js';
import { TlsMaterial } from './net/tls-material.js';
import type { GenerationSummary, PluginCompileFailure, ProxyControl, ProxyPhase, SessionControlFacts } from './plugins/proxy-control.js';
import type { CloseReason } from './errors.js';
import type { BackendCredentials, BackendEvent, BackendSql } from './hooks/hook-types.js';
import { ContentWatch } from './content-watch.js';
import { buildGeneration, type Generation, type PluginResolver } from './plugins/generation.js';
import { ObservationSwitch } from './plugins/traffic-observation.js';
import { HotPluginCompiler, listPluginSources, PluginCompileError } from './plugins/hot-plugin-compiler.js';
import type { TiproxyPlugin } from './plugins/plugin-definition.js';
import type { BackendDirectory, MigrationDirectory, MigrationRequest, SessionDirectory } from './plugins/plugin-definition.js';
import type { PluginErrorCounts, PluginHookStatsTable } from './plugins/plugin-isolation.js';
import { WorkerGroupHost } from './plugins/worker-group.js';
import { BackendTrafficCounter } from './backend/backend-traffic.js';
import {
  CLIENT_DEPRECATE_EOF, CLIENT_LONG_PASSWORD, CLIENT_MULTI_RESULTS, CLIENT_PLUGIN_AUTH, CLIENT_SECURE_CONNECTION,
  CLIENT_TRANSACTIONS, DEFAULT_CHARSET_ID,
  CLIENT_PROTOCOL_41, CLIENT_SESSION_TRACK, ER_CON_COUNT_ERROR, ER_SERVER_SHUTDOWN, PROXY_SUPPORTED_CAPABILITIES,
  PROXY_SUPPORTED_EXTENDED_CAPABILITIES, SQLSTATE_COMMUNICATION,
  SQLSTATE_CONNECTION_REFUSED,
} from './protocol/constants.js';
import { framePackets } from './protocol/payload-writer.js';
import { buildErrPayload } from './protocol/response-packets.js';
import { BackendConnection } from './session/backend-connection.js';
import { loginWithCredentials } from './session/backend-login.js';
import { BackendSqlRunner } from './session/backend-sql.js';
import { MigrationScheduler } from './migration/migration-scheduler.js';
import { Session } from './session/session.js';
import type { SessionHost } from './session/session-host.js';

/** What the proxy's own backend connections (plugins' service accounts) negotiate. */
const SERVICE_CONNECTION_CAPABILITIES = CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION |
  CLIENT_MULTI_RESULTS | CLIENT_PLUGIN_AUTH | CLIENT_DEPRECATE_EOF;


/** How long the first client's greeting waits for a backend's, at most. */
const GREETING_PROBE_TIMEOUT_MS = 2000;

/** Announced before any backend has been seen (and when `proxy.server-version` is empty). */
const FALLBACK_SERVER_VERSION = '8.0.11-tiproxy';

export interface KernelOptions {
  config: FrozenConfig;
  logger: Logger;
  resolvePlugin: PluginResolver;
  /** Set when this kernel is one of several worker processes (proxy.workers > 1); see src/cli/workers/. */
  worker?: WorkerSlot;
}

/** This process's place among the workers sharing the SQL port. */
export interface WorkerSlot {
  /** 1..count. */
  id: number;
  count: number;
  /** Listen with SO_REUSEPORT in this process (Node >= 22.12) instead of the cluster's shared handle. */
  reusePort: boolean;
}

/**
 * Connection ids of worker `id` carry it in their top 8 bits (id << 24 | sequence), so ids stay unique
 * across workers and a KILL naming another worker's session can be recognised.
 */
const WORKER_ID_SHIFT = 24;
const WORKER_SEQUENCE_MASK = (1 << WORKER_ID_SHIFT) - 1;

/** The worker (1..255) whose range holds connection id `id`, or 0 for ids of a single-process proxy. */
export function workerOfConnectionId(id: number): number {
  return id >>> WORKER_ID_SHIFT;
}

/**
 * The kernel: listens, accepts sessions, owns the backend registry and the plugin generations, and
 * shuts down gracefully. Policy (which backend, TLS to backends, discovery) comes from plugins.
 */
export class Kernel implements SessionHost {
  readonly logger: Logger;
  readonly backends: BackendRegistry;
  readonly sessions = new Map<number, Session>();
  readonly pluginErrors: PluginErrorCounts = new Map();
  /** Calls, errors and time per plugin and hook, over all generations. */
  readonly hookStats: PluginHookStatsTable = new Map();
  /** Outcomes of generation rebuilds after the first (reloads, plugin-dir changes). */
  readonly reloadStats = { succeeded: 0, failed: 0, lastError: null as string | null };
  /** This process among the workers; src/cli/workers/ gives it a transport to the others. */
  readonly workerGroup: WorkerGroupHost;
  /** Values plugins keep across generations (ctx.keep). */
  private readonly keptByPlugins = new Map<string, unknown>();
  /** Traffic observation on/off for every generation (ctx.traffic, hooks.observeCommand). */
  private readonly observation = new ObservationSwitch();
  /** Set once the SQL listener closes on shutdown (after the graceful wait): sessions then end at safe points. */
  shuttingDown = false;
  /** Where shutdown is: the admin API reports unhealthy from "graceful-wait" on. */
  phase: ProxyPhase = 'running';
  /**
   * Sessions asked to move (by the balancer, drains, the admin API) and failovers, carried out at each
   * session's next safe point (src/kernel/migration/).
   */
  readonly migrations: MigrationScheduler;
  /** max-connections, max-connections-per-address and memory-limit-mb, checked on accept. */
  private readonly admission = new ConnectionAdmission();
  private greetingProbe: Promise<void> | null = null;
  /** Set while a generation is being built: backend events to replay on it (see buildGeneration). */
  private eventsDuringBuild: BackendEvent[] | null = null;
  private cfg: FrozenConfig;
  private generation!: Generation;
  private generationCounter = 0;
  private readonly retired = new Set<Generation>();
  private server: Server | null = null;
  private nextId = 1;
  /** Connection ids this process hands out: [firstId, lastId]. */
  private readonly firstId: number;
  private readonly lastId: number;
  private readonly worker: WorkerSlot | undefined;
  private serverVersion = '';
  private serverCapabilities = PROXY_SUPPORTED_CAPABILITIES;
  /** MariaDB extended capabilities of the backends' greeting the proxy can carry (0 until a MariaDB was seen). */
  private serverExtendedCapabilities = 0;
  /** TLS for both legs, reloaded when its files change on disk. */
  readonly tls: TlsMaterial;
  private readonly resolvePlugin: PluginResolver;
  private closedWaiters: Array<() => void> = [];
  /** Plugins compiled from plugin-dir, by plugin name. */
  private hotPlugins = new Map<string, TiproxyPlugin<never>>();
  private readonly compiler = new HotPluginCompiler();
  private pluginDirWatch: ContentWatch | null = null;
  /** Serialises generation builds (reloads, plugin-dir changes). */
  private rebuilding: Promise<unknown> = Promise.resolve();
  /** The HTTP API port (api.addr), answered by the current generation's handler (the admin-api plugin). */
  private readonly http: HttpListener;
  private compileFailure: PluginCompileFailure | null = null;

  constructor(options: KernelOptions) {
    this.cfg = options.config;
    this.logger = options.logger;
    this.resolvePlugin = options.resolvePlugin;
    this.worker = options.worker;
    this.firstId = this.worker ? (this.worker.id << WORKER_ID_SHIFT) + 1 : 1;
    this.lastId = this.worker ? ((this.worker.id << WORKER_ID_SHIFT) | WORKER_SEQUENCE_MASK) >>> 0 : 0xffffffff;
    this.nextId = this.firstId;
    this.backends = new BackendRegistry((event) => this.publishBackendEvent(event));
    this.migrations = new MigrationScheduler({ logger: this.logger, backends: this.backends, session: (id) => this.sessions.get(id) });
    this.workerGroup = new WorkerGroupHost(this.worker?.id ?? 0, this.worker?.count ?? 1);
    this.http = new HttpListener(this.logger, () => this.generation?.httpHandler ?? null);
    this.tls = new TlsMaterial(this.logger);
    this.tls.apply(options.config);
  }

  /** Builds the first plugin generation and runs lifecycle.init. */
  async init(): Promise<void> {
    // The baseline is taken before compiling, so an edit made meanwhile is reported once watching starts.
    const dirWatch = this.cfg['plugin-dir'] ? this.pluginDirWatchFor(this.cfg['plugin-dir'], 'current') : null;
    if (this.cfg['plugin-dir']) {
      // A broken plugin file at start-up is reported and left out, like a failing apply().
      try {
        this.hotPlugins = await this.compilePluginDir(this.cfg['plugin-dir']);
      } catch (err) {
        this.logger.error({ err: (err as Error).message }, `plugin directory: ${(err as Error).message}`);
      }
    }
    const { generation, missed } = await this.buildGeneration(this.cfg);
    this.generation = generation;
    this.generation.users++; // the kernel itself holds the current generation
    for (const event of missed) generation.hooks.backendEvent.call(event);
    await this.generation.hooks.lifecycle.init.promise({ config: this.cfg });
    this.pluginDirWatch = dirWatch?.start() ?? null;
  }

  /** Config plugins in YAML order, then hot plugins the config does not mention (enabled, default config). */
  private withHotPlugins(config: FrozenConfig, hot: ReadonlyMap<string, TiproxyPlugin<never>>): FrozenConfig {
    const listed = new Set(config.plugins.map((p) => p.name));
    const extra = [...hot.keys()].filter((n) => !listed.has(n)).sort()
      .map((name) => Object.freeze({ name, enabled: true, required: false, config: Object.freeze({}) }));
    return extra.length === 0 ? config : Object.freeze({ ...config, plugins: Object.freeze([...config.plugins, ...extra]) });
  }

  /**
   * Builds a generation and collects the backend events published meanwhile (discovery plugins announce
   * backends from apply()): plugins of the new generation applied before them never saw those, so they
   * are replayed on it once it is current (a health tap applying its drain list to an added backend).
   */
  private async buildGeneration(config: FrozenConfig, hot?: ReadonlyMap<string, TiproxyPlugin<never>>): Promise<{ generation: Generation; missed: BackendEvent[] }> {
    const missed: BackendEvent[] = [];
    this.eventsDuringBuild = missed;
    try {
      return { generation: await this.makeGeneration(config, hot), missed };
    } finally {
      this.eventsDuringBuild = null;
    }
  }

  private makeGeneration(config: FrozenConfig, hot: ReadonlyMap<string, TiproxyPlugin<never>> = this.hotPlugins): Promise<Generation> {
    const resolve: PluginResolver = (name) => hot.get(name) ?? this.resolvePlugin(name);
    return buildGeneration(++this.generationCounter, this.withHotPlugins(config, hot), resolve, {
      logger: this.logger,
      backendsFor: (name) => this.backendDirectory(name),
      sessions: this.sessionDirectory(),
      migrations: this.migrationDirectory(),
      openBackendSql: (addr, credentials) => this.openBackendSql(addr, credentials),
      errorCounts: this.pluginErrors,
      hookStats: this.hookStats,
      pluginHost: {
        generation: () => this.generation?.id ?? 0,
        hookStats: () => [...this.hookStats.values()],
        reloads: () => ({ ...this.reloadStats }),
      },
      workers: this.workerGroup,
      kept: this.keptByPlugins,
      proxyFor: (generation) => this.proxyControl(generation),
      observation: this.observation,
      preparedStatements: (id) => [...(this.sessions.get(id)?.state.statements.values() ?? [])].map((p) => ({ clientId: p.clientId, sql: p.sql, params: p.params })),
    });
  }

  /** ctx.proxy for one generation's plugins (see ProxyControl). */
  private proxyControl(generation: Generation): ProxyControl {
    return {
      config: () => this.cfg,
      applyConfig: (patch) => this.applyConfigPatch(patch),
      reloadPlugins: () => this.rebuildPlugins(),
      generation: () => this.generationSummary(),
      pluginErrors: () => this.pluginErrors,
      pluginCompileFailure: () => this.compileFailure,
      phase: () => this.phase,
      sessionFacts: (id) => this.sessionFacts(id),
      runningMigrations: () => [...this.migrations.running],
      closeSession: (id, reason) => {
        const session = this.sessions.get(id);
        if (!session) return false;
        session.close({ side: 'proxy', reason: 'admin-kill', detail: reason });
        return true;
      },
      serveHttp: (handler) => {
        generation.httpHandler = handler;
      },
      httpAddress: () => this.http.address(),
      sqlAddress: () => {
        const bound = this.server?.address();
        return typeof bound === 'object' && bound ? { host: bound.address, port: bound.port } : null;
      },
    };
  }

  private generationSummary(): GenerationSummary {
    const g = this.generation;
    let older = 0;
    for (const s of this.sessions.values()) if (s.generation !== g) older++;
    return { id: g.id, plugins: g.applied.map((name) => ({ name, version: g.versions.get(name) ?? '' })), sessionsOnOlder: older, createdAt: g.createdAt };
  }

  private sessionFacts(id: number): SessionControlFacts | undefined {
    const session = this.sessions.get(id);
    if (!session) return undefined;
    const unsafe = session.unsafeReason();
    const migration = this.migrations.running.has(id) ? 'running' : this.migrations.requests.has(id) ? 'pending' : null;
    return { generation: session.generation.id, notMovable: this.migrations.unmovableReason(id) ?? (unsafe === null ? null : String(unsafe)), migration };
  }

  /** The admin API's config change: merged into the running config, validated, applied as a generation. */
  private async applyConfigPatch(patch: unknown): Promise<GenerationSummary> {
    const next = freezeConfig(buildConfig(mergeConfigPatch(this.cfg, patch) as unknown as ProxyConfig));
    await this.reload(next);
    this.logger.level = next.log.level;
    return this.generationSummary();
  }

  /** Recompiles the plugin directory (if any) and rebuilds; throws what went wrong, keeping the running generation. */
  private async rebuildPlugins(): Promise<GenerationSummary> {
    const dir = this.cfg['plugin-dir'];
    await this.reload(this.cfg, dir ? await this.compilePluginDir(dir) : this.hotPlugins);
    return this.generationSummary();
  }

  private backendDirectory(source: string): BackendDirectory {
    const reg = this.backends;
    return {
      list: () => reg.list(),
      get: (addr) => reg.get(addr),
      replace: (a) => reg.replaceSource(source, a),
      announce: (a) => void reg.announce(source, a),
      withdraw: (addr) => reg.withdraw(source, addr),
      setHealth: (addr, healthy, reason) => reg.setHealth(addr, healthy, reason),
      setDraining: (addr, draining) => reg.setDraining(addr, draining),
      traffic: (addr) => {
        const t = reg.get(addr)?.traffic;
        return t ? { received: t.received, sent: t.sent } : undefined;
      },
    };
  }

  private sessionDirectory(): SessionDirectory {
    return {
      list: () => [...this.sessions.values()],
      get: (id) => this.sessions.get(id),
      count: () => this.sessions.size,
    };
  }

  /** A logged-in connection of the proxy's own to a backend, for plugins (service accounts). */
  async openBackendSql(addr: string, credentials: Exclude<BackendCredentials, { kind: 'relay' }>): Promise<BackendSql & { close(): void }> {
    const backend = this.backends.get(addr) ?? { ...splitAddr(addr), addr, labels: {}, healthy: true, draining: false, connections: 0, remoteConnections: 0, sources: new Set<string>(), traffic: new BackendTrafficCounter() };
    const timeoutMs = this.cfg.proxy['backend-connect-timeout'] * 1000;
    const capabilities = SERVICE_CONNECTION_CAPABILITIES;
    const conn = await BackendConnection.dial({
      backend, options: { tls: this.cfg.security['require-backend-tls'] ? 'required' : 'off', proxyProtocol: false, connectTimeoutMs: timeoutMs },
      tls: this.tls.backendOptions, capabilities: () => capabilities, charset: DEFAULT_CHARSET_ID,
    });
    try {
      await loginWithCredentials(conn, credentials, { capabilities, charset: DEFAULT_CHARSET_ID, database: '', timeoutMs });
    } catch (err) {
      conn.destroy();
      throw err;
    }
    const runner = new BackendSqlRunner(addr, conn.channel, capabilities, timeoutMs);
    return { addr, query: (sql) => runner.query(sql), prepare: (sql) => runner.prepare(sql), pipeline: (steps) => runner.pipeline(steps), close: () => conn.quit() };
  }

  private migrationDirectory(): MigrationDirectory {
    return {
      request: (sessionId, reason, to) => this.requestMigration(sessionId, reason, to),
      pending: () => [...this.migrations.requests.values()],
      cancel: (sessionId) => this.cancelMigration(sessionId),
      unmovableReason: (sessionId) => this.unmovableReason(sessionId),
      dropped: () => this.migrations.dropped,
      pacing: () => this.migrations.pacingSnapshot(),
    };
  }

  requestMigration(sessionId: number, reason: string, to?: string): boolean {
    return this.migrations.request(sessionId, reason, to);
  }

  cancelMigration(sessionId: number): boolean {
    return this.migrations.cancel(sessionId);
  }

  /** Pending requests by session id. */
  get migrationRequests(): ReadonlyMap<number, MigrationRequest> {
    return this.migrations.requests;
  }

  /** Accepted requests by reason. */
  get migrationRequestCounts(): ReadonlyMap<string, number> {
    return this.migrations.requestCounts;
  }

  /** Finished migrations by "<reason>/<result>". */
  get migrationResults(): ReadonlyMap<string, number> {
    return this.migrations.results;
  }

  /** The session's credentials changed (COM_CHANGE_USER): it may be movable again. */
  sessionUserChanged(session: Session): void {
    this.migrations.userChanged(session.id);
  }

  /** Why the session cannot be moved at all, or null (plugins' vetoes with retry: false). */
  unmovableReason(sessionId: number): string | null {
    return this.migrations.unmovableReason(sessionId);
  }

  /** Whether a move was asked for this session (the session may then commit-and-move on BEGIN). */
  migrationPending(session: Session): boolean {
    return this.migrations.pending(session.id);
  }

  /** Runs the session's pending move now if it is at a safe point; resolves when it is over. */
  migrateNow(session: Session): Promise<void> {
    return this.migrations.migrateNow(session);
  }

  /** The session's backend died between commands: re-establish it elsewhere. */
  failover(session: Session, dead: BackendRecord): ReturnType<MigrationScheduler['failover']> {
    return this.migrations.failover(session, dead);
  }

  /** Migrations running now. */
  get migrationsInFlight(): number {
    return this.migrations.running.size;
  }

  private publishBackendEvent(event: BackendEvent): void {
    this.logger.info({ backend: event.backend.addr, event: event.type, ...('reason' in event ? { reason: event.reason } : {}),
      ...('healthy' in event ? { healthy: event.healthy } : {}) }, `backend ${event.type}`);
    this.generation?.hooks.backendEvent.call(event);
    this.eventsDuringBuild?.push(event);
  }

  // ---- SessionHost ---------------------------------------------------------------------------------

  config(): FrozenConfig {
    return this.cfg;
  }

  currentGeneration(): Generation {
    return this.generation;
  }

  pinGeneration(g: Generation): void {
    g.users++;
  }

  releaseGeneration(g: Generation): void {
    g.users--;
    if (g.users === 0 && this.retired.delete(g)) void g.dispose(this.logger);
  }

  /**
   * What the proxy's greeting announces: a backend's version and capabilities. Before any backend has
   * been seen, one is asked for its greeting first: capabilities change packet formats
   * (CLIENT_SESSION_TRACK; TiDB lacks it), and a client must not negotiate one the backend cannot give.
   */
  async announcedServer(): Promise<{ version: string; capabilities: number; extendedCapabilities: number }> {
    if (!this.serverVersion) await (this.greetingProbe ??= this.probeGreeting().finally(() => { this.greetingProbe = null; }));
    const configured = this.cfg.proxy['server-version'];
    // Still unknown (no backend answered): leave out the capability that changes OK packets.
    const capabilities = this.serverVersion ? this.serverCapabilities : this.serverCapabilities & ~CLIENT_SESSION_TRACK;
    return { version: configured || this.serverVersion || FALLBACK_SERVER_VERSION, capabilities, extendedCapabilities: this.serverExtendedCapabilities };
  }

  private async probeGreeting(): Promise<void> {
    // One budget for all attempts: a client waits for this at most once, however many backends are down.
    const deadline = Date.now() + GREETING_PROBE_TIMEOUT_MS;
    for (const backend of this.backends.list().filter((b) => b.healthy && !b.draining).slice(0, 3)) {
      const timeoutMs = Math.min(this.cfg.proxy['backend-connect-timeout'] * 1000, deadline - Date.now());
      if (timeoutMs <= 0) return;
      try {
        const conn = await BackendConnection.dial({
          backend, options: { tls: 'off', proxyProtocol: false, connectTimeoutMs: timeoutMs }, tls: {}, capabilities: 0, charset: DEFAULT_CHARSET_ID,
        });
        conn.destroy();
        this.learnBackend(backend, conn.greeting.serverVersion, conn.greeting.capabilities, conn.greeting.extendedCapabilities ?? 0);
        return;
      } catch (err) {
        this.logger.debug({ backend: backend.addr, err: (err as Error).message }, 'greeting probe failed');
      }
    }
  }

  learnBackend(backend: BackendRecord, version: string, capabilities: number, extendedCapabilities: number): void {
    backend.serverVersion = version;
    if (!this.serverVersion) this.logger.info({ version }, 'announcing the backends\' server version to clients');
    this.serverVersion = version;
    this.serverCapabilities = (capabilities & PROXY_SUPPORTED_CAPABILITIES) | CLIENT_PROTOCOL_41;
    this.serverExtendedCapabilities = extendedCapabilities & PROXY_SUPPORTED_EXTENDED_CAPABILITIES;
  }

  otherWorkerOf(connectionId: number): number | null {
    if (!this.worker) return null;
    const owner = workerOfConnectionId(connectionId);
    return owner >= 1 && owner <= this.worker.count && owner !== this.worker.id ? owner : null;
  }

  workerId(): number | null {
    return this.worker?.id ?? null;
  }

  serverTlsContext(): SecureContext | null {
    return this.tls.serverContext;
  }

  serverTlsRequestsCert(): boolean {
    return this.tls.requestClientCert;
  }

  backendTlsOptions(): ConnectionOptions {
    return this.tls.backendOptions;
  }

  sessionClosed(session: Session, _reason: CloseReason): void {
    this.sessions.delete(session.id);
    this.admission.released(session.id);
    this.migrations.sessionClosed(session.id);
    if (this.sessions.size === 0) for (const w of this.closedWaiters.splice(0)) w();
  }

  sessionIdle(session: Session): void {
    if (session.generation !== this.generation && session.unsafeReason() === null) {
      // Adopt the newest plugins between commands; the old generation is disposed when unused.
      const old = session.generation;
      this.pinGeneration(this.generation);
      session.generation = this.generation;
      this.releaseGeneration(old);
    }
    if (this.shuttingDown && session.unsafeReason() === null) session.close({ side: 'proxy', reason: 'shutdown' });
    else this.migrations.sessionIdle(session);
  }

  // ---- listening -----------------------------------------------------------------------------------

  /** Starts the SQL listener; resolves with the bound address. */
  async listen(): Promise<{ host: string; port: number }> {
    const { host, port } = parseListenAddr(this.cfg.proxy.addr);
    const server = createServer({ noDelay: true, pauseOnConnect: false }, (socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // Workers on Node >= 22.12 bind their own SO_REUSEPORT socket (exclusive: not the cluster's shared
      // handle); `reusePort` is not in Node 20's typings, hence the widened object.
      const reuse: object = this.worker?.reusePort ? { exclusive: true, reusePort: true } : {};
      server.listen({ host, port, ...reuse }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.logger.error({ err }, 'listener error'));
    const bound = server.address();
    const result = typeof bound === 'object' && bound ? { host: bound.address, port: bound.port } : { host, port };
    this.logger.info({ addr: `${result.host}:${result.port}` }, 'listening for MySQL clients');
    if (this.generation.httpHandler) {
      try {
        await this.listenHttp();
      } catch (err) {
        server.close();
        this.server = null;
        throw err;
      }
    }
    // Sessions that stay idle never reach sessionIdle again: retry their pending migrations periodically.
    this.migrations.start();
    await this.generation.hooks.lifecycle.ready.promise({ config: this.cfg });
    return result;
  }

  /** Opens the API port (api.addr); throws ApiListenError. Not reloadable: a changed address needs a restart. */
  private listenHttp(): Promise<{ host: string; port: number }> {
    const addr = this.cfg.api.addr;
    const { host, port } = parseListenAddr(addr);
    return this.http.listen(addr, host, port, this.cfg.api.tls);
  }

  private accept(socket: Socket): void {
    socket.on('error', () => {}); // a reset before the session attaches its handlers must not crash
    if (this.shuttingDown) return void this.refuse(socket, ER_SERVER_SHUTDOWN, 'tiproxy is shutting down');
    const address = socket.remoteAddress ?? '';
    const refusal = this.admission.refusal(this.cfg, this.sessions.size, address);
    if (refusal) {
      this.logger.warn({ client: `${address}:${socket.remotePort}`, limit: refusal.limit, max: this.cfg.proxy[refusal.limit] },
        `connection refused: ${refusal.limit} reached`);
      return void this.refuse(socket, ER_CON_COUNT_ERROR, refusal.message, SQLSTATE_CONNECTION_REFUSED);
    }
    const id = this.nextId;
    this.nextId = this.nextId >= this.lastId ? this.firstId : this.nextId + 1;
    const session = new Session(id, socket, this);
    this.sessions.set(id, session);
    this.admission.admitted(id, address);
    void session.run();
  }

  private refuse(socket: Socket, code: number, message: string, sqlState = SQLSTATE_COMMUNICATION): void {
    socket.end(framePackets(buildErrPayload(code, message, sqlState), 0).packet);
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  // ---- reload and shutdown -------------------------------------------------------------------------

  /**
   * Applies a new configuration through a new plugin generation. On any error the running
   * generation and config stay and the error is thrown to the caller (who logs it).
   */
  async reload(config: FrozenConfig, hot: ReadonlyMap<string, TiproxyPlugin<never>> = this.hotPlugins): Promise<void> {
    const run = this.rebuilding.then(async () => {
      const { generation: next, missed } = await this.buildGeneration(config, hot);
      const previous = this.generation;
      if (config['plugin-dir'] !== this.cfg['plugin-dir']) {
        // A new directory is compiled by its watch's first look (the generation just built still has the old one's plugins).
        this.pluginDirWatch?.close();
        this.pluginDirWatch = config['plugin-dir'] ? this.pluginDirWatchFor(config['plugin-dir'], 'none').start() : null;
      }
      this.cfg = config;
      this.hotPlugins = new Map(hot);
      this.tls.apply(config);
      this.generation = next;
      next.users++;
      previous.superseded = true;
      this.retired.add(previous);
      this.releaseGeneration(previous);
      for (const event of missed) next.hooks.backendEvent.call(event);
      if (next.httpHandler && !this.http.listening && this.server && this.phase === 'running') {
        this.listenHttp().catch((err: Error) => this.logger.error(err.message));
      }
      await next.hooks.lifecycle.reload.promise({ config });
      this.logger.info({ generation: next.id, plugins: next.applied }, 'plugins and configuration applied');
      // Idle sessions adopt the new generation now; busy ones at their next safe point.
      for (const s of [...this.sessions.values()]) this.sessionIdle(s);
    });
    this.rebuilding = run.then(() => {
      this.reloadStats.succeeded++;
    }, (err: unknown) => {
      this.reloadStats.failed++;
      this.reloadStats.lastError = err instanceof Error ? err.message : String(err);
    });
    return run;
  }

  /** Compiles every plugin in `dir`; throws PluginCompileError (file, line, reason) on the first failure. */
  private async compilePluginDir(dir: string): Promise<Map<string, TiproxyPlugin<never>>> {
    try {
      const out = await this.compilePluginSources(dir);
      this.compileFailure = null;
      return out;
    } catch (err) {
      const e = err as Error;
      this.compileFailure = e instanceof PluginCompileError
        ? { message: e.message, file: e.file, line: e.line, column: e.column, at: Date.now() }
        : { message: e.message, at: Date.now() };
      throw err;
    }
  }

  private async compilePluginSources(dir: string): Promise<Map<string, TiproxyPlugin<never>>> {
    const out = new Map<string, TiproxyPlugin<never>>();
    for (const source of listPluginSources(dir)) {
      const plugin = await this.compiler.load(source);
      if (this.resolvePlugin(plugin.name)) {
        throw new PluginCompileError(source.entry, 1, 1, `plugin name "${plugin.name}" is taken by a built-in plugin`);
      }
      if (out.has(plugin.name)) throw new PluginCompileError(source.entry, 1, 1, `plugin name "${plugin.name}" is used twice in ${dir}`);
      out.set(plugin.name, plugin);
    }
    return out;
  }

  /**
   * Watches the plugin directory's content (every file below it, see ContentWatch): a change is
   * compiled and applied; one that compiles to the same plugins builds no generation.
   */
  private pluginDirWatchFor(dir: string, baseline: 'current' | 'none'): ContentWatch {
    return new ContentWatch({
      path: dir, kind: 'tree', baseline, logger: this.logger,
      onChange: async () => {
        if (this.shuttingDown || this.cfg['plugin-dir'] !== dir) return;
        this.logger.info({ dir }, 'plugin directory content changed');
        await this.reloadPluginDir();
      },
    });
  }

  /** Rebuilds from the plugin directory; a compile or apply error keeps the running generation. */
  async reloadPluginDir(): Promise<boolean> {
    const dir = this.cfg['plugin-dir'];
    if (!dir) return false;
    let hot: Map<string, TiproxyPlugin<never>>;
    try {
      hot = await this.compilePluginDir(dir);
    } catch (err) {
      const e = err as Error;
      const where = e instanceof PluginCompileError ? { file: e.file, line: e.line, column: e.column, reason: e.reason } : {};
      this.logger.error(where, `plugin directory change rejected, keeping generation ${this.generation.id}: ${e.message}`);
      this.reloadStats.failed++;
      this.reloadStats.lastError = e.message;
      return false;
    }
    if (hot.size === this.hotPlugins.size && [...hot].every(([name, p]) => this.hotPlugins.get(name) === p)) {
      // Same bundles (the compiler caches by bundle hash): a file no plugin imports, a folder without its package.json yet.
      this.logger.debug({ dir, generation: this.generation.id }, 'plugin directory changed but compiles to the same plugins');
      return true;
    }
    try {
      await this.reload(this.cfg, hot);
      return true;
    } catch (err) {
      this.logger.error(`plugin directory change rejected, keeping generation ${this.generation.id}: ${(err as Error).message}`);
      return false;
    }
  }

  /** The generation new sessions get, and the plugin names it applied. */
  generationInfo(): { id: number; plugins: readonly string[]; sessionsOnOlder: number } {
    let older = 0;
    for (const s of this.sessions.values()) if (s.generation !== this.generation) older++;
    return { id: this.generation.id, plugins: this.generation.applied, sessionsOnOlder: older };
  }

  /**
   * Graceful shutdown: stop accepting, close idle sessions now, let busy ones finish their command or
   * transaction, and close whatever is left after graceful-close-conn-timeout.
   */
  async shutdown(): Promise<void> {
    if (this.phase !== 'running') return;
    // TiProxy's order: first only the health endpoint turns unhealthy (load balancers stop sending
    // clients) while SQL is served as before, then the listener closes.
    this.phase = 'graceful-wait';
    const wait = this.cfg.proxy['graceful-wait-before-shutdown'];
    this.logger.info({ sessions: this.sessions.size, gracefulWait: wait }, 'shutting down');
    if (wait > 0) await sleep(wait * 1000);
    this.phase = 'closing';
    this.shuttingDown = true;
    // close() stops accepting at once; its callback would wait for every open connection (the sessions
    // closed below), so it must not be awaited here.
    this.server?.close();
    for (const s of [...this.sessions.values()]) this.sessionIdle(s);
    const timeout = this.cfg.proxy['graceful-close-conn-timeout'] * 1000;
    if (this.sessions.size > 0) {
      await Promise.race([new Promise<void>((r) => this.closedWaiters.push(r)), sleep(timeout)]);
    }
    for (const s of [...this.sessions.values()]) {
      s.close({ side: 'proxy', reason: 'shutdown-timeout' });
    }
    this.pluginDirWatch?.close();
    this.migrations.stop();
    await this.generation.hooks.lifecycle.shutdown.promise({ config: this.cfg });
    // The API port closes last, so health keeps answering 502 while sessions end.
    await this.http.close();
    this.releaseGeneration(this.generation);
    await this.generation.dispose(this.logger);
    this.logger.info('shutdown complete');
  }
}

export function parseListenAddr(addr: string): { host: string; port: number } {
  const at = addr.lastIndexOf(':');
  const host = addr.slice(0, at).replace(/^\[(.*)\]$/, '$1') || '0.0.0.0';
  return { host, port: Number(addr.slice(at + 1)) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
