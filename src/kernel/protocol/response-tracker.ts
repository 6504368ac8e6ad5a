import {
  CLIENT_DEPRECATE_EOF, COM_FIELD_LIST, COM_PROCESS_INFO, COM_QUERY, COM_STATISTICS, COM_STMT_BULK_EXECUTE, COM_STMT_EXECUTE,
  COM_STMT_FETCH, COM_STMT_PREPARE, EOF_HEADER, EOF_MAX_PAYLOAD, ERR_HEADER, LOCAL_INFILE_HEADER,
  MAX_PACKET_PAYLOAD, OK_HEADER, PACKET_HEADER_LENGTH, PROGRESS_REPORT_ERROR_CODE, SERVER_MORE_RESULTS_EXISTS, SERVER_STATUS_CURSOR_EXISTS,
} from './constants.js';

/**
 * Finds where each server response ends by looking only at packet headers and the first bytes of each
 * packet (DESIGN §4), so result rows are forwarded as raw chunks and never copied or decoded.
 *
 * The tracker is fed the bytes the server sends, chunk by chunk, in order; it holds a queue of the
 * commands whose responses are outstanding and tells its owner when each response is complete, with the
 * last status flags the server reported. Nothing here allocates after construction, except to grow the
 * ring of outstanding commands for a client that pipelines more than 256.
 */

/** Bytes of each packet the tracker needs to classify it (OK: 1 + 9 + 9 + 2 status + 2 warnings). */
const PREFIX_LENGTH = 32;
/**
 * Initial capacity of the ring of outstanding commands. Clients that pipeline (the MariaDB connectors
 * send whole batches before reading) can go past it: the ring then doubles, so no response is lost.
 */
const INITIAL_PIPELINED = 256;

const enum Phase {
  Idle, // no response outstanding
  First, // first packet of a (next) result
  Columns, // column definitions of a result set (until EOF when DEPRECATE_EOF is off)
  Rows, // rows until EOF/OK/ERR
  PrepareFirst,
  PrepareDefinitions,
  Single, // one packet (OK/ERR/EOF/statistics string)
  Infile, // server asked for LOCAL INFILE; the client uploads, then one OK/ERR follows
}

export interface ResponseListener {
  /** A command's response ended. `status` holds the last server status flags seen (or -1 if none). */
  onResponseComplete(command: number, status: number, isError: boolean): void;
  /** The server asked for a LOCAL INFILE upload: the client's next packets are file data. */
  onLocalInfileRequest(): void;
  /** COM_STMT_PREPARE answered OK. */
  onStatementPrepared(statementId: number, params: number, columns: number): void;
  /** Bytes arrived while no command was outstanding (e.g. the server's error before it closes). */
  onUnsolicitedPacket(firstByte: number): void;
}

/** Takes the payload bytes of result rows (a result digest): buf[start, end), valid only during the call. */
export interface RowSink {
  rowBytes(buf: Buffer, start: number, end: number): void;
}

export class ResponseTracker {
  private readonly header = Buffer.alloc(PACKET_HEADER_LENGTH);
  private headerHave = 0;
  private inPayload = false;
  private remaining = 0;
  private readonly prefix = Buffer.alloc(PREFIX_LENGTH);
  private prefixHave = 0;
  private prefixWant = 0;
  private packetLength = 0;
  /** Sequence id of the last packet header seen, and whether the current response has begun. */
  private lastSeq = 0;
  private responseBegun = false;
  /** The packet being read continues a previous 0xFFFFFF-byte one: its bytes are not classified. */
  private continuation = false;
  private nextIsContinuation = false;

  private phase: Phase = Phase.Idle;
  private endsResponse = false;
  private lastStatus = -1;
  private lastWasError = false;
  private definitionsLeft = 0;
  /** Column definitions still to come in the current result set (tells rows from definitions without EOFs). */
  private columnsLeft = 0;
  private errorCode = 0;
  private affected = 0;
  private rowCount = 0;

  /** Of the response just completed (read them in onResponseComplete): its ERR code or 0, rows affected, rows sent. */
  completedErrorCode = 0;
  completedAffectedRows = 0;
  completedRows = 0;
  /** The statement id a COM_STMT_PREPARE response carried (valid in onResponseComplete after one). */
  preparedId = 0;
  /** Gets the payload bytes of every result row while set (traffic capture's result digest); null: one check per packet. */
  rowSink: RowSink | null = null;
  /** The packet being read is a result row and a row sink is set. */
  private inRow = false;

  // Ring of outstanding commands.
  private queue = new Uint8Array(INITIAL_PIPELINED);
  private head = 0;
  private count = 0;

  deprecateEof = false;

  constructor(private readonly listener: ResponseListener, capabilities = 0) {
    this.setCapabilities(capabilities);
  }

  setCapabilities(capabilities: number): void {
    this.deprecateEof = (capabilities & CLIENT_DEPRECATE_EOF) !== 0;
  }

  /** Commands whose responses are still outstanding. */
  get pending(): number {
    return this.count;
  }

  /** True while the server is mid-way through a packet (used to tell whether a swap is safe). */
  get midPacket(): boolean {
    return this.inPayload || this.headerHave > 0;
  }

  /** Registers a command just sent to the server that expects a response. */
  expect(command: number): boolean {
    if (this.count === this.queue.length) this.growQueue();
    this.queue[(this.head + this.count) % this.queue.length] = command;
    this.count++;
    if (this.count === 1) this.startResponse(command);
    return true;
  }

  private growQueue(): void {
    const next = new Uint8Array(this.queue.length * 2);
    for (let k = 0; k < this.count; k++) next[k] = this.queue[(this.head + k) % this.queue.length]!;
    this.queue = next;
    this.head = 0;
  }

  /** The session switched to a fresh backend connection: forget framing state. */
  reset(): void {
    this.headerHave = 0;
    this.inPayload = false;
    this.remaining = 0;
    this.continuation = false;
    this.nextIsContinuation = false;
    this.count = 0;
    this.head = 0;
    this.phase = Phase.Idle;
  }

  /**
   * Sequence id for a packet the proxy adds to the current response (an ERR when the backend is lost):
   * one after the last packet forwarded, or 1 when the response had not begun.
   */
  get nextSeq(): number {
    return this.responseBegun ? (this.lastSeq + 1) & 0xff : 1;
  }

  private startResponse(command: number): void {
    this.responseBegun = false;
    this.lastStatus = -1;
    this.lastWasError = false;
    this.errorCode = 0;
    this.affected = 0;
    this.rowCount = 0;
    switch (command) {
      case COM_QUERY:
      case COM_STMT_EXECUTE:
      case COM_STMT_BULK_EXECUTE: // OK or ERR; a result set with RETURNING (or per-row results)
      case COM_PROCESS_INFO:
        this.phase = Phase.First;
        break;
      case COM_STMT_PREPARE:
        this.phase = Phase.PrepareFirst;
        break;
      case COM_STMT_FETCH:
      case COM_FIELD_LIST:
        this.phase = Phase.Rows;
        break;
      default:
        this.phase = Phase.Single;
    }
  }

  /** Feeds the bytes of one chunk the server sent. */
  scan(chunk: Buffer): void {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (!this.inPayload) {
        let length: number;
        if (this.headerHave === 0 && n - i >= PACKET_HEADER_LENGTH) {
          length = chunk[i]! | (chunk[i + 1]! << 8) | (chunk[i + 2]! << 16);
          this.lastSeq = chunk[i + 3]!;
          i += PACKET_HEADER_LENGTH;
        } else {
          while (this.headerHave < PACKET_HEADER_LENGTH && i < n) this.header[this.headerHave++] = chunk[i++]!;
          if (this.headerHave < PACKET_HEADER_LENGTH) return;
          this.headerHave = 0;
          length = this.header[0]! | (this.header[1]! << 8) | (this.header[2]! << 16);
          this.lastSeq = this.header[3]!;
        }
        this.packetLength = length;
        this.responseBegun = true;
        this.remaining = length;
        this.continuation = this.nextIsContinuation;
        this.nextIsContinuation = length === MAX_PACKET_PAYLOAD;
        this.inPayload = true;
        if (!this.continuation) {
          this.endsResponse = false;
          this.inRow = false;
        }
        this.prefixWant = this.continuation ? 0 : Math.min(length, PREFIX_LENGTH);
        this.prefixHave = 0;
        if (this.prefixWant === 0) {
          if (!this.continuation) this.classify(this.prefix, 0, 0);
        } else if (n - i >= this.prefixWant) {
          this.classify(chunk, i, this.prefixWant);
          this.prefixHave = this.prefixWant;
        }
      }
      if (this.prefixHave < this.prefixWant) {
        // The packet's first bytes straddle chunks: gather them in the scratch prefix.
        const k = Math.min(this.prefixWant - this.prefixHave, n - i);
        chunk.copy(this.prefix, this.prefixHave, i, i + k);
        this.prefixHave += k;
        i += k;
        this.remaining -= k;
        if (this.prefixHave < this.prefixWant) return;
        this.classify(this.prefix, 0, this.prefixWant);
        if (this.inRow) this.rowSink?.rowBytes(this.prefix, 0, this.prefixWant);
      }
      const take = Math.min(this.remaining, n - i);
      if (this.inRow && take > 0) this.rowSink?.rowBytes(chunk, i, i + take);
      i += take;
      this.remaining -= take;
      if (this.remaining === 0) this.endPacket();
    }
  }

  private endPacket(): void {
    this.inPayload = false;
    // A logical packet of exactly k*0xFFFFFF bytes ends with an empty continuation packet.
    if (this.nextIsContinuation) return;
    if (this.endsResponse) this.completeResponse();
  }

  private completeResponse(): void {
    const command = this.queue[this.head]!;
    this.head = (this.head + 1) % this.queue.length;
    this.count--;
    const status = this.lastStatus;
    const isError = this.lastWasError;
    this.completedErrorCode = this.errorCode;
    this.completedAffectedRows = this.affected;
    this.completedRows = this.rowCount;
    if (this.count > 0) this.startResponse(this.queue[this.head]!);
    else this.phase = Phase.Idle;
    this.listener.onResponseComplete(command, status, isError);
  }

  /** Reads the status flags of an OK (0x00/0xFE with DEPRECATE_EOF) packet from its prefix. */
  private okStatus(buf: Buffer, off: number, avail: number): number {
    let p = off + 1;
    const end = off + avail;
    for (let k = 0; k < 2; k++) {
      if (p >= end) return -1;
      const b = buf[p]!;
      p += b < 0xfb ? 1 : b === 0xfc ? 3 : b === 0xfd ? 4 : 9;
    }
    return p + 2 <= end ? buf[p]! | (buf[p + 1]! << 8) : -1;
  }

  /** A length-encoded integer at buf[p] (the OK's affected rows, a result's column count); 0 when cut off. */
  private lenenc(buf: Buffer, p: number, end: number): number {
    if (p >= end) return 0;
    const b = buf[p]!;
    if (b < 0xfb) return b;
    if (b === 0xfc) return p + 3 <= end ? buf[p + 1]! | (buf[p + 2]! << 8) : 0;
    if (b === 0xfd) return p + 4 <= end ? buf[p + 1]! | (buf[p + 2]! << 8) | (buf[p + 3]! << 16) : 0;
    return p + 9 <= end ? buf.readUInt32LE(p + 1) + buf.readUInt32LE(p + 5) * 0x100000000 : 0;
  }

  /** EOF packet: 0xFE, warnings u16, status u16. */
  private eofStatus(buf: Buffer, off: number, avail: number): number {
    return avail >= 5 ? buf[off + 3]! | (buf[off + 4]! << 8) : -1;
  }

  private isTerminator(first: number): boolean {
    return first === EOF_HEADER && (this.deprecateEof ? this.packetLength < MAX_PACKET_PAYLOAD : this.packetLength < EOF_MAX_PAYLOAD);
  }

  private terminatorStatus(buf: Buffer, off: number, avail: number): number {
    return this.packetLength < EOF_MAX_PAYLOAD && !this.deprecateEof ? this.eofStatus(buf, off, avail) : this.okStatus(buf, off, avail);
  }

  /** Decides what the packet whose first `avail` payload bytes are at buf[off..] means. */
  private classify(buf: Buffer, off: number, avail: number): void {
    const first = avail > 0 ? buf[off]! : -1;
    switch (this.phase) {
      case Phase.Idle:
        this.listener.onUnsolicitedPacket(first);
        return;
      case Phase.First:
        if (first === OK_HEADER) {
          this.affected += this.lenenc(buf, off + 1, off + avail);
          return this.resultEnd(this.okStatus(buf, off, avail));
        }
        if (first === ERR_HEADER) return this.error(buf, off, avail);
        if (first === LOCAL_INFILE_HEADER) {
          this.phase = Phase.Infile;
          this.listener.onLocalInfileRequest();
          return;
        }
        this.columnsLeft = this.lenenc(buf, off, off + avail);
        this.phase = Phase.Columns;
        return;
      case Phase.Columns:
        if (first === ERR_HEADER) return this.error(buf, off, avail);
        if (this.isTerminator(first)) {
          const status = this.terminatorStatus(buf, off, avail);
          // An open cursor ends the response right after the column definitions.
          if (status !== -1 && status & SERVER_STATUS_CURSOR_EXISTS) return this.resultEnd(status);
          if (this.deprecateEof) return this.resultEnd(status);
          this.lastStatus = status;
          this.phase = Phase.Rows;
          return;
        }
        // Without EOF packets (DEPRECATE_EOF) rows follow the definitions directly.
        if (this.columnsLeft > 0) this.columnsLeft--;
        else this.row();
        return;
      case Phase.Rows:
        if (first === ERR_HEADER) return this.error(buf, off, avail);
        if (this.isTerminator(first)) this.resultEnd(this.terminatorStatus(buf, off, avail));
        else this.row();
        return;
      case Phase.PrepareFirst: {
        if (first === ERR_HEADER) return this.error(buf, off, avail);
        if (avail < 9) return this.error(); // malformed: treat as the end so the client sees it
        const id = buf.readUInt32LE(off + 1);
        this.preparedId = id;
        const columns = buf[off + 5]! | (buf[off + 6]! << 8);
        const params = buf[off + 7]! | (buf[off + 8]! << 8);
        this.listener.onStatementPrepared(id, params, columns);
        const eofs = this.deprecateEof ? 0 : (params > 0 ? 1 : 0) + (columns > 0 ? 1 : 0);
        this.definitionsLeft = params + columns + eofs;
        if (this.definitionsLeft === 0) this.endsResponse = true;
        else this.phase = Phase.PrepareDefinitions;
        return;
      }
      case Phase.PrepareDefinitions:
        if (--this.definitionsLeft === 0) this.endsResponse = true;
        return;
      case Phase.Single:
        if (first === ERR_HEADER) return this.error(buf, off, avail);
        if (first === OK_HEADER && this.queue[this.head] !== COM_STATISTICS) this.lastStatus = this.okStatus(buf, off, avail);
        else if (first === EOF_HEADER && this.packetLength < EOF_MAX_PAYLOAD) this.lastStatus = this.eofStatus(buf, off, avail);
        this.endsResponse = true;
        return;
      case Phase.Infile:
        if (first === ERR_HEADER) return this.error(buf, off, avail);
        if (first === OK_HEADER) {
          this.affected += this.lenenc(buf, off + 1, off + avail);
          return this.resultEnd(this.okStatus(buf, off, avail));
        }
        return;
    }
  }

  private row(): void {
    this.rowCount++;
    this.inRow = this.rowSink !== null;
  }

  private resultEnd(status: number): void {
    this.lastStatus = status;
    if (status !== -1 && status & SERVER_MORE_RESULTS_EXISTS) {
      this.phase = Phase.First;
      return;
    }
    this.endsResponse = true;
  }

  private error(buf?: Buffer, off = 0, avail = 0): void {
    // ERR: 0xFF, error code u16.
    const code = buf !== undefined && avail >= 3 ? buf[off + 1]! | (buf[off + 2]! << 8) : 0;
    // A MariaDB progress report (MARIADB_CLIENT_PROGRESS) is ERR-shaped with code 0xFFFF, which no
    // real error has: relayed like any packet, it ends nothing.
    if (code === PROGRESS_REPORT_ERROR_CODE) return;
    this.errorCode = code;
    this.lastWasError = true;
    this.endsResponse = true;
  }
}
