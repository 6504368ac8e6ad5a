import type { Duplex, Writable } from 'node:stream';
import { BackendError } from '../errors.js';
import type { AuthExchange, ResultContext } from '../hooks/hook-types.js';
import type { PacketChannel } from '../net/packet-channel.js';
import { PacketQueue } from '../net/packet-queue.js';
import {
  COM_CHANGE_USER, COM_INIT_DB, COM_PING, COM_PROCESS_KILL, COM_QUERY, COM_QUIT, COM_STMT_BULK_EXECUTE, COM_STMT_CLOSE, COM_STMT_EXECUTE,
  COM_STMT_FETCH, COM_STMT_PREPARE, COM_STMT_RESET, COM_STMT_SEND_LONG_DATA, CR_SERVER_LOST, ER_CONNECTION_KILLED,
  SQLSTATE_COMMUNICATION,
} from '../protocol/constants.js';
import { CommandReader, FORWARD, INTERCEPT, PASS_THROUGH, type CommandAction, type CommandOwner } from '../protocol/command-reader.js';
import { framePackets } from '../protocol/payload-writer.js';
import { buildErrPayload } from '../protocol/response-packets.js';
import { ResponseTracker, type ResponseListener } from '../protocol/response-tracker.js';
import type { BackendConnection } from './backend-connection.js';
import type { BackendLink, BackendTraffic } from './backend-link.js';
import type { ClientConnection } from './client-connection.js';
import { CommandBookkeeping } from './command-bookkeeping.js';
import { runCommandTaps } from './command-taps.js';
import { ObservedTraffic } from './observed-traffic.js';
import type { HostedSession, SessionHost } from './session-host.js';
import type { SessionState, Unsafe } from './session-state.js';

/** Commands whose first four payload bytes after the command byte are a statement id. */
const STATEMENT_ID_COMMANDS = new Set([COM_STMT_EXECUTE, COM_STMT_SEND_LONG_DATA, COM_STMT_CLOSE, COM_STMT_RESET, COM_STMT_FETCH, COM_STMT_BULK_EXECUTE]);
/** Commands the server does not answer, by command byte (a table load per command on the hot path). */
const NO_RESPONSE = new Uint8Array(256);
for (const c of [COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA, COM_QUIT]) NO_RESPONSE[c] = 1;

/**
 * The commands the kernel itself answers or rewrites (KILL, COM_CHANGE_USER, the BEGIN move, …), see
 * intercepted-commands.ts. `wants` is asked on the hot path with a command's first bytes; `handle` gets
 * the whole command and returns what the reader should do, or undefined when it is not one of its own.
 */
export interface CommandInterceptor {
  wants(command: number, buf: Buffer, off: number, avail: number, length: number): boolean;
  handle(payload: Buffer, seq: number): boolean | typeof PASS_THROUGH | undefined;
}

/** What the pump needs from its session. */
export interface PumpOwner extends HostedSession {
  readonly host: SessionHost;
  readonly client: ClientConnection;
  readonly state: SessionState;
  readonly link: BackendLink;
  readonly interceptor: CommandInterceptor;
  /** Capabilities the client negotiated with the proxy. */
  readonly capabilities: number;
  database: string;
  /**
   * The backend connection closed under the session between packets. `errorSeq` >= 0: a command was
   * waiting for its response, and an ERR with that sequence id answers it.
   */
  backendLost(errorSeq: number): void;
}

/** A session as the commands the kernel intercepts see it (kill-command.ts, change-user.ts, begin-move.ts). */
export interface InterceptingSession extends PumpOwner {
  readonly pump: CommandPump;
  user: string;
  authExchange: AuthExchange | null;
  /** Ends the session because of `err`, telling the client when the protocol state allows it. */
  fail(err: unknown, seq: number): void;
}

/**
 * The packet pump: client bytes go to the backend and backend bytes to the client as the raw chunks
 * they arrived in, while the command reader and response tracker follow just enough of the protocol to
 * know when the session is at a safe point. Runs onCommand for tapped command bytes and onResult for
 * finished responses, and lends the backend socket to proxy-driven exchanges (exclusive()).
 */
export class CommandPump implements CommandOwner, ResponseListener, BackendTraffic {
  /** Client bytes queue here (for the login and proxy-driven exchanges) instead of the pump while set. */
  clientExclusive = true;
  readonly clientQueue = new PacketQueue();
  readonly reader: CommandReader;
  readonly tracker: ResponseTracker;
  /** An asynchronous exchange (COM_CHANGE_USER, migration) holds the backend connection. */
  busy = false;
  /** A BEGIN is held while the session moves first (begin-move.ts): the paused reader is not a command in flight. */
  holdingBegin = false;
  /** Runs once when the next response ends (KILL needs to know whether it was refused). */
  afterResponse: ((isError: boolean) => void) | null = null;
  private readonly bookkeeping: CommandBookkeeping;
  private commandStartedAt = 0;
  /** Refilled for each onResult call, so tapping it allocates nothing per command. */
  private resultContext: { -readonly [K in keyof ResultContext]: ResultContext[K] } | null = null;
  /** hooks.observeCommand / observeResult for capture, called only while observation is on. */
  readonly observed: ObservedTraffic;

  constructor(private readonly owner: PumpOwner) {
    this.reader = new CommandReader(this);
    this.tracker = new ResponseTracker(this);
    this.bookkeeping = new CommandBookkeeping(owner.state);
    this.observed = new ObservedTraffic(owner, this.tracker);
  }

  /** Null when the backend could be swapped right now, else why not. */
  unsafeReason(inCommandPhase: boolean): Unsafe {
    if ((!this.reader.atPacketBoundary && !this.holdingBegin) || this.tracker.midPacket) return 'command-in-flight';
    return this.owner.state.unsafeReason(this.tracker.pending, this.busy || !inCommandPhase);
  }

  /** No command is waiting for its response. */
  get idle(): boolean {
    return this.tracker.pending === 0;
  }

  // ---- bytes in both directions --------------------------------------------------------------------

  readonly onClientBytes = (bytes: Buffer): void => {
    if (this.clientExclusive) {
      this.clientQueue.push(bytes);
      return;
    }
    // A chunk can become several writes (ranges around an intercepted command): forward() corks from
    // the second on. The usual single write is not corked (that costs a queue entry per packet).
    this.forwardsInFeed = 0;
    this.reader.feed(bytes);
    this.corked?.uncork();
    this.corked = null;
    this.forwardsInFeed = -1;
  };

  /** Writes forwarded during the current onClientBytes (-1: outside one), and the socket corked meanwhile. */
  private forwardsInFeed = -1;
  private corked: Writable | null = null;

  private readonly onBackendData = (chunk: Buffer): void => {
    if (!this.owner.client.write(chunk)) this.throttle(this.owner.link.conn!.socket, this.owner.client.socket);
    this.tracker.scan(chunk);
  };

  /** Backpressure: stop reading `source` until `sink` drains. */
  private throttle(source: Duplex, sink: Writable): void {
    if (source.isPaused()) return;
    source.pause();
    sink.once('drain', () => source.resume());
  }

  forward(bytes: Buffer): void {
    const conn = this.owner.link.conn;
    if (!conn) return;
    if (this.forwardsInFeed >= 0 && ++this.forwardsInFeed === 2) (this.corked = conn.socket).cork();
    if (!conn.socket.write(bytes)) this.throttle(this.owner.client.socket, conn.socket);
  }

  /** Starts pumping after the login: the client's early bytes (pipelined commands) go first. */
  start(): void {
    this.clientExclusive = false;
    this.clientQueue.headerCheck = null; // the login's size and sequence checks (client-login.ts) end here
    const early = this.clientQueue.drain();
    if (early.length > 0) this.reader.feed(early);
  }

  attach(conn: BackendConnection): void {
    const leftover = conn.channel.detach();
    conn.readBy(this.onBackendData, this.owner.client.socket);
    conn.socket.on('close', this.onBackendClose);
    conn.socket.on('error', this.onBackendError);
    if (leftover.length > 0) this.onBackendData(leftover);
  }

  detach(conn: BackendConnection): void {
    conn.stopReading(this.onBackendData);
    conn.socket.off('close', this.onBackendClose);
    conn.socket.off('error', this.onBackendError);
  }

  restart(): void {
    this.observed.restart();
    this.tracker.reset();
    this.tracker.setCapabilities(this.owner.capabilities);
  }

  /**
   * Runs a proxy-driven exchange on the backend connection: the pump lets go of the socket, client
   * bytes queue up for the exchange, and both return to the pump afterwards with nothing lost.
   */
  async exclusive<T>(conn: BackendConnection, work: (channel: PacketChannel) => Promise<T>): Promise<T> {
    this.busy = true;
    this.clientExclusive = true;
    conn.stopReading(this.onBackendData);
    const channel = conn.openChannel();
    try {
      return await work(channel);
    } finally {
      const leftover = channel.detach();
      this.busy = false;
      this.clientExclusive = false;
      if (!conn.closed && this.owner.link.conn === conn) {
        conn.readBy(this.onBackendData, this.owner.client.socket);
        if (leftover.length > 0) this.onBackendData(leftover);
      }
      const early = this.clientQueue.drain();
      if (early.length > 0) this.reader.feed(early);
    }
  }

  // ---- commands (CommandOwner) ---------------------------------------------------------------------

  commandAction(buf: Buffer, off: number, avail: number, length: number): CommandAction {
    const command = buf[off]!;
    const owner = this.owner;
    if (owner.generation.commandTapped[command]) return INTERCEPT;
    // Observed: a command not whole in this chunk is captured whole (up to a size) so the observer sees it all.
    if (this.observed.wantsWhole(length, buf.length - off)) return INTERCEPT;
    switch (command) {
      case COM_QUERY:
        if (owner.interceptor.wants(command, buf, off, avail, length) || this.bookkeeping.needsWholeQuery(buf, off, avail, length)) return INTERCEPT;
        break;
      case COM_PING:
      case COM_PROCESS_KILL:
      case COM_QUIT:
      case COM_CHANGE_USER:
        if (owner.interceptor.wants(command, buf, off, avail, length)) return INTERCEPT;
        break;
      case COM_STMT_PREPARE:
        return INTERCEPT;
      case COM_STMT_EXECUTE:
      case COM_STMT_BULK_EXECUTE:
      case COM_STMT_SEND_LONG_DATA:
      case COM_STMT_CLOSE:
      case COM_STMT_RESET:
      case COM_STMT_FETCH:
        if ((command === COM_STMT_EXECUTE || command === COM_STMT_BULK_EXECUTE) && avail >= 5 && owner.state.statements.size > 0 && this.bookkeeping.executeNeedsWholePacket(buf, off, avail)) {
          return INTERCEPT;
        }
        if (owner.state.idsTranslated && avail >= 5) {
          // Statements were re-prepared here under other ids: rewrite the id in place (the reader keeps
          // the first bytes contiguous in `buf`), after the bookkeeping has recorded the client's id.
          this.commandSent(command, buf, off, avail, length);
          buf.writeUInt32LE(owner.state.backendIdFor(buf.readUInt32LE(off + 1)), off + 1);
          return FORWARD;
        }
        break;
      case COM_INIT_DB:
        // A database name longer than the prefix shown here is captured whole, so the session learns it.
        if (length > avail) return INTERCEPT;
        break;
      default:
        if (owner.interceptor.wants(command, buf, off, avail, length)) return INTERCEPT;
    }
    this.commandSent(command, buf, off, avail, length);
    return FORWARD;
  }

  /** Bookkeeping for a command about to reach the backend, and the response to expect; one clock read, only when onResult or an observer wants it, serves both. */
  private commandSent(command: number, buf: Buffer, off: number, avail: number, length: number): void {
    this.bookkeeping.commandSent(command, buf, off, avail, length);
    const observed = this.observed.observing();
    const answered = NO_RESPONSE[command] === 0;
    if (answered) this.observed.expect();
    const at = observed || (answered && this.owner.generation.resultTapped) ? performance.now() : 0;
    if (observed) this.observed.sent(command, buf, off, length, answered, at);
    if (!answered) return;
    this.commandStartedAt = at;
    this.tracker.expect(command);
  }

  onInterceptedCommand(payload: Buffer, seq: number): boolean | typeof PASS_THROUGH {
    if (this.owner.generation.commandTapped[payload[0]!]) {
      const verdict = runCommandTaps(this.owner, this, payload, seq);
      if (verdict !== undefined) return verdict;
    }
    return this.handleCommand(payload, seq);
  }

  onUploadFinished(): void {
    // The server's OK/ERR for the upload ends the COM_QUERY; nothing else to do here.
  }

  /** The kernel's own handling of an intercepted command; false when it continues asynchronously. */
  handleCommand(payload: Buffer, seq: number): boolean | typeof PASS_THROUGH {
    const handled = this.owner.interceptor.handle(payload, seq);
    if (handled !== undefined) return handled;
    switch (payload[0]) {
      case COM_STMT_PREPARE:
        this.owner.state.prepareSent(Buffer.from(payload.subarray(1)));
        break;
      case COM_STMT_EXECUTE:
      case COM_STMT_BULK_EXECUTE: {
        const withTypes = this.bookkeeping.executeWithParamTypes(payload);
        if (withTypes) {
          this.forwardCommand(withTypes, seq);
          return true;
        }
        break;
      }
    }
    // Unchanged: bookkeeping (and statement-id translation, in place), then the original bytes go on.
    this.noteForwarded(payload);
    return PASS_THROUGH;
  }

  /** Sends a whole command the proxy built or rewrote, with its bookkeeping. */
  forwardCommand(payload: Buffer, seq: number): void {
    this.noteForwarded(payload);
    this.forward(framePackets(payload, seq).packet);
  }

  /** Bookkeeping for a whole command about to reach the backend, then statement-id translation in place. */
  private noteForwarded(payload: Buffer): void {
    const command = payload[0]!;
    this.commandSent(command, payload, 0, payload.length, payload.length);
    if (this.owner.state.idsTranslated && STATEMENT_ID_COMMANDS.has(command) && payload.length >= 5) {
      payload.writeUInt32LE(this.owner.state.backendIdFor(payload.readUInt32LE(1)), 1);
    }
  }

  replyError(seq: number, code: number, message: string, sqlState?: string): void {
    this.owner.client.writePacket(buildErrPayload(code, message, sqlState), (seq + 1) & 0xff);
  }

  // ---- responses (ResponseListener) ----------------------------------------------------------------

  onResponseComplete(command: number, status: number, isError: boolean): void {
    const owner = this.owner;
    owner.state.applyStatus(status);
    if (this.afterResponse) {
      const done = this.afterResponse;
      this.afterResponse = null;
      done(isError);
    }
    const database = this.bookkeeping.responseEnded(command, status, isError);
    if (database !== null) owner.database = database;
    const conn = owner.link.conn;
    this.observed.responseEnded();
    const observed = conn !== null && this.observed.observing();
    const tapped = conn !== null && owner.generation.resultTapped;
    const durationMs = observed || tapped ? performance.now() - this.commandStartedAt : 0;
    if (observed) this.observed.resultSeen(command, status, isError, this.tracker, conn, durationMs);
    if (tapped) {
      const ctx = (this.resultContext ??= { session: owner, command, isError, status, durationMs: 0, backend: conn.backend });
      ctx.command = command;
      ctx.isError = isError;
      ctx.status = status;
      ctx.durationMs = durationMs;
      ctx.backend = conn.backend;
      owner.generation.hooks.onResult.call(ctx);
    }
    if (this.tracker.pending === 0) owner.host.sessionIdle(owner);
  }

  onLocalInfileRequest(): void {
    this.owner.state.localInfile = true;
    this.reader.uploading = true;
  }

  onStatementPrepared(statementId: number, params: number, columns: number): void {
    this.owner.state.prepared(statementId, params, columns);
  }

  onUnsolicitedPacket(firstByte: number): void {
    this.owner.logger.debug({ firstByte }, 'backend sent a packet while no command was outstanding');
  }

  // ---- the backend going away ----------------------------------------------------------------------

  private readonly onBackendClose = (): void => {
    const owner = this.owner;
    if (owner.isClosed) return;
    const addr = owner.link.conn?.backend.addr ?? 'backend';
    const waiting = this.tracker.pending > 0 && !this.tracker.midPacket;
    if (owner.killedBy) {
      // KILL CONNECTION from another session, carried out by the backend: it closes without a word.
      owner.close({ side: 'client', reason: 'killed', detail: `KILL from session ${owner.killedBy}` },
        waiting ? new BackendError(ER_CONNECTION_KILLED, 'Connection was killed', '70100') : undefined, this.tracker.nextSeq);
      return;
    }
    // Half a packet reached the client, or the proxy was talking to the backend itself: nothing to save.
    if (this.tracker.midPacket || this.busy || !this.reader.atPacketBoundary) {
      owner.close({ side: 'backend', reason: 'backend-lost', detail: `${addr} closed the connection` },
        waiting ? new BackendError(CR_SERVER_LOST, `Lost connection to backend ${addr} during query`, SQLSTATE_COMMUNICATION) : undefined,
        this.tracker.nextSeq);
      return;
    }
    owner.backendLost(waiting ? this.tracker.nextSeq : -1);
  };

  /** The session waits for a failover: client commands queue up, nothing reaches a backend. */
  suspend(): void {
    this.busy = true;
    this.clientExclusive = true;
  }

  /** The failover is over: queued client commands go to the new backend. */
  release(): void {
    this.busy = false;
    this.clientExclusive = false;
    const early = this.clientQueue.drain();
    if (early.length > 0) this.reader.feed(early);
  }

  private readonly onBackendError = (err: Error): void => {
    this.owner.logger.debug({ err: err.message }, 'backend socket error');
  };
}
