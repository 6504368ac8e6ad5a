import {
  CLIENT_PROTOCOL_41, CLIENT_SESSION_TRACK, EOF_HEADER, ERR_HEADER, OK_HEADER, SQLSTATE_GENERAL,
} from './constants.js';
import { PayloadReader } from './payload-reader.js';
import { PayloadWriter } from './payload-writer.js';

export interface OkPacket {
  affectedRows: number;
  lastInsertId: number;
  status: number;
  warnings: number;
  info: string;
}

export interface ErrPacket {
  code: number;
  sqlState: string;
  message: string;
}

export function buildErrPayload(code: number, message: string, sqlState = SQLSTATE_GENERAL): Buffer {
  return new PayloadWriter(16 + message.length)
    .u8(ERR_HEADER).u16(code).u8(0x23 /* '#' */).string(sqlState.padEnd(5, '0').slice(0, 5)).string(message)
    .payload();
}

export function buildOkPayload(status: number, opts: { affectedRows?: number; lastInsertId?: number; warnings?: number; info?: string; eofHeader?: boolean } = {}): Buffer {
  const w = new PayloadWriter(32)
    .u8(opts.eofHeader ? EOF_HEADER : OK_HEADER)
    .lenenc(opts.affectedRows ?? 0).lenenc(opts.lastInsertId ?? 0).u16(status).u16(opts.warnings ?? 0);
  if (opts.info) w.string(opts.info);
  return w.payload();
}

export function buildEofPayload(status: number, warnings = 0): Buffer {
  return new PayloadWriter(5).u8(EOF_HEADER).u16(warnings).u16(status).payload();
}

export function parseErrPayload(payload: Buffer): ErrPacket {
  const r = new PayloadReader(payload);
  r.u8('ERR header');
  const code = r.u16('error code');
  let sqlState = SQLSTATE_GENERAL;
  if (r.remaining > 0 && payload[r.pos] === 0x23) {
    r.skip(1);
    sqlState = r.bytes(5, 'sql state').toString('latin1');
  }
  return { code, sqlState, message: r.rest().toString('utf8') };
}

export function parseOkPayload(payload: Buffer, capabilities: number): OkPacket {
  const r = new PayloadReader(payload);
  r.u8('OK header');
  const affectedRows = r.lenenc('affected rows');
  const lastInsertId = r.lenenc('last insert id');
  let status = 0;
  let warnings = 0;
  if (capabilities & CLIENT_PROTOCOL_41) {
    status = r.u16('status flags');
    warnings = r.u16('warnings');
  }
  let info = '';
  if (r.remaining > 0) {
    info = capabilities & CLIENT_SESSION_TRACK ? r.lenencString('info') : r.rest().toString('utf8');
  }
  return { affectedRows, lastInsertId, status, warnings, info };
}
