/**
 * Recognises, from the first bytes of a COM_QUERY, the few statements whose effect on session state the
 * server cannot report on MariaDB 10.11 (DESIGN §5): temporary tables (not listed anywhere), LOCK
 * TABLES, a pending `SET TRANSACTION` (applies to the next transaction only, invisible in
 * variables) and SQL-level PREPARE / DEALLOCATE (not listed unless performance_schema is on).
 * Everything else is OTHER. Cheap: most statements are decided by their first letter.
 */
import { backtickIdentifierAt, keywordAt, skipSpaceAndComments as skipSpaceAndCommentsInText, tokenAfter } from './sql-text-scan.js';

export const enum StatementKind {
  Other = 0,
  /** Any SET statement other than SET TRANSACTION (does not consume a pending SET TRANSACTION). */
  Set = 1,
  SetTransaction = 2,
  CreateTemporary = 3,
  LockTables = 4,
  UnlockTables = 5,
  /** BEGIN [WORK] or START TRANSACTION (not MariaDB's compound `BEGIN NOT ATOMIC`). */
  Begin = 6,
  /** PREPARE name FROM … */
  Prepare = 7,
  /** DEALLOCATE PREPARE name / DROP PREPARE name */
  Deallocate = 8,
}

function skipSpaceAndComments(buf: Buffer, i: number, end: number): number {
  for (;;) {
    while (i < end && (buf[i] === 0x20 || buf[i] === 0x09 || buf[i] === 0x0a || buf[i] === 0x0d)) i++;
    if (i + 1 < end && buf[i] === 0x2f && buf[i + 1] === 0x2a) {
      const close = buf.indexOf('*/', i + 2, 'latin1');
      if (close === -1 || close >= end) return end;
      i = close + 2;
      continue;
    }
    return i;
  }
}

/** Case-insensitive match of an upper-case ASCII word at buf[i], followed by a non-letter. */
function word(buf: Buffer, i: number, end: number, w: string): number {
  if (i + w.length > end) return -1;
  for (let k = 0; k < w.length; k++) if ((buf[i + k]! & 0xdf) !== w.charCodeAt(k)) return -1;
  const next = buf[i + w.length];
  if (next !== undefined && i + w.length < end && ((next | 0x20) >= 0x61 && (next | 0x20) <= 0x7a || next === 0x5f)) return -1;
  return i + w.length;
}

export function classifyStatement(buf: Buffer, start: number, end: number): StatementKind {
  const i = skipSpaceAndComments(buf, start, end);
  if (i >= end) return StatementKind.Other;
  switch (buf[i]! | 0x20) {
    case 0x73: { // s
      const afterStart = word(buf, i, end, 'START');
      if (afterStart !== -1) {
        return word(buf, skipSpaceAndComments(buf, afterStart, end), end, 'TRANSACTION') !== -1 ? StatementKind.Begin : StatementKind.Other;
      }
      const afterSet = word(buf, i, end, 'SET');
      if (afterSet === -1) return StatementKind.Other;
      const j = skipSpaceAndComments(buf, afterSet, end);
      return word(buf, j, end, 'TRANSACTION') !== -1 ? StatementKind.SetTransaction : StatementKind.Set;
    }
    case 0x63: { // c
      const afterCreate = word(buf, i, end, 'CREATE');
      if (afterCreate === -1) return StatementKind.Other;
      let j = skipSpaceAndComments(buf, afterCreate, end);
      const orReplace = word(buf, j, end, 'OR');
      if (orReplace !== -1) j = skipSpaceAndComments(buf, word(buf, skipSpaceAndComments(buf, orReplace, end), end, 'REPLACE'), end);
      return word(buf, j, end, 'TEMPORARY') !== -1 ? StatementKind.CreateTemporary : StatementKind.Other;
    }
    case 0x6c: { // l
      const afterLock = word(buf, i, end, 'LOCK');
      if (afterLock === -1) return StatementKind.Other;
      const j = skipSpaceAndComments(buf, afterLock, end);
      return word(buf, j, end, 'TABLES') !== -1 || word(buf, j, end, 'TABLE') !== -1 ? StatementKind.LockTables : StatementKind.Other;
    }
    case 0x70: // p
      return word(buf, i, end, 'PREPARE') !== -1 ? StatementKind.Prepare : StatementKind.Other;
    case 0x64: { // d
      const after = word(buf, i, end, 'DEALLOCATE') !== -1 ? word(buf, i, end, 'DEALLOCATE') : word(buf, i, end, 'DROP');
      if (after === -1) return StatementKind.Other;
      return word(buf, skipSpaceAndComments(buf, after, end), end, 'PREPARE') !== -1 ? StatementKind.Deallocate : StatementKind.Other;
    }
    case 0x75: // u
      return word(buf, i, end, 'UNLOCK') !== -1 ? StatementKind.UnlockTables : StatementKind.Other;
    case 0x62: { // b
      const afterBegin = word(buf, i, end, 'BEGIN');
      if (afterBegin === -1) return StatementKind.Other;
      return word(buf, skipSpaceAndComments(buf, afterBegin, end), end, 'NOT') === -1 ? StatementKind.Begin : StatementKind.Other;
    }
    default:
      return StatementKind.Other;
  }
}

/**
 * The statement name of a PREPARE / DEALLOCATE PREPARE / DROP PREPARE, lower-cased (names are
 * case-insensitive), or null if it cannot be read.
 */
export function preparedStatementName(sql: string): string | null {
  const start = skipSpaceAndCommentsInText(sql, 0);
  let verbEnd = keywordAt(sql, start, 'prepare');
  if (verbEnd === -1) {
    const dealloc = keywordAt(sql, start, 'deallocate');
    verbEnd = keywordAt(sql, tokenAfter(sql, dealloc !== -1 ? dealloc : keywordAt(sql, start, 'drop')), 'prepare');
  }
  const i = tokenAfter(sql, verbEnd);
  if (i === -1) return null;
  if (sql.charCodeAt(i) === 0x60 /* ` */) {
    const quoted = backtickIdentifierAt(sql, i);
    return quoted && quoted.name.length > 0 ? quoted.name.toLowerCase() : null;
  }
  let j = i;
  while (j < sql.length && isNameChar(sql.charCodeAt(j))) j++;
  return j > i ? sql.slice(i, j).toLowerCase() : null;
}

const isNameChar = (c: number): boolean =>
  (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a) || c === 0x5f /* _ */ || c === 0x24 /* $ */;

/** Statements whose whole text the session keeps, to replay it on another backend. */
export function capturesText(kind: StatementKind): boolean {
  return kind === StatementKind.SetTransaction || kind === StatementKind.Prepare || kind === StatementKind.Deallocate;
}
