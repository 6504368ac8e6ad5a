import { BackendTrafficCounter } from '../../kernel/backend/backend-traffic.js';
import { splitAddr, type BackendRecord } from '../../kernel/backend/backend-registry.js';
import {
  CLIENT_DEPRECATE_EOF, CLIENT_LONG_PASSWORD, CLIENT_MULTI_RESULTS, CLIENT_MULTI_STATEMENTS, CLIENT_PLUGIN_AUTH, CLIENT_PROTOCOL_41,
  CLIENT_PS_MULTI_RESULTS, CLIENT_SECURE_CONNECTION, CLIENT_TRANSACTIONS, COM_STMT_PREPARE, DEFAULT_CHARSET_ID,
} from '../../kernel/protocol/constants.js';
import { framePackets } from '../../kernel/protocol/payload-writer.js';
import { createHash, type Hash } from 'node:crypto';
import { ResponseTracker, type ResponseListener, type RowSink } from '../../kernel/protocol/response-tracker.js';
import { BackendConnection } from '../../kernel/session/backend-connection.js';
import { loginWithCredentials } from '../../kernel/session/backend-login.js';

/** What a replayed client negotiates: multi-statements and multi-results, as applications do. */
const REPLAY_CAPABILITIES = CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION | CLIENT_MULTI_STATEMENTS
  | CLIENT_MULTI_RESULTS | CLIENT_PS_MULTI_RESULTS | CLIENT_PLUGIN_AUTH | CLIENT_DEPRECATE_EOF;

/** How a command ended on the target. */
export interface ReplayOutcome {
  /** ERR code, 0 for success. */
  err: number;
  aff: number;
  rows: number;
  ms: number;
  /** For COM_STMT_PREPARE: the target's statement id. */
  stmt: number;
  /** SHA-1 (hex) of the result rows, when the connection digests results (as the capture did). */
  digest?: string;
}

/**
 * One replayed session's connection to the target: sends captured command payloads as they are and
 * reads each response with the kernel's response tracker (the same rules that found the source's
 * outcome in the proxy), so both sides are measured alike.
 */
export class ReplayConnection implements ResponseListener, RowSink {
  private readonly tracker: ResponseTracker;
  /** The rows of the response being read, hashed as they arrive (the capture's result digest, computed alike). */
  private hash: Hash | null = null;
  private waiting: { resolve(o: ReplayOutcome): void; reject(e: Error): void; at: number } | null = null;
  private closedError: Error | null = null;

  private constructor(private readonly conn: BackendConnection, private readonly digest: boolean) {
    this.tracker = new ResponseTracker(this, REPLAY_CAPABILITIES);
    if (digest) this.tracker.rowSink = this;
    const leftover = conn.channel.detach();
    conn.socket.on('data', (chunk: Buffer) => this.tracker.scan(chunk));
    conn.socket.on('close', () => this.lost(new Error('the target closed the connection')));
    conn.socket.on('error', (err: Error) => this.lost(err));
    if (leftover.length > 0) this.tracker.scan(leftover);
  }

  static async open(target: string, user: string, password: string, database: string, timeoutMs: number, digest = false): Promise<ReplayConnection> {
    const backend: BackendRecord = {
      ...splitAddr(target), addr: target, labels: {}, healthy: true, draining: false, connections: 0, remoteConnections: 0,
      sources: new Set<string>(), traffic: new BackendTrafficCounter(),
    };
    const conn = await BackendConnection.dial({
      backend, options: { tls: 'off', proxyProtocol: false, connectTimeoutMs: timeoutMs }, tls: {}, capabilities: REPLAY_CAPABILITIES, charset: DEFAULT_CHARSET_ID,
    });
    try {
      await loginWithCredentials(conn, { kind: 'cleartext', user, password }, { capabilities: REPLAY_CAPABILITIES, charset: DEFAULT_CHARSET_ID, database, timeoutMs });
    } catch (err) {
      conn.destroy();
      throw err;
    }
    return new ReplayConnection(conn, digest);
  }

  private lost(err: Error): void {
    this.closedError ??= err;
    const w = this.waiting;
    this.waiting = null;
    w?.reject(err);
  }

  /** Sends a command the server does not answer (COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA). */
  sendOnly(payload: Buffer): void {
    this.conn.socket.write(framePackets(payload, 0).packet);
  }

  /** Sends one command and waits for the end of its response. */
  run(payload: Buffer): Promise<ReplayOutcome> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject, at: performance.now() };
      this.tracker.expect(payload[0]!);
      this.conn.socket.write(framePackets(payload, 0).packet);
    });
  }

  rowBytes(buf: Buffer, start: number, end: number): void {
    (this.hash ??= createHash('sha1')).update(buf.subarray(start, end));
  }

  onResponseComplete(command: number, _status: number, isError: boolean): void {
    const w = this.waiting;
    this.waiting = null;
    const hash = this.hash;
    this.hash = null;
    if (!w) return;
    const t = this.tracker;
    const outcome: ReplayOutcome = {
      err: isError ? t.completedErrorCode || -1 : 0, aff: t.completedAffectedRows, rows: t.completedRows,
      ms: performance.now() - w.at, stmt: command === COM_STMT_PREPARE && !isError ? t.preparedId : 0,
    };
    if (this.digest) outcome.digest = (hash ?? createHash('sha1')).digest('hex');
    w.resolve(outcome);
  }

  onLocalInfileRequest(): void {
    // LOAD DATA LOCAL is skipped before it is sent; a server asking anyway gets an empty file.
    this.conn.socket.write(framePackets(Buffer.alloc(0), 2).packet);
  }

  onStatementPrepared(): void {}

  onUnsolicitedPacket(): void {}

  close(): void {
    if (this.closedError) return;
    this.closedError = new Error('closed');
    this.conn.quit();
  }
}
