import { MigrationVetoError, protocol, type BackendSql, type StateTransferContext } from '../../plugin.js';

/** What SHOW SESSION_STATES returned for one migration: both JSON texts, opaque to the proxy. */
export interface ExportedSession {
  states: string;
  token: string;
}

/**
 * Runs TiDB's SHOW SESSION_STATES on the backend the session is leaving. TiDB answers error 8146
 * when the session cannot move (a transaction, temporary tables, advisory locks, LOCK TABLES, no
 * signing cert): that is a veto with TiDB's own words. Every failure here is a veto: backendCredentials
 * is fail-open, and a plain error would let another credential plugin log a TiDB session in without
 * its states.
 */
export async function exportSession(source: BackendSql): Promise<ExportedSession> {
  let result;
  try {
    result = await source.query('SHOW SESSION_STATES');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === protocol.ER_TIDB_CANNOT_MIGRATE_SESSION) {
      // "backend a:b: cannot migrate the current session: session has local temporary tables (while running: …)"
      const said = String((err as Error).message).replace(/^backend [^:]+:\d+: /, '').replace(/ \(while running: .*\)$/s, '');
      throw new MigrationVetoError(`TiDB ${source.addr} refuses to export the session (error ${code}): ${said}`);
    }
    // Any other failure must not let a password-based credential plugin take over a TiDB session.
    throw new MigrationVetoError(`SHOW SESSION_STATES failed on ${source.addr}: ${(err as Error).message}`);
  }
  const row = result.rows[0];
  const states = row?.[result.columns.findIndex((c) => c.toLowerCase() === 'session_states')];
  const token = row?.[result.columns.findIndex((c) => c.toLowerCase() === 'session_token')];
  if (typeof states !== 'string' || typeof token !== 'string') {
    throw new MigrationVetoError(`SHOW SESSION_STATES on ${source.addr} returned no Session_states/Session_token (columns: ${result.columns.join(', ')})`);
  }
  return { states, token };
}

/** A string literal for TiDB's default sql_mode (backslash escapes on): `\` and `'` escaped. */
function quote(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** Statement ids and texts TiDB restores from the states (field "prepared-stmts": { "<id>": { "text": … } }). */
function restoredStatements(states: string): Map<number, string> {
  const out = new Map<number, string>();
  try {
    const parsed = JSON.parse(states) as { 'prepared-stmts'?: Record<string, { text?: unknown }> };
    for (const [id, info] of Object.entries(parsed['prepared-stmts'] ?? {})) {
      if (typeof info?.text === 'string') out.set(Number(id), info.text);
    }
  } catch {
    // Not JSON we understand: every statement is prepared again below, which is always correct.
  }
  return out;
}

/**
 * SET SESSION_STATES on the new TiDB, then tells the kernel where each client statement is: TiDB
 * restores prepared statements under their original ids, so a statement the states list under the
 * client's id with the same text keeps that id; any other (the states do not list it) is prepared again.
 */
export async function restoreSession(states: string, ctx: StateTransferContext): Promise<void> {
  await ctx.target.query(`SET SESSION_STATES ${quote(states)}`);
  const restored = restoredStatements(states);
  for (const st of ctx.statements) {
    if (restored.get(st.clientId) === st.sql.toString('utf8')) {
      ctx.remapStatement(st.clientId, st.clientId);
      continue;
    }
    const prepared = await ctx.target.prepare(st.sql);
    if (prepared.params !== st.params) {
      throw new Error(`statement ${st.clientId} has ${prepared.params} parameters on ${ctx.target.addr}, ${st.params} before`);
    }
    ctx.remapStatement(st.clientId, prepared.statementId);
  }
}
