import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { BackendError, ClientError, ProxyError, type CloseReason } from '../errors.js';
import type { AuthExchange, BackendInfo, TrackedSessionState } from '../hooks/hook-types.js';
import type { PacketChannel } from '../net/packet-channel.js';
import type { Generation } from '../plugins/generation.js';
import {
  CLIENT_COMPRESS, DEFAULT_CHARSET_ID, ER_HANDSHAKE_ERROR, ER_NOT_SUPPORTED_YET, ER_PROXY_BACKEND_HANDSHAKE, ER_PROXY_BACKEND_LOST, ER_PROXY_NO_BACKEND,
  ER_PROXY_SESSION_LOST, SQLSTATE_COMMUNICATION,
} from '../protocol/constants.js';
import { MalformedPacketError } from '../protocol/payload-reader.js';
import { buildErrPayload, parseOkPayload } from '../protocol/response-packets.js';
import { COM_QUIT_PACKET, type BackendConnection } from './backend-connection.js';
import { BackendLink, refusalError } from './backend-link.js';
import { ClientConnection } from './client-connection.js';
import { greetClient } from './client-login.js';
import { CommandPump, type InterceptingSession } from './command-pump.js';
import { InterceptedCommands } from './intercepted-commands.js';
import type { SessionHost } from './session-host.js';
import { SessionState, type Unsafe } from './session-state.js';

type Phase = 'handshake' | 'command' | 'closed';

/**
 * One client session. It coordinates its parts and owns what they share (who the client is, the
 * tracked state, the phase):
 *   client-login.ts        the proxy's greeting, client TLS, the HandshakeResponse, onHandshake;
 *   backend-link.ts        choosing, dialling and logging in to a backend, and swapping it (migration);
 *   command-pump.ts        the packet pump: bytes both ways, onCommand/onResult, safe points;
 *   intercepted-commands.ts the commands the kernel answers itself (KILL, COM_CHANGE_USER, the BEGIN move).
 * Closing — by the client, the backend, the proxy or a plugin — ends here, once.
 */
export class Session implements InterceptingSession {
  readonly createdAt = Date.now();
  readonly labels = new Map<string, string>();
  attributes: ReadonlyMap<string, string> = new Map();
  /** The last login/COM_CHANGE_USER exchange relayed (credential plugins derive what they can from it). */
  authExchange: AuthExchange | null = null;
  /** Character set the client asked for in its handshake (used again when logging in elsewhere). */
  charset = DEFAULT_CHARSET_ID;
  user = '';
  database = '';
  /** Capabilities the client negotiated with the proxy. */
  capabilities = 0;
  /** MariaDB extended capabilities the client negotiated with the proxy (0 for a MySQL client). */
  extendedCapabilities = 0;
  /**
   * The session's child logger, made on first use: most sessions never log at the configured level,
   * and a pino child (its bindings serialised) is a measurable part of a short session's set-up.
   */
  get logger(): Logger {
    if (this.sessionLogger === null) {
      this.loggerBoundTo = `${this.client.remoteAddress}:${this.client.remotePort}`;
      this.sessionLogger = this.host.logger.child({ conn: this.id, client: this.loggerBoundTo });
    }
    return this.sessionLogger;
  }

  /** Rebinds the logger to the client's current address (a PROXY v2 header named the real client). */
  set logger(logger: Logger) {
    this.sessionLogger = logger;
    this.loggerBoundTo = `${this.client.remoteAddress}:${this.client.remotePort}`;
  }

  /** The client address the logger names; null until the logger is first used. */
  loggerBoundTo: string | null = null;
  private sessionLogger: Logger | null = null;
  readonly state = new SessionState();
  readonly client: ClientConnection;
  readonly link: BackendLink;
  readonly pump: CommandPump;
  readonly interceptor: InterceptedCommands;
  generation: Generation;
  /** Id of the session whose KILL CONNECTION for this one went to our shared backend (0 = none). */
  killedBy = 0;
  /** Sequence id an ERR must carry if the handshake fails now (0 before the greeting, then after the client's last packet). */
  handshakeErrorSeq = 0;

  private phase: Phase = 'handshake';
  private handshakeTimer: NodeJS.Timeout | null = null;

  constructor(readonly id: number, socket: Socket, readonly host: SessionHost) {
    const config = host.config();
    this.client = new ClientConnection(socket, config.proxy['proxy-protocol'] === 'v2');
    this.generation = host.currentGeneration();
    host.pinGeneration(this.generation);
    this.link = new BackendLink(this);
    this.pump = new CommandPump(this);
    this.interceptor = new InterceptedCommands(this);
    this.client.sink = this.pump.onClientBytes;
    // Before the login (a bad PROXY header) the client is told why, as MariaDB tells it about a bad handshake.
    this.client.onProtocolError = (err) => this.close({ side: 'client', reason: 'protocol-error', detail: err.message },
      this.phase === 'handshake' ? new ClientError(ER_HANDSHAKE_ERROR, `Bad handshake: ${err.message}`, SQLSTATE_COMMUNICATION) : undefined,
      this.handshakeErrorSeq);
    socket.on('close', this.onClientClose);
    socket.on('error', this.onClientError);
  }

  // ---- SessionInfo -------------------------------------------------------------------------------

  get clientAddress(): string {
    return this.client.remoteAddress;
  }

  get clientPort(): number {
    return this.client.remotePort;
  }

  get tls(): boolean {
    return this.client.tls;
  }

  get backend(): BackendInfo | null {
    return this.link.conn?.backend ?? null;
  }

  get backendConnectionId(): number {
    return this.link.conn?.connectionId ?? 0;
  }

  get inTransaction(): boolean {
    return this.state.inTransaction;
  }

  get tracked(): TrackedSessionState {
    return this.state;
  }

  get isClosed(): boolean {
    return this.phase === 'closed';
  }

  /** The pump's side of the backend link (BackendLink's LinkOwner). */
  get traffic(): CommandPump {
    return this.pump;
  }

  /** The current backend connection (null before login and after close). */
  get backendConn(): BackendConnection | null {
    return this.link.conn;
  }

  /** Null when the backend could be swapped right now, else why not. */
  unsafeReason(): Unsafe {
    return this.pump.unsafeReason(this.phase === 'command');
  }

  // ---- start-up ------------------------------------------------------------------------------------

  async run(): Promise<void> {
    const config = this.host.config();
    this.handshakeTimer = setTimeout(() => {
      this.close({ side: 'client', reason: 'handshake-timeout' },
        new ClientError(ER_HANDSHAKE_ERROR, `handshake not completed within ${config.proxy['handshake-timeout']} s`), 2);
    }, config.proxy['handshake-timeout'] * 1000);
    this.handshakeTimer.unref();
    try {
      const connectHook = this.generation.hooks.connect;
      // taps, not isUsed(): that is true for the isolation interceptor every hook carries.
      if (connectHook.taps.length > 0) {
        const client = this.client;
        const refusal = await connectHook.promise({
          remoteAddress: client.remoteAddress, remotePort: client.remotePort, activeSessions: this.host.sessions.size - 1,
          // A getsockname() call: only for a tap that reads it.
          get localPort() {
            return client.localPort;
          },
        });
        if (refusal) throw refusalError(refusal);
      }
      const hello = await greetClient(this, this.pump.clientQueue);
      this.pump.restart();
      await this.loginBackend(hello.handshake, hello.seq + 1);
    } catch (err) {
      this.fail(err, this.handshakeErrorSeq);
    }
  }

  /** Logs the client in through a backend, then starts the pump. */
  private async loginBackend(handshake: Parameters<BackendLink['login']>[0], clientSeq: number): Promise<void> {
    const timeoutMs = this.host.config().proxy['handshake-timeout'] * 1000;
    const { conn, capabilities, result } = await this.link.login(handshake, clientSeq, this.pump.clientQueue, timeoutMs);
    // The client went away (or timed out) while the backend was finishing the login: nothing would
    // ever close this backend connection.
    if (!result.ok || this.isClosed) {
      conn.destroy();
      this.close({ side: 'client', reason: 'auth-failed', detail: `backend ${conn.backend.addr} refused the login` });
      return;
    }
    let status: number;
    try {
      status = parseOkPayload(result.payload, this.capabilities).status;
    } catch (err) {
      // Not attached yet: closing the session would leave this connection open.
      conn.destroy();
      throw new BackendError(ER_PROXY_BACKEND_HANDSHAKE, `backend ${conn.backend.addr} ended the login with a malformed OK: ${(err as Error).message}`,
        SQLSTATE_COMMUNICATION, { cause: err });
    }
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.state.applyStatus(status);
    this.link.capabilities = capabilities;
    this.authExchange = result.exchange ? { ...result.exchange, tls: this.client.tls } : null;
    if (this.capabilities & CLIENT_COMPRESS) this.client.enableCompression();
    this.phase = 'command';
    this.link.attach(conn);
    if (this.host.logger.isLevelEnabled('info')) {
      this.logger.info({ user: this.user, db: this.database, backend: conn.backend.addr, tls: this.client.tls,
        compressed: this.client.isCompressed }, 'session opened');
    }
    this.pump.start();
    this.host.sessionIdle(this);
  }

  // ---- what migration uses -------------------------------------------------------------------------

  /**
   * Replaces the backend connection at a safe point (between commands, outside a transaction, no
   * cursor, long data or LOAD DATA pending); `next` must be logged in already. Returns the old
   * connection, detached from the pump; the caller decides how to close it.
   */
  swapBackend(next: BackendConnection): BackendConnection {
    const unsafe = this.unsafeReason();
    if (unsafe) throw new ProxyError('proxy', ER_NOT_SUPPORTED_YET, `session ${this.id} is not at a safe point (${unsafe})`);
    return this.link.adopt(next, new Map());
  }

  /** A proxy-driven exchange on the backend connection (see CommandPump.exclusive). */
  exclusive<T>(conn: BackendConnection, work: (channel: PacketChannel) => Promise<T>): Promise<T> {
    return this.pump.exclusive(conn, work);
  }

  // ---- a backend that dies -------------------------------------------------------------------------

  /**
   * The backend went away under the session (kill -9, reset, shutdown) between packets. A command
   * waiting for its response gets an error (its effect is unknown, as with any lost connection). Then,
   * if the session was outside a transaction, it is re-established on another backend with the state
   * the proxy knows (failover) and the client carries on; otherwise, or if that fails, it is closed with
   * an error that says why (sent as the server itself does when it ends an idle connection).
   */
  backendLost(errorSeq: number): void {
    const dead = this.link.conn?.backend;
    if (!dead) return;
    const addr = dead.addr;
    const inTransaction = this.state.inTransaction;
    if (errorSeq >= 0) {
      const continues = inTransaction ? 'the transaction is lost and the connection closes' : 'the session continues on another backend if it can';
      this.client.writePacket(buildErrPayload(ER_PROXY_BACKEND_LOST,
        `Lost connection to backend ${addr} during this command (its effect is unknown); ${continues}`, SQLSTATE_COMMUNICATION), errorSeq & 0xff);
    }
    const stuck = inTransaction ? 'it was inside a transaction, which died with the backend'
      : this.state.localInfile ? 'a LOAD DATA LOCAL INFILE was in progress' : null;
    if (stuck) {
      this.close({ side: 'backend', reason: 'backend-lost', detail: `${addr} closed the connection; ${stuck}` },
        errorSeq >= 0 ? undefined : sessionLost(addr, stuck), 0);
      return;
    }
    this.pump.suspend();
    this.logger.info({ backend: addr }, 'backend lost; failing over');
    void this.host.failover(this, dead).then((outcome) => {
      if (this.isClosed) return;
      if (outcome.result === 'succeeded') {
        this.pump.release();
        this.host.sessionIdle(this);
        return;
      }
      const why = outcome.error ?? outcome.result;
      this.close({ side: 'backend', reason: 'backend-lost', detail: `${addr} closed the connection; failover ${outcome.result}: ${why}` },
        sessionLost(addr, why), 0);
    }, (err: unknown) => {
      this.close({ side: 'proxy', reason: 'backend-lost', detail: `failover crashed: ${(err as Error).message}` }, sessionLost(addr, (err as Error).message), 0);
    });
  }

  // ---- endings -------------------------------------------------------------------------------------

  private readonly onClientClose = (): void => {
    this.close({ side: 'client', reason: 'client-disconnected' });
  };

  private readonly onClientError = (err: Error): void => {
    this.close({ side: 'client', reason: 'client-error', detail: err.message });
  };

  /** Ends the session because of `err`, telling the client when the protocol state allows it. */
  fail(err: unknown, seq: number): void {
    if (this.phase === 'closed') return;
    const proxyErr = err instanceof ProxyError ? err
      : err instanceof MalformedPacketError ? new ClientError(ER_HANDSHAKE_ERROR, err.message)
        : new ProxyError('proxy', ER_PROXY_NO_BACKEND, err instanceof Error ? err.message : String(err));
    const reason = proxyErr.side === 'client' ? 'client-error' : proxyErr.side === 'plugin' ? 'plugin-refused'
      : proxyErr.code === ER_PROXY_NO_BACKEND ? 'no-backend' : `${proxyErr.side}-error`;
    this.close({ side: proxyErr.side, reason, detail: proxyErr.message }, proxyErr, seq);
  }

  /** Closes both sides once; sends `error` to the client first when given. */
  close(reason: CloseReason, error?: ProxyError, seq = 1): void {
    if (this.phase === 'closed') return;
    const wasCommand = this.phase === 'command';
    this.phase = 'closed';
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    if (error && this.client.writable) this.client.writePacket(buildErrPayload(error.code, error.message, error.sqlState), seq & 0xff);
    this.client.end();
    const conn = this.link.detach();
    if (conn) {
      // COM_QUIT spares the server an "aborted connection" when the backend is idle.
      if (wasCommand && this.pump.idle && !conn.closed) {
        conn.socket.end(COM_QUIT_PACKET);
        setTimeout(() => conn.destroy(), 1000).unref();
      } else conn.destroy();
    }
    // One shared error: a new Error per session captures a stack trace nobody reads.
    this.pump.clientQueue.fail(SESSION_CLOSED);
    const level = reason.side === 'client' && (reason.reason === 'client-quit' || reason.reason === 'client-disconnected') ? 'info' : 'warn';
    if (this.host.logger.isLevelEnabled(level)) this.logger[level]({ side: reason.side, reason: reason.reason, detail: reason.detail, user: this.user,
      backend: conn?.backend.addr, durationMs: Date.now() - this.createdAt }, 'session closed');
    this.host.releaseGeneration(this.generation);
    this.host.sessionClosed(this, reason);
    if (this.generation.hooks.close.taps.length > 0) this.generation.hooks.close.promise({ session: this, side: reason.side, reason: reason.reason, loggedIn: wasCommand, ...(reason.detail ? { detail: reason.detail } : {}) })
      .catch(() => {});
  }
}

/** What a login still waiting for a client packet gets when the session closes. */
const SESSION_CLOSED = new Error('session closed');

/** The error a session gets when its backend died and it could not be re-established elsewhere. */
function sessionLost(addr: string, why: string): ProxyError {
  return new BackendError(ER_PROXY_SESSION_LOST, `Backend ${addr} went away and this session cannot be re-established on another backend: ${why}`, SQLSTATE_COMMUNICATION);
}
