/**
 * The rule that tells, from a COM_QUERY's bytes, whether an ordinary statement (not a SET, PREPARE, …
 * that the bookkeeping records) may have changed session state the proxy cannot see. MariaDB raises no
 * state-change flag for user variables assigned outside SET (DESIGN §5), so the proxy looks for them:
 *
 *  * `@name :=` anywhere (SELECT @x := 1, DO @x := 1, UPDATE … SET c = @x := c);
 *  * `INTO @name` (SELECT … INTO @x);
 *  * `;` followed by more text (a multi-statement query: only the first statement is classified);
 *  * an executable comment `/*!` or `/*M!` (its body runs, but the classifier skipped it);
 *  * a statement starting with CALL (a stored procedure can change anything) or HANDLER (keeps a table open);
 *  * GET_LOCK( anywhere: the session may hold a user-level lock (reported separately: a lock is not a
 *    variable, the migration asks the server about locks only then).
 *
 * One pass over the bytes, no allocation: a byte decides almost always by itself (`@`, `;`, `/`, `g`).
 * False positives (an `@x :=` inside a string literal) only make a migration ask the server; false
 * negatives are what the rule must avoid, so a statement whose tail the proxy did not see is blind too.
 * A stored function called from an ordinary statement (`SELECT f()`) can still change state unseen;
 * docs/migration.md says so.
 */
import { backtickIdentifierAt } from './sql-text-scan.js';

/** Bits of scanStatement's answer. */
export const enum StateScan {
  Clean = 0,
  /** `@name :=` */
  Assignment = 1,
  /** `INTO @name` */
  IntoVariable = 2,
  /** `;` followed by another statement */
  MultiStatement = 4,
  /** `/*!…*\/` or `/*M!…*\/` */
  ExecutableComment = 8,
  /** CALL procedure */
  Call = 16,
  /** GET_LOCK( or HANDLER: the session may hold a lock */
  Locks = 32,
  /** The statement starts with USE (the bookkeeping keeps its text to learn the database) */
  Use = 64,
  /** The statement starts with EXECUTE (an SQL-level prepared statement runs) */
  Execute = 128,
}

/** Bits that mean "state may have changed unseen". */
export const UNSEEN_CHANGE_BITS = StateScan.Assignment | StateScan.IntoVariable | StateScan.MultiStatement | StateScan.ExecutableComment | StateScan.Call;

/** Why the proxy cannot follow a session's state, for the first unseen-change bit set (constant strings: no allocation). */
export function unseenChangeReason(bits: number): string {
  if (bits & StateScan.Assignment) return 'a statement assigned a user variable outside SET (@var := …)';
  if (bits & StateScan.IntoVariable) return 'a statement stored into a user variable (… INTO @var)';
  if (bits & StateScan.MultiStatement) return 'a multi-statement query ran (only its first statement is followed)';
  if (bits & StateScan.ExecutableComment) return 'a statement carried an executable comment (/*! … */)';
  if (bits & StateScan.Call) return 'a stored procedure was called (CALL)';
  return 'unknown';
}

const isSpace = (c: number): boolean => c === 0x20 || (c >= 0x09 && c <= 0x0d);
/** Letter, digit, `_` or `$`: part of an unquoted identifier. */
const isNameByte = (c: number | undefined): boolean =>
  c !== undefined && ((c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a) || c === 0x5f || c === 0x24 || c >= 0x80);

/** Case-insensitive upper-case ASCII word at buf[i] ending at a non-name byte: the index after it, or -1. */
function wordAt(buf: Buffer, i: number, end: number, w: string): number {
  if (i < 0 || i + w.length > end) return -1;
  for (let k = 0; k < w.length; k++) if ((buf[i + k]! & 0xdf) !== w.charCodeAt(k)) return -1;
  return i + w.length < end && isNameByte(buf[i + w.length]) ? -1 : i + w.length;
}

/** Past whitespace and non-executable `/* *\/` comments (an executable one stops the skip). */
function skipSpace(buf: Buffer, i: number, end: number): number {
  for (;;) {
    while (i < end && isSpace(buf[i]!)) i++;
    if (i + 2 < end && buf[i] === 0x2f && buf[i + 1] === 0x2a && buf[i + 2] !== 0x21 && (buf[i + 2]! | 0x20) !== 0x6d) {
      const close = buf.indexOf('*/', i + 2, 'latin1');
      if (close === -1 || close >= end) return end;
      i = close + 2;
      continue;
    }
    return i;
  }
}

/** The statement's first word, as StateScan bits (USE, EXECUTE, CALL, HANDLER), or 0. */
export function leadingWord(buf: Buffer, start: number, end: number): number {
  const i = skipSpace(buf, start, end);
  switch (buf[i]! | 0x20) {
    case 0x75: return wordAt(buf, i, end, 'USE') !== -1 ? StateScan.Use : 0;
    case 0x65: return wordAt(buf, i, end, 'EXECUTE') !== -1 ? StateScan.Execute : 0;
    case 0x63: return wordAt(buf, i, end, 'CALL') !== -1 ? StateScan.Call : 0;
    case 0x68: return wordAt(buf, i, end, 'HANDLER') !== -1 ? StateScan.Locks : 0;
    default: return 0;
  }
}

/** `SET STATEMENT var = value … FOR statement` (MariaDB): a SET that is really the FOR statement. */
export function isSetStatementFor(buf: Buffer, start: number, end: number): boolean {
  const afterSet = wordAt(buf, skipSpace(buf, start, end), end, 'SET');
  return afterSet !== -1 && wordAt(buf, skipSpace(buf, afterSet, end), end, 'STATEMENT') !== -1;
}

/** Index after a user variable's name starting at buf[i] (bare, or quoted with ` ' "). */
function skipVariableName(buf: Buffer, i: number, end: number): number {
  const q = buf[i];
  if (q === 0x60 || q === 0x27 || q === 0x22) {
    const close = buf.indexOf(q, i + 1);
    return close === -1 || close >= end ? end : close + 1;
  }
  while (i < end && (isNameByte(buf[i]) || buf[i] === 0x2e)) i++;
  return i;
}

/** Does the word INTO end right before buf[i] (spaces between allowed)? */
function intoBefore(buf: Buffer, start: number, i: number): boolean {
  let j = i - 1;
  while (j >= start && isSpace(buf[j]!)) j--;
  const from = j - 3;
  if (from < start || (from > start && isNameByte(buf[from - 1]))) return false;
  return wordAt(buf, from, j + 1, 'INTO') !== -1;
}

/** Bytes the scan stops at: @ ; / g G. */
const INTERESTING = new Uint8Array(256);
for (const c of [0x40, 0x3b, 0x2f, 0x67, 0x47]) INTERESTING[c] = 1;

/**
 * Scans buf[start, end) — the statement text the proxy has — and returns StateScan bits. `complete`
 * is false when the statement goes on past `end` unseen: that is reported as an assignment (it may hide
 * one), so the caller stays honest.
 */
export function scanStatement(buf: Buffer, start: number, end: number, complete: boolean): number {
  let bits = leadingWord(buf, start, end);
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (INTERESTING[c] === 0) continue; // most bytes: one table load
    if (c === 0x40) { // @
      if (buf[i + 1] === 0x40) { // @@system_variable: a read
        i++;
        continue;
      }
      if (i + 1 < end && intoBefore(buf, start, i)) bits |= StateScan.IntoVariable;
      const after = skipSpace(buf, skipVariableName(buf, i + 1, end), end);
      if (after + 1 < end && buf[after] === 0x3a && buf[after + 1] === 0x3d) bits |= StateScan.Assignment;
      i = after - 1;
    } else if (c === 0x3b) { // ;
      const next = skipSpace(buf, i + 1, end);
      if (next < end) bits |= StateScan.MultiStatement;
    } else if (c === 0x2f) { // /*! or /*M!
      if (buf[i + 1] === 0x2a && (buf[i + 2] === 0x21 || ((buf[i + 2]! | 0x20) === 0x6d && buf[i + 3] === 0x21))) bits |= StateScan.ExecutableComment;
    } else if ((c | 0x20) === 0x67) { // GET_LOCK
      if ((i === start || !isNameByte(buf[i - 1])) && wordAt(buf, i, end, 'GET_LOCK') !== -1) bits |= StateScan.Locks;
    }
  }
  if (!complete) bits |= StateScan.Assignment;
  return bits;
}

/** Linear-time test (no nested quantifiers) for a PREPARE whose body might change state when executed. */
const NOT_PLAIN = /@|;|\/\*!|\/\*m!|\b(?:call|set|use|into|get_lock|handler|prepare|execute)\b/i;

/**
 * Is the body of this PREPARE statement (as the client wrote it) plain — executing it cannot change
 * session state? False for one prepared from a variable (its text is unknown here) or whose text
 * mentions variables, CALL, SET, INTO, locks. Runs once per PREPARE (rare).
 */
export function preparedBodyIsPlain(prepare: string): boolean {
  const from = prepare.search(/\bfrom\b/i);
  return from !== -1 && !NOT_PLAIN.test(prepare.slice(from + 4));
}

/**
 * The database of a `USE db` statement (bare or back-quoted name, optional trailing `;`), or null if
 * the text is not that simple (the session then keeps the database it knew, and says the state is unseen).
 */
export function useStatementDatabase(sql: string): string | null {
  let i = 0;
  const n = sql.length;
  const space = (k: number) => k < n && isSpace(sql.charCodeAt(k));
  while (space(i)) i++;
  if (sql.slice(i, i + 3).toUpperCase() !== 'USE' || !space(i + 3)) return null;
  i += 3;
  while (space(i)) i++;
  let name: string;
  if (sql.charCodeAt(i) === 0x60) {
    const quoted = backtickIdentifierAt(sql, i);
    if (!quoted) return null;
    name = quoted.name;
    i = quoted.end;
  } else {
    const s = i;
    while (i < n && isNameByte(sql.charCodeAt(i))) i++;
    name = sql.slice(s, i);
  }
  while (space(i)) i++;
  if (sql.charCodeAt(i) === 0x3b) i++;
  while (space(i)) i++;
  return i === n && name.length > 0 ? name : null;
}
