import { MigrationVetoError, type SessionInfo } from '../../plugin.js';
import { preparedFromLiteral, readLedger } from './capture.js';
import { excerpt } from './sql-text.js';

/** What a failover replays: the state rebuilt from what the proxy saw, the old backend being gone. */
export interface LedgerState {
  setStatements: string[];
  sqlStatements: string[];
  pendingTransaction: string | null;
}

/** A veto that ends the failover (retry false): the reason goes to the client. */
function cannot(reason: string): never {
  throw new MigrationVetoError(`the session's state cannot be rebuilt after its backend was lost: ${reason}`, false);
}

/**
 * The session's state from the kernel's ledger alone. Refuses (with the specific reason) whenever the
 * ledger does not reproduce the state faithfully: something ran that the proxy could not follow, a SET
 * assigned a value computed on the dead server, a PREPARE took its text from a variable, or the
 * session held temporary tables or locks, which died with the server.
 */
export function stateFromLedger(session: SessionInfo): LedgerState {
  const tracked = session.tracked;
  if (tracked.temporaryTables) cannot('it created temporary tables');
  if (tracked.lockTables) cannot('it held LOCK TABLES');
  if (tracked.mayHoldLocks) cannot('it called GET_LOCK or HANDLER, whose locks died with the server');
  if (tracked.unseenChanges !== null) cannot(tracked.unseenChanges);
  const ledger = readLedger(tracked.setStatements);
  if (ledger.opaque) cannot(`a SET statement the proxy cannot follow (${ledger.opaque.why}): ${excerpt(ledger.opaque.sql)}`);
  const computed = ledger.statements.find((s) => !s.parsed.literal);
  if (computed) cannot(`a SET statement assigned a value computed on the lost server: ${excerpt(computed.sql)}`);
  const sqlStatements = [...tracked.sqlStatements].map(([name, prepare]) => {
    if (!preparedFromLiteral(prepare)) cannot(`SQL-level prepared statement ${name} was prepared from a variable`);
    return prepare;
  });
  return { setStatements: ledger.statements.map((s) => s.sql), sqlStatements, pendingTransaction: tracked.pendingTransaction };
}
