// The emulator's side of the MySQL wire protocol: reading client packets off a socket and encoding
// what a server sends (column definitions, text and binary result sets, prepare replies) and the
// binary-protocol parameters of COM_STMT_EXECUTE. OK/ERR/EOF, greetings and auth switches reuse the
// proxy's own builders in src/kernel/protocol.
import type { Socket } from 'node:net';
import { CLIENT_DEPRECATE_EOF, MAX_PACKET_PAYLOAD } from '../../../src/kernel/protocol/constants.js';
import { PayloadReader } from '../../../src/kernel/protocol/payload-reader.js';
import { framePackets, PayloadWriter } from '../../../src/kernel/protocol/payload-writer.js';
import { buildEofPayload, buildOkPayload } from '../../../src/kernel/protocol/response-packets.js';
import { MYSQL_TYPE } from '../raw-client.js';
import { ER_WRONG_ARGUMENTS, SqlError } from './errors.js';
import { columnType, toText, type SqlValue } from './values.js';

export interface Packet {
  seq: number;
  payload: Buffer;
}

/** utf8mb4_bin: what TiDB labels string columns with (mysql2 returns strings, not Buffers, for it). */
const CHARSET_UTF8MB4_BIN = 46;
const CHARSET_BINARY = 63;
const BINARY_FLAG = 0x80;
const UNSIGNED_FLAG = 0x8000;

/** Logical packets from a socket, continuation packets joined; read() resolves null once it closed. */
export class PacketReader {
  private buffered: Buffer = Buffer.alloc(0);
  private readonly ready: Packet[] = [];
  private partial: Buffer[] = [];
  private waiter: ((p: Packet | null) => void) | null = null;
  private closed = false;

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.feed(chunk));
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.(null);
      this.waiter = null;
    });
  }

  private feed(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= 4) {
      const length = this.buffered.readUIntLE(0, 3);
      if (this.buffered.length < 4 + length) break;
      const seq = this.buffered[3]!;
      this.partial.push(this.buffered.subarray(4, 4 + length));
      this.buffered = this.buffered.subarray(4 + length);
      if (length === MAX_PACKET_PAYLOAD) continue;
      const packet = { seq, payload: Buffer.concat(this.partial) };
      this.partial = [];
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = null;
        w(packet);
      } else this.ready.push(packet);
    }
  }

  read(): Promise<Packet | null> {
    const next = this.ready.shift();
    if (next) return Promise.resolve(next);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => (this.waiter = resolve));
  }
}

/** Packets of one response, framed with consecutive sequence ids and written at once. */
export class ResponseWriter {
  private readonly parts: Buffer[] = [];

  constructor(private seq: number) {}

  add(payload: Buffer): this {
    const { packet, nextSeq } = framePackets(payload, this.seq);
    this.parts.push(packet);
    this.seq = nextSeq;
    return this;
  }

  get nextSeq(): number {
    return this.seq;
  }

  flush(socket: Socket): void {
    if (this.parts.length > 0 && !socket.destroyed) socket.write(Buffer.concat(this.parts));
    this.parts.length = 0;
  }
}

export function columnDefinition(name: string, type: number): Buffer {
  const numeric = type === MYSQL_TYPE.LONGLONG || type === MYSQL_TYPE.DOUBLE;
  return new PayloadWriter(64)
    .lenencString('def').lenencString('').lenencString('').lenencString('').lenencString(name).lenencString(name)
    .lenenc(0x0c).u16(numeric ? CHARSET_BINARY : CHARSET_UTF8MB4_BIN).u32(numeric ? 22 : 1024).u8(type)
    .u16(numeric ? BINARY_FLAG : 0).u8(type === MYSQL_TYPE.DOUBLE ? 31 : 0).u16(0)
    .payload();
}

/** End of a block of column definitions (only without CLIENT_DEPRECATE_EOF) and end of rows. */
function endOfBlock(out: ResponseWriter, capabilities: number, status: number): void {
  if (!(capabilities & CLIENT_DEPRECATE_EOF)) out.add(buildEofPayload(status));
}

function endOfRows(out: ResponseWriter, capabilities: number, status: number): void {
  out.add(capabilities & CLIENT_DEPRECATE_EOF ? buildOkPayload(status, { eofHeader: true }) : buildEofPayload(status));
}

function textRow(row: SqlValue[]): Buffer {
  const w = new PayloadWriter(64);
  for (const v of row) {
    const text = toText(v);
    if (text === null) w.u8(0xfb);
    else w.lenencString(text);
  }
  return w.payload();
}

function binaryRow(row: SqlValue[], types: number[]): Buffer {
  const bitmap = Buffer.alloc((row.length + 7 + 2) >> 3);
  const values = new PayloadWriter(64);
  row.forEach((v, i) => {
    if (v === null) {
      bitmap[(i + 2) >> 3]! |= 1 << ((i + 2) & 7);
      return;
    }
    const type = types[i];
    if (type === MYSQL_TYPE.LONGLONG) {
      const b = Buffer.alloc(8);
      b.writeBigInt64LE(typeof v === 'bigint' ? v : BigInt(Math.trunc(Number(v))));
      values.bytes(b);
    } else if (type === MYSQL_TYPE.DOUBLE) {
      const b = Buffer.alloc(8);
      b.writeDoubleLE(Number(v));
      values.bytes(b);
    } else values.lenencString(toText(v)!);
  });
  return new PayloadWriter(8 + bitmap.length).u8(0x00).bytes(bitmap).bytes(values.payload()).payload();
}

/** A result set, text protocol (COM_QUERY) or binary (COM_STMT_EXECUTE). */
export function resultSet(out: ResponseWriter, columns: string[], rows: SqlValue[][], opts: { binary: boolean; capabilities: number; status: number }): void {
  const types = columns.map((_, i) => columnType(rows.map((r) => r[i] ?? null)));
  out.add(new PayloadWriter(4).lenenc(columns.length).payload());
  columns.forEach((name, i) => out.add(columnDefinition(name, types[i]!)));
  endOfBlock(out, opts.capabilities, opts.status);
  for (const row of rows) out.add(opts.binary ? binaryRow(row, types) : textRow(row));
  endOfRows(out, opts.capabilities, opts.status);
}

/** COM_STMT_PREPARE's reply: statement id, counts, then parameter and column definitions. */
export function prepareReply(out: ResponseWriter, id: number, params: number, columns: string[], opts: { capabilities: number; status: number }): void {
  out.add(new PayloadWriter(12).u8(0x00).u32(id).u16(columns.length).u16(params).u8(0).u16(0).payload());
  if (params > 0) {
    for (let i = 0; i < params; i++) out.add(columnDefinition('?', MYSQL_TYPE.VAR_STRING));
    endOfBlock(out, opts.capabilities, opts.status);
  }
  if (columns.length > 0) {
    for (const name of columns) out.add(columnDefinition(name, MYSQL_TYPE.VAR_STRING));
    endOfBlock(out, opts.capabilities, opts.status);
  }
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

function decodeParam(r: PayloadReader, typeWord: number): SqlValue {
  const type = typeWord & 0xff;
  const unsigned = (typeWord & UNSIGNED_FLAG) !== 0;
  switch (type) {
    case MYSQL_TYPE.NULL:
      return null;
    case MYSQL_TYPE.TINY: {
      const v = r.u8();
      return BigInt(unsigned || v < 0x80 ? v : v - 0x100);
    }
    case MYSQL_TYPE.SHORT:
    case MYSQL_TYPE.YEAR: {
      const v = r.u16();
      return BigInt(unsigned || v < 0x8000 ? v : v - 0x10000);
    }
    case MYSQL_TYPE.LONG:
    case MYSQL_TYPE.INT24: {
      const b = r.bytes(4);
      return BigInt(unsigned ? b.readUInt32LE(0) : b.readInt32LE(0));
    }
    case MYSQL_TYPE.LONGLONG: {
      const b = r.bytes(8);
      return unsigned ? b.readBigUInt64LE(0) : b.readBigInt64LE(0);
    }
    case MYSQL_TYPE.FLOAT:
      return r.bytes(4).readFloatLE(0);
    case MYSQL_TYPE.DOUBLE:
      return r.bytes(8).readDoubleLE(0);
    case MYSQL_TYPE.DATE:
    case MYSQL_TYPE.DATETIME:
    case MYSQL_TYPE.TIMESTAMP: {
      const n = r.u8();
      if (n === 0) return '0000-00-00 00:00:00';
      const b = new PayloadReader(r.bytes(n));
      let text = `${pad(b.u16(), 4)}-${pad(b.u8())}-${pad(b.u8())}`;
      if (n >= 7) text += ` ${pad(b.u8())}:${pad(b.u8())}:${pad(b.u8())}`;
      if (n >= 11) text += `.${pad(b.u32(), 6)}`;
      return text;
    }
    case MYSQL_TYPE.TIME: {
      const n = r.u8();
      if (n === 0) return '00:00:00';
      const b = new PayloadReader(r.bytes(n));
      const negative = b.u8() === 1;
      const hours = b.u32() * 24 + b.u8();
      let text = `${negative ? '-' : ''}${pad(hours)}:${pad(b.u8())}:${pad(b.u8())}`;
      if (n >= 12) text += `.${pad(b.u32(), 6)}`;
      return text;
    }
    default:
      // Strings, blobs, DECIMAL, JSON, ENUM, SET, BIT: length-encoded bytes.
      return r.lenencBytes().toString('utf8');
  }
}

/**
 * COM_STMT_EXECUTE's parameters. A client sends the types with the first execute (new-params-bound
 * flag 1) and may leave them out afterwards; `knownTypes` are the ones from before.
 */
export function decodeExecuteParams(payload: Buffer, params: number, knownTypes: Buffer | null): { values: SqlValue[]; types: Buffer | null } {
  if (params === 0) return { values: [], types: knownTypes };
  const r = new PayloadReader(payload, 10);
  const nulls = r.bytes((params + 7) >> 3, 'null bitmap');
  let types = knownTypes;
  if (r.u8('new params bound flag') === 1) types = Buffer.from(r.bytes(params * 2, 'parameter types'));
  if (!types) throw new SqlError(ER_WRONG_ARGUMENTS, 'COM_STMT_EXECUTE without parameter types');
  const values: SqlValue[] = [];
  for (let i = 0; i < params; i++) {
    if (nulls[i >> 3]! & (1 << (i & 7))) values.push(null);
    else values.push(decodeParam(r, types.readUInt16LE(i * 2)));
  }
  return { values, types };
}
