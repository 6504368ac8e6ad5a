import { MigrationVetoError, type SessionInfo } from '../../plugin.js';
import { preparedFromLiteral, readLedger } from './capture.js';
import { excerpt } from './sql-text.js';

/** What a ledger replay runs on the target: the state rebuilt from what the proxy saw, without asking the old backend. */
export interface LedgerState {
  setStatements: string[];
  sqlStatements: string[];
  pendingTransaction: string | null;
}

/**
 * The session's state from the kernel's ledger alone, or why the ledger does not reproduce it
 * faithfully: something ran that the proxy could not follow, a SET assigned a value computed on the
 * server, a PREPARE took its text from a variable, or the session holds temporary tables or may hold
 * locks — things only the server knows.
 */
export function readLedgerState(session: SessionInfo): { state: LedgerState } | { gap: string } {
  const tracked = session.tracked;
  if (tracked.temporaryTables) return { gap: 'it created temporary tables' };
  if (tracked.lockTables) return { gap: 'it held LOCK TABLES' };
  if (tracked.mayHoldLocks) return { gap: 'it called GET_LOCK or HANDLER, whose locks only the server knows' };
  if (tracked.unseenChanges !== null) return { gap: tracked.unseenChanges };
  const ledger = readLedger(tracked.setStatements);
  if (ledger.opaque) return { gap: `a SET statement the proxy cannot follow (${ledger.opaque.why}): ${excerpt(ledger.opaque.sql)}` };
  const computed = ledger.statements.find((s) => !s.parsed.literal);
  if (computed) return { gap: `a SET statement assigned a value computed on the server: ${excerpt(computed.sql)}` };
  const fromVariable = [...tracked.sqlStatements].find(([, prepare]) => !preparedFromLiteral(prepare));
  if (fromVariable) return { gap: `SQL-level prepared statement ${fromVariable[0]} was prepared from a variable` };
  return {
    state: {
      setStatements: ledger.statements.map((s) => s.sql),
      sqlStatements: [...tracked.sqlStatements.values()],
      pendingTransaction: tracked.pendingTransaction,
    },
  };
}

/**
 * A failover's state: the ledger, or a veto that ends the failover (retry false) with the specific
 * reason, which goes to the client — the old backend is gone, so there is no one else to ask.
 */
export function stateFromLedger(session: SessionInfo): LedgerState {
  const read = readLedgerState(session);
  if ('gap' in read) throw new MigrationVetoError(`the session's state cannot be rebuilt after its backend was lost: ${read.gap}`, false);
  return read.state;
}
