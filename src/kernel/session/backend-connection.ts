import { connect as netConnect, type Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import type { BackendRecord } from '../backend/backend-registry.js';
import { BackendError, ProxyError } from '../errors.js';
import type { DialOptions } from '../hooks/hook-types.js';
import { PacketChannel } from '../net/packet-channel.js';
import { SocketReads } from '../net/socket-reads.js';
import {
  CLIENT_SSL, ER_PROXY_BACKEND_HANDSHAKE, ER_PROXY_BACKEND_TLS, ER_PROXY_NO_BACKEND, ERR_HEADER, SQLSTATE_COMMUNICATION,
} from '../protocol/constants.js';
import { buildSslRequest, parseGreeting, type Greeting } from '../protocol/handshake-packets.js';
import { parseErrPayload } from '../protocol/response-packets.js';

/** TLS to backends is required and this backend cannot do it: a configuration problem, not a flaky backend. */
export class BackendTlsRequiredError extends ProxyError {
  constructor(message: string) {
    super('backend', ER_PROXY_BACKEND_TLS, message);
    this.name = 'BackendTlsRequiredError';
  }
}

export interface DialRequest {
  backend: BackendRecord;
  options: DialOptions;
  /** TLS client settings from security.sql-tls. */
  tls: ConnectionOptions;
  /** PROXY v2 header to send first, if any. */
  proxyHeader?: Buffer;
  /**
   * Capabilities and charset for the SSLRequest, when TLS is used. The server keeps the SSLRequest's
   * capabilities for the whole login (it does not parse those of the HandshakeResponse sent over TLS),
   * so they must be exactly the ones the login will send: a function gets them from the greeting.
   */
  capabilities: number | ((greeting: Greeting) => number);
  /** MariaDB extended capabilities for the SSLRequest (kept by the server, like the others); none when left out. */
  extendedCapabilities?: (greeting: Greeting) => number;
  charset: number;
  /**
   * Read the socket with onread into a reused buffer (socket-reads.ts) when it stays plain (TLS off):
   * for a session's connection, whose pump then gets the bytes through `readBy`. Others (health checks,
   * the replayer) read 'data' events.
   */
  directReads?: boolean;
}

/**
 * One connection from the proxy to a backend server. A session owns one at a time and can swap it
 * (migration); while the pump runs, the session reads the socket directly, and while the proxy talks to
 * the backend itself (login, COM_CHANGE_USER, its own queries) it reads through `channel`.
 */
export class BackendConnection {
  /** Sequence id of the next packet the proxy sends in the login exchange. */
  nextSeq = 1;
  closed = false;

  private constructor(
    readonly backend: BackendRecord,
    public socket: Socket | TLSSocket,
    readonly channel: PacketChannel,
    readonly greeting: Greeting,
    readonly tls: boolean,
    /** How the pump reads this socket when it is read with onread; null: through 'data' events. */
    readonly reads: SocketReads | null,
  ) {
    socket.once('close', () => {
      this.closed = true;
    });
  }

  get connectionId(): number {
    return this.greeting.connectionId;
  }

  /** Dials, reads the greeting and starts TLS when wanted. Throws a ProxyError naming the backend. */
  static async dial(req: DialRequest): Promise<BackendConnection> {
    const { backend, options } = req;
    const reads = req.directReads && options.tls === 'off' ? new SocketReads() : null;
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = netConnect({ host: backend.host, port: backend.port, noDelay: true, ...(reads ? { onread: reads.onread } : {}) });
      backend.traffic.track(s);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new BackendError(ER_PROXY_NO_BACKEND, `backend ${backend.addr}: connect timed out after ${options.connectTimeoutMs} ms`, SQLSTATE_COMMUNICATION));
      }, options.connectTimeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(new BackendError(ER_PROXY_NO_BACKEND, `backend ${backend.addr}: ${err.message}`, SQLSTATE_COMMUNICATION, { cause: err }));
      });
    });
    socket.setKeepAlive(true, 60_000);
    if (req.proxyHeader) socket.write(req.proxyHeader);
    const channel = new PacketChannel(socket, undefined, reads);
    try {
      const first = await channel.read(options.connectTimeoutMs, `greeting from ${backend.addr}`);
      if (first.payload[0] === ERR_HEADER) {
        const e = parseErrPayload(first.payload);
        throw new BackendError(e.code, `backend ${backend.addr} refused the connection: ${e.message}`, e.sqlState);
      }
      const greeting = parseGreeting(first.payload);
      backend.serverVersion = greeting.serverVersion;
      const backendHasTls = (greeting.capabilities & CLIENT_SSL) !== 0;
      if (options.tls === 'required' && !backendHasTls) {
        throw new BackendTlsRequiredError(`backend ${backend.addr} does not offer TLS, but TLS to backends is required`);
      }
      if (options.tls === 'off' || !backendHasTls) return new BackendConnection(backend, socket, channel, greeting, false, reads);
      const sslCapabilities = typeof req.capabilities === 'function' ? req.capabilities(greeting) : req.capabilities;
      channel.write(buildSslRequest(sslCapabilities, 1 << 24, req.charset, req.extendedCapabilities?.(greeting) ?? 0), 1);
      const leftover = channel.detach();
      if (leftover.length > 0) throw new BackendError(ER_PROXY_BACKEND_HANDSHAKE, `backend ${backend.addr} sent data before TLS started`);
      const secure = await new Promise<TLSSocket>((resolve, reject) => {
        // Verify against the address dialled: without `host`, Node checks the certificate against "localhost" (IP SANs fail).
        const t = tlsConnect({ ...req.tls, socket, host: backend.host, servername: isIpAddress(backend.host) ? undefined : backend.host });
        const timer = setTimeout(() => {
          t.destroy();
          reject(new ProxyError('backend', ER_PROXY_BACKEND_TLS, `backend ${backend.addr}: TLS handshake timed out`));
        }, options.connectTimeoutMs);
        t.once('secureConnect', () => {
          clearTimeout(timer);
          resolve(t);
        });
        t.once('error', (err) => {
          clearTimeout(timer);
          reject(new ProxyError('backend', ER_PROXY_BACKEND_TLS, `backend ${backend.addr}: TLS failed: ${err.message}`, undefined, { cause: err }));
        });
      });
      secure.setNoDelay(true);
      channel.rebind(secure);
      const conn = new BackendConnection(backend, secure, channel, greeting, true, null);
      conn.nextSeq = 2;
      return conn;
    } catch (err) {
      socket.destroy();
      throw err;
    }
  }

  /**
   * The pump reads from now on: with onread, views of the read buffer lent for the call, which it writes
   * to `sink` (the client); otherwise 'data' events.
   */
  readBy(read: (chunk: Buffer) => void, sink: Writable): void {
    if (this.reads) this.reads.lend(read, sink);
    else this.socket.on('data', read);
  }

  /** The pump stops reading (bytes that arrive meanwhile wait for the next reader). */
  stopReading(read: (chunk: Buffer) => void): void {
    if (this.reads) this.reads.release(read);
    else this.socket.off('data', read);
  }

  /** A channel for an exchange the proxy runs itself on this connection (the pump has stopped reading). */
  openChannel(): PacketChannel {
    return new PacketChannel(this.socket, undefined, this.reads);
  }

  destroy(): void {
    this.closed = true;
    this.socket.destroy();
  }

  /** Ends the backend session politely (COM_QUIT), so the server logs no aborted connection. */
  quit(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.end(COM_QUIT_PACKET);
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }
}

/** COM_QUIT, framed (sequence 0); shared: socket writes do not change it. */
export const COM_QUIT_PACKET = Buffer.from([1, 0, 0, 0, 1]);

function isIpAddress(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
