import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { createSecureContext, type ConnectionOptions, type SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { BackendRegistry, type BackendRecord } from './backend/backend-registry.js';
import type { FrozenConfig } from './config/proxy-config.js';
import type { CloseReason } from './errors.js';
import type { BackendEvent } from './hooks/hook-types.js';
import { buildGeneration, type Generation, type PluginResolver } from './plugins/generation.js';
import type { BackendDirectory, SessionDirectory } from './plugins/plugin-definition.js';
import type { PluginErrorCounts } from './plugins/plugin-isolation.js';
import {
  CLIENT_PROTOCOL_41, ER_CON_COUNT_ERROR, ER_SERVER_SHUTDOWN, PROXY_SUPPORTED_CAPABILITIES, SQLSTATE_COMMUNICATION,
} from './protocol/constants.js';
import { framePackets } from './protocol/payload-writer.js';
import { buildErrPayload } from './protocol/response-packets.js';
import { Session } from './session/session.js';
import type { SessionHost } from './session/session-host.js';

/** Announced before any backend has been seen (and when `proxy.server-version` is empty). */
const FALLBACK_SERVER_VERSION = '8.0.11-tiproxy';

export interface KernelOptions {
  config: FrozenConfig;
  logger: Logger;
  resolvePlugin: PluginResolver;
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
  shuttingDown = false;
  private cfg: FrozenConfig;
  private generation!: Generation;
  private generationCounter = 0;
  private readonly retired = new Set<Generation>();
  private server: Server | null = null;
  private nextId = 1;
  private serverVersion = '';
  private serverCapabilities = PROXY_SUPPORTED_CAPABILITIES;
  private tlsContext: SecureContext | null = null;
  private tlsRequestCert = false;
  private backendTls: ConnectionOptions = {};
  private readonly resolvePlugin: PluginResolver;
  private closedWaiters: Array<() => void> = [];

  constructor(options: KernelOptions) {
    this.cfg = options.config;
    this.logger = options.logger;
    this.resolvePlugin = options.resolvePlugin;
    this.backends = new BackendRegistry((event) => this.publishBackendEvent(event));
    this.loadTls(options.config);
  }

  /** Builds the first plugin generation and runs lifecycle.init. */
  async init(): Promise<void> {
    this.generation = await this.makeGeneration(this.cfg);
    this.generation.users++; // the kernel itself holds the current generation
    await this.generation.hooks.lifecycle.init.promise({ config: this.cfg });
  }

  private makeGeneration(config: FrozenConfig): Promise<Generation> {
    return buildGeneration(++this.generationCounter, config, this.resolvePlugin, {
      logger: this.logger,
      backendsFor: (name) => this.backendDirectory(name),
      sessions: this.sessionDirectory(),
      errorCounts: this.pluginErrors,
    });
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
    };
  }

  private sessionDirectory(): SessionDirectory {
    return {
      list: () => [...this.sessions.values()],
      get: (id) => this.sessions.get(id),
      count: () => this.sessions.size,
    };
  }

  private publishBackendEvent(event: BackendEvent): void {
    this.logger.info({ backend: event.backend.addr, event: event.type, ...('reason' in event ? { reason: event.reason } : {}),
      ...('healthy' in event ? { healthy: event.healthy } : {}) }, `backend ${event.type}`);
    this.generation?.hooks.backendEvent.call(event);
  }

  private loadTls(config: FrozenConfig): void {
    const server = config.security['server-tls'];
    if (server) {
      this.tlsContext = createSecureContext({
        cert: readFileSync(server.cert), key: readFileSync(server.key),
        ...(server.ca ? { ca: readFileSync(server.ca) } : {}),
        minVersion: server['min-tls-version'] === '1.3' ? 'TLSv1.3' : 'TLSv1.2',
      });
      this.tlsRequestCert = Boolean(server.ca);
    } else this.tlsContext = null;
    const sql = config.security['sql-tls'];
    this.backendTls = {
      ...(sql.ca ? { ca: readFileSync(sql.ca) } : {}),
      ...(sql.cert ? { cert: readFileSync(sql.cert) } : {}),
      ...(sql.key ? { key: readFileSync(sql.key) } : {}),
      rejectUnauthorized: !sql['skip-ca'],
      minVersion: sql['min-tls-version'] === '1.3' ? 'TLSv1.3' : 'TLSv1.2',
    };
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

  announcedServer(): { version: string; capabilities: number } {
    const configured = this.cfg.proxy['server-version'];
    return { version: configured || this.serverVersion || FALLBACK_SERVER_VERSION, capabilities: this.serverCapabilities };
  }

  learnBackend(backend: BackendRecord, version: string, capabilities: number): void {
    backend.serverVersion = version;
    if (!this.serverVersion) this.logger.info({ version }, 'announcing the backends\' server version to clients');
    this.serverVersion = version;
    this.serverCapabilities = (capabilities & PROXY_SUPPORTED_CAPABILITIES) | CLIENT_PROTOCOL_41;
  }

  serverTlsContext(): SecureContext | null {
    return this.tlsContext;
  }

  serverTlsRequestsCert(): boolean {
    return this.tlsRequestCert;
  }

  backendTlsOptions(): ConnectionOptions {
    return this.backendTls;
  }

  sessionClosed(session: Session, _reason: CloseReason): void {
    this.sessions.delete(session.id);
    if (this.sessions.size === 0) for (const w of this.closedWaiters.splice(0)) w();
  }

  sessionIdle(session: Session): void {
    if (this.shuttingDown && session.unsafeReason() === null) session.close({ side: 'proxy', reason: 'shutdown' });
  }

  // ---- listening -----------------------------------------------------------------------------------

  /** Starts the SQL listener; resolves with the bound address. */
  async listen(): Promise<{ host: string; port: number }> {
    const { host, port } = parseListenAddr(this.cfg.proxy.addr);
    const server = createServer({ noDelay: true, pauseOnConnect: false }, (socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.logger.error({ err }, 'listener error'));
    const bound = server.address();
    const result = typeof bound === 'object' && bound ? { host: bound.address, port: bound.port } : { host, port };
    this.logger.info({ addr: `${result.host}:${result.port}` }, 'listening for MySQL clients');
    await this.generation.hooks.lifecycle.ready.promise({ config: this.cfg });
    return result;
  }

  private accept(socket: Socket): void {
    socket.on('error', () => {}); // a reset before the session attaches its handlers must not crash
    if (this.shuttingDown) return void this.refuse(socket, ER_SERVER_SHUTDOWN, 'tiproxy is shutting down');
    const max = this.cfg.proxy['max-connections'];
    if (max > 0 && this.sessions.size >= max) {
      this.logger.warn({ client: `${socket.remoteAddress}:${socket.remotePort}`, max }, 'connection refused: max-connections reached');
      return void this.refuse(socket, ER_CON_COUNT_ERROR, `Too many connections (tiproxy max-connections is ${max})`);
    }
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    const session = new Session(id, socket, this);
    this.sessions.set(id, session);
    void session.run();
  }

  private refuse(socket: Socket, code: number, message: string): void {
    socket.end(framePackets(buildErrPayload(code, message, SQLSTATE_COMMUNICATION), 0).packet);
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  // ---- reload and shutdown -------------------------------------------------------------------------

  /**
   * Applies a new configuration through a new plugin generation. On any error the running
   * generation and config stay and the error is thrown to the caller (who logs it).
   */
  async reload(config: FrozenConfig): Promise<void> {
    const next = await this.makeGeneration(config);
    const previous = this.generation;
    this.cfg = config;
    this.loadTls(config);
    this.generation = next;
    next.users++;
    this.retired.add(previous);
    this.releaseGeneration(previous);
    await next.hooks.lifecycle.reload.promise({ config });
    this.logger.info({ generation: next.id, plugins: next.applied }, 'configuration reloaded');
  }

  /**
   * Graceful shutdown: stop accepting, close idle sessions now, let busy ones finish their command or
   * transaction, and close whatever is left after graceful-close-conn-timeout.
   */
  async shutdown(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    const wait = this.cfg.proxy['graceful-wait-before-shutdown'];
    this.logger.info({ sessions: this.sessions.size, gracefulWait: wait }, 'shutting down');
    if (wait > 0) await sleep(wait * 1000);
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    for (const s of [...this.sessions.values()]) this.sessionIdle(s);
    const timeout = this.cfg.proxy['graceful-close-conn-timeout'] * 1000;
    if (this.sessions.size > 0) {
      await Promise.race([new Promise<void>((r) => this.closedWaiters.push(r)), sleep(timeout)]);
    }
    for (const s of [...this.sessions.values()]) {
      s.close({ side: 'proxy', reason: 'shutdown-timeout' });
    }
    await this.generation.hooks.lifecycle.shutdown.promise({ config: this.cfg });
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
