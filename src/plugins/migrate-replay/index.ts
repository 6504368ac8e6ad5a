import { definePlugin, MigrationVetoError, type BackendSql, type StateTransferContext } from '../../plugin.js';
import schema from '../../../schemas/plugins/migrate-replay.schema.json' with { type: 'json' };

export interface ReplayConfig {
  'skip-variables': string[];
  'lock-check': 'metadata-lock-info' | 'off';
}

/** Per-connection, derived or read-only variables: copying them is meaningless or impossible. */
const NEVER_COPIED = new Set([
  'TIMESTAMP', 'PSEUDO_THREAD_ID', 'LAST_INSERT_ID', 'INSERT_ID', 'IDENTITY', 'RAND_SEED1', 'RAND_SEED2', 'WARNING_COUNT',
  'ERROR_COUNT', 'IN_TRANSACTION', 'LAST_GTID', 'GTID_SEQ_NO', 'SERVER_ID', 'PSEUDO_SLAVE_MODE', 'SESSION_TRACK_SCHEMA',
  'SESSION_TRACK_STATE_CHANGE', 'SESSION_TRACK_SYSTEM_VARIABLES', 'SESSION_TRACK_TRANSACTION_INFO', 'EXTERNAL_USER',
  'PROXY_USER', 'WSREP_LAST_SEEN_GTID', 'WSREP_LAST_WRITTEN_GTID', 'THREAD_HANDLING',
]);
/** MySQL errors meaning "this variable cannot be set here" (read-only, global-only): skipped, not fatal. */
const UNSETTABLE = new Set([1193, 1228, 1238, 1621, 1229]);

interface CapturedState {
  database: string | null;
  variables: Array<[string, string | null]>;
  userVariables: Array<{ name: string; type: string; hex: string | null; text: string | null; charset: string | null }>;
  pendingTransaction: string | null;
  /** PREPARE statements to run on the target, one per SQL-level prepared statement. */
  sqlStatements: string[];
}

function quoteString(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

function quoteIdent(v: string): string {
  return `\`${v.replace(/`/g, '``')}\``;
}

/** A variable value as SQL: numbers bare (numeric variables reject strings), the rest quoted. */
function variableLiteral(v: string | null): string {
  if (v === null) return 'NULL';
  return /^-?\d+(\.\d+)?$/.test(v) ? v : quoteString(v);
}

async function checkLocks(source: BackendSql, config: ReplayConfig, warnOnce: () => void): Promise<void> {
  if (config['lock-check'] === 'off') return;
  let rows: Array<Array<string | null>>;
  try {
    rows = (await source.query(
      'SELECT LOCK_TYPE, TABLE_SCHEMA, TABLE_NAME FROM information_schema.METADATA_LOCK_INFO WHERE THREAD_ID = CONNECTION_ID()',
    )).rows;
  } catch {
    warnOnce();
    return;
  }
  const userLock = rows.find((r) => r[0] === 'User lock');
  if (userLock) throw new MigrationVetoError(`session holds a user-level lock (GET_LOCK '${userLock[1] ?? ''}')`);
  // Outside a transaction, table metadata locks are held only by LOCK TABLES / HANDLER.
  const tableLock = rows.find((r) => r[0]?.startsWith('Table'));
  if (tableLock) throw new MigrationVetoError(`session holds a table lock on ${tableLock[1]}.${tableLock[2]} (LOCK TABLES)`);
}

/**
 * SQL-level prepared statements: performance_schema lists them with their text when it is on (the
 * server's own answer); otherwise the PREPARE the client sent is replayed, which is exact only when it
 * prepared from a literal — one prepared FROM @variable cannot be reproduced and vetoes the move.
 */
async function captureSqlStatements(source: BackendSql, tracked: ReadonlyMap<string, string>): Promise<string[]> {
  if (tracked.size === 0) return [];
  const enabled = (await source.query('SELECT @@performance_schema')).rows[0]?.[0] === '1';
  if (enabled) {
    const listed = await source.query(
      'SELECT p.STATEMENT_NAME, p.SQL_TEXT FROM performance_schema.prepared_statements_instances p '
      + 'JOIN performance_schema.threads t ON t.THREAD_ID = p.OWNER_THREAD_ID '
      + 'WHERE t.PROCESSLIST_ID = CONNECTION_ID() AND p.STATEMENT_NAME IS NOT NULL',
    );
    return listed.rows.map(([name, text]) => `PREPARE ${quoteIdent(name ?? '')} FROM ${quoteString(text ?? '')}`);
  }
  return [...tracked].map(([name, text]) => {
    if (!/\bFROM\s*(?:_\w+\s*)?['"]/i.test(text)) {
      throw new MigrationVetoError(`SQL-level prepared statement ${name} was prepared from a variable and performance_schema is off, so its text cannot be read back`);
    }
    return text;
  });
}

async function capture(ctx: StateTransferContext, config: ReplayConfig, warnOnce: () => void): Promise<CapturedState> {
  const { source, session } = ctx;
  if (!source) throw new MigrationVetoError('the old backend is gone and the session state was not captured before', false);
  if (session.tracked.temporaryTables) throw new MigrationVetoError('session created temporary tables, which cannot be moved');
  if (session.tracked.lockTables) throw new MigrationVetoError('session holds LOCK TABLES');
  await checkLocks(source, config, warnOnce);
  const skip = new Set([...NEVER_COPIED, ...config['skip-variables'].map((v) => v.toUpperCase())]);
  const [db, vars, users] = [
    await source.query('SELECT DATABASE()'),
    await source.query(
      'SELECT s.VARIABLE_NAME, s.VARIABLE_VALUE FROM information_schema.SESSION_VARIABLES s '
      + 'JOIN information_schema.GLOBAL_VARIABLES g ON g.VARIABLE_NAME = s.VARIABLE_NAME WHERE NOT (s.VARIABLE_VALUE <=> g.VARIABLE_VALUE)',
    ),
    await source.query('SELECT VARIABLE_NAME, VARIABLE_TYPE, CHARACTER_SET_NAME FROM information_schema.USER_VARIABLES'),
  ];
  const userVariables: CapturedState['userVariables'] = [];
  for (const [name, type, charset] of users.rows) {
    if (!name) continue;
    // Exact bytes, whatever the charset: HEX() of the variable itself, not of its information_schema text.
    const v = await source.query(`SELECT HEX(@${quoteIdent(name)}), CAST(@${quoteIdent(name)} AS CHAR)`);
    userVariables.push({ name, type: type ?? 'STRING', hex: v.rows[0]?.[0] ?? null, text: v.rows[0]?.[1] ?? null, charset });
  }
  return {
    database: db.rows[0]?.[0] ?? null,
    variables: vars.rows.filter((r) => r[0] && !skip.has(r[0])).map((r) => [r[0]!, r[1] ?? null]),
    userVariables,
    pendingTransaction: session.tracked.pendingTransaction,
    sqlStatements: await captureSqlStatements(source, session.tracked.sqlStatements),
  };
}

function userVariableValue(u: CapturedState['userVariables'][number]): string {
  if (u.hex === null) return 'NULL';
  switch (u.type) {
    case 'INT':
    case 'DECIMAL':
    case 'REAL':
      return u.text ?? 'NULL';
    default:
      return u.charset && u.charset !== 'binary' ? `CONVERT(UNHEX('${u.hex}') USING ${u.charset})` : `UNHEX('${u.hex}')`;
  }
}

async function restore(state: CapturedState, ctx: StateTransferContext): Promise<void> {
  const { target } = ctx;
  if (state.database) await target.query(`USE ${quoteIdent(state.database)}`);
  // Character sets before collations: setting character_set_connection resets collation_connection.
  const rank = (name: string) => (name.startsWith('CHARACTER_SET') ? 0 : name.startsWith('COLLATION') ? 1 : 2);
  const ordered = [...state.variables].sort((a, b) => rank(a[0]) - rank(b[0]));
  for (const [name, value] of ordered) {
    try {
      await target.query(`SET SESSION ${name.toLowerCase()} = ${variableLiteral(value)}`);
    } catch (err) {
      if (!UNSETTABLE.has((err as { code?: number }).code ?? 0)) throw err;
    }
  }
  for (const u of state.userVariables) await target.query(`SET @${quoteIdent(u.name)} = ${userVariableValue(u)}`);
  // After the variables: sql_mode and character sets decide how the statements parse.
  for (const st of ctx.statements) {
    const prepared = await target.prepare(st.sql);
    if (prepared.params !== st.params) {
      throw new Error(`statement ${st.clientId} has ${prepared.params} parameters on ${target.addr}, ${st.params} before`);
    }
    ctx.remapStatement(st.clientId, prepared.statementId);
  }
  for (const prepare of state.sqlStatements) await target.query(prepare);
  if (state.pendingTransaction) await target.query(state.pendingTransaction);
}

export default definePlugin<ReplayConfig>({
  name: 'migrate-replay',
  version: '1.0.0',
  configSchema: schema,
  apply({ hooks, config, logger }) {
    let warned = false;
    const warnOnce = () => {
      if (warned) return;
      warned = true;
      logger.warn('information_schema.METADATA_LOCK_INFO is not available (INSTALL SONAME \'metadata_lock_info\' on the backends): sessions holding GET_LOCK locks cannot be recognised and may be moved');
    };
    hooks.captureState.tapPromise('migrate-replay', async (state, ctx) => {
      // Another strategy already moves this whole session (migrate-tidb-token on TiDB): nothing to replay.
      if (state['moved-by']) return state;
      return { ...state, replay: await capture(ctx, config, warnOnce) };
    });
    hooks.restoreState.tapPromise('migrate-replay', async (state, ctx) => {
      const captured = state.replay as CapturedState | undefined;
      if (captured) await restore(captured, ctx);
    });
  },
});
