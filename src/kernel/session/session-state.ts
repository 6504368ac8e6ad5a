import {
  SERVER_STATUS_AUTOCOMMIT, SERVER_STATUS_CURSOR_EXISTS, SERVER_STATUS_IN_TRANS, SERVER_STATUS_LAST_ROW_SENT,
} from '../protocol/constants.js';

export interface PreparedStatement {
  /** The id the client uses. */
  readonly clientId: number;
  /** The id on the current backend (differs from clientId after a migration re-prepared it). */
  backendId: number;
  readonly sql: Buffer;
  readonly params: number;
  readonly columns: number;
  /**
   * Parameter types (2 bytes each) the client last sent in a COM_STMT_EXECUTE with
   * new_params_bound_flag = 1; null until then. C connectors send them only on the first execute after
   * binding, so a statement re-prepared on another backend needs them from here.
   */
  paramTypes: Buffer | null;
  /** The statement on the current backend has received parameter types (false after a migration re-prepared it). */
  typesSent: boolean;
}

/**
 * Offset, in a COM_STMT_EXECUTE payload, of new_params_bound_flag for a statement with `params` (> 0)
 * parameters: command, statement id (4), flags (1), iteration count (4), NULL bitmap. (The layout with
 * CLIENT_QUERY_ATTRIBUTES differs; the proxy never negotiates it.)
 */
export function paramsBoundFlagOffset(params: number): number {
  return 10 + ((params + 7) >> 3);
}

/** Bounds of the SET statement ledger: beyond them the proxy stops following and asks the server. */
const MAX_SET_STATEMENTS = 256;
const MAX_SET_TEXT = 64 * 1024;

/** Why a session is not at a safe point right now (for logs and migration vetoes). */
export type Unsafe =
  | 'command-in-flight' | 'in-transaction' | 'cursor-open' | 'long-data-pending' | 'local-infile' | 'busy' | null;

/**
 * What the kernel knows about a session's server-side state from the traffic alone: status flags and
 * prepared statements, enough to tell whether the session is at a point where its backend connection
 * can be swapped (DESIGN §5). Updated from the pump without allocation except on PREPARE/CLOSE.
 */
export class SessionState {
  status = SERVER_STATUS_AUTOCOMMIT;
  readonly statements = new Map<number, PreparedStatement>();
  /** Statement ids with an open server-side cursor. */
  readonly cursors = new Set<number>();
  /** Statement ids with COM_STMT_SEND_LONG_DATA sent but not yet executed or reset. */
  readonly longData = new Set<number>();
  localInfile = false;
  /** Statement id of the COM_STMT_EXECUTE that asked for a cursor, until its response. */
  private cursorRequestedFor = -1;
  /** SQL of each COM_STMT_PREPARE in flight, oldest first (clients may pipeline several). */
  private readonly preparingSql: Buffer[] = [];
  /** Client id -> backend id translation is needed (some statement was re-prepared elsewhere). */
  idsTranslated = false;
  /** CREATE TEMPORARY TABLE succeeded in this session (MariaDB cannot list temporary tables). */
  temporaryTables = false;
  /** LOCK TABLES is in effect (until UNLOCK TABLES). */
  lockTables = false;
  /** A `SET TRANSACTION …` that applies to the next transaction, as the client wrote it. */
  pendingTransaction: string | null = null;
  /** SQL-level prepared statements: lower-cased name -> the PREPARE statement as the client wrote it. */
  readonly sqlStatements = new Map<string, string>();
  /** Names in sqlStatements whose body might change state when executed (see preparedBodyIsPlain). */
  readonly statefulSqlStatements = new Set<string>();
  /**
   * Successful SET statements (variables, user variables, NAMES, ROLE …) as the client wrote them, in
   * the order of their last occurrence: a text repeated verbatim is moved to the end, not stored twice.
   */
  readonly setStatements = new Set<string>();
  /** Why the state may have changed in ways setStatements does not show; null while the proxy saw everything. */
  unseenChanges: string | null = null;
  /** GET_LOCK or HANDLER ran: the session may hold locks (only the server can say). */
  mayHoldLocks = false;

  get inTransaction(): boolean {
    return (this.status & SERVER_STATUS_IN_TRANS) !== 0;
  }

  /** Applies status flags from an OK/EOF (-1 = the response carried none). */
  applyStatus(status: number): void {
    if (status !== -1) this.status = status;
  }

  prepareSent(sql: Buffer): void {
    this.preparingSql.push(sql);
  }

  prepared(backendId: number, params: number, columns: number): void {
    const sql = this.preparingSql.shift() ?? Buffer.alloc(0);
    this.statements.set(backendId, { clientId: backendId, backendId, sql, params, columns, paramTypes: null, typesSent: false });
  }

  /** A statement the proxy prepared under an id of its own choosing (translated-prepare.ts). */
  preparedAs(clientId: number, backendId: number, sql: Buffer, params: number, columns: number): void {
    this.statements.set(clientId, { clientId, backendId, sql, params, columns, paramTypes: null, typesSent: false });
  }

  /** A statement id for the client that none of the session's statements has, on either side. */
  unusedStatementId(): number {
    let max = 0;
    for (const st of this.statements.values()) max = Math.max(max, st.clientId, st.backendId);
    return max + 1;
  }

  /** The client sent parameter types for `statement` (new_params_bound_flag = 1) in buf[start, end): keep them (copied only when they change). */
  paramTypesSent(statement: PreparedStatement, buf: Buffer, start: number, end: number): void {
    // Compared in place: clients such as mysql2 send the types with every execute.
    const known = statement.paramTypes;
    if (known === null || known.compare(buf, start, end) !== 0) statement.paramTypes = Buffer.from(buf.subarray(start, end));
    statement.typesSent = true;
  }

  /** A COM_STMT_PREPARE was answered with an ERR: its SQL is not a statement. */
  prepareFailed(): void {
    this.preparingSql.shift();
  }

  executeSent(clientId: number, wantsCursor: boolean): void {
    this.longData.delete(clientId);
    if (wantsCursor) this.cursorRequestedFor = clientId;
  }

  executeDone(status: number): void {
    if (this.cursorRequestedFor !== -1 && status !== -1 && status & SERVER_STATUS_CURSOR_EXISTS) {
      this.cursors.add(this.cursorRequestedFor);
    }
    this.cursorRequestedFor = -1;
  }

  fetchDone(clientId: number, status: number, isError: boolean): void {
    if (isError || (status !== -1 && (status & SERVER_STATUS_LAST_ROW_SENT || !(status & SERVER_STATUS_CURSOR_EXISTS)))) {
      this.cursors.delete(clientId);
    }
  }

  longDataSent(clientId: number): void {
    this.longData.add(clientId);
  }

  statementReset(clientId: number): void {
    this.longData.delete(clientId);
    this.cursors.delete(clientId);
  }

  statementClosed(clientId: number): void {
    this.statements.delete(clientId);
    this.longData.delete(clientId);
    this.cursors.delete(clientId);
  }

  /** COM_RESET_CONNECTION / COM_CHANGE_USER succeeded: the server dropped all of it. */
  reset(): void {
    this.statements.clear();
    this.cursors.clear();
    this.longData.clear();
    this.localInfile = false;
    this.cursorRequestedFor = -1;
    this.preparingSql.length = 0;
    this.idsTranslated = false;
    this.temporaryTables = false;
    this.lockTables = false;
    this.pendingTransaction = null;
    this.sqlStatements.clear();
    this.statefulSqlStatements.clear();
    this.setStatements.clear();
    this.unseenChanges = null;
    this.mayHoldLocks = false;
    this.status = SERVER_STATUS_AUTOCOMMIT;
  }

  /** A SET statement succeeded: remember its text (bounded: past the limits the state counts as unseen). */
  setSucceeded(sql: string): void {
    if (this.unseenChanges !== null) return;
    if (sql.length > MAX_SET_TEXT) {
      this.unseenChanges = `a SET statement longer than ${MAX_SET_TEXT} bytes ran (not kept)`;
      return;
    }
    this.setStatements.delete(sql);
    if (this.setStatements.size >= MAX_SET_STATEMENTS) {
      this.unseenChanges = `more than ${MAX_SET_STATEMENTS} different SET statements ran (not all kept)`;
      this.setStatements.clear();
      return;
    }
    this.setStatements.add(sql);
  }

  /** The state may have changed unseen (the first reason is kept; a constant string). */
  changedUnseen(reason: string): void {
    if (this.unseenChanges === null) {
      this.unseenChanges = reason;
      this.setStatements.clear();
    }
  }

  /** Backend id for a client statement id (identity unless a migration re-prepared statements). */
  backendIdFor(clientId: number): number {
    return this.statements.get(clientId)?.backendId ?? clientId;
  }

  /** Null at a safe point; otherwise the first reason the backend must not be swapped now. */
  unsafeReason(commandsInFlight: number, busy: boolean): Unsafe {
    if (busy) return 'busy';
    if (commandsInFlight > 0) return 'command-in-flight';
    if (this.localInfile) return 'local-infile';
    if (this.inTransaction) return 'in-transaction';
    if (this.cursors.size > 0) return 'cursor-open';
    if (this.longData.size > 0) return 'long-data-pending';
    return null;
  }
}
