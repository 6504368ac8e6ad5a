// SHOW SESSION_STATES and SET SESSION_STATES, following TiDB: SHOW refuses with error 8146 when the
// session cannot be exported (an active transaction, local temporary tables; TiDB also refuses for
// advisory locks, LOCK TABLES and sandbox mode, which the emulator does not have) or when the server
// has no signing cert (it cannot sign the token). Otherwise it returns one row: Session_states (JSON)
// and Session_token (JSON, see session-token.ts). SET restores everything, prepared statements under
// their original ids.
//
// Field names are TiDB's (current-db, sys-vars, user-var-values, prepared-stmts, prepared-stmt-id,
// status). Values are simplified: TiDB writes user variables as types.Datum plus user-var-types, the
// emulator as {int|double|string}; TiDB exports every session variable, the emulator only those that
// differ from the default; TiDB re-parses prepared statement text, so does the emulator ("types" holds
// the last bound parameter types, base64 like TiDB's []byte).
import { cannotMigrate, ER_BAD_DB, ER_WRONG_ARGUMENTS, SqlError } from './errors.js';
import type { EmulatedSession, PreparedStatement } from './session.js';
import { createSessionToken } from './session-token.js';
import { countParams } from './sql-lexer.js';
import { decodeValue, encodeValue, type EncodedValue } from './values.js';

interface StatesJson {
  'current-db'?: string;
  'sys-vars'?: Record<string, string>;
  'user-var-values'?: Record<string, EncodedValue>;
  'prepared-stmts'?: Record<string, { text: string; db?: string; types?: string }>;
  'prepared-stmt-id'?: number;
  status?: number;
}

export function showSessionStates(session: EmulatedSession): { states: string; token: string } {
  if (session.inTransaction) throw cannotMigrate('session has an active transaction');
  if (session.tempTables.size > 0) throw cannotMigrate('session has local temporary tables');
  const key = session.host.signingKey;
  if (!key) throw cannotMigrate('no certificate or key file to sign the data');
  const states: StatesJson = {};
  if (session.db) states['current-db'] = session.db;
  if (session.vars.size > 0) states['sys-vars'] = Object.fromEntries(session.vars);
  if (session.userVars.size > 0) {
    states['user-var-values'] = Object.fromEntries([...session.userVars].map(([k, v]) => [k, encodeValue(v)]));
  }
  if (session.statements.size > 0) {
    states['prepared-stmts'] = Object.fromEntries([...session.statements.values()].map((s) => [
      String(s.id), { text: s.sql, ...(s.db ? { db: s.db } : {}), ...(s.types ? { types: s.types.toString('base64') } : {}) },
    ]));
  }
  states['prepared-stmt-id'] = session.nextStatementId - 1;
  states.status = session.status();
  const token = createSessionToken(session.user, key, session.host.cluster.tokenLifetimeMs, session.host.now());
  return { states: JSON.stringify(states), token };
}

export function setSessionStates(session: EmulatedSession, json: string): void {
  let states: StatesJson;
  try {
    states = JSON.parse(json) as StatesJson;
  } catch (err) {
    throw new SqlError(ER_WRONG_ARGUMENTS, `invalid session states: ${(err as Error).message}`);
  }
  const db = states['current-db'] ?? '';
  if (db && !session.host.cluster.databases.has(db)) throw new SqlError(ER_BAD_DB, `Unknown database '${db}'`);
  const statements: PreparedStatement[] = Object.entries(states['prepared-stmts'] ?? {}).map(([id, s]) => ({
    id: Number(id), sql: s.text, db: s.db ?? '', params: countParams(s.text), types: s.types ? Buffer.from(s.types, 'base64') : null,
  }));
  session.db = db;
  session.vars.clear();
  for (const [name, value] of Object.entries(states['sys-vars'] ?? {})) session.setVariable(name, value);
  session.userVars.clear();
  for (const [name, value] of Object.entries(states['user-var-values'] ?? {})) session.userVars.set(name, decodeValue(value));
  session.statements.clear();
  for (const s of statements) session.statements.set(s.id, s);
  session.nextStatementId = Math.max(session.nextStatementId, (states['prepared-stmt-id'] ?? 0) + 1, ...statements.map((s) => s.id + 1));
}
