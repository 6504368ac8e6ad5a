import { BackendError, MigrationVetoError, type BackendSql, type SessionInfo } from '../../plugin.js';
import { parseSet, type ParsedSet } from './set-statement.js';
import { quoteIdent, quoteString } from './sql-text.js';

export interface UserVariable {
  name: string;
  /** information_schema.USER_VARIABLES.VARIABLE_TYPE: INT, INT UNSIGNED, DECIMAL, DOUBLE, VARCHAR on MariaDB 10.11. */
  type: string;
  hex: string | null;
  text: string | null;
  charset: string | null;
}

/** What a planned migration read from the old backend (or knew without asking). */
export interface CapturedState {
  /** The database the old backend reports; null when it was not asked (the login's database is right). */
  database: string | null;
  /** Session system variables to set on the target: lower-case name -> value as text (null: NULL). */
  variables: Array<[string, string | null]>;
  userVariables: UserVariable[];
  /** SET ROLE statements, replayed as written. */
  roleStatements: string[];
  pendingTransaction: string | null;
  /** PREPARE statements to run on the target, one per SQL-level prepared statement. */
  sqlStatements: string[];
  /** Queries this capture ran on the old backend (for tests and the bench). */
  queries: number;
}

export interface CaptureOptions {
  lockCheck: boolean;
  /** Upper-case names never copied (per-connection / read-only, plus the configured ones). */
  skip: ReadonlySet<string>;
  /** Whether information_schema.METADATA_LOCK_INFO exists on a backend (undefined: not known yet). */
  lockInfo: Map<string, boolean>;
  warnNoLockInfo(): void;
}

/** Variables of the connection's character set group: SET NAMES / CHARACTER SET change them all. */
const CHARSET_VARIABLES = ['character_set_client', 'character_set_connection', 'character_set_results', 'collation_connection'];
const VARIABLE_NAME = /^[a-z0-9_]+$/;
/** MariaDB error: unknown table (information_schema.METADATA_LOCK_INFO without the plugin). */
const ER_UNKNOWN_TABLE = 1109;

const LOCKS_SUBQUERY = '(SELECT JSON_ARRAYAGG(JSON_ARRAY(LOCK_TYPE, TABLE_SCHEMA, TABLE_NAME)) FROM information_schema.METADATA_LOCK_INFO WHERE THREAD_ID = CONNECTION_ID())';
const USER_VARIABLES_SUBQUERY = '(SELECT JSON_ARRAYAGG(JSON_ARRAY(VARIABLE_NAME, VARIABLE_TYPE, CHARACTER_SET_NAME)) FROM information_schema.USER_VARIABLES)';
const CHANGED_VARIABLES_SUBQUERY = '(SELECT JSON_ARRAYAGG(JSON_ARRAY(s.VARIABLE_NAME, s.VARIABLE_VALUE)) FROM information_schema.SESSION_VARIABLES s '
  + 'JOIN information_schema.GLOBAL_VARIABLES g ON g.VARIABLE_NAME = s.VARIABLE_NAME WHERE NOT (s.VARIABLE_VALUE <=> g.VARIABLE_VALUE))';
const SQL_STATEMENTS_SUBQUERY = '(SELECT JSON_ARRAYAGG(JSON_ARRAY(p.STATEMENT_NAME, p.SQL_TEXT)) FROM performance_schema.prepared_statements_instances p '
  + 'JOIN performance_schema.threads t ON t.THREAD_ID = p.OWNER_THREAD_ID WHERE t.PROCESSLIST_ID = CONNECTION_ID() AND p.STATEMENT_NAME IS NOT NULL)';

/** A PREPARE whose text comes from a string literal (replayable as written). */
export function preparedFromLiteral(prepare: string): boolean {
  const from = prepare.search(/\bFROM\b/i);
  if (from === -1) return false;
  let i = from + 4;
  while (i < prepare.length && /\s/.test(prepare[i]!)) i++;
  if (prepare[i] === '_') while (i < prepare.length && /\w/.test(prepare[i]!)) i++;
  while (i < prepare.length && /\s/.test(prepare[i]!)) i++;
  return prepare[i] === "'" || prepare[i] === '"';
}

/** What the session's recorded SET statements say, when they can be followed. */
export interface Ledger {
  statements: Array<{ sql: string; parsed: ParsedSet }>;
  /** Lower-case system variable names set in the session (charset group expanded), in first-seen order. */
  systemVariables: string[];
  userVariables: string[];
  roleStatements: string[];
  /** The first statement that cannot be followed, with why; null when all can. */
  opaque: { sql: string; why: string } | null;
}

export function readLedger(setStatements: Iterable<string>): Ledger {
  const ledger: Ledger = { statements: [], systemVariables: [], userVariables: [], roleStatements: [], opaque: null };
  const system = new Set<string>();
  const user = new Set<string>();
  for (const sql of setStatements) {
    const parsed = parseSet(sql);
    ledger.statements.push({ sql, parsed });
    if (parsed.opaque) {
      ledger.opaque ??= { sql, why: parsed.opaque };
      continue;
    }
    if (parsed.role) ledger.roleStatements.push(sql);
    for (const t of parsed.targets) {
      if (t.kind === 'user') user.add(t.name);
      else for (const name of t.kind === 'charset' ? CHARSET_VARIABLES : [t.name]) {
        system.add(name);
        // Setting one of the group resets its partner: read the whole group back.
        if (name.startsWith('character_set_connection') || name.startsWith('collation_connection')) for (const v of CHARSET_VARIABLES) system.add(v);
      }
    }
  }
  ledger.systemVariables = [...system];
  ledger.userVariables = [...user];
  return ledger;
}

function parseJsonArray(text: string | null | undefined): Array<Array<string | null>> {
  return text ? (JSON.parse(text) as Array<Array<string | null>>) : [];
}

function vetoOnLocks(json: string | null | undefined): void {
  const rows = parseJsonArray(json);
  const userLock = rows.find((r) => r[0] === 'User lock');
  if (userLock) throw new MigrationVetoError(`session holds a user-level lock (GET_LOCK '${userLock[1] ?? ''}')`);
  // Outside a transaction, table metadata locks are held only by LOCK TABLES / HANDLER.
  const tableLock = rows.find((r) => r[0]?.startsWith('Table'));
  if (tableLock) throw new MigrationVetoError(`session holds a table lock on ${tableLock[1]}.${tableLock[2]} (LOCK TABLES or HANDLER)`);
}

/** SQL-level statements: the tracked PREPAREs from literals as written; those from variables as the server lists them. */
function sqlStatementsFrom(tracked: ReadonlyMap<string, string>, listed: string | null | undefined, performanceSchema: string | null | undefined): string[] {
  const byName = new Map(parseJsonArray(listed).map(([name, text]) => [String(name).toLowerCase(), text]));
  return [...tracked].map(([name, prepare]) => {
    if (preparedFromLiteral(prepare)) return prepare;
    const text = byName.get(name);
    if (text === undefined || text === null) {
      throw new MigrationVetoError(performanceSchema === '1'
        ? `SQL-level prepared statement ${name} is not listed by performance_schema`
        : `SQL-level prepared statement ${name} was prepared from a variable and performance_schema is off, so its text cannot be read back`);
    }
    return `PREPARE ${quoteIdent(name)} FROM ${quoteString(text)}`;
  });
}

/** One SELECT of HEX(@u), CAST(@u AS CHAR) for each name; typed from `types` (name -> [type, charset]). */
function valuesSelect(names: readonly string[]): string {
  return names.map((n) => `HEX(@${quoteIdent(n)}), CAST(@${quoteIdent(n)} AS CHAR)`).join(', ');
}

function userVariablesFrom(names: readonly string[], row: ReadonlyArray<string | null>, at: number, types: Map<string, Array<string | null>>): UserVariable[] {
  return names.map((name, i) => {
    const t = types.get(name.toLowerCase());
    return { name, type: t?.[1] ?? 'STRING', hex: row[at + 2 * i] ?? null, text: row[at + 2 * i + 1] ?? null, charset: t?.[2] ?? null };
  });
}

/**
 * A planned migration's capture. When the session's state changes were all seen (the kernel's ledger
 * is complete and every SET statement readable), one SELECT reads exactly the values the ledger names
 * — or none at all when the session changed nothing and no lock check is due. Otherwise the old
 * backend is asked for everything (full capture, two queries).
 */
export async function capture(source: BackendSql, session: SessionInfo, opts: CaptureOptions): Promise<CapturedState> {
  const tracked = session.tracked;
  if (tracked.temporaryTables) throw new MigrationVetoError('session created temporary tables, which cannot be moved');
  if (tracked.lockTables) throw new MigrationVetoError('session holds LOCK TABLES');
  const ledger = tracked.unseenChanges === null ? readLedger(tracked.setStatements) : null;
  if (ledger && ledger.opaque === null) return targetedCapture(source, session, ledger, opts);
  return fullCapture(source, session, opts);
}

function wantsLockCheck(source: BackendSql, opts: CaptureOptions): boolean {
  return opts.lockCheck && opts.lockInfo.get(source.addr) !== false;
}

/** Runs the one capture SELECT; without the lock column if the backend turns out to lack METADATA_LOCK_INFO. */
async function captureSelect(source: BackendSql, columns: string[], lockColumn: number, opts: CaptureOptions): Promise<Array<string | null>> {
  try {
    const row = (await source.query(`SELECT ${columns.join(', ')}`)).rows[0] ?? [];
    if (lockColumn !== -1) opts.lockInfo.set(source.addr, true);
    return row;
  } catch (err) {
    if (lockColumn === -1 || !(err instanceof BackendError) || err.code !== ER_UNKNOWN_TABLE) throw err;
    opts.lockInfo.set(source.addr, false);
    opts.warnNoLockInfo();
    columns[lockColumn] = 'NULL';
    return (await source.query(`SELECT ${columns.join(', ')}`)).rows[0] ?? [];
  }
}

async function targetedCapture(source: BackendSql, session: SessionInfo, ledger: Ledger, opts: CaptureOptions): Promise<CapturedState> {
  const tracked = session.tracked;
  const system = ledger.systemVariables.filter((n) => !opts.skip.has(n.toUpperCase()));
  if (!system.every((n) => VARIABLE_NAME.test(n))) return fullCapture(source, session, opts);
  const user = ledger.userVariables;
  const fromVariables = [...tracked.sqlStatements.values()].some((p) => !preparedFromLiteral(p));
  const checkLocks = tracked.mayHoldLocks && wantsLockCheck(source, opts);
  const state: CapturedState = {
    database: null, variables: [], userVariables: [], roleStatements: ledger.roleStatements,
    pendingTransaction: tracked.pendingTransaction, sqlStatements: [], queries: 0,
  };
  if (system.length === 0 && user.length === 0 && !fromVariables && !checkLocks) {
    // Nothing changed that the login does not already give: no question to the old backend at all.
    state.sqlStatements = sqlStatementsFrom(tracked.sqlStatements, null, null);
    return state;
  }
  const columns = ['DATABASE()', USER_VARIABLES_SUBQUERY, checkLocks ? LOCKS_SUBQUERY : 'NULL',
    fromVariables ? SQL_STATEMENTS_SUBQUERY : 'NULL', fromVariables ? '@@performance_schema' : 'NULL'];
  const firstSystem = columns.length;
  for (const n of system) columns.push(`@@SESSION.${n}`);
  const firstUser = columns.length;
  if (user.length > 0) columns.push(valuesSelect(user));
  let row: Array<string | null>;
  try {
    row = await captureSelect(source, columns, checkLocks ? 2 : -1, opts);
  } catch (err) {
    // A variable the server will not read per session (e.g. one set with GLOBAL scope): ask for everything.
    if (err instanceof BackendError) return fullCapture(source, session, opts);
    throw err;
  }
  state.queries = 1;
  vetoOnLocks(row[2]);
  state.database = row[0] ?? null;
  state.variables = system.map((n, i) => [n, row[firstSystem + i] ?? null]);
  const types = new Map(parseJsonArray(row[1]).map((r) => [String(r[0]).toLowerCase(), r]));
  state.userVariables = userVariablesFrom(user, row, firstUser, types);
  // A user variable the ledger does not know (set by a stored function, say): read it too.
  const known = new Set(user.map((n) => n.toLowerCase()));
  const unknown = [...types.values()].map((r) => String(r[0])).filter((n) => !known.has(n.toLowerCase()));
  if (unknown.length > 0) {
    const extra = (await source.query(`SELECT ${valuesSelect(unknown)}`)).rows[0] ?? [];
    state.queries++;
    state.userVariables.push(...userVariablesFrom(unknown, extra, 0, types));
  }
  state.sqlStatements = sqlStatementsFrom(tracked.sqlStatements, row[3], row[4]);
  return state;
}

/** The session did something the proxy could not follow: ask the old backend for all of its state. */
async function fullCapture(source: BackendSql, session: SessionInfo, opts: CaptureOptions): Promise<CapturedState> {
  const tracked = session.tracked;
  const checkLocks = wantsLockCheck(source, opts);
  const fromVariables = [...tracked.sqlStatements.values()].some((p) => !preparedFromLiteral(p));
  const columns = ['DATABASE()', CHANGED_VARIABLES_SUBQUERY, USER_VARIABLES_SUBQUERY, checkLocks ? LOCKS_SUBQUERY : 'NULL',
    fromVariables ? SQL_STATEMENTS_SUBQUERY : 'NULL', fromVariables ? '@@performance_schema' : 'NULL'];
  const row = await captureSelect(source, columns, checkLocks ? 3 : -1, opts);
  vetoOnLocks(row[3]);
  const types = new Map(parseJsonArray(row[2]).map((r) => [String(r[0]).toLowerCase(), r]));
  const names = [...types.values()].map((r) => String(r[0]));
  let userVariables: UserVariable[] = [];
  let queries = 1;
  if (names.length > 0) {
    // Exact bytes, whatever the charset: HEX() of the variable itself, not of its information_schema text.
    userVariables = userVariablesFrom(names, (await source.query(`SELECT ${valuesSelect(names)}`)).rows[0] ?? [], 0, types);
    queries++;
  }
  const roleStatements = tracked.unseenChanges === null ? readLedger(tracked.setStatements).roleStatements : [];
  return {
    database: row[0] ?? null,
    variables: parseJsonArray(row[1]).filter((r) => r[0] && !opts.skip.has(r[0])).map((r) => [r[0]!.toLowerCase(), r[1] ?? null]),
    userVariables,
    roleStatements,
    pendingTransaction: tracked.pendingTransaction,
    sqlStatements: sqlStatementsFrom(tracked.sqlStatements, row[4], row[5]),
    queries,
  };
}
