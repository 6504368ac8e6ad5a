// The values the emulator's tiny SQL knows: NULL, integers (bigint, as MySQL's BIGINT), doubles and
// strings. Enough for literals, variables, parameters and the key-value table.
import { MYSQL_TYPE } from '../raw-client.js';

export type SqlValue = null | bigint | number | string;

/** Text-protocol form, as a MySQL server writes values in result rows; null for NULL. */
export function toText(v: SqlValue): string | null {
  if (v === null) return null;
  return typeof v === 'string' ? v : String(v);
}

export function toNumber(v: SqlValue): number | bigint {
  if (typeof v === 'bigint' || typeof v === 'number') return v;
  if (v === null) return 0n;
  const n = Number.parseFloat(v);
  return Number.isNaN(n) ? 0n : Number.isInteger(n) && !v.includes('.') && !/e/i.test(v) ? BigInt(Math.trunc(n)) : n;
}

/** a + b or a - b with MySQL's loose typing: integers stay integers, anything else is a double. */
export function arithmetic(op: '+' | '-', a: SqlValue, b: SqlValue): SqlValue {
  if (a === null || b === null) return null;
  const x = toNumber(a);
  const y = toNumber(b);
  if (typeof x === 'bigint' && typeof y === 'bigint') return op === '+' ? x + y : x - y;
  return op === '+' ? Number(x) + Number(y) : Number(x) - Number(y);
}

/** The column type a result column gets from its values (MySQL infers it from the expression). */
export function columnType(values: SqlValue[]): number {
  const v = values.find((x) => x !== null);
  if (v === undefined) return values.length > 0 ? MYSQL_TYPE.NULL : MYSQL_TYPE.VAR_STRING;
  if (typeof v === 'bigint') return MYSQL_TYPE.LONGLONG;
  if (typeof v === 'number') return MYSQL_TYPE.DOUBLE;
  return MYSQL_TYPE.VAR_STRING;
}

/** A value in session states JSON (TiDB encodes a types.Datum; this is a simpler, equally exact form). */
export type EncodedValue = null | { int: string } | { double: number } | { string: string };

export function encodeValue(v: SqlValue): EncodedValue {
  if (v === null) return null;
  if (typeof v === 'bigint') return { int: v.toString() };
  if (typeof v === 'number') return { double: v };
  return { string: v };
}

export function decodeValue(e: EncodedValue): SqlValue {
  if (e === null) return null;
  if ('int' in e) return BigInt(e.int);
  if ('double' in e) return e.double;
  return e.string;
}
