import { createHash } from 'node:crypto';

/**
 * What the replay report groups by: a statement with its literals replaced by `?` (strings, numbers,
 * hex, lists of them collapsed to one), comments dropped, whitespace collapsed and keywords upper-cased
 * — so `SELECT c FROM t WHERE id=5` and `select c from t where id = 7` share one digest.
 */
export function normalizeStatement(sql: string): string {
  let out = '';
  let i = 0;
  const n = sql.length;
  let pendingSpace = false;
  const emit = (s: string) => {
    // No space after an opening or separating sign: `f( a , b )`, `f(a,b)` and `f(a, b)` agree.
    if (pendingSpace && out.length > 0 && !'(,.=<>!+-*/%'.includes(out.at(-1)!)) out += ' ';
    pendingSpace = false;
    out += s;
  };
  while (i < n) {
    const c = sql[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      pendingSpace = true;
      i++;
    } else if (c === '/' && sql[i + 1] === '*' && sql[i + 2] !== '!') {
      const close = sql.indexOf('*/', i + 2);
      i = close === -1 ? n : close + 2;
      pendingSpace = true;
    } else if ((c === '-' && sql[i + 1] === '-' && (sql[i + 2] === ' ' || sql[i + 2] === '\t')) || c === '#') {
      const nl = sql.indexOf('\n', i);
      i = nl === -1 ? n : nl + 1;
      pendingSpace = true;
    } else if (c === "'" || c === '"') {
      let j = i + 1;
      while (j < n && sql[j] !== c) j += sql[j] === '\\' ? 2 : 1;
      emit('?');
      i = j + 1;
    } else if (c === '`') {
      const close = sql.indexOf('`', i + 1);
      const end = close === -1 ? n : close + 1;
      emit(sql.slice(i, end));
      i = end;
    } else if ((/[0-9]/.test(c) && (pendingSpace || !/[A-Za-z0-9_$]/.test(out.at(-1) ?? ' '))) || (c === '.' && /[0-9]/.test(sql[i + 1] ?? ''))) {
      let j = i;
      if (c === '0' && (sql[i + 1] === 'x' || sql[i + 1] === 'X')) j += 2;
      while (j < n && /[0-9A-Fa-f.eE]/.test(sql[j]!)) j++;
      emit('?');
      i = j;
    } else if (/[A-Za-z_$@]/.test(c)) {
      let j = i;
      while (j < n && /[A-Za-z0-9_$@.]/.test(sql[j]!)) j++;
      const word = sql.slice(i, j);
      emit(KEYWORDS.has(word.toUpperCase()) ? word.toUpperCase() : word);
      i = j;
    } else {
      // Operators and punctuation: no space around them, so `id=5` and `id = 5` agree.
      pendingSpace = false;
      out = out.trimEnd() + c;
      i++;
    }
  }
  // Lists of literals: IN (?, ?, ?) and VALUES (?,?),(?,?) collapse to one.
  return out.replace(/\?(?:,\?)+/g, '?...').replace(/\(\?(?:\.\.\.)?\)(?:,\(\?(?:\.\.\.)?\))+/g, '(?...)...');
}

const KEYWORDS = new Set(('SELECT FROM WHERE AND OR NOT IN IS NULL LIKE BETWEEN INSERT INTO VALUES VALUE UPDATE SET DELETE REPLACE ORDER BY GROUP '
  + 'HAVING LIMIT OFFSET JOIN LEFT RIGHT INNER OUTER ON AS DISTINCT UNION ALL CREATE TABLE DROP ALTER INDEX BEGIN COMMIT ROLLBACK START '
  + 'TRANSACTION USE SHOW DESC ASC FOR LOCK SHARE MODE DUPLICATE KEY PREPARE EXECUTE DEALLOCATE CALL DO WITH EXISTS CASE WHEN THEN ELSE END '
  + 'SESSION GLOBAL NAMES COUNT SUM MIN MAX AVG').split(' '));

/** A short stable id for a normalized statement. */
export function digestOf(normalized: string): string {
  return createHash('sha256').update(normalized).digest('hex').slice(0, 16);
}

/** Functions whose result differs from run to run: such statements' row counts and affected rows are not compared. */
const NONDETERMINISTIC = /\b(NOW|SYSDATE|CURDATE|CURTIME|CURRENT_TIMESTAMP|CURRENT_DATE|CURRENT_TIME|UTC_TIMESTAMP|UNIX_TIMESTAMP|RAND|UUID|UUID_SHORT|CONNECTION_ID|LAST_INSERT_ID|FOUND_ROWS|ROW_COUNT|SLEEP|GET_LOCK|RELEASE_LOCK|BENCHMARK)\s*\(/i;

export function isNondeterministic(sql: string): boolean {
  return NONDETERMINISTIC.test(sql);
}

/** First keyword of a statement, upper-cased, after comments and parentheses. */
function firstKeyword(sql: string): string {
  const m = /^(?:\s|\/\*(?!!)[\s\S]*?\*\/|\(|--[ \t][^\n]*\n|#[^\n]*\n)*([A-Za-z]+)/.exec(sql);
  return m ? m[1]!.toUpperCase() : '';
}

/** Statements that read or only change the session: replayed in --read-only mode; everything else is a write and skipped. */
const READ_ONLY_VERBS = new Set(['SELECT', 'SHOW', 'DESCRIBE', 'DESC', 'EXPLAIN', 'SET', 'USE', 'BEGIN', 'START', 'COMMIT', 'ROLLBACK', 'DO', 'HELP', 'WITH', 'VALUES', 'TABLE', 'SAVEPOINT', 'RELEASE', 'PREPARE', 'DEALLOCATE', 'EXECUTE']);

export function isReadOnlyStatement(sql: string): boolean {
  const verb = firstKeyword(sql);
  if (!READ_ONLY_VERBS.has(verb)) return false;
  // SELECT … INTO OUTFILE/DUMPFILE writes a file; a WITH may head an UPDATE or DELETE (FOR UPDATE only locks).
  if (verb === 'SELECT' || verb === 'WITH') {
    const bare = sql.replace(/'(?:[^'\\]|\\.)*'/g, '').replace(/\bFOR\s+UPDATE\b/gi, '');
    return !/\bINTO\s+(OUTFILE|DUMPFILE)\b/i.test(bare) && !/\b(UPDATE|DELETE|INSERT)\b/i.test(bare);
  }
  return true;
}

export function isLoadData(sql: string): boolean {
  return firstKeyword(sql) === 'LOAD';
}
