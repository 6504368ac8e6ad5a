// Runs parsed statements against a session and the cluster's shared data.
import {
  ER_BAD_DB, ER_BAD_FIELD, ER_DUP_ENTRY, ER_NO_DB, ER_NO_SUCH_TABLE, ER_PARSE, ER_UNKNOWN_SYSTEM_VARIABLE, ER_WRONG_ARGUMENTS, SqlError,
} from './errors.js';
import type { EmulatedSession } from './session.js';
import { setSessionStates, showSessionStates } from './session-states.js';
import type { Expr, Statement, TableRef } from './sql-parser.js';
import { defaultValue, isKnownVariable, normalise, present } from './system-variables.js';
import { arithmetic, toText, type SqlValue } from './values.js';

export type ExecResult =
  | { kind: 'ok'; affectedRows: number }
  | { kind: 'rows'; columns: string[]; rows: SqlValue[][] };

/** Default collation per character set, as TiDB picks them for SET NAMES without COLLATE. */
const DEFAULT_COLLATIONS: Record<string, string> = {
  utf8mb4: 'utf8mb4_bin', utf8: 'utf8_bin', utf8mb3: 'utf8_bin', latin1: 'latin1_bin', ascii: 'ascii_bin', binary: 'binary',
};

/** The shared table lives in `test`; other names are unknown tables. */
const KV_DB = 'test';

interface EvalContext {
  session: EmulatedSession;
  params: SqlValue[];
  row?: { k: SqlValue; v: SqlValue };
  /** In SET values, bare words (ON, OFF, READ-COMMITTED without quotes) are strings. */
  wordsAreStrings?: boolean;
}

function evaluate(e: Expr, ctx: EvalContext): SqlValue {
  switch (e.t) {
    case 'lit':
      return e.v;
    case 'param':
      if (e.index >= ctx.params.length) throw new SqlError(ER_WRONG_ARGUMENTS, 'Incorrect arguments to EXECUTE');
      return ctx.params[e.index]!;
    case 'user-var':
      return ctx.session.userVars.get(e.name) ?? null;
    case 'sys-var':
      return systemVariable(ctx.session, e.name, e.scope);
    case 'word': {
      const column = e.text.toLowerCase();
      if (ctx.row && (column === 'k' || column === 'v')) return ctx.row[column];
      if (ctx.wordsAreStrings) return e.text;
      throw new SqlError(ER_BAD_FIELD, `Unknown column '${e.text}' in 'field list'`);
    }
    case 'neg': {
      const v = evaluate(e.a, ctx);
      return v === null ? null : arithmetic('-', 0n, v);
    }
    case 'bin':
      return arithmetic(e.op, evaluate(e.a, ctx), evaluate(e.b, ctx));
    case 'call': {
      const args = e.args.map((a) => evaluate(a, ctx));
      switch (e.fn) {
        case 'DATABASE':
        case 'SCHEMA':
          return ctx.session.db || null;
        case 'CONNECTION_ID':
          return BigInt(ctx.session.connectionId);
        case 'VERSION':
          return ctx.session.host.serverVersion;
        case 'CONCAT':
          return args.some((a) => a === null) ? null : args.map((a) => toText(a)).join('');
        default:
          throw new SqlError(ER_PARSE, `FUNCTION ${e.fn} does not exist (the TiDB emulator knows DATABASE, CONNECTION_ID, VERSION, CONCAT)`);
      }
    }
  }
}

function systemVariable(session: EmulatedSession, name: string, scope: string): SqlValue {
  if (name === 'port') return BigInt(session.host.port);
  if (name === 'version') return session.host.serverVersion;
  if (name === 'hostname') return 'tidb-emulator';
  if (!isKnownVariable(name)) throw new SqlError(ER_UNKNOWN_SYSTEM_VARIABLE, `Unknown system variable '${name}'`);
  return present(name, scope === 'global' ? defaultValue(name) : session.variable(name));
}

function kvTable(session: EmulatedSession, ref: TableRef): void {
  const db = ref.db ?? session.db;
  if (!db) throw new SqlError(ER_NO_DB, 'No database selected');
  if (db.toLowerCase() !== KV_DB || ref.table.toLowerCase() !== 'kv') {
    throw new SqlError(ER_NO_SUCH_TABLE, `Table '${db}.${ref.table}' doesn't exist`);
  }
}

function keyOf(v: SqlValue): string {
  if (v === null) throw new SqlError(ER_BAD_FIELD, "Column 'k' cannot be null");
  return toText(v)!;
}

function matches(session: EmulatedSession, where: { column: string; value: Expr } | null, params: SqlValue[]): string[] {
  if (!where) {
    const keys = new Set([...session.host.cluster.kv.keys(), ...session.txWrites.keys()]);
    return [...keys].filter((k) => session.readKv(k) !== undefined).sort();
  }
  if (where.column !== 'k') throw new SqlError(ER_PARSE, 'the TiDB emulator only filters kv by its key: WHERE k = …');
  const k = keyOf(evaluate(where.value, { session, params }));
  return session.readKv(k) === undefined ? [] : [k];
}

export function execute(session: EmulatedSession, s: Statement, params: SqlValue[]): ExecResult {
  switch (s.t) {
    case 'select': {
      if (!s.from) {
        return { kind: 'rows', columns: s.items.map((i) => i.name), rows: [s.items.map((i) => evaluate(i.expr, { session, params }))] };
      }
      kvTable(session, s.from);
      const rows = matches(session, s.where, params).map((k) => {
        const row = { k, v: session.readKv(k) ?? null };
        return s.items.map((i) => evaluate(i.expr, { session, params, row }));
      });
      return { kind: 'rows', columns: s.items.map((i) => i.name), rows };
    }
    case 'set':
      for (const a of s.assignments) {
        if (a.target === 'user') {
          session.userVars.set(a.name, evaluate(a.value, { session, params }));
          continue;
        }
        if (a.scope === 'global') throw new SqlError(ER_PARSE, 'the TiDB emulator does not emulate SET GLOBAL');
        const value = a.value === 'default' ? defaultValue(a.name) : normalise(a.name, evaluate(a.value, { session, params, wordsAreStrings: true }));
        session.setVariable(a.name, value);
      }
      return { kind: 'ok', affectedRows: 0 };
    case 'set-names': {
      const collation = s.collation ?? DEFAULT_COLLATIONS[s.charset] ?? `${s.charset}_bin`;
      for (const v of ['character_set_client', 'character_set_connection', 'character_set_results']) session.setVariable(v, s.charset);
      session.setVariable('collation_connection', collation);
      return { kind: 'ok', affectedRows: 0 };
    }
    case 'set-session-states':
      setSessionStates(session, s.json);
      return { kind: 'ok', affectedRows: 0 };
    case 'show-session-states': {
      const { states, token } = showSessionStates(session);
      return { kind: 'rows', columns: ['Session_states', 'Session_token'], rows: [[states, token]] };
    }
    case 'use':
      if (!session.host.cluster.databases.has(s.db)) throw new SqlError(ER_BAD_DB, `Unknown database '${s.db}'`);
      session.db = s.db;
      return { kind: 'ok', affectedRows: 0 };
    case 'begin':
      // BEGIN inside a transaction commits it first, as in MySQL and TiDB.
      if (session.inTransaction) session.commit();
      session.inTransaction = true;
      return { kind: 'ok', affectedRows: 0 };
    case 'commit':
      session.commit();
      return { kind: 'ok', affectedRows: 0 };
    case 'rollback':
      session.rollback();
      return { kind: 'ok', affectedRows: 0 };
    case 'create-temporary-table':
      if (!session.db) throw new SqlError(ER_NO_DB, 'No database selected');
      session.tempTables.add(s.name.toLowerCase());
      return { kind: 'ok', affectedRows: 0 };
    case 'drop-temporary-table':
      if (!session.tempTables.delete(s.name.toLowerCase()) && !s.ifExists) {
        throw new SqlError(ER_NO_SUCH_TABLE, `Unknown table '${session.db}.${s.name}'`);
      }
      return { kind: 'ok', affectedRows: 0 };
    case 'create-database':
      if (session.host.cluster.databases.has(s.name) && !s.ifNotExists) {
        throw new SqlError({ code: 1007, sqlState: 'HY000' }, `Can't create database '${s.name}'; database exists`);
      }
      session.host.cluster.databases.add(s.name);
      return { kind: 'ok', affectedRows: 1 };
    case 'insert': {
      kvTable(session, s.table);
      let affected = 0;
      for (const row of s.rows) {
        if (row.length !== 2) throw new SqlError(ER_WRONG_ARGUMENTS, "Column count doesn't match value count at row 1");
        const k = keyOf(evaluate(row[0]!, { session, params }));
        const v = evaluate(row[1]!, { session, params });
        const exists = session.readKv(k) !== undefined;
        if (exists && !s.replace) throw new SqlError(ER_DUP_ENTRY, `Duplicate entry '${k}' for key 'kv.PRIMARY'`);
        session.writeKv(k, v);
        affected += exists ? 2 : 1;
      }
      return { kind: 'ok', affectedRows: affected };
    }
    case 'delete': {
      kvTable(session, s.table);
      const keys = matches(session, s.where, params);
      for (const k of keys) session.writeKv(k, undefined);
      return { kind: 'ok', affectedRows: keys.length };
    }
  }
}
