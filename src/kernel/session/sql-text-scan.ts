/**
 * Small scanning steps over SQL text for the few statements the kernel reads (KILL, PREPARE names).
 * Hand-written instead of regular expressions so each character is visited a bounded number of times:
 * text from clients must never cost more than linear time (a backtracking regex with a repeated
 * comment group took exponential time on `/**\/` repetitions).
 */

export const isSqlSpace = (c: number): boolean => c === 0x20 || (c >= 0x09 && c <= 0x0d);

/** Is there an executable comment (`/*!`, `/*M!`) at sql[i]? Its body is SQL the server runs. */
export function isExecutableComment(sql: string, i: number): boolean {
  const third = sql.charCodeAt(i + 2);
  return sql.charCodeAt(i) === 0x2f && sql.charCodeAt(i + 1) === 0x2a
    && (third === 0x21 /* ! */ || ((third | 0x20) === 0x6d /* m */ && sql.charCodeAt(i + 3) === 0x21));
}

/**
 * Past whitespace and `/* … *\/` comments from `i`. -1 if a comment is unterminated, or if it is
 * executable and `executable` is 'refuse'.
 */
export function skipSpaceAndComments(sql: string, i: number, executable: 'refuse' | 'skip' = 'skip'): number {
  const n = sql.length;
  for (;;) {
    while (i < n && isSqlSpace(sql.charCodeAt(i))) i++;
    if (sql.charCodeAt(i) !== 0x2f /* / */ || sql.charCodeAt(i + 1) !== 0x2a /* * */) return i;
    if (executable === 'refuse' && isExecutableComment(sql, i)) return -1;
    const close = sql.indexOf('*/', i + 2);
    if (close === -1) return -1;
    i = close + 2;
  }
}

/** End of the lower-case ASCII keyword `w` at sql[i] (any case), or -1; -1 in, -1 out. */
export function keywordAt(sql: string, i: number, w: string): number {
  if (i < 0 || i + w.length > sql.length) return -1;
  for (let k = 0; k < w.length; k++) if ((sql.charCodeAt(i + k) | 0x20) !== w.charCodeAt(k)) return -1;
  return i + w.length;
}

/**
 * The next token's start after a keyword ending at `end`, if at least one space or comment separates
 * them; -1 otherwise (or if `end` is -1, or per `executable` as in skipSpaceAndComments).
 */
export function tokenAfter(sql: string, end: number, executable: 'refuse' | 'skip' = 'skip'): number {
  if (end === -1) return -1;
  const next = skipSpaceAndComments(sql, end, executable);
  return next > end ? next : -1;
}

/**
 * The backtick-quoted identifier starting at sql[i] (a doubled backtick inside stands for one), and the
 * index just past its closing backtick; null if it is not closed.
 */
export function backtickIdentifierAt(sql: string, i: number): { name: string; end: number } | null {
  let name = '';
  let from = i + 1;
  for (;;) {
    const close = sql.indexOf('`', from);
    if (close === -1) return null;
    if (sql.charCodeAt(close + 1) !== 0x60) return { name: name + sql.slice(from, close), end: close + 1 };
    name += sql.slice(from, close + 1);
    from = close + 2;
  }
}
