import type { BackendSql, PipelineOutcome, PipelineStep, StateTransferContext } from '../../plugin.js';
import type { CapturedState, UserVariable } from './capture.js';
import { quoteIdent, variableLiteral } from './sql-text.js';

/** MySQL errors meaning "this variable cannot be set here" (read-only, global-only): skipped, not fatal. */
const UNSETTABLE = new Set([1193, 1228, 1238, 1621, 1229]);

/** Sends the steps in one round trip when the connection can, else one by one (same outcomes). */
export async function runSteps(target: BackendSql, steps: readonly PipelineStep[]): Promise<PipelineOutcome[]> {
  if (steps.length === 0) return [];
  if (target.pipeline) return target.pipeline(steps);
  const out: PipelineOutcome[] = [];
  for (const step of steps) {
    try {
      if ('query' in step) out.push({ result: await target.query(step.query) });
      else if ('prepare' in step) out.push({ prepared: await target.prepare(step.prepare) });
      else out.push({ closed: true });
    } catch (err) {
      if (typeof (err as { code?: unknown }).code !== 'number') throw err;
      out.push({ error: err as Error & { code: number } });
    }
  }
  return out;
}

function userVariableValue(u: UserVariable): string {
  if (u.hex === null || u.text === null) return 'NULL';
  // MariaDB 10.11 names the types INT, INT UNSIGNED, DECIMAL, DOUBLE, VARCHAR (older servers: INT, DECIMAL, REAL, STRING).
  const type = u.type.toUpperCase();
  if (type.startsWith('INT') || type === 'DECIMAL') return u.text;
  // 1000 would come back as an INT: an exponent keeps it a DOUBLE.
  if (type === 'DOUBLE' || type === 'REAL') return /[eE]|inf|nan/i.test(u.text) ? u.text : `${u.text}e0`;
  return u.charset && u.charset !== 'binary' ? `CONVERT(UNHEX('${u.hex}') USING ${u.charset})` : `UNHEX('${u.hex}')`;
}

/** Assignments for one SET: character sets before collations (a character set resets its collation), then the rest, then user variables. */
function assignments(state: CapturedState): string[] {
  const rank = (name: string) => (name.startsWith('character_set') ? 0 : name.startsWith('collation') ? 1 : 2);
  const ordered = [...state.variables].sort((a, b) => rank(a[0]) - rank(b[0]));
  return [
    ...ordered.map(([name, value]) => `@@SESSION.${name} = ${variableLiteral(value)}`),
    ...state.userVariables.map((u) => `@${quoteIdent(u.name)} = ${userVariableValue(u)}`),
  ];
}

function failed(outcome: PipelineOutcome | undefined): (Error & { code?: number }) | null {
  return outcome && 'error' in outcome ? outcome.error : null;
}

/**
 * Everything after the variables, in one pipeline: roles, the client's prepared statements (re-prepared,
 * the client keeps its ids), SQL-level PREPAREs, a pending SET TRANSACTION. After the variables because
 * sql_mode and character sets decide how statements parse.
 */
function statementSteps(state: Pick<CapturedState, 'roleStatements' | 'sqlStatements' | 'pendingTransaction'>, ctx: StateTransferContext): PipelineStep[] {
  return [
    ...state.roleStatements.map((query) => ({ query })),
    ...ctx.statements.map((st) => ({ prepare: st.sql })),
    ...state.sqlStatements.map((query) => ({ query })),
    ...(state.pendingTransaction ? [{ query: state.pendingTransaction }] : []),
  ];
}

/** Checks the statement steps' outcomes (from `at` on) and tells the kernel the new statement ids. */
function finishStatements(outcomes: readonly PipelineOutcome[], at: number, steps: readonly PipelineStep[], ctx: StateTransferContext): void {
  for (let i = at; i < outcomes.length; i++) {
    const err = failed(outcomes[i]);
    if (err) throw err;
  }
  const firstPrepare = at + steps.findIndex((s) => 'prepare' in s);
  ctx.statements.forEach((st, i) => {
    const outcome = outcomes[firstPrepare + i];
    if (!outcome || !('prepared' in outcome)) throw new Error(`statement ${st.clientId} was not prepared on ${ctx.target.addr}`);
    if (outcome.prepared.params !== st.params) {
      throw new Error(`statement ${st.clientId} has ${outcome.prepared.params} parameters on ${ctx.target.addr}, ${st.params} before`);
    }
    ctx.remapStatement(st.clientId, outcome.prepared.statementId);
  });
}

/**
 * A planned migration's restore, in one round trip: USE (only if the old backend reported another
 * database than the login's), one SET of every variable, then the statements. If the combined SET
 * fails (a variable this server will not take), nothing of it applied: the statements prepared behind
 * it are closed, the variables are set one by one (unsettable ones skipped), and the statements again.
 */
export async function restore(state: CapturedState, ctx: StateTransferContext): Promise<void> {
  const { target, session } = ctx;
  const head: PipelineStep[] = [];
  if (state.database !== null && state.database !== session.database) head.push({ query: `USE ${quoteIdent(state.database)}` });
  const sets = assignments(state);
  if (sets.length > 0) head.push({ query: `SET ${sets.join(', ')}` });
  const tail = statementSteps(state, ctx);
  const outcomes = await runSteps(target, [...head, ...tail]);
  const useError = state.database !== null && state.database !== session.database ? failed(outcomes[0]) : null;
  if (useError) throw useError;
  if (sets.length === 0 || !failed(outcomes[head.length - 1])) {
    finishStatements(outcomes, head.length, tail, ctx);
    return;
  }
  const closes: PipelineStep[] = outcomes.slice(head.length).flatMap((o) => ('prepared' in o ? [{ close: o.prepared.statementId }] : []));
  await runSteps(target, closes);
  for (const assignment of sets) {
    try {
      await target.query(`SET ${assignment}`);
    } catch (err) {
      if (!UNSETTABLE.has((err as { code?: number }).code ?? 0)) throw err;
    }
  }
  finishStatements(await runSteps(target, tail), 0, tail, ctx);
}

/** A failover's restore: the recorded SET statements as the client wrote them, in order, then the statements — one round trip. */
export async function replay(setStatements: readonly string[], state: Pick<CapturedState, 'sqlStatements' | 'pendingTransaction'>, ctx: StateTransferContext): Promise<void> {
  const tail = statementSteps({ ...state, roleStatements: [] }, ctx);
  const outcomes = await runSteps(ctx.target, [...setStatements.map((query) => ({ query })), ...tail]);
  for (const outcome of outcomes.slice(0, setStatements.length)) {
    const err = failed(outcome);
    if (err) throw err;
  }
  finishStatements(outcomes, setStatements.length, tail, ctx);
}
