import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { BackendRecord } from '../backend/backend-registry.js';
import { BackendError, ClientError, ProxyError, type CloseReason } from '../errors.js';
import type { AuthExchange, TrackedSessionState, BackendInfo, ResultContext, CommandContext, CommandReply, Refusal, SessionInfo } from '../hooks/hook-types.js';
import { PacketChannel } from '../net/packet-channel.js';
import { PacketQueue } from '../net/packet-queue.js';
import type { Generation } from '../plugins/generation.js';
import {
  CLIENT_COMPRESS, CLIENT_CONNECT_ATTRS, CLIENT_CONNECT_WITH_DB, CLIENT_DEPRECATE_EOF, CLIENT_MULTI_RESULTS,
  CLIENT_PLUGIN_AUTH, CLIENT_PROTOCOL_41, CLIENT_PS_MULTI_RESULTS, CLIENT_SESSION_TRACK, CLIENT_SSL,
  COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID, COM_CHANGE_USER, COM_CONNECT, COM_CONNECT_OUT, COM_DAEMON,
  COM_DELAYED_INSERT, COM_INIT_DB, COM_PING, COM_PROCESS_KILL, COM_QUERY, COM_QUIT, COM_REGISTER_SLAVE,
  COM_RESET_CONNECTION, COM_SLEEP, COM_STMT_BULK_EXECUTE, COM_STMT_CLOSE, COM_STMT_EXECUTE, COM_STMT_FETCH,
  COM_STMT_PREPARE, COM_STMT_RESET, COM_STMT_SEND_LONG_DATA, COM_TABLE_DUMP, COM_TIME, COMMAND_NAMES,
  CR_SERVER_LOST, CURSOR_TYPE_READ_ONLY, DEFAULT_CHARSET_ID, ER_CONNECTION_KILLED, ER_HANDSHAKE_ERROR, ER_NOT_SUPPORTED_YET,
  ER_PROXY_NO_BACKEND, ER_SERVER_SHUTDOWN, ER_UNKNOWN_COM_ERROR, MYSQL_CLEAR_PASSWORD, MYSQL_NATIVE_PASSWORD,
  PROXY_AUTH_SWITCH_TRIGGER, PROXY_SUPPORTED_CAPABILITIES, SCRAMBLE_LENGTH, SERVER_STATUS_AUTOCOMMIT,
  SQLSTATE_COMMUNICATION,
} from '../protocol/constants.js';
import { CommandReader, FORWARD, INTERCEPT, PASS_THROUGH, type CommandAction } from '../protocol/command-reader.js';
import {
  buildChangeUser, buildGreeting, buildHandshakeResponse, isSslRequest, parseChangeUser, parseHandshakeResponse,
  type HandshakeResponse,
} from '../protocol/handshake-packets.js';
import { MalformedPacketError } from '../protocol/payload-reader.js';
import { framePackets } from '../protocol/payload-writer.js';
import { buildProxyV2 } from '../protocol/proxy-protocol.js';
import { buildErrPayload, buildOkPayload, parseOkPayload } from '../protocol/response-packets.js';
import { ResponseTracker, type ResponseListener } from '../protocol/response-tracker.js';
import { relayAuthentication, type RelayOptions } from './auth-relay.js';
import { PASSWORD_PLUGINS } from '../auth/auth-answers.js';
import { BackendConnection, BackendTlsRequiredError } from './backend-connection.js';
import { ClientConnection } from './client-connection.js';
import { formatKill, mayBeKill, parseKill } from './kill-statement.js';
import type { SessionHost } from './session-host.js';
import { BackendSqlRunner } from './backend-sql.js';
import { paramsBoundFlagOffset, SessionState } from './session-state.js';
import { capturesText, classifyStatement, preparedStatementName, StatementKind } from './statement-classifier.js';

/** Commands that would turn the connection into something the pump cannot follow. */
const UNSUPPORTED_COMMANDS = new Set([
  COM_SLEEP, COM_CONNECT, COM_TIME, COM_DELAYED_INSERT, COM_BINLOG_DUMP, COM_TABLE_DUMP, COM_CONNECT_OUT,
  COM_REGISTER_SLAVE, COM_DAEMON, COM_BINLOG_DUMP_GTID, COM_STMT_BULK_EXECUTE,
]);
/** Commands whose first four payload bytes after the command byte are a statement id. */
const STATEMENT_ID_COMMANDS = new Set([COM_STMT_EXECUTE, COM_STMT_SEND_LONG_DATA, COM_STMT_CLOSE, COM_STMT_RESET, COM_STMT_FETCH]);
/** Commands the server does not answer. */
const NO_RESPONSE = new Set([COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA, COM_QUIT]);
/** Capabilities that change packet formats: client and backend must agree on them. */
const FORMAT_CAPABILITIES = CLIENT_PROTOCOL_41 | CLIENT_DEPRECATE_EOF | CLIENT_SESSION_TRACK | CLIENT_MULTI_RESULTS | CLIENT_PS_MULTI_RESULTS;
/** KILL statements are short; longer COM_QUERY packets are never inspected for it. */
const KILL_INSPECT_MAX = 512;

type Phase = 'handshake' | 'command' | 'closed';

/**
 * One client session: handshake, backend login, then the packet pump. The pump forwards raw chunks in
 * both directions and follows just enough of the protocol (command reader, response tracker, session
 * state) to know when the session is at a safe point. The backend connection is swappable.
 */
export class Session implements ResponseListener, SessionInfo {
  readonly createdAt = Date.now();
  readonly labels = new Map<string, string>();
  attributes: ReadonlyMap<string, string> = new Map();
  /** The last login/COM_CHANGE_USER exchange relayed (credential plugins derive what they can from it). */
  authExchange: AuthExchange | null = null;
  /** Character set the client asked for in its handshake (used again when logging in elsewhere). */
  charset = DEFAULT_CHARSET_ID;
  user = '';
  database = '';
  capabilities = 0;
  /** Rebound once if a PROXY v2 header names the real client (see greetAndReadResponse). */
  logger: Logger;
  readonly state = new SessionState();
  readonly client: ClientConnection;
  backendConn: BackendConnection | null = null;
  generation: Generation;

  private phase: Phase = 'handshake';
  /** Client bytes go to `clientQueue` (proxy-driven exchanges) instead of the pump while set. */
  private clientExclusive = true;
  private readonly clientQueue = new PacketQueue();
  private readonly reader: CommandReader;
  private readonly tracker: ResponseTracker;
  /** An asynchronous exchange (COM_CHANGE_USER, migration) is running. */
  private busy = false;
  private pendingDatabase = '';
  /** What the COM_QUERY in flight is, for the state the server does not report. */
  private queryKind = StatementKind.Other;
  private queryText = '';
  private fetchStatementId = 0;
  private commandStartedAt = 0;
  /** Refilled for each onResult call, so tapping it allocates nothing per command. */
  private resultContext: { -readonly [K in keyof ResultContext]: ResultContext[K] } | null = null;
  /** Capabilities negotiated with the current backend. */
  backendCapabilities = 0;
  private handshakeTimer: NodeJS.Timeout | null = null;
  /** A BEGIN arrived inside a transaction while a move is pending: commit, move, then begin (DESIGN §5). */
  private movingOnBegin = false;
  /** Sequence id an ERR must carry if the handshake fails now (0 before the greeting, then after the client's last packet). */
  private handshakeErrorSeq = 0;
  /** Id of the session whose KILL CONNECTION for this one went to our shared backend (0 = none). */
  killedBy = 0;
  /** The session this one just asked the backend to KILL CONNECTION; cleared when the KILL's reply arrives. */
  private killTarget: Session | null = null;

  constructor(readonly id: number, socket: import('node:net').Socket, private readonly host: SessionHost) {
    const config = host.config();
    this.client = new ClientConnection(socket, config.proxy['proxy-protocol'] === 'v2');
    this.generation = host.currentGeneration();
    host.pinGeneration(this.generation);
    this.logger = host.logger.child({ conn: id, client: `${this.client.remoteAddress}:${this.client.remotePort}` });
    this.reader = new CommandReader(this);
    this.tracker = new ResponseTracker(this);
    this.client.sink = this.onClientBytes;
    this.client.onProtocolError = (err) => this.close({ side: 'client', reason: 'protocol-error', detail: err.message });
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
    return this.backendConn?.backend ?? null;
  }

  get backendConnectionId(): number {
    return this.backendConn?.connectionId ?? 0;
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

  /** Null when the backend could be swapped right now, else why not. */
  unsafeReason(): ReturnType<SessionState['unsafeReason']> {
    // While a BEGIN is held to move the session first, the paused reader is not a command in flight.
    if ((!this.reader.atPacketBoundary && !this.movingOnBegin) || this.tracker.midPacket) return 'command-in-flight';
    return this.state.unsafeReason(this.tracker.pending, this.busy || this.phase !== 'command');
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
      const refusal = await this.generation.hooks.connect.promise({
        remoteAddress: this.client.remoteAddress, remotePort: this.client.remotePort, localPort: this.client.localPort,
        activeSessions: this.host.sessions.size - 1,
      });
      if (refusal) throw refusalError(refusal);
      const response = await this.greetAndReadResponse();
      await this.loginBackend(response.handshake, response.seq + 1);
    } catch (err) {
      this.fail(err, this.handshakeErrorSeq);
    }
  }

  private async greetAndReadResponse(): Promise<{ handshake: HandshakeResponse; seq: number }> {
    const config = this.host.config();
    const announced = await this.host.announcedServer();
    const tlsContext = this.host.serverTlsContext();
    const options = this.generation.hooks.greeting.call({
      serverVersion: announced.version,
      capabilities: (announced.capabilities & PROXY_SUPPORTED_CAPABILITIES) | (config.proxy['enable-compression'] ? CLIENT_COMPRESS : 0),
      authPlugin: MYSQL_NATIVE_PASSWORD,
      offerTls: tlsContext !== null,
    });
    const offered = (options.capabilities | (options.offerTls && tlsContext ? CLIENT_SSL : 0)) >>> 0;
    this.client.writePacket(buildGreeting({
      protocolVersion: 10, serverVersion: options.serverVersion, connectionId: this.id, salt: makeSalt(),
      capabilities: offered, charset: DEFAULT_CHARSET_ID, status: SERVER_STATUS_AUTOCOMMIT, authPlugin: options.authPlugin,
    }), 0);
    const timeoutMs = config.proxy['handshake-timeout'] * 1000;
    this.handshakeErrorSeq = 1;
    let packet = await this.clientQueue.read(timeoutMs, 'handshake response');
    this.handshakeErrorSeq = packet.seq + 1;
    // An inbound PROXY v2 header came ahead of this packet: from here on, log under the address it named.
    const client = `${this.client.remoteAddress}:${this.client.remotePort}`;
    if (this.logger.bindings().client !== client) this.logger = this.host.logger.child({ conn: this.id, client });
    if (isSslRequest(packet.payload)) {
      if (!(offered & CLIENT_SSL) || !tlsContext) throw new ClientError(ER_HANDSHAKE_ERROR, 'client requested TLS, which this proxy does not offer');
      // The ClientHello may already sit in the queue behind the SSLRequest: hand it to the TLS layer.
      try {
        await this.client.startTls(tlsContext, this.host.serverTlsRequestsCert(), timeoutMs, this.clientQueue.drain());
      } catch (err) {
        // The client's TLS (version, ciphers, certificate) failed: its side, not a backend problem.
        throw new ClientError(ER_HANDSHAKE_ERROR, `TLS handshake with the client failed: ${(err as Error).message}`, undefined, { cause: err });
      }
      packet = await this.clientQueue.read(timeoutMs, 'handshake response');
      this.handshakeErrorSeq = packet.seq + 1;
    }
    let handshake: HandshakeResponse;
    try {
      handshake = parseHandshakeResponse(packet.payload);
    } catch (err) {
      throw new ClientError(ER_HANDSHAKE_ERROR, `bad handshake: ${(err as Error).message}`, undefined, { cause: err });
    }
    if (!(handshake.capabilities & CLIENT_PLUGIN_AUTH)) {
      throw new ClientError(ER_HANDSHAKE_ERROR, 'client does not support pluggable authentication (CLIENT_PLUGIN_AUTH), which tiproxy needs');
    }
    handshake.capabilities = (handshake.capabilities & offered) >>> 0;
    this.capabilities = handshake.capabilities;
    this.charset = handshake.charset;
    this.user = handshake.user;
    this.database = handshake.database;
    this.attributes = new Map(handshake.attributes);
    this.tracker.setCapabilities(this.capabilities);
    const refusal = await this.generation.hooks.onHandshake.promise({
      session: this, user: handshake.user, database: handshake.database, authPlugin: handshake.authPlugin,
      capabilities: handshake.capabilities,
    });
    if (refusal) throw refusalError(refusal);
    return { handshake, seq: packet.seq };
  }

  /** Picks a backend, dials it (trying others on failure) and relays the client's login to it. */
  private async loginBackend(handshake: HandshakeResponse, clientSeq: number): Promise<void> {
    const timeoutMs = this.host.config().proxy['handshake-timeout'] * 1000;
    const exclude = new Set<string>();
    let conn: BackendConnection;
    let backendCaps: number;
    let result;
    for (;;) {
      conn = await this.connectBackend('new-session', exclude);
      backendCaps = this.backendCapabilitiesFor(conn);
      conn.channel.write(buildHandshakeResponse({
        ...handshake, capabilities: backendCaps, authPlugin: PROXY_AUTH_SWITCH_TRIGGER, authResponse: Buffer.alloc(0),
      }), conn.nextSeq);
      let relayedToClient = false;
      try {
        result = await relayAuthentication({
          queue: this.clientQueue,
          write: (p, s) => {
            relayedToClient = true;
            this.client.writePacket(p, s);
          },
        }, conn.channel, { client: clientSeq }, this.relayOptions(conn, this.user, timeoutMs));
        break;
      } catch (err) {
        conn.destroy();
        // The backend went away (shutting down, crashed) before the client saw anything of its login:
        // the client can still be logged in elsewhere, as if this backend had refused the dial.
        if (relayedToClient || this.phase === 'closed') throw err;
        this.logger.warn({ backend: conn.backend.addr, err: (err as Error).message }, 'backend failed during login; trying another');
        exclude.add(conn.backend.addr);
      }
    }
    if (!result.ok) {
      conn.destroy();
      this.close({ side: 'client', reason: 'auth-failed', detail: `backend ${conn.backend.addr} refused the login` });
      return;
    }
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.state.applyStatus(parseOkPayload(result.payload, this.capabilities).status);
    this.backendCapabilities = backendCaps;
    this.authExchange = result.exchange ? { ...result.exchange, tls: this.client.tls } : null;
    if (this.capabilities & CLIENT_COMPRESS) this.client.enableCompression();
    this.phase = 'command';
    this.attachBackend(conn);
    this.clientExclusive = false;
    const early = this.clientQueue.drain();
    this.logger.info({ user: this.user, db: this.database, backend: conn.backend.addr, tls: this.client.tls,
      compressed: this.client.isCompressed }, 'session opened');
    if (early.length > 0) this.reader.feed(early);
    this.host.sessionIdle(this);
  }

  backendCapabilitiesFor(conn: Pick<BackendConnection, 'backend' | 'greeting' | 'tls'>): number {
    const backendOffers = conn.greeting.capabilities;
    const missing = this.capabilities & FORMAT_CAPABILITIES & ~backendOffers;
    if (missing) {
      throw new BackendError(ER_PROXY_NO_BACKEND, `backend ${conn.backend.addr} lacks capabilities the client negotiated (0x${missing.toString(16)})`);
    }
    let caps = (this.capabilities & backendOffers & ~CLIENT_COMPRESS & ~CLIENT_SSL) | CLIENT_PLUGIN_AUTH | CLIENT_PROTOCOL_41;
    if (conn.tls) caps |= CLIENT_SSL;
    if (!this.database) caps &= ~CLIENT_CONNECT_WITH_DB;
    if (!(backendOffers & CLIENT_CONNECT_ATTRS)) caps &= ~CLIENT_CONNECT_ATTRS;
    return caps >>> 0;
  }

  /** Chooses and dials a backend; every failure excludes that backend and the next is tried. */
  async connectBackend(reason: 'new-session' | 'migration', exclude = new Set<string>()): Promise<BackendConnection> {
    const failures: string[] = [];
    const attempts = Math.max(3, this.host.backends.list().length);
    for (let attempt = 0; attempt < attempts; attempt++) {
      const backend = await this.selectBackend(attempt === 0 ? reason : 'retry', exclude);
      if (!backend) break;
      try {
        return await this.dialBackend(backend);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.logger.warn({ backend: backend.addr, err: message }, 'backend dial failed');
        // A TLS policy failure is the operator's configuration, not a flaky backend: say so directly.
        if (err instanceof BackendTlsRequiredError) throw err;
        failures.push(message);
        exclude.add(backend.addr);
      }
    }
    throw new ProxyError('proxy', ER_PROXY_NO_BACKEND,
      failures.length > 0 ? `no backend available (${failures.join('; ')})` : 'no healthy backend available', SQLSTATE_COMMUNICATION);
  }

  /** Dials one backend with the plugins' dial options (TLS, PROXY header, timeout) and reads its greeting. */
  async dialBackend(backend: BackendRecord): Promise<BackendConnection> {
    const config = this.host.config();
    const options = this.generation.hooks.dialOptions.call(
      { tls: 'off', proxyProtocol: config.proxy['backend-proxy-protocol'] === 'v2', connectTimeoutMs: config.proxy['backend-connect-timeout'] * 1000 },
      { session: this, backend },
    );
    const conn = await BackendConnection.dial({
      backend, options, tls: this.host.backendTlsOptions(), charset: DEFAULT_CHARSET_ID,
      // The SSLRequest must announce what the HandshakeResponse will carry.
      capabilities: (greeting) => this.backendCapabilitiesFor({ backend, greeting, tls: true }),
      ...(options.proxyProtocol ? {
        proxyHeader: buildProxyV2({
          sourceAddress: this.client.remoteAddress, sourcePort: this.client.remotePort,
          destinationAddress: this.client.localAddress, destinationPort: this.client.localPort,
        }),
      } : {}),
    });
    this.host.learnBackend(backend, conn.greeting.serverVersion, conn.greeting.capabilities);
    return conn;
  }

  /** A backend for this session other than `leaving`, chosen by the selectBackend taps. */
  selectMigrationTarget(leaving: string): Promise<BackendRecord | null> {
    return this.selectBackend('migration', new Set([leaving]));
  }

  private async selectBackend(reason: 'new-session' | 'retry' | 'migration', exclude: ReadonlySet<string>): Promise<BackendRecord | null> {
    let candidates: readonly BackendInfo[] = this.host.backends.list();
    const chosen = await this.generation.hooks.selectBackend.promise({
      session: this, reason, exclude,
      get backends() {
        return candidates;
      },
      restrict(list) {
        candidates = list;
      },
    });
    if (chosen && 'refuse' in chosen) throw refusalError(chosen.refuse);
    if (chosen) return this.host.backends.get(chosen.addr) ?? null;
    // No selector plugin answered: any eligible backend, fewest connections first.
    let best: BackendInfo | null = null;
    for (const b of candidates) {
      if (!b.healthy || b.draining || exclude.has(b.addr)) continue;
      if (!best || b.connections < best.connections) best = b;
    }
    return best ? this.host.backends.get(best.addr) ?? null : null;
  }

  // ---- the pump ------------------------------------------------------------------------------------

  private attachBackend(conn: BackendConnection): void {
    const leftover = conn.channel.detach();
    this.backendConn = conn;
    conn.backend.connections++;
    conn.socket.on('data', this.onBackendData);
    conn.socket.on('close', this.onBackendClose);
    conn.socket.on('error', this.onBackendError);
    if (leftover.length > 0) this.onBackendData(leftover);
  }

  /**
   * Replaces the backend connection — the seam migration uses. Only at a safe point (between commands,
   * outside a transaction, no cursor, long data or LOAD DATA pending); `next` must be logged in already.
   * Returns the old connection, detached from the pump; the caller decides how to close it.
   */
  swapBackend(next: BackendConnection): BackendConnection {
    const unsafe = this.unsafeReason();
    if (unsafe) throw new ProxyError('proxy', ER_NOT_SUPPORTED_YET, `session ${this.id} is not at a safe point (${unsafe})`);
    return this.replaceBackend(next);
  }

  /**
   * The migration's commit step, run inside its exclusive exchange (the session was at a safe point when
   * it began, and client commands are queued meanwhile): switch to `next` and translate statement ids.
   */
  adoptBackend(next: BackendConnection, statementIds: ReadonlyMap<number, number>): BackendConnection {
    for (const [clientId, backendId] of statementIds) {
      const statement = this.state.statements.get(clientId);
      if (!statement) continue;
      statement.backendId = backendId;
      // Re-prepared on the new backend: it has not seen parameter types yet (executeWithParamTypes adds them).
      statement.typesSent = false;
    }
    this.state.idsTranslated = [...this.state.statements.values()].some((st) => st.backendId !== st.clientId);
    return this.replaceBackend(next);
  }

  private replaceBackend(next: BackendConnection): BackendConnection {
    const previous = this.detachBackend();
    if (!previous) throw new ProxyError('proxy', ER_NOT_SUPPORTED_YET, `session ${this.id} has no backend to swap`);
    this.tracker.reset();
    this.tracker.setCapabilities(this.capabilities);
    this.attachBackend(next);
    this.logger.info({ from: previous.backend.addr, to: next.backend.addr }, 'backend swapped');
    return previous;
  }

  private detachBackend(): BackendConnection | null {
    const conn = this.backendConn;
    if (!conn) return null;
    conn.socket.off('data', this.onBackendData);
    conn.socket.off('close', this.onBackendClose);
    conn.socket.off('error', this.onBackendError);
    conn.backend.connections--;
    this.backendConn = null;
    return conn;
  }

  private readonly onClientBytes = (bytes: Buffer): void => {
    if (this.clientExclusive) {
      this.clientQueue.push(bytes);
      return;
    }
    // One chunk can become several writes (ranges around an intercepted command): one syscall for all.
    const socket = this.backendConn?.socket;
    socket?.cork();
    this.reader.feed(bytes);
    socket?.uncork();
  };

  private readonly onBackendData = (chunk: Buffer): void => {
    if (!this.client.write(chunk)) this.throttle(this.backendConn!.socket, this.client.socket);
    this.tracker.scan(chunk);
  };

  /** Backpressure: stop reading `source` until `sink` drains. */
  private throttle(source: import('node:stream').Duplex, sink: import('node:stream').Writable): void {
    if (source.isPaused()) return;
    source.pause();
    sink.once('drain', () => source.resume());
  }

  forward(bytes: Buffer): void {
    const conn = this.backendConn;
    if (!conn) return;
    if (!conn.socket.write(bytes)) this.throttle(this.client.socket, conn.socket);
  }

  commandAction(buf: Buffer, off: number, avail: number, length: number): CommandAction {
    const command = buf[off]!;
    if (this.generation.commandTapped[command]) return INTERCEPT;
    switch (command) {
      case COM_QUERY:
        if (length <= KILL_INSPECT_MAX && mayBeKill(buf, off + 1, off + avail)) return INTERCEPT;
        // A session asked to move that never leaves its transaction moves when it starts the next one.
        if (this.state.inTransaction && classifyStatement(buf, off + 1, off + avail) === StatementKind.Begin && this.host.migrationPending(this)) {
          return INTERCEPT;
        }
        // SET TRANSACTION and PREPARE longer than the prefix are captured whole so their text can be replayed.
        if (length > avail && capturesText(classifyStatement(buf, off + 1, off + avail))) return INTERCEPT;
        break;
      case COM_STMT_PREPARE:
      case COM_QUIT:
      case COM_CHANGE_USER:
      case COM_PROCESS_KILL:
        return INTERCEPT;
      case COM_STMT_EXECUTE:
      case COM_STMT_SEND_LONG_DATA:
      case COM_STMT_CLOSE:
      case COM_STMT_RESET:
      case COM_STMT_FETCH:
        if (command === COM_STMT_EXECUTE && avail >= 5 && this.state.statements.size > 0 && this.executeNeedsWholePacket(buf, off, avail)) {
          return INTERCEPT;
        }
        if (this.state.idsTranslated && avail >= 5) {
          // Statements were re-prepared on this backend under other ids: rewrite the id in place
          // (the reader guarantees the first bytes are contiguous in `buf`), after the bookkeeping
          // has recorded the client's id.
          this.noteCommand(command, buf, off, avail, length);
          buf.writeUInt32LE(this.state.backendIdFor(buf.readUInt32LE(off + 1)), off + 1);
          return FORWARD;
        }
        break;
      case COM_PING:
        if (this.host.shuttingDown) return INTERCEPT;
        break;
      case COM_INIT_DB:
        // A database name longer than the prefix shown here is captured whole, so the session learns it.
        if (length > avail) return INTERCEPT;
        break;
      default:
        if (UNSUPPORTED_COMMANDS.has(command)) return INTERCEPT;
    }
    this.noteCommand(command, buf, off, avail, length);
    return FORWARD;
  }

  /** Session-state bookkeeping for a command about to reach the backend. */
  private noteCommand(command: number, buf: Buffer, off: number, avail: number, length: number): void {
    switch (command) {
      case COM_QUERY:
        this.queryKind = classifyStatement(buf, off + 1, off + avail);
        if (capturesText(this.queryKind)) this.queryText = buf.toString('utf8', off + 1, off + Math.min(avail, length));
        break;
      case COM_STMT_EXECUTE:
        if (avail >= 6) this.state.executeSent(buf.readUInt32LE(off + 1), (buf[off + 5]! & CURSOR_TYPE_READ_ONLY) !== 0);
        break;
      case COM_STMT_SEND_LONG_DATA:
        if (avail >= 5) this.state.longDataSent(buf.readUInt32LE(off + 1));
        return;
      case COM_STMT_CLOSE:
        if (avail >= 5) this.state.statementClosed(buf.readUInt32LE(off + 1));
        return;
      case COM_STMT_RESET:
        if (avail >= 5) this.state.statementReset(buf.readUInt32LE(off + 1));
        break;
      case COM_STMT_FETCH:
        if (avail >= 5) this.fetchStatementId = buf.readUInt32LE(off + 1);
        break;
      case COM_INIT_DB:
        this.pendingDatabase = length < avail + 1 ? buf.toString('utf8', off + 1, off + avail) : '';
        break;
    }
    if (NO_RESPONSE.has(command)) return;
    if (this.generation.resultTapped) this.commandStartedAt = performance.now();
    this.tracker.expect(command);
  }

  onInterceptedCommand(payload: Buffer, seq: number): boolean | typeof PASS_THROUGH {
    const command = payload[0]!;
    if (this.generation.commandTapped[command]) {
      const reply = this.runCommandHook(command, payload);
      if (reply && 'hold' in reply) {
        void this.awaitHold(reply.hold, payload, seq);
        return false;
      }
      if (reply) return this.answerCommand(reply, seq);
    }
    return this.handleCommand(payload, seq);
  }

  /** Sends a plugin's ERR/OK answer instead of forwarding the command. */
  private answerCommand(reply: Exclude<CommandReply, { hold: unknown }>, seq: number): true {
    if ('error' in reply) this.replyError(seq, reply.error.code, reply.error.message, reply.error.sqlState);
    else this.client.writePacket(buildOkPayload(this.state.status, { affectedRows: reply.ok.affectedRows ?? 0, info: reply.ok.info ?? '' }), seq + 1);
    return true;
  }

  /** A plugin held the command (queueing): reading from the client waits until it decides. */
  private async awaitHold(hold: Promise<CommandReply | undefined>, payload: Buffer, seq: number): Promise<void> {
    // The payload may be a view into a socket chunk; keep our own copy while we wait.
    const own = Buffer.from(payload);
    let reply: CommandReply | undefined;
    try {
      reply = await hold;
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'a plugin hold failed; the command goes through');
    }
    if (this.phase === 'closed') return;
    if (reply && 'hold' in reply) reply = undefined;
    if (reply) this.answerCommand(reply, seq);
    else {
      // No reader to pass bytes on for us after a hold: send the (possibly id-translated) copy ourselves.
      const verdict = this.handleCommand(own, seq);
      if (verdict === PASS_THROUGH) this.forward(framePackets(own, seq).packet);
      else if (!verdict) return;
    }
    this.reader.resume();
  }

  /** The kernel's own handling of an intercepted command; false when it continues asynchronously. */
  private handleCommand(payload: Buffer, seq: number): boolean | typeof PASS_THROUGH {
    const command = payload[0]!;
    switch (command) {
      case COM_QUIT:
        this.close({ side: 'client', reason: 'client-quit' });
        return false;
      case COM_CHANGE_USER:
        void this.changeUser(payload, seq);
        return false;
      case COM_PING:
        if (this.host.shuttingDown) {
          this.replyError(seq, ER_SERVER_SHUTDOWN, 'tiproxy is shutting down', SQLSTATE_COMMUNICATION);
          return true;
        }
        break;
      case COM_QUERY:
        if (this.state.inTransaction && classifyStatement(payload, 1, payload.length) === StatementKind.Begin && this.host.migrationPending(this)) {
          void this.commitMoveAndBegin(payload, seq);
          return false;
        }
        if (this.interceptKill(payload, seq)) return true;
        break;
      case COM_PROCESS_KILL:
        if (this.interceptKill(payload, seq)) return true;
        break;
      case COM_STMT_PREPARE:
        this.state.prepareSent(Buffer.from(payload.subarray(1)));
        break;
      case COM_STMT_EXECUTE: {
        const withTypes = this.executeWithParamTypes(payload);
        if (withTypes) {
          this.forwardCommand(withTypes, seq);
          return true;
        }
        break;
      }
      default:
        if (UNSUPPORTED_COMMANDS.has(command)) {
          this.replyError(seq, ER_UNKNOWN_COM_ERROR, `${COMMAND_NAMES[command] ?? `command 0x${command.toString(16)}`} is not supported through tiproxy`);
          return true;
        }
    }
    // Unchanged: bookkeeping (and statement-id translation, in place), then the original bytes go on.
    this.noteForwarded(payload);
    return PASS_THROUGH;
  }

  /**
   * Parameter types of prepared statements (see PreparedStatement.paramTypes). From the first bytes of a
   * COM_STMT_EXECUTE: records the types when the client sends them; true when the whole packet is needed
   * — to add the types the client left out (the statement was re-prepared by a migration and this backend
   * never got them: without them it answers 1210 "Incorrect arguments to mysqld_stmt_execute"), or to
   * read types that lie beyond the prefix.
   */
  private executeNeedsWholePacket(buf: Buffer, off: number, avail: number): boolean {
    const statement = this.state.statements.get(buf.readUInt32LE(off + 1));
    if (!statement || statement.params === 0) return false;
    const flagAt = paramsBoundFlagOffset(statement.params);
    if (flagAt >= avail) return true;
    if (buf[off + flagAt] === 1) {
      const end = flagAt + 1 + 2 * statement.params;
      if (end > avail) return true;
      this.state.paramTypesSent(statement, buf, off + flagAt + 1, off + end);
      return false;
    }
    return !statement.typesSent && statement.paramTypes !== null;
  }

  /** The whole-packet side of executeNeedsWholePacket: the packet with the types added, or null to send it unchanged. */
  private executeWithParamTypes(payload: Buffer): Buffer | null {
    if (payload.length < 5) return null;
    const statement = this.state.statements.get(payload.readUInt32LE(1));
    if (!statement || statement.params === 0) return null;
    const flagAt = paramsBoundFlagOffset(statement.params);
    if (flagAt >= payload.length) return null;
    if (payload[flagAt] === 1) {
      const end = flagAt + 1 + 2 * statement.params;
      if (end <= payload.length) this.state.paramTypesSent(statement, payload, flagAt + 1, end);
      return null;
    }
    const types = statement.paramTypes;
    if (statement.typesSent || types === null) return null;
    statement.typesSent = true;
    const out = Buffer.allocUnsafe(payload.length + types.length);
    payload.copy(out, 0, 0, flagAt);
    out[flagAt] = 1;
    types.copy(out, flagAt + 1);
    payload.copy(out, flagAt + 1 + types.length, flagAt + 1);
    return out;
  }

  private runCommandHook(command: number, payload: Buffer): CommandReply | undefined {
    let sql: string | undefined;
    const ctx: CommandContext = {
      session: this, command, payload,
      get sql() {
        sql ??= command === COM_QUERY || command === COM_STMT_PREPARE ? payload.toString('utf8', 1) : '';
        return sql;
      },
    };
    return this.generation.hooks.onCommand.get(command)?.call(ctx);
  }

  private forwardCommand(payload: Buffer, seq: number): void {
    this.noteForwarded(payload);
    this.forward(framePackets(payload, seq).packet);
  }

  /** Bookkeeping for a whole command about to reach the backend, then statement-id translation in place. */
  private noteForwarded(payload: Buffer): void {
    const command = payload[0]!;
    this.noteCommand(command, payload, 0, payload.length, payload.length);
    if (this.state.idsTranslated && STATEMENT_ID_COMMANDS.has(command) && payload.length >= 5) {
      payload.writeUInt32LE(this.state.backendIdFor(payload.readUInt32LE(1)), 1);
    }
  }

  /**
   * BEGIN inside a transaction commits it implicitly anyway: do that COMMIT on the old backend, let the
   * pending move happen now that the session is outside a transaction, then run the BEGIN wherever the
   * session is. A failing COMMIT is the BEGIN's answer, exactly as the server would give it.
   */
  private async commitMoveAndBegin(payload: Buffer, seq: number): Promise<void> {
    const begin = Buffer.from(payload);
    const conn = this.backendConn;
    try {
      if (!conn) return;
      const timeoutMs = this.host.config().proxy['backend-connect-timeout'] * 1000 + 10_000;
      try {
        const status = await this.exclusive(conn, async (channel) =>
          (await new BackendSqlRunner(conn.backend.addr, channel, this.backendCapabilities, timeoutMs).query('COMMIT')).status);
        this.state.applyStatus(status);
      } catch (err) {
        if (this.phase === 'closed') return;
        const e = err instanceof ProxyError ? err : new BackendError(CR_SERVER_LOST, (err as Error).message);
        this.replyError(seq, e.code, e.message, e.sqlState);
        return;
      }
      this.movingOnBegin = true;
      try {
        await this.host.migrateNow(this);
      } finally {
        this.movingOnBegin = false;
      }
      if (this.phase !== 'closed') this.forwardCommand(begin, seq);
    } finally {
      this.reader.resume();
    }
  }

  /**
   * KILL with a proxy connection id: on the same backend it becomes a KILL of the backend thread;
   * KILL CONNECTION of a session on another backend closes that session here. Returns true if answered.
   */
  private interceptKill(payload: Buffer, seq: number): boolean {
    const kill = payload[0] === COM_PROCESS_KILL
      ? (payload.length >= 5 ? { scope: 'connection' as const, id: payload.readUInt32LE(1), modifier: '' } : null)
      : parseKill(payload.toString('utf8', 1));
    if (!kill) return false;
    const target = this.host.sessions.get(kill.id);
    const otherWorker = target ? null : this.host.otherWorkerOf(kill.id);
    if (otherWorker !== null) {
      // Another worker process serves that session and sessions cannot reach across processes.
      this.replyError(seq, ER_NOT_SUPPORTED_YET, `KILL ${kill.id}: connection ${kill.id} is served by tiproxy worker ${otherWorker}, `
        + `and this connection by worker ${this.host.workerId() ?? '?'}; KILL works only between connections of the same worker (proxy.workers > 1)`);
      return true;
    }
    if (!target || !target.backendConn) return false; // not a proxy id: let the backend interpret it
    if (this.backendConn && target.backendConn.backend.addr === this.backendConn.backend.addr) {
      const sql = Buffer.from(`\u0003${formatKill(kill, target.backendConn.connectionId)}`, 'utf8');
      sql[0] = COM_QUERY;
      this.logger.debug({ target: kill.id, backendThread: target.backendConn.connectionId }, 'KILL mapped to backend thread');
      if (kill.scope === 'connection') {
        // The backend will just drop the target's connection: remember why, so it is not taken for a lost backend.
        target.killedBy = this.id;
        this.killTarget = target;
      }
      this.forwardCommand(sql, seq);
      return true;
    }
    if (kill.scope === 'query') {
      this.replyError(seq, ER_NOT_SUPPORTED_YET,
        `KILL QUERY ${kill.id}: session ${kill.id} runs on backend ${target.backendConn.backend.addr}, not on this session's backend; use KILL CONNECTION ${kill.id}`);
      return true;
    }
    if (target.user !== this.user) {
      this.replyError(seq, 1095, `You are not owner of thread ${kill.id}`);
      return true;
    }
    target.close({ side: 'client', reason: 'killed', detail: `KILL from session ${this.id}` });
    this.client.writePacket(buildOkPayload(this.state.status), seq + 1);
    return true;
  }

  /** How a login is relayed; plugins may ask for the client's password (authChallenge), over TLS only. */
  private relayOptions(conn: BackendConnection, user: string, timeoutMs: number): RelayOptions {
    const hook = this.generation.hooks.authChallenge;
    const clientTls = this.client.tls;
    return {
      timeoutMs, backendAddr: conn.backend.addr, backendTls: conn.tls, user,
      askCleartext: (plugin) => clientTls && hook.isUsed() && PASSWORD_PLUGINS.has(plugin)
        && (plugin !== MYSQL_CLEAR_PASSWORD || conn.tls)
        && hook.call({ session: this, user, plugin, clientTls }) === 'cleartext',
    };
  }

  /** COM_CHANGE_USER relayed password-blind, like the login. */
  private async changeUser(payload: Buffer, seq: number): Promise<void> {
    const conn = this.backendConn;
    if (!conn) return;
    try {
      const request = parseChangeUser(payload, this.capabilities);
      const refusal = await this.generation.hooks.onHandshake.promise({
        session: this, user: request.user, database: request.database, authPlugin: request.authPlugin, capabilities: this.capabilities,
      });
      if (refusal) {
        this.replyError(seq, refusal.code, refusal.message, refusal.sqlState);
        return;
      }
      const result = await this.exclusive(conn, async (channel) => {
        channel.write(buildChangeUser(COM_CHANGE_USER, { ...request, authPlugin: PROXY_AUTH_SWITCH_TRIGGER, authResponse: Buffer.alloc(0) }, this.backendCapabilities), 0);
        return relayAuthentication({ queue: this.clientQueue, write: (p, s) => this.client.writePacket(p, s) }, channel,
          { client: seq + 1 }, this.relayOptions(conn, request.user, this.host.config().proxy['handshake-timeout'] * 1000));
      });
      if (result.ok) {
        this.state.reset();
        this.state.applyStatus(parseOkPayload(result.payload, this.capabilities).status);
        this.user = request.user;
        this.host.sessionUserChanged(this);
        this.database = request.database;
        this.authExchange = result.exchange ? { ...result.exchange, tls: this.client.tls } : null;
        this.logger.info({ user: this.user }, 'user changed');
      }
    } catch (err) {
      if (err instanceof MalformedPacketError) this.replyError(seq, ER_HANDSHAKE_ERROR, err.message);
      else this.fail(err, seq + 1);
      return;
    } finally {
      this.reader.resume();
    }
  }

  /**
   * Runs a proxy-driven exchange on the backend connection: the pump lets go of the socket, client
   * bytes queue up for the exchange, and both return to the pump afterwards with nothing lost.
   */
  async exclusive<T>(conn: BackendConnection, work: (channel: PacketChannel) => Promise<T>): Promise<T> {
    this.busy = true;
    this.clientExclusive = true;
    conn.socket.off('data', this.onBackendData);
    const channel = new PacketChannel(conn.socket);
    try {
      return await work(channel);
    } finally {
      const leftover = channel.detach();
      this.busy = false;
      this.clientExclusive = false;
      if (!conn.closed && this.backendConn === conn) {
        conn.socket.on('data', this.onBackendData);
        if (leftover.length > 0) this.onBackendData(leftover);
      }
      const early = this.clientQueue.drain();
      if (early.length > 0) this.reader.feed(early);
    }
  }

  // ---- responses -----------------------------------------------------------------------------------

  onResponseComplete(command: number, status: number, isError: boolean): void {
    this.state.applyStatus(status);
    if (this.killTarget) {
      // A refused KILL (e.g. not the owner) killed nothing.
      if (isError && this.killTarget.killedBy === this.id) this.killTarget.killedBy = 0;
      this.killTarget = null;
    }
    switch (command) {
      case COM_STMT_EXECUTE:
        this.state.executeDone(status);
        this.state.pendingTransaction = null;
        break;
      case COM_STMT_FETCH:
        this.state.fetchDone(this.fetchStatementId, status, isError);
        break;
      case COM_STMT_PREPARE:
        if (isError) this.state.prepareFailed();
        break;
      case COM_RESET_CONNECTION:
        if (!isError) this.state.reset();
        break;
      case COM_INIT_DB:
        if (!isError && this.pendingDatabase) this.database = this.pendingDatabase;
        break;
      case COM_QUERY:
        this.state.localInfile = false;
        this.noteStatementEffect(isError);
        break;
    }
    if (this.generation.resultTapped && this.backendConn) {
      const ctx = (this.resultContext ??= { session: this, command, isError, status, durationMs: 0, backend: this.backendConn.backend });
      ctx.command = command;
      ctx.isError = isError;
      ctx.status = status;
      ctx.durationMs = performance.now() - this.commandStartedAt;
      ctx.backend = this.backendConn.backend;
      this.generation.hooks.onResult.call(ctx);
    }
    if (this.tracker.pending === 0) this.host.sessionIdle(this);
  }

  /** Session state the server does not report (temporary tables, LOCK TABLES, pending SET TRANSACTION). */
  private noteStatementEffect(isError: boolean): void {
    const kind = this.queryKind;
    if (!isError) {
      if (kind === StatementKind.SetTransaction) this.state.pendingTransaction = this.queryText;
      else if (kind === StatementKind.CreateTemporary) this.state.temporaryTables = true;
      else if (kind === StatementKind.LockTables) this.state.lockTables = true;
      else if (kind === StatementKind.UnlockTables) this.state.lockTables = false;
      else if (kind === StatementKind.Prepare) this.noteSqlStatement(true);
      else if (kind === StatementKind.Deallocate) this.noteSqlStatement(false);
    } else if (kind === StatementKind.Prepare) {
      // A failed PREPARE still drops an earlier statement of that name (the server deallocates it first).
      this.noteSqlStatement(false);
    }
    // SET TRANSACTION applies to the next transaction: any other statement but a SET consumes it.
    if (kind !== StatementKind.Set && kind !== StatementKind.SetTransaction) this.state.pendingTransaction = null;
    this.queryKind = StatementKind.Other;
  }

  private noteSqlStatement(prepared: boolean): void {
    const name = preparedStatementName(this.queryText);
    if (name === null) return;
    if (prepared) this.state.sqlStatements.set(name, this.queryText);
    else this.state.sqlStatements.delete(name);
  }

  onLocalInfileRequest(): void {
    this.state.localInfile = true;
    this.reader.uploading = true;
  }

  onUploadFinished(): void {
    // The server's OK/ERR for the upload ends the COM_QUERY; nothing else to do here.
  }

  onStatementPrepared(statementId: number, params: number, columns: number): void {
    this.state.prepared(statementId, params, columns);
  }

  onUnsolicitedPacket(firstByte: number): void {
    this.logger.debug({ firstByte }, 'backend sent a packet while no command was outstanding');
  }

  private replyError(seq: number, code: number, message: string, sqlState?: string): void {
    this.client.writePacket(buildErrPayload(code, message, sqlState), (seq + 1) & 0xff);
  }

  // ---- endings -------------------------------------------------------------------------------------

  private readonly onClientClose = (): void => {
    this.close({ side: 'client', reason: 'client-disconnected' });
  };

  private readonly onClientError = (err: Error): void => {
    this.close({ side: 'client', reason: 'client-error', detail: err.message });
  };

  private readonly onBackendClose = (): void => {
    if (this.phase === 'closed') return;
    const addr = this.backendConn?.backend.addr ?? 'backend';
    if (this.killedBy) {
      // KILL CONNECTION from another session, carried out by the backend: it closes without a word.
      const waiting = this.tracker.pending > 0 && !this.tracker.midPacket;
      this.close({ side: 'client', reason: 'killed', detail: `KILL from session ${this.killedBy}` },
        waiting ? new BackendError(ER_CONNECTION_KILLED, 'Connection was killed', '70100') : undefined, this.tracker.nextSeq);
      return;
    }
    if (this.tracker.pending > 0 && !this.tracker.midPacket) {
      // The client is waiting for a response: give it an error in sequence instead of a bare close.
      this.close({ side: 'backend', reason: 'backend-lost', detail: `${addr} closed during a command` },
        new BackendError(CR_SERVER_LOST, `Lost connection to backend ${addr} during query`, SQLSTATE_COMMUNICATION), this.tracker.nextSeq);
      return;
    }
    this.close({ side: 'backend', reason: 'backend-lost', detail: `${addr} closed the connection` });
  };

  private readonly onBackendError = (err: Error): void => {
    this.logger.debug({ err: err.message }, 'backend socket error');
  };

  /** Ends the session because of `err`, telling the client when the protocol state allows it. */
  private fail(err: unknown, seq: number): void {
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
    const conn = this.detachBackend();
    if (conn) {
      // COM_QUIT spares the server an "aborted connection" when the backend is idle.
      if (wasCommand && this.tracker.pending === 0 && !conn.closed) conn.socket.end(Buffer.from([1, 0, 0, 0, 1]));
      else conn.destroy();
      setTimeout(() => conn.destroy(), 1000).unref();
    }
    this.clientQueue.fail(new Error('session closed'));
    const level = reason.side === 'client' && (reason.reason === 'client-quit' || reason.reason === 'client-disconnected') ? 'info' : 'warn';
    this.logger[level]({ side: reason.side, reason: reason.reason, detail: reason.detail, user: this.user,
      backend: conn?.backend.addr, durationMs: Date.now() - this.createdAt }, 'session closed');
    this.host.releaseGeneration(this.generation);
    this.host.sessionClosed(this, reason);
    this.generation.hooks.close.promise({ session: this, side: reason.side, reason: reason.reason, ...(reason.detail ? { detail: reason.detail } : {}) })
      .catch(() => {});
  }
}

function makeSalt(): Buffer {
  // Printable, non-NUL bytes: some clients treat the salt as a C string.
  const salt = randomBytes(SCRAMBLE_LENGTH);
  for (let i = 0; i < salt.length; i++) salt[i] = (salt[i]! % 94) + 33;
  return salt;
}

function refusalError(r: Refusal): ProxyError {
  return new ProxyError('plugin', r.code, r.message, r.sqlState);
}
