import { BackendError } from '../errors.js';
import type { BackendSql, SqlResult } from '../hooks/hook-types.js';
import type { PacketChannel } from '../net/packet-channel.js';
import {
  CLIENT_DEPRECATE_EOF, COM_QUERY, COM_STMT_PREPARE, EOF_HEADER, EOF_MAX_PAYLOAD, ERR_HEADER, MAX_PACKET_PAYLOAD,
  OK_HEADER, SERVER_MORE_RESULTS_EXISTS,
} from '../protocol/constants.js';
import { PayloadReader } from '../protocol/payload-reader.js';
import { parseErrPayload, parseOkPayload } from '../protocol/response-packets.js';

/**
 * The proxy's own SQL on a backend connection it holds exclusively (migration capture/restore,
 * re-preparing statements). Text protocol, values as UTF-8 strings or null; one statement at a time.
 */
export class BackendSqlRunner implements BackendSql {
  constructor(readonly addr: string, private readonly channel: PacketChannel, private readonly capabilities: number, private readonly timeoutMs: number) {}

  private get deprecateEof(): boolean {
    return (this.capabilities & CLIENT_DEPRECATE_EOF) !== 0;
  }

  private async read(what: string) {
    return this.channel.read(this.timeoutMs, `${what} from ${this.addr}`);
  }

  private fail(payload: Buffer, sql: string): never {
    const e = parseErrPayload(payload);
    throw new BackendError(e.code, `backend ${this.addr}: ${e.message} (while running: ${sql.slice(0, 120)})`, e.sqlState);
  }

  async query(sql: string): Promise<SqlResult> {
    this.channel.write(Buffer.concat([Buffer.from([COM_QUERY]), Buffer.from(sql, 'utf8')]), 0);
    let result: SqlResult = { columns: [], rows: [], affectedRows: 0, status: 0 };
    for (;;) {
      const first = await this.read('query result');
      const head = first.payload[0];
      if (head === ERR_HEADER) this.fail(first.payload, sql);
      let status: number;
      if (head === OK_HEADER) {
        const ok = parseOkPayload(first.payload, this.capabilities);
        result = { columns: [], rows: [], affectedRows: ok.affectedRows, status: ok.status };
        status = ok.status;
      } else {
        const count = new PayloadReader(first.payload).lenenc('column count');
        const columns: string[] = [];
        for (let i = 0; i < count; i++) {
          const def = new PayloadReader((await this.read('column definition')).payload);
          for (let k = 0; k < 4; k++) def.lenencBytes(); // catalog, schema, table, org_table
          columns.push(def.lenencString('column name'));
        }
        if (!this.deprecateEof) await this.read('EOF after columns');
        const rows: Array<Array<string | null>> = [];
        for (;;) {
          const p = await this.read('row');
          const b = p.payload[0];
          if (b === ERR_HEADER) this.fail(p.payload, sql);
          if (b === EOF_HEADER && p.payload.length < (this.deprecateEof ? MAX_PACKET_PAYLOAD : EOF_MAX_PAYLOAD)) {
            status = this.deprecateEof ? parseOkPayload(p.payload, this.capabilities).status : p.payload.readUInt16LE(3);
            break;
          }
          const r = new PayloadReader(p.payload);
          const row: Array<string | null> = [];
          for (let i = 0; i < count; i++) {
            if (p.payload[r.pos] === 0xfb) {
              r.skip(1);
              row.push(null);
            } else row.push(r.lenencString('value'));
          }
          rows.push(row);
        }
        result = { columns, rows, affectedRows: 0, status };
      }
      // Only the last result of a multi-result response is returned (the proxy sends single statements).
      if (!(status & SERVER_MORE_RESULTS_EXISTS)) return result;
    }
  }

  async prepare(sql: Buffer | string): Promise<{ statementId: number; params: number; columns: number }> {
    const text = typeof sql === 'string' ? Buffer.from(sql, 'utf8') : sql;
    this.channel.write(Buffer.concat([Buffer.from([COM_STMT_PREPARE]), text]), 0);
    const first = await this.read('prepare result');
    if (first.payload[0] === ERR_HEADER) this.fail(first.payload, text.toString('utf8'));
    const statementId = first.payload.readUInt32LE(1);
    const columns = first.payload.readUInt16LE(5);
    const params = first.payload.readUInt16LE(7);
    const eofs = this.deprecateEof ? 0 : (params > 0 ? 1 : 0) + (columns > 0 ? 1 : 0);
    for (let i = 0; i < params + columns + eofs; i++) await this.read('statement metadata');
    return { statementId, params, columns };
  }
}

/** Quotes a string for SQL (backslash escapes off-safe: doubles quotes, escapes backslashes and NUL). */
export function sqlString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''").replace(/\0/g, '\\0')}'`;
}
