/**
 * Reads the SET statements the kernel recorded for a session (TrackedSessionState.setStatements): which
 * variables each one assigns, and whether every value is a literal (so replaying the text elsewhere
 * gives the same value). A hand-written tokenizer: linear in the text, no regular expressions.
 */

export type SetTarget =
  | { kind: 'system'; name: string }
  | { kind: 'user'; name: string }
  /** SET NAMES / SET CHARACTER SET: the connection's character sets and collation. */
  | { kind: 'charset' };

export interface ParsedSet {
  /** Session-scope targets, in order (GLOBAL assignments are left out: the session does not carry them). */
  targets: SetTarget[];
  /** Every assigned value is a literal: the text, replayed on another server, assigns the same values. */
  literal: boolean;
  /** SET ROLE: no variable says which role is active, so the statement itself is replayed. */
  role: boolean;
  /** Why the statement cannot be followed (then the server must be asked); null when it can. */
  opaque: string | null;
}

type Token =
  | { t: 'word'; v: string } // upper-cased keyword or bare identifier (original case in `raw`)
  | { t: 'string' }
  | { t: 'number' }
  | { t: 'user'; v: string }
  | { t: 'system'; scope: 'global' | 'session'; v: string }
  | { t: 'op'; v: string };

interface Lexed {
  tokens: Array<Token & { raw?: string }>;
  opaque: string | null;
}

const isSpace = (c: number) => c === 0x20 || (c >= 0x09 && c <= 0x0d);
const isNameChar = (c: number) => (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a) || c === 0x5f || c === 0x24 || c >= 0x80;

/** End of a quoted run starting at s[i] (the quote), handling doubled quotes and backslash escapes; -1 if open. */
function quotedEnd(s: string, i: number): number {
  const q = s.charCodeAt(i);
  for (let j = i + 1; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (c === 0x5c && q !== 0x60) j++;
    else if (c === q) {
      if (s.charCodeAt(j + 1) === q) j++;
      else return j + 1;
    }
  }
  return -1;
}

function unquote(s: string): string {
  const q = s[0]!;
  return s.slice(1, -1).split(q + q).join(q);
}

function lex(s: string): Lexed {
  const tokens: Lexed['tokens'] = [];
  const n = s.length;
  let i = 0;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (isSpace(c)) { i++; continue; }
    if (c === 0x2f && s.charCodeAt(i + 1) === 0x2a) { // /* */
      const third = s.charCodeAt(i + 2);
      if (third === 0x21 || ((third | 0x20) === 0x6d && s.charCodeAt(i + 3) === 0x21)) return { tokens, opaque: 'executable comment' };
      const close = s.indexOf('*/', i + 2);
      if (close === -1) return { tokens, opaque: 'unterminated comment' };
      i = close + 2;
      continue;
    }
    if (c === 0x23 || (c === 0x2d && s.charCodeAt(i + 1) === 0x2d && (i + 2 >= n || isSpace(s.charCodeAt(i + 2))))) { // # or -- comment
      const eol = s.indexOf('\n', i);
      i = eol === -1 ? n : eol + 1;
      continue;
    }
    if (c === 0x27 || c === 0x22) { // 'string' "string"
      const end = quotedEnd(s, i);
      if (end === -1) return { tokens, opaque: 'unterminated string' };
      tokens.push({ t: 'string', raw: s.slice(i, end) });
      i = end;
      continue;
    }
    if (c === 0x60) { // `identifier`
      const end = quotedEnd(s, i);
      if (end === -1) return { tokens, opaque: 'unterminated identifier' };
      tokens.push({ t: 'word', v: unquote(s.slice(i, end)).toUpperCase(), raw: s.slice(i, end) });
      i = end;
      continue;
    }
    if (c === 0x40) { // @user or @@system
      if (s.charCodeAt(i + 1) === 0x40) {
        let j = i + 2;
        while (j < n && (isNameChar(s.charCodeAt(j)) || s.charCodeAt(j) === 0x2e)) j++;
        const full = s.slice(i + 2, j).toLowerCase();
        const dot = full.indexOf('.');
        const scope = dot === -1 ? 'session' : full.slice(0, dot);
        tokens.push({ t: 'system', scope: scope === 'global' ? 'global' : 'session', v: dot === -1 || scope === 'global' || scope === 'session' || scope === 'local' ? full.slice(dot + 1) : full });
        i = j;
        continue;
      }
      const q = s.charCodeAt(i + 1);
      if (q === 0x27 || q === 0x22 || q === 0x60) {
        const end = quotedEnd(s, i + 1);
        if (end === -1) return { tokens, opaque: 'unterminated variable name' };
        tokens.push({ t: 'user', v: unquote(s.slice(i + 1, end)) });
        i = end;
        continue;
      }
      let j = i + 1;
      while (j < n && (isNameChar(s.charCodeAt(j)) || s.charCodeAt(j) === 0x2e)) j++;
      tokens.push({ t: 'user', v: s.slice(i + 1, j) });
      i = j;
      continue;
    }
    if ((c >= 0x30 && c <= 0x39) || (c === 0x2e && s.charCodeAt(i + 1) >= 0x30 && s.charCodeAt(i + 1) <= 0x39)) {
      let j = i;
      while (j < n && (isNameChar(s.charCodeAt(j)) || s.charCodeAt(j) === 0x2e
        || ((s.charCodeAt(j) === 0x2b || s.charCodeAt(j) === 0x2d) && (s.charCodeAt(j - 1) | 0x20) === 0x65))) j++;
      tokens.push({ t: 'number', raw: s.slice(i, j) });
      i = j;
      continue;
    }
    if (isNameChar(c)) {
      let j = i;
      while (j < n && isNameChar(s.charCodeAt(j))) j++;
      const raw = s.slice(i, j);
      // X'..' / B'..' / N'..': a literal, not a word
      if (j - i === 1 && s.charCodeAt(j) === 0x27 && 'xXbBnN'.includes(raw)) {
        const end = quotedEnd(s, j);
        if (end === -1) return { tokens, opaque: 'unterminated string' };
        tokens.push({ t: 'string', raw: s.slice(i, end) });
        i = end;
        continue;
      }
      tokens.push({ t: 'word', v: raw.toUpperCase(), raw });
      i = j;
      continue;
    }
    const two = s.slice(i, i + 2);
    if (two === ':=' || two === '<=' || two === '>=' || two === '<>' || two === '!=' || two === '||' || two === '&&') {
      tokens.push({ t: 'op', v: two });
      i += 2;
      continue;
    }
    tokens.push({ t: 'op', v: s[i]! });
    i++;
  }
  return { tokens, opaque: null };
}

const VALUE_WORDS = new Set(['NULL', 'TRUE', 'FALSE', 'DEFAULT', 'ON', 'OFF']);

/** Is this value (tokens between `=` and the next top-level comma) a literal? `system`: bare words count (SET sql_mode = ANSI). */
function isLiteral(value: Lexed['tokens'], system: boolean): boolean {
  let k = 0;
  const sign = value[0];
  if (sign?.t === 'op' && (sign.v === '-' || sign.v === '+')) k++;
  const first = value[k];
  if (!first) return false;
  if (first.t === 'number') return k + 1 === value.length;
  if (first.t === 'word' && first.v.startsWith('_') && value[k + 1]?.t === 'string') k++; // _utf8mb4'…'
  const v = value[k]!;
  if (v.t === 'string') {
    k++;
    const collate = value[k];
    if (collate?.t === 'word' && collate.v === 'COLLATE' && value[k + 1]?.t === 'word') k += 2;
    return k === value.length;
  }
  if (v.t === 'word') return k + 1 === value.length && (VALUE_WORDS.has(v.v) || system);
  return false;
}

/** Parses one recorded SET statement. */
export function parseSet(sql: string): ParsedSet {
  const result: ParsedSet = { targets: [], literal: true, role: false, opaque: null };
  const { tokens, opaque } = lex(sql);
  if (opaque) return { ...result, opaque };
  if (tokens[0]?.t !== 'word' || tokens[0].v !== 'SET') return { ...result, opaque: 'not a SET statement' };
  let k = 1;
  const head = tokens[1];
  if (head?.t === 'word' && (head.v === 'PASSWORD' || (head.v === 'DEFAULT' && tokens[2]?.t === 'word' && tokens[2].v === 'ROLE'))) {
    return result; // stored in the server's tables, not in the session
  }
  if (head?.t === 'word' && head.v === 'ROLE') return { ...result, role: true };
  let scope: 'global' | 'session' = 'session';
  while (k < tokens.length) {
    let tok = tokens[k]!;
    if (tok.t === 'word' && (tok.v === 'SESSION' || tok.v === 'LOCAL' || tok.v === 'GLOBAL')) {
      scope = tok.v === 'GLOBAL' ? 'global' : 'session';
      tok = tokens[++k]!;
      if (!tok) return { ...result, opaque: 'scope without a variable' };
    }
    let target: SetTarget | null;
    let system = true;
    let valueStart: number;
    if (tok.t === 'word' && (tok.v === 'NAMES' || tok.v === 'CHARSET' || (tok.v === 'CHARACTER' && tokens[k + 1]?.t === 'word' && (tokens[k + 1] as { v: string }).v === 'SET'))) {
      target = { kind: 'charset' };
      valueStart = k + (tok.v === 'CHARACTER' ? 2 : 1);
    } else {
      if (tok.t === 'user') {
        target = { kind: 'user', name: tok.v };
        system = false;
      } else if (tok.t === 'system') {
        target = tok.scope === 'global' ? null : { kind: 'system', name: tok.v };
      } else if (tok.t === 'word') {
        let name = tok.v.toLowerCase();
        // structured variable: keycache.key_buffer_size (global only)
        if (tokens[k + 1]?.t === 'op' && (tokens[k + 1] as { v: string }).v === '.' && tokens[k + 2]?.t === 'word') {
          name = `${name}.${(tokens[k + 2] as { v: string }).v.toLowerCase()}`;
          k += 2;
        }
        target = scope === 'global' ? null : { kind: 'system', name };
      } else {
        return { ...result, opaque: 'unexpected token where a variable was expected' };
      }
      const eq = tokens[k + 1];
      if (eq?.t !== 'op' || (eq.v !== '=' && eq.v !== ':=')) return { ...result, opaque: 'assignment without =' };
      valueStart = k + 2;
    }
    // The value runs to the next comma outside parentheses.
    let depth = 0;
    let j = valueStart;
    for (; j < tokens.length; j++) {
      const t = tokens[j]!;
      if (t.t === 'op') {
        if (t.v === '(') depth++;
        else if (t.v === ')') depth--;
        else if (depth === 0 && t.v === ',') break;
        else if (t.v === ';') {
          if (j + 1 < tokens.length) return { ...result, opaque: 'more than one statement' };
          break;
        } else if (t.v === ':=') return { ...result, opaque: 'a value assigns another variable' };
      } else if (t.t === 'word' && (t.v === 'SELECT' || t.v === 'INTO')) {
        return { ...result, opaque: 'a value runs a query' };
      }
    }
    const value = tokens.slice(valueStart, j);
    if (value.length === 0) return { ...result, opaque: 'assignment without a value' };
    if (target?.kind === 'charset') {
      // NAMES x [COLLATE y] / CHARACTER SET x: words or strings
      if (!value.every((t) => t.t === 'word' || t.t === 'string')) result.literal = false;
    } else if (!isLiteral(value, system)) result.literal = false;
    if (target) result.targets.push(target);
    k = j + 1;
    if (tokens[j]?.t === 'op' && (tokens[j] as { v: string }).v === ';') break;
  }
  return result;
}
