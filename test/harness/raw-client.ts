// A minimal raw MySQL client for tests that need commands mysql2 cannot send (cursors and
// COM_STMT_FETCH, COM_STMT_SEND_LONG_DATA, COM_FIELD_LIST, COM_SET_OPTION, COM_RESET_CONNECTION, ...)
// or exact control over capability flags (CLIENT_DEPRECATE_EOF on/off).
//
// It logs in with mysql_native_password (answering an AuthSwitchRequest, which the proxy always sends)
// and reads responses with its own small state machine that knows the OK/ERR/EOF/result-set structure.
// That reader is written independently of src/kernel/protocol/response-tracker.ts on purpose: it counts
// column definitions and parses whole logical packets, so it cross-checks the proxy's prefix-only tracker.
// It also checks that every packet's sequence id is the one expected.
import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import {
  CLIENT_CONNECT_WITH_DB, CLIENT_DEPRECATE_EOF, CLIENT_LOCAL_FILES, CLIENT_LONG_FLAG, CLIENT_LONG_PASSWORD,
  CLIENT_MULTI_RESULTS, CLIENT_MULTI_STATEMENTS, CLIENT_PLUGIN_AUTH, CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
  CLIENT_PROTOCOL_41, CLIENT_PS_MULTI_RESULTS, CLIENT_SECURE_CONNECTION, CLIENT_SESSION_TRACK, CLIENT_TRANSACTIONS,
  COM_FIELD_LIST, COM_PROCESS_INFO, COM_QUERY, COM_QUIT, COM_STATISTICS, COM_STMT_BULK_EXECUTE, COM_STMT_EXECUTE, COM_STMT_FETCH,
  COM_STMT_PREPARE, MARIADB_CLIENT_EXTENDED_METADATA, MARIADB_CLIENT_PROGRESS,
} from '../../src/kernel/protocol/constants.js';
import { framePackets, PayloadWriter } from '../../src/kernel/protocol/payload-writer.js';

const MAX_PAYLOAD = 0xffffff;
const MORE_RESULTS = 0x0008;
const CURSOR_EXISTS = 0x0040;

/** Column types of the binary protocol this client encodes/decodes. */
export const MYSQL_TYPE = {
  DECIMAL: 0x00, TINY: 0x01, SHORT: 0x02, LONG: 0x03, FLOAT: 0x04, DOUBLE: 0x05, NULL: 0x06, TIMESTAMP: 0x07,
  LONGLONG: 0x08, INT24: 0x09, DATE: 0x0a, TIME: 0x0b, DATETIME: 0x0c, YEAR: 0x0d, VARCHAR: 0x0f, BIT: 0x10,
  JSON: 0xf5, NEWDECIMAL: 0xf6, ENUM: 0xf7, SET: 0xf8, TINY_BLOB: 0xf9, MEDIUM_BLOB: 0xfa, LONG_BLOB: 0xfb,
  BLOB: 0xfc, VAR_STRING: 0xfd, STRING: 0xfe, GEOMETRY: 0xff,
} as const;

/** One logical packet (continuation packets joined); `seq` is the sequence id of its first packet. */
export interface Packet {
  seq: number;
  payload: Buffer;
}

export interface OkInfo {
  affectedRows: number;
  lastInsertId: number;
  status: number;
  warnings: number;
  info: string;
}

export interface ErrInfo {
  code: number;
  sqlState: string;
  message: string;
}

export interface Column {
  schema: string;
  table: string;
  name: string;
  charset: number;
  length: number;
  type: number;
  flags: number;
  decimals: number;
  /** MariaDB extended type information (MARIADB_CLIENT_EXTENDED_METADATA): 0 = type name, 1 = format, e.g. { 1: 'json' }. */
  extended?: Record<number, string>;
}

/** One step of a response, in order. A result set cut short by an ERR is followed by the error item. */
export type ResultItem =
  | { kind: 'ok'; ok: OkInfo }
  | { kind: 'error'; error: ErrInfo }
  | { kind: 'eof'; status: number; warnings: number }
  | { kind: 'info'; text: string }
  | { kind: 'prepare'; statementId: number; columns: Column[]; params: Column[]; warnings: number }
  | { kind: 'rows'; columns: Column[]; rows: Buffer[]; status: number; complete: boolean };

export class ServerError extends Error {
  constructor(readonly code: number, readonly sqlState: string, message: string) {
    super(`ER ${code} (${sqlState}): ${message}`);
    this.name = 'ServerError';
  }
}

export interface RawClientOptions {
  host: string;
  port: number;
  user: string;
  password: string;
  database?: string;
  /** CLIENT_DEPRECATE_EOF (default true). */
  deprecateEof?: boolean;
  /** CLIENT_MULTI_STATEMENTS (default false). */
  multiStatements?: boolean;
  /** Extra capability bits to set / clear after the above. */
  addCapabilities?: number;
  removeCapabilities?: number;
  /**
   * MariaDB extended capabilities to ask for (MARIADB_CLIENT_*): the client then clears CLIENT_MYSQL
   * and sends them in the last 4 of its 23 reserved bytes, as MariaDB's connectors do.
   */
  extendedCapabilities?: number;
  /** Answers a LOCAL INFILE request with the file's bytes (without it, an empty file is sent). */
  onLocalInfile?: (filename: string) => Buffer;
  /** Per-read timeout (default 30 s). */
  timeoutMs?: number;
}

export function nativePasswordScramble(password: string, salt: Buffer): Buffer {
  if (password === '') return Buffer.alloc(0);
  const sha1 = (b: Buffer) => createHash('sha1').update(b).digest();
  const stage1 = sha1(Buffer.from(password, 'utf8'));
  const stage2 = sha1(stage1);
  const mix = sha1(Buffer.concat([salt, stage2]));
  for (let i = 0; i < mix.length; i++) mix[i]! ^= stage1[i]!;
  return mix;
}

// ---- payload parsing (independent of src/kernel) --------------------------------------------------

export function readLenenc(buf: Buffer, pos: number): { value: number; next: number; isNull: boolean } {
  const b = buf[pos]!;
  if (b < 0xfb) return { value: b, next: pos + 1, isNull: false };
  if (b === 0xfb) return { value: 0, next: pos + 1, isNull: true };
  if (b === 0xfc) return { value: buf.readUInt16LE(pos + 1), next: pos + 3, isNull: false };
  if (b === 0xfd) return { value: buf.readUIntLE(pos + 1, 3), next: pos + 4, isNull: false };
  return { value: Number(buf.readBigUInt64LE(pos + 1)), next: pos + 9, isNull: false };
}

function readLenencBytes(buf: Buffer, pos: number): { value: Buffer | null; next: number } {
  const l = readLenenc(buf, pos);
  if (l.isNull) return { value: null, next: l.next };
  return { value: buf.subarray(l.next, l.next + l.value), next: l.next + l.value };
}

/** OK packet (0x00, or 0xFE when it replaces an EOF). With CLIENT_SESSION_TRACK the info is length-encoded. */
export function parseOk(payload: Buffer, sessionTrack = false): OkInfo {
  const a = readLenenc(payload, 1);
  const b = readLenenc(payload, a.next);
  const status = payload.readUInt16LE(b.next);
  const warnings = payload.readUInt16LE(b.next + 2);
  let info = '';
  const rest = b.next + 4;
  if (rest < payload.length) {
    if (sessionTrack) {
      const l = readLenenc(payload, rest);
      info = payload.toString('utf8', l.next, Math.min(payload.length, l.next + l.value));
    } else info = payload.toString('utf8', rest);
  }
  return { affectedRows: a.value, lastInsertId: b.value, status, warnings, info };
}

export function parseErr(payload: Buffer): ErrInfo {
  const code = payload.readUInt16LE(1);
  if (payload[3] === 0x23) return { code, sqlState: payload.toString('latin1', 4, 9), message: payload.toString('utf8', 9) };
  return { code, sqlState: 'HY000', message: payload.toString('utf8', 3) };
}

export function parseColumn(payload: Buffer, extendedMetadata = false): Column {
  let pos = 0;
  const strings: string[] = [];
  for (let k = 0; k < 6; k++) {
    const s = readLenencBytes(payload, pos);
    strings.push(s.value?.toString('utf8') ?? '');
    pos = s.next;
  }
  let extended: Record<number, string> | undefined;
  if (extendedMetadata) {
    // A lenenc string of (type byte, lenenc string) pairs, between org_name and the fixed fields.
    const e = readLenencBytes(payload, pos);
    pos = e.next;
    extended = {};
    for (let at = 0; e.value && at < e.value.length;) {
      const key = e.value[at]!;
      const v = readLenencBytes(e.value, at + 1);
      extended[key] = v.value?.toString('utf8') ?? '';
      at = v.next;
    }
  }
  pos = readLenenc(payload, pos).next; // length of fixed fields (0x0c)
  return {
    schema: strings[1]!, table: strings[2]!, name: strings[4]!,
    charset: payload.readUInt16LE(pos), length: payload.readUInt32LE(pos + 2), type: payload[pos + 6]!,
    flags: payload.readUInt16LE(pos + 7), decimals: payload[pos + 9]!, ...(extended ? { extended } : {}),
  };
}

/** A text-protocol row: one string (or null) per column. */
export function textRow(payload: Buffer, columns: number): Array<string | null> {
  const out: Array<string | null> = [];
  let pos = 0;
  for (let k = 0; k < columns; k++) {
    const v = readLenencBytes(payload, pos);
    out.push(v.value === null ? null : v.value.toString('utf8'));
    pos = v.next;
  }
  return out;
}

export type BinaryValue = number | bigint | string | Buffer | null;

const BINARY_CHARSET = 63;

/** A binary-protocol row (0x00, NULL bitmap with offset 2, values). Strings come back utf8, binary as Buffer. */
export function binaryRow(payload: Buffer, columns: Column[]): BinaryValue[] {
  if (payload[0] !== 0x00) throw new Error(`binary row starts with 0x${payload[0]!.toString(16)}`);
  const bitmapLength = Math.floor((columns.length + 7 + 2) / 8);
  let pos = 1 + bitmapLength;
  const out: BinaryValue[] = [];
  for (let k = 0; k < columns.length; k++) {
    const bit = k + 2;
    if (payload[1 + (bit >> 3)]! & (1 << (bit & 7))) {
      out.push(null);
      continue;
    }
    const c = columns[k]!;
    const unsigned = (c.flags & 0x20) !== 0;
    switch (c.type) {
      case MYSQL_TYPE.TINY: out.push(unsigned ? payload.readUInt8(pos) : payload.readInt8(pos)); pos += 1; break;
      case MYSQL_TYPE.SHORT: case MYSQL_TYPE.YEAR: out.push(unsigned ? payload.readUInt16LE(pos) : payload.readInt16LE(pos)); pos += 2; break;
      case MYSQL_TYPE.LONG: case MYSQL_TYPE.INT24: out.push(unsigned ? payload.readUInt32LE(pos) : payload.readInt32LE(pos)); pos += 4; break;
      case MYSQL_TYPE.LONGLONG: out.push(unsigned ? payload.readBigUInt64LE(pos) : payload.readBigInt64LE(pos)); pos += 8; break;
      case MYSQL_TYPE.FLOAT: out.push(payload.readFloatLE(pos)); pos += 4; break;
      case MYSQL_TYPE.DOUBLE: out.push(payload.readDoubleLE(pos)); pos += 8; break;
      case MYSQL_TYPE.DATE: case MYSQL_TYPE.DATETIME: case MYSQL_TYPE.TIMESTAMP: {
        const n = payload[pos]!;
        const p = pos + 1;
        const pad = (v: number, w = 2) => String(v).padStart(w, '0');
        let s = n >= 4 ? `${pad(payload.readUInt16LE(p), 4)}-${pad(payload[p + 2]!)}-${pad(payload[p + 3]!)}` : '0000-00-00';
        if (c.type !== MYSQL_TYPE.DATE) s += n >= 7 ? ` ${pad(payload[p + 4]!)}:${pad(payload[p + 5]!)}:${pad(payload[p + 6]!)}` : ' 00:00:00';
        if (n >= 11) s += `.${pad(payload.readUInt32LE(p + 7), 6)}`;
        out.push(s);
        pos = p + n;
        break;
      }
      case MYSQL_TYPE.TIME: {
        const n = payload[pos]!;
        const p = pos + 1;
        if (n === 0) out.push('00:00:00');
        else {
          const pad = (v: number) => String(v).padStart(2, '0');
          const hours = payload.readUInt32LE(p + 1) * 24 + payload[p + 5]!;
          out.push(`${payload[p] ? '-' : ''}${pad(hours)}:${pad(payload[p + 6]!)}:${pad(payload[p + 7]!)}`);
        }
        pos = p + n;
        break;
      }
      default: {
        const v = readLenencBytes(payload, pos);
        pos = v.next;
        out.push(c.charset === BINARY_CHARSET && c.type !== MYSQL_TYPE.NEWDECIMAL ? Buffer.from(v.value!) : v.value!.toString('utf8'));
      }
    }
  }
  return out;
}

// ---- command payload builders ----------------------------------------------------------------------

/** A parameter for COM_STMT_EXECUTE; `{ longData: type }` declares a parameter whose value was sent with SEND_LONG_DATA. */
export type ExecuteParam = null | number | bigint | string | Buffer | { longData: number };

export function comQuery(sql: string): Buffer {
  return new PayloadWriter(sql.length + 1).u8(COM_QUERY).string(sql).payload();
}

export function comSimple(command: number, body: Buffer | string = Buffer.alloc(0)): Buffer {
  return new PayloadWriter(16).u8(command).bytes(typeof body === 'string' ? Buffer.from(body, 'utf8') : body).payload();
}

export function comStmt(command: number, statementId: number, ...rest: Buffer[]): Buffer {
  const w = new PayloadWriter(16).u8(command).u32(statementId);
  for (const r of rest) w.bytes(r);
  return w.payload();
}

export function comStmtExecute(statementId: number, params: ExecuteParam[], cursorFlags = 0): Buffer {
  const w = new PayloadWriter(64).u8(COM_STMT_EXECUTE).u32(statementId).u8(cursorFlags).u32(1);
  if (params.length === 0) return w.payload();
  const bitmap = Buffer.alloc(Math.floor((params.length + 7) / 8));
  params.forEach((p, i) => { if (p === null) bitmap[i >> 3]! |= 1 << (i & 7); });
  w.bytes(bitmap).u8(1);
  const values = new PayloadWriter(64);
  for (const p of params) {
    if (p === null) w.u8(MYSQL_TYPE.NULL).u8(0);
    else if (typeof p === 'bigint') {
      w.u8(MYSQL_TYPE.LONGLONG).u8(0);
      const b = Buffer.alloc(8);
      b.writeBigInt64LE(p);
      values.bytes(b);
    } else if (typeof p === 'number') {
      if (Number.isInteger(p)) {
        w.u8(MYSQL_TYPE.LONGLONG).u8(0);
        const b = Buffer.alloc(8);
        b.writeBigInt64LE(BigInt(p));
        values.bytes(b);
      } else {
        w.u8(MYSQL_TYPE.DOUBLE).u8(0);
        const b = Buffer.alloc(8);
        b.writeDoubleLE(p);
        values.bytes(b);
      }
    } else if (typeof p === 'string') {
      w.u8(MYSQL_TYPE.VAR_STRING).u8(0);
      values.lenencString(p);
    } else if (Buffer.isBuffer(p)) {
      w.u8(MYSQL_TYPE.BLOB).u8(0);
      values.lenencBytes(p);
    } else {
      w.u8(p.longData).u8(0); // value already sent with COM_STMT_SEND_LONG_DATA: nothing here
    }
  }
  return w.bytes(values.payload()).payload();
}

/**
 * COM_STMT_BULK_EXECUTE (MariaDB) for rows of integers and strings: statement id, flags (128 when the
 * parameter types are sent), the types (from the first row), then per row and parameter an indicator
 * (0 value follows, 1 NULL) and the value.
 */
export function comStmtBulkExecute(statementId: number, rows: Array<Array<number | string | null>>, sendTypes = true): Buffer {
  const w = new PayloadWriter(64 + rows.length * 16).u8(COM_STMT_BULK_EXECUTE).u32(statementId).u16(sendTypes ? 128 : 0);
  const typeOf = (v: number | string | null) => (typeof v === 'number' ? MYSQL_TYPE.LONGLONG : MYSQL_TYPE.VAR_STRING);
  if (sendTypes) for (const v of rows[0]!) w.u8(typeOf(v)).u8(0);
  for (const row of rows) {
    for (const v of row) {
      if (v === null) w.u8(1);
      else if (typeof v === 'number') {
        const b = Buffer.alloc(8);
        b.writeBigInt64LE(BigInt(v));
        w.u8(0).bytes(b);
      } else w.u8(0).lenencString(v);
    }
  }
  return w.payload();
}

// ---- the client ------------------------------------------------------------------------------------

export class RawClient {
  /** The server's (here: the proxy's) greeting. */
  connectionId = 0;
  serverVersion = '';
  serverCapabilities = 0;
  /** Capabilities this client negotiated (its wishes masked by the server's offer). */
  capabilities = 0;
  /** MariaDB extended capabilities of the server's greeting, and those this client negotiated. */
  serverExtendedCapabilities = 0;
  extendedCapabilities = 0;
  /** Progress report packets (ERR 0xFFFF, MARIADB_CLIENT_PROGRESS) received, whole payloads. */
  readonly progressReports: Buffer[] = [];
  /** Status flags of the last OK/EOF seen. */
  status = 0;
  /** Set once the peer closed the connection. */
  closed = false;
  readonly closedPromise: Promise<void>;

  private chunks: Buffer[] = [];
  private buffered = 0;
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;
  private expectSeq = 0;
  private readonly timeoutMs: number;

  private constructor(private readonly socket: Socket, private readonly opts: RawClientOptions) {
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      this.satisfy();
    });
    this.closedPromise = new Promise((resolve) => {
      socket.on('close', () => {
        this.closed = true;
        this.fail(new Error('connection closed by peer'));
        resolve();
      });
    });
    socket.on('error', (err) => this.fail(err));
  }

  get sessionTrack(): boolean {
    return (this.capabilities & CLIENT_SESSION_TRACK) !== 0;
  }

  get deprecateEof(): boolean {
    return (this.capabilities & CLIENT_DEPRECATE_EOF) !== 0;
  }

  get extendedMetadata(): boolean {
    return (this.extendedCapabilities & MARIADB_CLIENT_EXTENDED_METADATA) !== 0;
  }

  static async connect(opts: RawClientOptions): Promise<RawClient> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: opts.host, port: opts.port });
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
    const client = new RawClient(socket, opts);
    try {
      await client.login();
    } catch (err) {
      socket.destroy();
      throw err;
    }
    return client;
  }

  private async login(): Promise<void> {
    const { opts } = this;
    const greeting = await this.readPacket();
    const g = greeting.payload;
    if (g[0] === 0xff) throw this.serverError(g);
    if (g[0] !== 10) throw new Error(`unexpected greeting protocol version ${g[0]}`);
    let pos = g.indexOf(0, 1);
    this.serverVersion = g.toString('utf8', 1, pos);
    pos++;
    this.connectionId = g.readUInt32LE(pos);
    pos += 4;
    const salt1 = g.subarray(pos, pos + 8);
    pos += 9;
    let caps = g.readUInt16LE(pos);
    pos += 2 + 1 + 2; // capabilities (low), charset, status
    caps = (caps | (g.readUInt16LE(pos) << 16)) >>> 0;
    pos += 2;
    const saltLength = g[pos]!;
    // MariaDB: with CLIENT_MYSQL clear, the last 4 of the 10 reserved bytes are the extended capabilities.
    this.serverExtendedCapabilities = caps & CLIENT_LONG_PASSWORD ? 0 : g.readUInt32LE(pos + 1 + 6);
    pos += 1 + 10;
    const salt2 = g.subarray(pos, pos + Math.max(12, saltLength - 9));
    this.serverCapabilities = caps;
    const salt = Buffer.concat([salt1, salt2]);

    let wanted = CLIENT_LONG_PASSWORD | CLIENT_LONG_FLAG | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION |
      CLIENT_MULTI_RESULTS | CLIENT_PS_MULTI_RESULTS | CLIENT_PLUGIN_AUTH | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA |
      CLIENT_LOCAL_FILES | CLIENT_SESSION_TRACK;
    if (opts.deprecateEof ?? true) wanted |= CLIENT_DEPRECATE_EOF;
    if (opts.multiStatements) wanted |= CLIENT_MULTI_STATEMENTS;
    if (opts.database) wanted |= CLIENT_CONNECT_WITH_DB;
    wanted |= opts.addCapabilities ?? 0;
    wanted &= ~(opts.removeCapabilities ?? 0);
    if (opts.extendedCapabilities !== undefined) wanted &= ~CLIENT_LONG_PASSWORD;
    this.capabilities = (wanted & caps) >>> 0;
    this.extendedCapabilities = this.capabilities & CLIENT_LONG_PASSWORD ? 0 : ((opts.extendedCapabilities ?? 0) & this.serverExtendedCapabilities) >>> 0;

    const w = new PayloadWriter(128).u32(this.capabilities).u32(64 * 1024 * 1024).u8(45).zeros(19).u32(this.extendedCapabilities).nulString(opts.user);
    const auth = nativePasswordScramble(opts.password, salt.subarray(0, 20));
    if (this.capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) w.lenencBytes(auth);
    else w.u8(auth.length).bytes(auth);
    if (this.capabilities & CLIENT_CONNECT_WITH_DB) w.nulString(opts.database ?? '');
    if (this.capabilities & CLIENT_PLUGIN_AUTH) w.nulString('mysql_native_password');
    this.write(w.payload(), greeting.seq + 1);

    for (;;) {
      const p = await this.readPacket();
      const first = p.payload[0];
      if (first === 0x00) {
        this.status = parseOk(p.payload, this.sessionTrack).status;
        return;
      }
      if (first === 0xff) throw this.serverError(p.payload);
      if (first === 0xfe) {
        const end = p.payload.indexOf(0, 1);
        const plugin = p.payload.toString('utf8', 1, end);
        if (plugin !== 'mysql_native_password') throw new Error(`raw client: unsupported auth plugin ${plugin}`);
        const switchSalt = p.payload.subarray(end + 1, end + 21);
        this.write(nativePasswordScramble(opts.password, switchSalt), p.seq + 1);
        continue;
      }
      throw new Error(`raw client: unexpected packet 0x${first?.toString(16)} during login`);
    }
  }

  // ---- framing -------------------------------------------------------------------------------------

  private fail(err: Error): void {
    this.failure ??= err;
    const w = this.waiter;
    if (w && this.buffered < w.n) {
      this.waiter = null;
      w.reject(this.failure);
    }
  }

  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }

  private satisfy(): void {
    const w = this.waiter;
    if (w && this.buffered >= w.n) {
      this.waiter = null;
      w.resolve(this.take(w.n));
    }
  }

  private readBytes(n: number): Promise<Buffer> {
    if (this.buffered >= n) return Promise.resolve(this.take(n));
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`raw client: no reply within ${this.timeoutMs} ms (have ${this.buffered} of ${n} bytes)`));
      }, this.timeoutMs);
      this.waiter = {
        n,
        resolve: (b) => { clearTimeout(timer); resolve(b); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
    });
  }

  /** Reads one logical packet, joining continuation packets; checks sequence ids. */
  async readPacket(): Promise<Packet> {
    let firstSeq = -1;
    const parts: Buffer[] = [];
    for (;;) {
      const header = await this.readBytes(4);
      const length = header.readUIntLE(0, 3);
      const seq = header[3]!;
      if (seq !== this.expectSeq) throw new Error(`raw client: packet sequence ${seq}, expected ${this.expectSeq}`);
      this.expectSeq = (seq + 1) & 0xff;
      if (firstSeq === -1) firstSeq = seq;
      parts.push(length === 0 ? Buffer.alloc(0) : await this.readBytes(length));
      if (length < MAX_PAYLOAD) break;
    }
    return { seq: firstSeq, payload: parts.length === 1 ? parts[0]! : Buffer.concat(parts) };
  }

  private write(payload: Buffer, seq: number): void {
    const { packet, nextSeq } = framePackets(payload, seq);
    this.expectSeq = nextSeq;
    this.socket.write(packet);
  }

  private serverError(payload: Buffer): ServerError {
    const e = parseErr(payload);
    return new ServerError(e.code, e.sqlState, e.message);
  }

  /** Bytes received but not yet consumed by a read (a cross-check that a response had no extra packets). */
  get unreadBytes(): number {
    return this.buffered;
  }

  // ---- commands ------------------------------------------------------------------------------------

  /** Sends a command at sequence 0 and reads its whole response. */
  async command(payload: Buffer): Promise<Packet[]> {
    return (await this.commandResults(payload)).packets;
  }

  /** Like command(), also returning the response interpreted step by step. */
  async commandResults(payload: Buffer): Promise<{ packets: Packet[]; results: ResultItem[] }> {
    if (this.closed) throw new Error('raw client: connection is closed');
    this.write(payload, 0);
    const packets: Packet[] = [];
    const results: ResultItem[] = [];
    const next = async () => {
      const p = await this.readPacket();
      packets.push(p);
      return p;
    };
    await this.readResponse(payload[0]!, next, results);
    return { packets, results };
  }

  /**
   * Pipelining: writes all commands (each at sequence 0) in one go, then reads their responses in order.
   * Every command must expect a reply.
   */
  async pipeline(payloads: Buffer[]): Promise<Array<{ packets: Packet[]; results: ResultItem[] }>> {
    if (this.closed) throw new Error('raw client: connection is closed');
    this.socket.write(Buffer.concat(payloads.map((p) => framePackets(p, 0).packet)));
    const out: Array<{ packets: Packet[]; results: ResultItem[] }> = [];
    for (const payload of payloads) {
      this.expectSeq = 1;
      const packets: Packet[] = [];
      const results: ResultItem[] = [];
      await this.readResponse(payload[0]!, async () => {
        const p = await this.readPacket();
        packets.push(p);
        return p;
      }, results);
      out.push({ packets, results });
    }
    return out;
  }

  /** Sends a command the server does not answer (COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA, COM_QUIT). */
  send(payload: Buffer): void {
    this.write(payload, 0);
    this.expectSeq = 0;
  }

  /** COM_QUERY, returning the interpreted response; throws ServerError when it is a single ERR. */
  async query(sql: string): Promise<ResultItem[]> {
    const { results } = await this.commandResults(comQuery(sql));
    if (results.length === 1 && results[0]!.kind === 'error') {
      const e = results[0].error;
      throw new ServerError(e.code, e.sqlState, e.message);
    }
    return results;
  }

  /** Rows of the first result set of a text query, as strings. */
  async rows(sql: string): Promise<Array<Array<string | null>>> {
    const results = await this.query(sql);
    const set = results.find((r) => r.kind === 'rows');
    if (!set || set.kind !== 'rows') throw new Error(`raw client: "${sql}" returned no result set`);
    return set.rows.map((r) => textRow(r, set.columns.length));
  }

  async prepare(sql: string): Promise<{ statementId: number; params: Column[]; columns: Column[] }> {
    const { results } = await this.commandResults(new PayloadWriter(sql.length + 1).u8(COM_STMT_PREPARE).string(sql).payload());
    const r = results[0]!;
    if (r.kind === 'error') throw new ServerError(r.error.code, r.error.sqlState, r.error.message);
    if (r.kind !== 'prepare') throw new Error('raw client: prepare returned no statement');
    return r;
  }

  /** COM_QUIT, then waits until the peer closes the connection (this side does not close it). */
  async quit(): Promise<void> {
    if (!this.closed) this.send(Buffer.from([COM_QUIT]));
    await this.closedPromise;
  }

  /** Closes the socket (COM_QUIT first when still open). */
  async close(): Promise<void> {
    if (this.closed) return;
    const timer = setTimeout(() => this.socket.destroy(), 2000);
    await this.quit();
    clearTimeout(timer);
  }

  destroy(): void {
    this.socket.destroy();
  }

  // ---- response structure --------------------------------------------------------------------------

  private isTerminator(p: Packet): boolean {
    if (p.payload[0] !== 0xfe) return false;
    return this.deprecateEof ? p.payload.length < MAX_PAYLOAD : p.payload.length < 9;
  }

  /** Status flags of an EOF (or, with DEPRECATE_EOF, the OK that replaces it). */
  private terminatorStatus(p: Packet): { status: number; warnings: number } {
    if (this.deprecateEof) {
      const ok = parseOk(p.payload, this.sessionTrack);
      return { status: ok.status, warnings: ok.warnings };
    }
    return { status: p.payload.readUInt16LE(3), warnings: p.payload.readUInt16LE(1) };
  }

  private async readResponse(command: number, next: () => Promise<Packet>, out: ResultItem[]): Promise<void> {
    switch (command) {
      case COM_QUERY:
      case COM_STMT_EXECUTE:
      case COM_STMT_BULK_EXECUTE:
      case COM_PROCESS_INFO:
        return this.readResults(next, out);
      case COM_STMT_PREPARE: {
        const p = await next();
        if (p.payload[0] === 0xff) {
          out.push({ kind: 'error', error: parseErr(p.payload) });
          return;
        }
        if (p.payload[0] !== 0x00 || p.payload.length < 12) throw new Error('raw client: malformed COM_STMT_PREPARE_OK');
        const statementId = p.payload.readUInt32LE(1);
        const columnCount = p.payload.readUInt16LE(5);
        const paramCount = p.payload.readUInt16LE(7);
        const warnings = p.payload.readUInt16LE(10);
        const params: Column[] = [];
        const columns: Column[] = [];
        for (let k = 0; k < paramCount; k++) params.push(parseColumn((await next()).payload, this.extendedMetadata));
        if (paramCount > 0 && !this.deprecateEof) await this.expectEof(next);
        for (let k = 0; k < columnCount; k++) columns.push(parseColumn((await next()).payload, this.extendedMetadata));
        if (columnCount > 0 && !this.deprecateEof) await this.expectEof(next);
        out.push({ kind: 'prepare', statementId, params, columns, warnings });
        return;
      }
      case COM_STMT_FETCH:
        // Rows only (the columns came with the EXECUTE that opened the cursor).
        await this.readRows(next, out, []);
        return;
      case COM_FIELD_LIST: {
        const columns: Column[] = [];
        for (;;) {
          const p = await next();
          if (p.payload[0] === 0xff) {
            out.push({ kind: 'error', error: parseErr(p.payload) });
            return;
          }
          if (this.isTerminator(p)) {
            const t = this.terminatorStatus(p);
            this.status = t.status;
            out.push({ kind: 'rows', columns, rows: [], status: t.status, complete: true });
            return;
          }
          columns.push(parseColumn(p.payload, this.extendedMetadata));
        }
      }
      case COM_STATISTICS: {
        const p = await next();
        out.push(p.payload[0] === 0xff ? { kind: 'error', error: parseErr(p.payload) } : { kind: 'info', text: p.payload.toString('utf8') });
        return;
      }
      default: {
        const p = await next();
        out.push(this.single(p));
      }
    }
  }

  private single(p: Packet): ResultItem {
    const first = p.payload[0];
    if (first === 0x00) {
      const ok = parseOk(p.payload, this.sessionTrack);
      this.status = ok.status;
      return { kind: 'ok', ok };
    }
    if (first === 0xff) return { kind: 'error', error: parseErr(p.payload) };
    if (first === 0xfe && p.payload.length < 9) {
      const status = p.payload.length >= 5 ? p.payload.readUInt16LE(3) : 0;
      this.status = status;
      return { kind: 'eof', status, warnings: p.payload.length >= 3 ? p.payload.readUInt16LE(1) : 0 };
    }
    throw new Error(`raw client: unexpected reply 0x${first?.toString(16)} (${p.payload.length} bytes)`);
  }

  private async expectEof(next: () => Promise<Packet>): Promise<void> {
    const p = await next();
    if (!(p.payload[0] === 0xfe && p.payload.length < 9)) throw new Error(`raw client: expected EOF, got 0x${p.payload[0]?.toString(16)}`);
  }

  private async readResults(next: () => Promise<Packet>, out: ResultItem[]): Promise<void> {
    for (;;) {
      const p = await next();
      const first = p.payload[0];
      if (first === 0x00) {
        const ok = parseOk(p.payload, this.sessionTrack);
        this.status = ok.status;
        out.push({ kind: 'ok', ok });
        if (ok.status & MORE_RESULTS) continue;
        return;
      }
      if (first === 0xff && p.payload.readUInt16LE(1) === 0xffff && this.extendedCapabilities & MARIADB_CLIENT_PROGRESS) {
        this.progressReports.push(p.payload);
        continue;
      }
      if (first === 0xff) {
        out.push({ kind: 'error', error: parseErr(p.payload) });
        return;
      }
      if (first === 0xfb) {
        const filename = p.payload.toString('utf8', 1);
        let data: Buffer = Buffer.alloc(0);
        if (this.opts.onLocalInfile) data = this.opts.onLocalInfile(filename);
        // The file in packets of at most 16 KiB, then an empty packet; the server's OK/ERR follows.
        let seq = (p.seq + 1) & 0xff;
        for (let off = 0; off < data.length; off += 16384) {
          const piece = data.subarray(off, Math.min(data.length, off + 16384));
          this.socket.write(framePackets(piece, seq).packet);
          seq = (seq + 1) & 0xff;
        }
        this.write(Buffer.alloc(0), seq);
        continue;
      }
      const count = readLenenc(p.payload, 0).value;
      const columns: Column[] = [];
      for (let k = 0; k < count; k++) columns.push(parseColumn((await next()).payload, this.extendedMetadata));
      if (!this.deprecateEof) {
        const eof = await next();
        if (!this.isTerminator(eof)) throw new Error(`raw client: expected EOF after ${count} columns, got 0x${eof.payload[0]?.toString(16)}`);
        const t = this.terminatorStatus(eof);
        this.status = t.status;
        if (t.status & CURSOR_EXISTS) {
          // Execute with a cursor: no rows now, they come with COM_STMT_FETCH.
          out.push({ kind: 'rows', columns, rows: [], status: t.status, complete: true });
          return;
        }
      }
      const status = await this.readRows(next, out, columns);
      if (status === -1 || !(status & MORE_RESULTS)) return;
    }
  }

  /** Rows until the terminator (returns its status) or an ERR (returns -1). */
  private async readRows(next: () => Promise<Packet>, out: ResultItem[], columns: Column[]): Promise<number> {
    const rows: Buffer[] = [];
    for (;;) {
      const p = await next();
      if (p.payload[0] === 0xff) {
        out.push({ kind: 'rows', columns, rows, status: -1, complete: false });
        out.push({ kind: 'error', error: parseErr(p.payload) });
        return -1;
      }
      if (this.isTerminator(p)) {
        const t = this.terminatorStatus(p);
        this.status = t.status;
        out.push({ kind: 'rows', columns, rows, status: t.status, complete: true });
        return t.status;
      }
      rows.push(p.payload);
    }
  }
}
