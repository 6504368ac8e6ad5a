import {
  BULK_FLAGS_OFFSET, BULK_SEND_TYPES_TO_SERVER, BULK_TYPES_OFFSET, COM_INIT_DB, COM_QUERY, COM_RESET_CONNECTION, COM_STMT_BULK_EXECUTE,
  COM_STMT_CLOSE, COM_STMT_EXECUTE, COM_STMT_FETCH, COM_STMT_PREPARE, COM_STMT_RESET, COM_STMT_SEND_LONG_DATA, CURSOR_TYPE_READ_ONLY,
} from '../protocol/constants.js';
import { paramsBoundFlagOffset, type SessionState } from './session-state.js';
import {
  isSetStatementFor, leadingWord, preparedBodyIsPlain, scanStatement, StateScan, UNSEEN_CHANGE_BITS, unseenChangeReason, useStatementDatabase,
} from './state-change-scan.js';
import { capturesText, classifyStatement, preparedStatementName, StatementKind } from './statement-classifier.js';

/**
 * What each command does to the session's server-side state, as far as the traffic shows it: the
 * statement ids and cursors of EXECUTE/FETCH/CLOSE/RESET/SEND_LONG_DATA, the database of COM_INIT_DB,
 * and the effects the server does not report (SET TRANSACTION, temporary tables, LOCK TABLES, SQL-level
 * PREPARE). Called by the pump for every command it forwards, so nothing here allocates unless the
 * statement's text must be kept.
 */
export class CommandBookkeeping {
  /** What the COM_QUERY in flight is, for the state the server does not report. */
  private queryKind = StatementKind.Other;
  private queryText = '';
  /** StateScan bits of the COM_QUERY in flight when it is an ordinary statement. */
  private queryScan = 0;
  private fetchStatementId = 0;
  private pendingDatabase = '';

  constructor(private readonly state: SessionState) {}

  /** SET, SET TRANSACTION, PREPARE and USE longer than the prefix shown are captured whole, so their text can be kept. */
  needsWholeQuery(buf: Buffer, off: number, avail: number, length: number): boolean {
    if (length <= avail) return false;
    const kind = classifyStatement(buf, off + 1, off + avail);
    return keepsText(kind) || (kind === StatementKind.Other && leadingWord(buf, off + 1, off + avail) === StateScan.Use);
  }

  /** A command about to reach the backend: `buf[off .. off+avail)` are its first payload bytes. */
  commandSent(command: number, buf: Buffer, off: number, avail: number, length: number): void {
    switch (command) {
      case COM_QUERY: {
        const kind = classifyStatement(buf, off + 1, off + avail);
        this.queryKind = kind;
        this.queryScan = 0;
        if (kind === StatementKind.Other || (kind === StatementKind.Set && isSetStatementFor(buf, off + 1, off + avail))) {
          // The reader hands over its socket chunk: the statement's bytes that arrived with the prefix
          // are scanned too; a statement that goes on beyond them counts as unseen.
          const end = Math.min(buf.length, off + length);
          this.queryScan = scanStatement(buf, off + 1, end, end === off + length);
          if (kind === StatementKind.Set) this.queryKind = StatementKind.Other; // SET STATEMENT … FOR: temporary values, the FOR statement counts
          if (this.queryScan & StateScan.Use) this.queryText = buf.toString('utf8', off + 1, off + Math.min(avail, length));
        } else if (keepsText(kind)) {
          this.queryText = buf.toString('utf8', off + 1, off + Math.min(avail, length));
        }
        break;
      }
      case COM_STMT_EXECUTE:
        if (avail >= 6) this.state.executeSent(buf.readUInt32LE(off + 1), (buf[off + 5]! & CURSOR_TYPE_READ_ONLY) !== 0);
        break;
      case COM_STMT_BULK_EXECUTE: // never opens a cursor
        if (avail >= 5) this.state.executeSent(buf.readUInt32LE(off + 1), false);
        break;
      case COM_STMT_SEND_LONG_DATA:
        if (avail >= 5) this.state.longDataSent(buf.readUInt32LE(off + 1));
        break;
      case COM_STMT_CLOSE:
        if (avail >= 5) this.state.statementClosed(buf.readUInt32LE(off + 1));
        break;
      case COM_STMT_RESET:
        if (avail >= 5) this.state.statementReset(buf.readUInt32LE(off + 1));
        break;
      case COM_STMT_FETCH:
        if (avail >= 5) this.fetchStatementId = buf.readUInt32LE(off + 1);
        break;
      case COM_INIT_DB:
        this.pendingDatabase = length < avail + 1 ? buf.toString('utf8', off + 1, off + avail) : '';
        break;
    }
  }

  /**
   * A command's response ended. Returns the database the session is now in when COM_INIT_DB changed
   * it, else null.
   */
  responseEnded(command: number, status: number, isError: boolean): string | null {
    switch (command) {
      case COM_STMT_EXECUTE:
      case COM_STMT_BULK_EXECUTE:
        this.state.executeDone(status);
        this.state.pendingTransaction = null;
        break;
      case COM_STMT_FETCH:
        this.state.fetchDone(this.fetchStatementId, status, isError);
        break;
      case COM_STMT_PREPARE:
        if (isError) this.state.prepareFailed();
        break;
      case COM_RESET_CONNECTION:
        if (!isError) this.state.reset();
        break;
      case COM_INIT_DB:
        if (!isError && this.pendingDatabase) return this.pendingDatabase;
        break;
      case COM_QUERY: {
        this.state.localInfile = false;
        const scan = this.queryScan;
        this.statementEffect(isError);
        if (scan !== 0) return this.scannedEffect(scan, isError);
        break;
      }
    }
    return null;
  }

  /**
   * What an ordinary statement may have done (state-change-scan.ts): recorded whether or not it failed
   * (an error can come after an assignment ran). Returns the database a successful USE selected.
   */
  private scannedEffect(scan: number, isError: boolean): string | null {
    this.queryScan = 0;
    const state = this.state;
    if (scan & StateScan.Locks) state.mayHoldLocks = true;
    if (scan & UNSEEN_CHANGE_BITS) state.changedUnseen(unseenChangeReason(scan));
    else if (scan & StateScan.Execute && state.statefulSqlStatements.size > 0) {
      state.changedUnseen('an SQL-level prepared statement that may change session state was executed');
    }
    if (scan & StateScan.Use && !isError) {
      const database = useStatementDatabase(this.queryText);
      if (database === null) state.changedUnseen('a USE statement the proxy could not read ran');
      return database;
    }
    return null;
  }

  /** Session state the server does not report (temporary tables, LOCK TABLES, pending SET TRANSACTION). */
  private statementEffect(isError: boolean): void {
    const kind = this.queryKind;
    if (!isError) {
      if (kind === StatementKind.SetTransaction) this.state.pendingTransaction = this.queryText;
      else if (kind === StatementKind.Set) this.state.setSucceeded(this.queryText);
      else if (kind === StatementKind.CreateTemporary) this.state.temporaryTables = true;
      else if (kind === StatementKind.LockTables) this.state.lockTables = true;
      else if (kind === StatementKind.UnlockTables) this.state.lockTables = false;
      else if (kind === StatementKind.Prepare) this.sqlStatement(true);
      else if (kind === StatementKind.Deallocate) this.sqlStatement(false);
    } else if (kind === StatementKind.Prepare) {
      // A failed PREPARE still drops an earlier statement of that name (the server deallocates it first).
      this.sqlStatement(false);
    }
    // SET TRANSACTION applies to the next transaction: any other statement but a SET consumes it.
    if (kind !== StatementKind.Set && kind !== StatementKind.SetTransaction) this.state.pendingTransaction = null;
    this.queryKind = StatementKind.Other;
  }

  private sqlStatement(prepared: boolean): void {
    const name = preparedStatementName(this.queryText);
    if (name === null) return;
    if (prepared) {
      this.state.sqlStatements.set(name, this.queryText);
      if (preparedBodyIsPlain(this.queryText)) this.state.statefulSqlStatements.delete(name);
      else this.state.statefulSqlStatements.add(name);
    } else {
      this.state.sqlStatements.delete(name);
      this.state.statefulSqlStatements.delete(name);
    }
  }

  /**
   * Parameter types of prepared statements (see PreparedStatement.paramTypes). From the first bytes of a
   * COM_STMT_EXECUTE or COM_STMT_BULK_EXECUTE: records the types when the client sends them; true when
   * the whole packet is needed — to add the types the client left out (the statement was re-prepared by
   * a migration and this backend never got them: without them it answers 1210 "Incorrect arguments to
   * mysqld_stmt_execute"), or to read types that lie beyond the prefix. Both commands carry the types
   * the same way (type byte, flag byte per parameter); only where, and the flag that says so, differ.
   */
  executeNeedsWholePacket(buf: Buffer, off: number, avail: number): boolean {
    const statement = this.state.statements.get(buf.readUInt32LE(off + 1));
    if (!statement || statement.params === 0) return false;
    const bulk = buf[off] === COM_STMT_BULK_EXECUTE;
    const flagAt = bulk ? BULK_FLAGS_OFFSET : paramsBoundFlagOffset(statement.params);
    if (flagAt >= avail) return true;
    if (typesFollow(bulk, buf[off + flagAt]!)) {
      const typesAt = bulk ? BULK_TYPES_OFFSET : flagAt + 1;
      const end = typesAt + 2 * statement.params;
      if (end > avail) return true;
      this.state.paramTypesSent(statement, buf, off + typesAt, off + end);
      return false;
    }
    return !statement.typesSent && statement.paramTypes !== null;
  }

  /** The whole-packet side of executeNeedsWholePacket: the packet with the types added, or null to send it unchanged. */
  executeWithParamTypes(payload: Buffer): Buffer | null {
    if (payload.length < 5) return null;
    const statement = this.state.statements.get(payload.readUInt32LE(1));
    if (!statement || statement.params === 0) return null;
    const bulk = payload[0] === COM_STMT_BULK_EXECUTE;
    const flagAt = bulk ? BULK_FLAGS_OFFSET : paramsBoundFlagOffset(statement.params);
    if (flagAt >= payload.length) return null;
    const typesAt = bulk ? BULK_TYPES_OFFSET : flagAt + 1;
    if (typesFollow(bulk, payload[flagAt]!)) {
      const end = typesAt + 2 * statement.params;
      if (end <= payload.length) this.state.paramTypesSent(statement, payload, typesAt, end);
      return null;
    }
    const types = statement.paramTypes;
    if (statement.typesSent || types === null) return null;
    statement.typesSent = true;
    const out = Buffer.allocUnsafe(payload.length + types.length);
    payload.copy(out, 0, 0, typesAt);
    if (bulk) out[flagAt]! |= BULK_SEND_TYPES_TO_SERVER;
    else out[flagAt] = 1;
    types.copy(out, typesAt);
    payload.copy(out, typesAt + types.length, typesAt);
    return out;
  }
}

/** Whether an EXECUTE's new_params_bound_flag, or a BULK_EXECUTE's flags (low byte), say parameter types follow. */
function typesFollow(bulk: boolean, flag: number): boolean {
  return bulk ? (flag & BULK_SEND_TYPES_TO_SERVER) !== 0 : flag === 1;
}

/** Statement kinds whose whole text the bookkeeping keeps. */
function keepsText(kind: StatementKind): boolean {
  return kind === StatementKind.Set || capturesText(kind);
}
