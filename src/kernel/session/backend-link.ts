import type { Logger } from 'pino';
import type { BackendRecord } from '../backend/backend-registry.js';
import { BackendError, ProxyError } from '../errors.js';
import type { BackendInfo, Refusal, SessionInfo } from '../hooks/hook-types.js';
import type { PacketQueue } from '../net/packet-queue.js';
import type { Generation } from '../plugins/generation.js';
import {
  CLIENT_COMPRESS, CLIENT_CONNECT_ATTRS, CLIENT_CONNECT_WITH_DB, CLIENT_DEPRECATE_EOF, CLIENT_MULTI_RESULTS,
  CLIENT_PLUGIN_AUTH, CLIENT_PROTOCOL_41, CLIENT_PS_MULTI_RESULTS, CLIENT_SESSION_TRACK, CLIENT_SSL, DEFAULT_CHARSET_ID,
  ER_NOT_SUPPORTED_YET, EXTENDED_FORMAT_CAPABILITIES, ER_PROXY_NO_BACKEND, MYSQL_CLEAR_PASSWORD, PROXY_AUTH_SWITCH_TRIGGER, SQLSTATE_COMMUNICATION,
} from '../protocol/constants.js';
import { buildHandshakeResponse, type HandshakeResponse } from '../protocol/handshake-packets.js';
import { buildProxyV2 } from '../protocol/proxy-protocol.js';
import { PASSWORD_PLUGINS } from '../auth/auth-answers.js';
import { relayAuthentication, type RelayOptions, type RelayResult } from './auth-relay.js';
import { BackendConnection, BackendTlsRequiredError } from './backend-connection.js';
import type { ClientConnection } from './client-connection.js';
import type { SessionHost } from './session-host.js';
import type { SessionState } from './session-state.js';

/** Capabilities that change packet formats: client and backend must agree on them. */
const FORMAT_CAPABILITIES = CLIENT_PROTOCOL_41 | CLIENT_DEPRECATE_EOF | CLIENT_SESSION_TRACK | CLIENT_MULTI_RESULTS | CLIENT_PS_MULTI_RESULTS;

/** The pump's side of a backend connection: whose socket events it listens to. */
export interface BackendTraffic {
  /** Start pumping `conn`'s bytes to the client. */
  attach(conn: BackendConnection): void;
  /** Stop listening to `conn` (it is being replaced or closed). */
  detach(conn: BackendConnection): void;
  /** A new backend connection starts with no response in flight. */
  restart(): void;
}

/** What the link needs from its session. */
export interface LinkOwner extends SessionInfo {
  readonly logger: Logger;
  readonly host: SessionHost;
  readonly generation: Generation;
  readonly client: ClientConnection;
  readonly state: SessionState;
  /** Capabilities the client negotiated with the proxy. */
  readonly capabilities: number;
  /** MariaDB extended capabilities the client negotiated with the proxy. */
  readonly extendedCapabilities: number;
  readonly traffic: BackendTraffic;
  readonly isClosed: boolean;
}

export interface BackendLogin {
  conn: BackendConnection;
  capabilities: number;
  result: RelayResult;
}

/**
 * A session's link to its backend: choosing one (selectBackend taps), dialling it (dialOptions taps:
 * TLS, PROXY header), logging the client in through it (password-blind relay), and swapping it for
 * another one — the seam migration uses.
 */
export class BackendLink {
  conn: BackendConnection | null = null;
  /** Capabilities negotiated with the current backend. */
  capabilities = 0;

  constructor(private readonly owner: LinkOwner) {}

  /**
   * Picks a backend, dials it and relays the client's HandshakeResponse to it, trying the next backend
   * when one fails before the client saw anything of its login.
   */
  async login(handshake: HandshakeResponse, clientSeq: number, clientQueue: PacketQueue, timeoutMs: number): Promise<BackendLogin> {
    const owner = this.owner;
    const exclude = new Set<string>();
    for (;;) {
      const conn = await this.connect('new-session', exclude);
      let capabilities: number;
      let extendedCapabilities: number;
      try {
        capabilities = this.capabilitiesFor(conn);
        extendedCapabilities = this.extendedCapabilitiesFor(conn);
      } catch (err) {
        // The greeting mirrored another backend (a mixed fleet): this one cannot speak what the client
        // negotiated, another may.
        conn.destroy();
        owner.logger.warn({ backend: conn.backend.addr, err: (err as Error).message }, 'backend lacks what the client negotiated; trying another');
        exclude.add(conn.backend.addr);
        continue;
      }
      conn.channel.write(buildHandshakeResponse({
        ...handshake, capabilities, extendedCapabilities, authPlugin: PROXY_AUTH_SWITCH_TRIGGER, authResponse: Buffer.alloc(0),
      }), conn.nextSeq);
      let relayedToClient = false;
      try {
        const result = await relayAuthentication({
          queue: clientQueue,
          write: (p, s) => {
            relayedToClient = true;
            owner.client.writePacket(p, s);
          },
        }, conn.channel, { client: clientSeq }, this.relayOptions(conn, owner.user, timeoutMs));
        return { conn, capabilities, result };
      } catch (err) {
        conn.destroy();
        // The backend went away (shutting down, crashed) before the client saw anything of its login:
        // the client can still be logged in elsewhere, as if this backend had refused the dial.
        if (relayedToClient || owner.isClosed) throw err;
        owner.logger.warn({ backend: conn.backend.addr, err: (err as Error).message }, 'backend failed during login; trying another');
        exclude.add(conn.backend.addr);
      }
    }
  }

  /** The capabilities to negotiate with a backend for this session's client. */
  capabilitiesFor(conn: Pick<BackendConnection, 'backend' | 'greeting' | 'tls'>): number {
    const clientCaps = this.owner.capabilities;
    const backendOffers = conn.greeting.capabilities;
    const missing = clientCaps & FORMAT_CAPABILITIES & ~backendOffers;
    if (missing) {
      throw new BackendError(ER_PROXY_NO_BACKEND, `backend ${conn.backend.addr} lacks capabilities the client negotiated (0x${missing.toString(16)})`);
    }
    let caps = (clientCaps & backendOffers & ~CLIENT_COMPRESS & ~CLIENT_SSL) | CLIENT_PLUGIN_AUTH | CLIENT_PROTOCOL_41;
    if (conn.tls) caps |= CLIENT_SSL;
    if (!this.owner.database) caps &= ~CLIENT_CONNECT_WITH_DB;
    if (!(backendOffers & CLIENT_CONNECT_ATTRS)) caps &= ~CLIENT_CONNECT_ATTRS;
    return caps >>> 0;
  }

  /**
   * The MariaDB extended capabilities to negotiate with a backend: the client's, as far as the backend
   * offers them. A backend taking over a session (migration, failover) must offer those that change
   * what the client sends or parses (bulk execution, extended metadata); progress reports are optional.
   */
  extendedCapabilitiesFor(conn: Pick<BackendConnection, 'backend' | 'greeting'>): number {
    const clientExtended = this.owner.extendedCapabilities;
    const backendOffers = conn.greeting.extendedCapabilities ?? 0;
    const missing = clientExtended & EXTENDED_FORMAT_CAPABILITIES & ~backendOffers;
    if (missing) {
      throw new BackendError(ER_PROXY_NO_BACKEND, `backend ${conn.backend.addr} lacks MariaDB extended capabilities the client negotiated (0x${missing.toString(16)})`);
    }
    return (clientExtended & backendOffers) >>> 0;
  }

  /** Chooses and dials a backend; every failure excludes that backend and the next is tried. */
  async connect(reason: 'new-session' | 'migration', exclude = new Set<string>()): Promise<BackendConnection> {
    const failures: string[] = [];
    const attempts = Math.max(3, this.owner.host.backends.list().length);
    for (let attempt = 0; attempt < attempts; attempt++) {
      const backend = await this.select(attempt === 0 ? reason : 'retry', exclude);
      if (!backend) break;
      try {
        return await this.dial(backend);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.owner.logger.warn({ backend: backend.addr, err: message }, 'backend dial failed');
        // A TLS policy failure is the operator's configuration, not a flaky backend: say so directly.
        if (err instanceof BackendTlsRequiredError) throw err;
        failures.push(message);
        exclude.add(backend.addr);
      }
    }
    throw new ProxyError('proxy', ER_PROXY_NO_BACKEND,
      failures.length > 0 ? `no backend available (${failures.join('; ')})` : `no healthy backend available (${this.whyNoneUsable(exclude)})`,
      SQLSTATE_COMMUNICATION);
  }

  /** Each known backend and why it takes no session now, for the client's error and the log. */
  private whyNoneUsable(exclude: ReadonlySet<string>): string {
    const known = this.owner.host.backends.list();
    if (known.length === 0) return 'discovery knows no backend';
    return known.map((b) => `${b.addr}: ${!b.healthy ? `unhealthy${b.healthReason ? ` (${b.healthReason})` : ''}`
      : b.draining ? 'draining' : exclude.has(b.addr) ? 'already tried' : 'not chosen by the routing plugins'}`).join('; ');
  }

  /** Dials one backend with the plugins' dial options (TLS, PROXY header, timeout) and reads its greeting. */
  async dial(backend: BackendRecord): Promise<BackendConnection> {
    const { host, client } = this.owner;
    const config = host.config();
    const options = this.owner.generation.hooks.dialOptions.call(
      { tls: 'off', proxyProtocol: config.proxy['backend-proxy-protocol'] === 'v2', connectTimeoutMs: config.proxy['backend-connect-timeout'] * 1000 },
      { session: this.owner, backend },
    );
    const conn = await BackendConnection.dial({
      backend, options, tls: host.backendTlsOptions(), charset: DEFAULT_CHARSET_ID, directReads: true,
      // The SSLRequest must announce what the HandshakeResponse will carry.
      capabilities: (greeting) => this.capabilitiesFor({ backend, greeting, tls: true }),
      extendedCapabilities: (greeting) => this.extendedCapabilitiesFor({ backend, greeting }),
      ...(options.proxyProtocol ? {
        proxyHeader: buildProxyV2({
          sourceAddress: client.remoteAddress, sourcePort: client.remotePort,
          destinationAddress: client.localAddress, destinationPort: client.localPort,
        }),
      } : {}),
    });
    host.learnBackend(backend, conn.greeting.serverVersion, conn.greeting.capabilities, conn.greeting.extendedCapabilities ?? 0);
    return conn;
  }

  /** A backend for this session other than those in `exclude` (the one it leaves, unreachable ones), chosen by the selectBackend taps. */
  selectMigrationTarget(exclude: ReadonlySet<string>): Promise<BackendRecord | null> {
    return this.select('migration', exclude);
  }

  private async select(reason: 'new-session' | 'retry' | 'migration', exclude: ReadonlySet<string>): Promise<BackendRecord | null> {
    const registry = this.owner.host.backends;
    let candidates: readonly BackendInfo[] = registry.list();
    const chosen = await this.owner.generation.hooks.selectBackend.promise({
      session: this.owner, reason, exclude,
      get backends() {
        return candidates;
      },
      restrict(list) {
        candidates = list;
      },
    });
    if (chosen && 'refuse' in chosen) throw refusalError(chosen.refuse);
    if (chosen) return registry.get(chosen.addr) ?? null;
    // No selector plugin answered: any eligible backend, fewest connections first.
    let best: BackendInfo | null = null;
    for (const b of candidates) {
      if (!b.healthy || b.draining || exclude.has(b.addr)) continue;
      if (!best || b.connections < best.connections) best = b;
    }
    return best ? registry.get(best.addr) ?? null : null;
  }

  /** How a login is relayed; plugins may ask for the client's password (authChallenge), over TLS only. */
  relayOptions(conn: BackendConnection, user: string, timeoutMs: number): RelayOptions {
    const owner = this.owner;
    const hook = owner.generation.hooks.authChallenge;
    const clientTls = owner.client.tls;
    return {
      timeoutMs, backendAddr: conn.backend.addr, backendTls: conn.tls, user,
      askCleartext: (plugin) => clientTls && hook.taps.length > 0 && PASSWORD_PLUGINS.has(plugin)
        && (plugin !== MYSQL_CLEAR_PASSWORD || conn.tls)
        && hook.call({ session: owner, user, plugin, clientTls }) === 'cleartext',
    };
  }

  /** Makes `conn` the session's backend and starts pumping it. */
  attach(conn: BackendConnection): void {
    this.conn = conn;
    conn.backend.connections++;
    this.owner.traffic.attach(conn);
  }

  /** Lets go of the backend connection (the caller closes it); null when there was none. */
  detach(): BackendConnection | null {
    const conn = this.conn;
    if (!conn) return null;
    this.owner.traffic.detach(conn);
    conn.backend.connections--;
    this.conn = null;
    return conn;
  }

  /**
   * The migration's commit step, run inside its exclusive exchange (the session was at a safe point when
   * it began, and client commands are queued meanwhile): switch to `next`, logged in already, and
   * translate statement ids. Returns the old connection, detached; the caller decides how to close it.
   */
  adopt(next: BackendConnection, statementIds: ReadonlyMap<number, number>): BackendConnection {
    const state = this.owner.state;
    for (const [clientId, backendId] of statementIds) {
      const statement = state.statements.get(clientId);
      if (!statement) continue;
      statement.backendId = backendId;
      // Re-prepared on the new backend: it has not seen parameter types yet (the pump adds them).
      statement.typesSent = false;
    }
    state.idsTranslated = [...state.statements.values()].some((st) => st.backendId !== st.clientId);
    const previous = this.detach();
    if (!previous) throw new ProxyError('proxy', ER_NOT_SUPPORTED_YET, `session ${this.owner.id} has no backend to swap`);
    this.owner.traffic.restart();
    this.attach(next);
    this.owner.logger.info({ from: previous.backend.addr, to: next.backend.addr }, 'backend swapped');
    return previous;
  }
}

export function refusalError(r: Refusal): ProxyError {
  return new ProxyError('plugin', r.code, r.message, r.sqlState);
}
