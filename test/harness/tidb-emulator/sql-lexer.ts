// Tokens of the emulator's SQL subset. A hand-written lexer rather than regular expressions over the
// whole statement, so string literals (the JSON of SET SESSION_STATES, values with quotes) and
// comments can never confuse the grammar.
import { ER_PARSE, SqlError } from './errors.js';

export type TokenKind = 'word' | 'quoted-ident' | 'string' | 'number' | 'param' | 'user-var' | 'sys-var' | 'punct' | 'end';

export interface Token {
  kind: TokenKind;
  /** Identifier or keyword as written, string contents unescaped, number text, variable name, punctuation. */
  text: string;
  /** For sys-var: 'session' | 'global' | '' (no scope written). */
  scope?: string;
  start: number;
  end: number;
}

const WORD = /[A-Za-z0-9_$]/;
const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', b: '\b', '0': '\0', Z: '\x1a' };

function readQuoted(sql: string, at: number, quote: string): { text: string; end: number } {
  let out = '';
  let i = at + 1;
  for (;;) {
    if (i >= sql.length) throw new SqlError(ER_PARSE, `unterminated ${quote} literal near '${sql.slice(at, at + 40)}'`);
    const c = sql[i]!;
    if (c === '\\' && quote !== '`') {
      const n = sql[i + 1] ?? '';
      out += ESCAPES[n] ?? n;
      i += 2;
    } else if (c === quote) {
      if (sql[i + 1] === quote) {
        out += quote;
        i += 2;
      } else return { text: out, end: i + 1 };
    } else {
      out += c;
      i++;
    }
  }
}

export function tokenize(sql: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if ((c === '-' && sql[i + 1] === '-' && /\s/.test(sql[i + 2] ?? ' ')) || c === '#') {
      const nl = sql.indexOf('\n', i);
      i = nl === -1 ? sql.length : nl + 1;
      continue;
    }
    if (c === '/' && sql[i + 1] === '*') {
      const close = sql.indexOf('*/', i + 2);
      i = close === -1 ? sql.length : close + 2;
      continue;
    }
    const start = i;
    if (c === "'" || c === '"') {
      const q = readQuoted(sql, i, c);
      tokens.push({ kind: 'string', text: q.text, start, end: q.end });
      i = q.end;
    } else if (c === '`') {
      const q = readQuoted(sql, i, '`');
      tokens.push({ kind: 'quoted-ident', text: q.text, start, end: q.end });
      i = q.end;
    } else if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(sql[i + 1] ?? ''))) {
      let j = i;
      while (j < sql.length && /[0-9.]/.test(sql[j]!)) j++;
      if (/[eE]/.test(sql[j] ?? '') && /[-+0-9]/.test(sql[j + 1] ?? '')) {
        j += 2;
        while (j < sql.length && /[0-9]/.test(sql[j]!)) j++;
      }
      tokens.push({ kind: 'number', text: sql.slice(i, j), start, end: j });
      i = j;
    } else if (c === '?') {
      tokens.push({ kind: 'param', text: '?', start, end: i + 1 });
      i++;
    } else if (c === '@' && sql[i + 1] === '@') {
      let j = i + 2;
      while (j < sql.length && (WORD.test(sql[j]!) || sql[j] === '.')) j++;
      const full = sql.slice(i + 2, j);
      const dot = full.indexOf('.');
      const scope = dot === -1 ? '' : full.slice(0, dot).toLowerCase();
      const name = dot === -1 ? full : full.slice(dot + 1);
      if (scope && scope !== 'session' && scope !== 'global' && scope !== 'local') {
        throw new SqlError(ER_PARSE, `unknown variable scope '${scope}' near '${sql.slice(i, j)}'`);
      }
      tokens.push({ kind: 'sys-var', text: name.toLowerCase(), scope: scope === 'local' ? 'session' : scope, start, end: j });
      i = j;
    } else if (c === '@') {
      const n = sql[i + 1] ?? '';
      if (n === "'" || n === '"' || n === '`') {
        const q = readQuoted(sql, i + 1, n);
        tokens.push({ kind: 'user-var', text: q.text.toLowerCase(), start, end: q.end });
        i = q.end;
      } else {
        let j = i + 1;
        while (j < sql.length && (WORD.test(sql[j]!) || sql[j] === '.')) j++;
        tokens.push({ kind: 'user-var', text: sql.slice(i + 1, j).toLowerCase(), start, end: j });
        i = j;
      }
    } else if (WORD.test(c)) {
      let j = i;
      while (j < sql.length && WORD.test(sql[j]!)) j++;
      tokens.push({ kind: 'word', text: sql.slice(i, j), start, end: j });
      i = j;
    } else if ('(),=+-*;.'.includes(c)) {
      tokens.push({ kind: 'punct', text: c, start, end: i + 1 });
      i++;
    } else {
      throw new SqlError(ER_PARSE, `You have an error in your SQL syntax near '${sql.slice(i, i + 40)}' (the TiDB emulator knows a small subset of SQL)`);
    }
  }
  tokens.push({ kind: 'end', text: '', start: sql.length, end: sql.length });
  return tokens;
}

/** How many `?` placeholders a statement has (COM_STMT_PREPARE). */
export function countParams(sql: string): number {
  return tokenize(sql).filter((t) => t.kind === 'param').length;
}
