// A lean MySQL client for the connection benchmarks (idle memory, churn): logs in with
// mysql_native_password (answering an AuthSwitchRequest), optionally upgrading to TLS first, runs
// SELECT 1 and quits. mysql2 costs tens of KB and noticeable CPU per connection; holding 10,000 idle
// sessions or churning thousands a second on the same 2 cores as the proxy needs a client that costs
// next to nothing, so this one keeps one buffer per connection and no per-packet state machine.
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import {
  CLIENT_CONNECT_ATTRS, CLIENT_CONNECT_WITH_DB, CLIENT_LONG_FLAG, CLIENT_LONG_PASSWORD, CLIENT_PLUGIN_AUTH, CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
  CLIENT_PROTOCOL_41, CLIENT_SECURE_CONNECTION, CLIENT_SSL, CLIENT_TRANSACTIONS, COM_QUERY, COM_QUIT,
} from '../src/kernel/protocol/constants.js';
import { framePackets, PayloadWriter } from '../src/kernel/protocol/payload-writer.js';
import { nativePasswordScramble } from '../test/harness/raw-client.js';

export interface LeanOptions {
  host: string;
  port: number;
  user: string;
  password: string;
  database?: string;
  /** Ask for TLS (SSLRequest, then a TLS handshake on the same socket). */
  tls?: boolean;
  /** Capability flags asked for on top of the usual ones (e.g. CLIENT_COMPRESS, CLIENT_DEPRECATE_EOF), masked by the server's offer. */
  capabilities?: number;
  /** Connection attributes sent in the HandshakeResponse (CLIENT_CONNECT_ATTRS). */
  attributes?: Record<string, string>;
  timeoutMs?: number;
}

interface Packet {
  seq: number;
  payload: Buffer;
}

const CHARSET_UTF8MB4 = 45;

export class LeanConnection {
  private buffered: Buffer = Buffer.alloc(0);
  private waiter: ((p: Packet) => void) | undefined;
  private failWaiter: ((e: Error) => void) | undefined;
  private failure: Error | undefined;

  private constructor(private socket: Socket, private readonly timeoutMs: number) {
    this.listen(socket);
  }

  /** Connects and logs in; rejects with the server's error message or a timeout. */
  static async open(opts: LeanOptions): Promise<LeanConnection> {
    const socket = tcpConnect({ host: opts.host, port: opts.port });
    socket.setNoDelay(true);
    const conn = new LeanConnection(socket, opts.timeoutMs ?? 30_000);
    try {
      await conn.login(opts);
    } catch (err) {
      conn.destroy();
      throw err;
    }
    return conn;
  }

  /** One churn cycle: connect, log in, SELECT 1, quit (the churn suite, bench/profile.ts, bench/churn-syscalls.ts). */
  static async churnOnce(opts: LeanOptions): Promise<void> {
    const c = await LeanConnection.open(opts);
    await c.query('SELECT 1');
    await c.quit();
  }

  private listen(socket: Socket): void {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
      this.deliver();
    });
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  private fail(err: Error): void {
    this.failure ??= err;
    const f = this.failWaiter;
    this.waiter = this.failWaiter = undefined;
    f?.(err);
  }

  /** Hands the next complete packet to the waiting reader, if both exist. */
  private deliver(): void {
    if (!this.waiter || this.buffered.length < 4) return;
    const length = this.buffered.readUIntLE(0, 3);
    if (this.buffered.length < 4 + length) return;
    const packet = { seq: this.buffered[3]!, payload: this.buffered.subarray(4, 4 + length) };
    this.buffered = this.buffered.subarray(4 + length);
    const w = this.waiter;
    this.waiter = this.failWaiter = undefined;
    w(packet);
  }

  private read(): Promise<Packet> {
    if (this.failure && this.buffered.length === 0) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new Error(`no reply within ${this.timeoutMs} ms`)), this.timeoutMs);
      this.waiter = (p) => { clearTimeout(timer); resolve(p); };
      this.failWaiter = (e) => { clearTimeout(timer); reject(e); };
      this.deliver();
    });
  }

  private write(payload: Buffer, seq: number): void {
    this.socket.write(framePackets(payload, seq).packet);
  }

  private async login(opts: LeanOptions): Promise<void> {
    const greeting = await this.read();
    const g = greeting.payload;
    if (g[0] === 0xff) throw new Error(`login refused: ${g.toString('utf8', 9)}`);
    // v10 greeting: version\0, thread id(4), salt part 1 (8), filler, caps low(2), charset, status(2),
    // caps high(2), salt length, reserved(10), salt part 2.
    let pos = g.indexOf(0, 1) + 1 + 4;
    const salt1 = g.subarray(pos, pos + 8);
    pos += 9;
    const serverCaps = (g.readUInt16LE(pos) | (g.readUInt16LE(pos + 5) << 16)) >>> 0;
    pos += 7 + 1 + 10;
    const salt = Buffer.concat([salt1, g.subarray(pos, pos + 12)]);

    let caps = CLIENT_LONG_PASSWORD | CLIENT_LONG_FLAG | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION |
      CLIENT_PLUGIN_AUTH | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | (opts.database ? CLIENT_CONNECT_WITH_DB : 0) | (opts.capabilities ?? 0) |
      (opts.attributes ? CLIENT_CONNECT_ATTRS : 0);
    let seq = greeting.seq + 1;
    if (opts.tls) {
      if (!(serverCaps & CLIENT_SSL)) throw new Error('server does not offer TLS');
      caps |= CLIENT_SSL;
      this.write(new PayloadWriter(32).u32(caps & serverCaps).u32(1 << 24).u8(CHARSET_UTF8MB4).zeros(23).payload(), seq++);
      await this.upgrade();
    }
    caps = (caps & serverCaps) >>> 0;
    const w = new PayloadWriter(128).u32(caps).u32(1 << 24).u8(CHARSET_UTF8MB4).zeros(23).nulString(opts.user)
      .lenencBytes(nativePasswordScramble(opts.password, salt));
    if (caps & CLIENT_CONNECT_WITH_DB) w.nulString(opts.database!);
    w.nulString('mysql_native_password');
    if (caps & CLIENT_CONNECT_ATTRS) {
      const attrs = new PayloadWriter(64);
      for (const [k, v] of Object.entries(opts.attributes ?? {})) attrs.lenencString(k).lenencString(v);
      w.lenencBytes(attrs.payload());
    }
    this.write(w.payload(), seq);

    for (;;) {
      const p = await this.read();
      if (p.payload[0] === 0x00) return;
      if (p.payload[0] === 0xff) throw new Error(`login refused: ${p.payload.toString('utf8', 9)}`);
      if (p.payload[0] !== 0xfe) throw new Error(`unexpected login packet 0x${p.payload[0]?.toString(16)}`);
      const end = p.payload.indexOf(0, 1);
      this.write(nativePasswordScramble(opts.password, p.payload.subarray(end + 1, end + 21)), p.seq + 1);
    }
  }

  /** Replaces the TCP socket by a TLS socket over it (certificates are not verified: a benchmark). */
  private async upgrade(): Promise<void> {
    const raw = this.socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    const secure = tlsConnect({ socket: raw, rejectUnauthorized: false });
    this.listen(secure);
    this.socket = secure;
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
  }

  /** Runs one text query and reads its whole response (OK, ERR, or a result set ended by its second EOF). */
  async query(sql: string): Promise<void> {
    this.write(Buffer.concat([Buffer.from([COM_QUERY]), Buffer.from(sql)]), 0);
    const first = await this.read();
    if (first.payload[0] === 0x00) return;
    if (first.payload[0] === 0xff) throw new Error(`query failed: ${first.payload.toString('utf8', 9)}`);
    // Without CLIENT_DEPRECATE_EOF a result set is: column count, columns, EOF, rows, EOF.
    for (let eofs = 0; eofs < 2;) {
      const p = await this.read();
      if (p.payload[0] === 0xff) throw new Error(`query failed: ${p.payload.toString('utf8', 9)}`);
      if (p.payload[0] === 0xfe && p.payload.length < 9) eofs++;
    }
  }

  /** COM_QUIT, then waits for the server to close first (so TIME_WAIT lands on its side, not on our ports). */
  quit(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      const timer = setTimeout(() => this.socket.destroy(), 2000);
      this.socket.once('close', () => { clearTimeout(timer); resolve(); });
      this.write(Buffer.from([COM_QUIT]), 0);
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** The logged-in socket, no longer read by this client (the fuzzer writes raw bytes on it). */
  takeSocket(): Socket {
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('close');
    this.socket.removeAllListeners('error');
    return this.socket;
  }
}

/** Opens `n` connections, at most `parallel` logins in flight at a time; the first failure rejects. */
export async function openMany(n: number, parallel: number, opts: LeanOptions, onEach?: (c: LeanConnection) => Promise<void>): Promise<LeanConnection[]> {
  const open: LeanConnection[] = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      const c = await LeanConnection.open(opts);
      open.push(c);
      await onEach?.(c);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(parallel, n) }, worker));
  } catch (err) {
    for (const c of open) c.destroy();
    throw err;
  }
  return open;
}
