// The session system variables the emulator knows, with TiDB's defaults. SELECT @@x reads the session
// value (or the default), SET [SESSION] x = … changes it for the session. GLOBAL changes are not
// emulated. Booleans read back as 1/0 like TiDB's @@autocommit.
import { ER_UNKNOWN_SYSTEM_VARIABLE, ER_WRONG_VALUE_FOR_VAR, SqlError } from './errors.js';
import type { SqlValue } from './values.js';

interface VariableDef {
  default: string;
  kind: 'string' | 'bool' | 'int' | 'isolation' | 'read-only';
}

const DEFS: Record<string, VariableDef> = {
  autocommit: { default: 'ON', kind: 'bool' },
  sql_mode: {
    default: 'ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION',
    kind: 'string',
  },
  time_zone: { default: 'SYSTEM', kind: 'string' },
  transaction_isolation: { default: 'REPEATABLE-READ', kind: 'isolation' },
  character_set_client: { default: 'utf8mb4', kind: 'string' },
  character_set_connection: { default: 'utf8mb4', kind: 'string' },
  character_set_results: { default: 'utf8mb4', kind: 'string' },
  collation_connection: { default: 'utf8mb4_bin', kind: 'string' },
  max_execution_time: { default: '0', kind: 'int' },
  wait_timeout: { default: '28800', kind: 'int' },
  interactive_timeout: { default: '28800', kind: 'int' },
  sql_select_limit: { default: '18446744073709551615', kind: 'int' },
  tidb_mem_quota_query: { default: '1073741824', kind: 'int' },
  tidb_txn_mode: { default: 'pessimistic', kind: 'string' },
};

/** Names TiDB accepts for the same variable. */
const ALIASES: Record<string, string> = { tx_isolation: 'transaction_isolation' };
const ISOLATIONS = new Set(['READ-UNCOMMITTED', 'READ-COMMITTED', 'REPEATABLE-READ', 'SERIALIZABLE']);

export function canonicalName(name: string): string {
  const lower = name.toLowerCase();
  return ALIASES[lower] ?? lower;
}

export function isKnownVariable(name: string): boolean {
  return canonicalName(name) in DEFS;
}

export function defaultValue(name: string): string {
  const def = DEFS[canonicalName(name)];
  if (!def) throw new SqlError(ER_UNKNOWN_SYSTEM_VARIABLE, `Unknown system variable '${name}'`);
  return def.default;
}

/** The stored form of a value being SET (validated, normalised); throws for bad values. */
export function normalise(name: string, value: SqlValue): string {
  const canonical = canonicalName(name);
  const def = DEFS[canonical];
  if (!def) throw new SqlError(ER_UNKNOWN_SYSTEM_VARIABLE, `Unknown system variable '${name}'`);
  const text = value === null ? '' : String(value);
  const bad = () => new SqlError(ER_WRONG_VALUE_FOR_VAR, `Variable '${name}' can't be set to the value of '${text}'`);
  switch (def.kind) {
    case 'bool': {
      const v = text.toUpperCase();
      if (v === 'ON' || v === '1' || v === 'TRUE') return 'ON';
      if (v === 'OFF' || v === '0' || v === 'FALSE') return 'OFF';
      throw bad();
    }
    case 'isolation': {
      const v = text.toUpperCase().replace(/ /g, '-');
      if (!ISOLATIONS.has(v)) throw bad();
      return v;
    }
    case 'int':
      if (!/^\d+$/.test(text)) throw bad();
      return text;
    case 'string':
      return canonical === 'sql_mode' ? text.toUpperCase() : text;
    default:
      throw bad();
  }
}

/** How SELECT @@x shows a stored value. */
export function present(name: string, stored: string): SqlValue {
  const def = DEFS[canonicalName(name)];
  if (def?.kind === 'bool') return stored === 'ON' ? 1n : 0n;
  if (def?.kind === 'int') return BigInt(stored);
  return stored;
}
