import { BackendError } from '../errors.js';
import type { BackendSql, PipelineOutcome, PipelineStep, PreparedOnBackend, SqlResult } from '../hooks/hook-types.js';
import type { PacketChannel } from '../net/packet-channel.js';
import {
  CLIENT_DEPRECATE_EOF, COM_QUERY, COM_STMT_CLOSE, COM_STMT_PREPARE, EOF_HEADER, EOF_MAX_PAYLOAD, ERR_HEADER, MAX_PACKET_PAYLOAD,
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
    this.sendQuery(sql);
    return this.readQueryResult(sql);
  }

  async prepare(sql: Buffer | string): Promise<PreparedOnBackend> {
    const text = typeof sql === 'string' ? Buffer.from(sql, 'utf8') : sql;
    this.sendPrepare(text);
    return this.readPrepareResult(text);
  }

  /**
   * Sends every step before reading any answer (one round trip for all), then reads the answers in
   * order. The server runs each command whatever happened to the one before, so an ERR is an outcome
   * of its step, not the end of the pipeline; a lost connection rejects the whole call.
   */
  async pipeline(steps: readonly PipelineStep[]): Promise<PipelineOutcome[]> {
    const texts = steps.map((step) => ('prepare' in step ? (typeof step.prepare === 'string' ? Buffer.from(step.prepare, 'utf8') : step.prepare) : null));
    this.channel.writeCommands(steps.map((step, i) => {
      if ('query' in step) return queryPayload(step.query);
      if ('prepare' in step) return Buffer.concat([Buffer.from([COM_STMT_PREPARE]), texts[i]!]);
      return closePayload(step.close);
    }));
    const outcomes: PipelineOutcome[] = [];
    for (let i = 0; i < steps.length; i++) {
      const step = steps[i]!;
      try {
        if ('query' in step) outcomes.push({ result: await this.readQueryResult(step.query) });
        else if ('prepare' in step) outcomes.push({ prepared: await this.readPrepareResult(texts[i]!) });
        else outcomes.push({ closed: true });
      } catch (err) {
        if (!(err instanceof BackendError)) throw err;
        outcomes.push({ error: err });
      }
    }
    return outcomes;
  }

  private sendQuery(sql: string): void {
    this.channel.write(queryPayload(sql), 0);
  }

  private sendPrepare(text: Buffer): void {
    this.channel.write(Buffer.concat([Buffer.from([COM_STMT_PREPARE]), text]), 0);
  }

  private async readQueryResult(sql: string): Promise<SqlResult> {
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

  private async readPrepareResult(text: Buffer): Promise<PreparedOnBackend> {
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

function queryPayload(sql: string): Buffer {
  const payload = Buffer.allocUnsafe(1 + Buffer.byteLength(sql, 'utf8'));
  payload[0] = COM_QUERY;
  payload.write(sql, 1, 'utf8');
  return payload;
}

/** COM_STMT_CLOSE: the server sends no answer. */
function closePayload(statementId: number): Buffer {
  const payload = Buffer.allocUnsafe(5);
  payload[0] = COM_STMT_CLOSE;
  payload.writeUInt32LE(statementId, 1);
  return payload;
}

/** Quotes a string for SQL (backslash escapes off-safe: doubles quotes, escapes backslashes and NUL). */
export function sqlString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''").replace(/\0/g, '\\0')}'`;
}
