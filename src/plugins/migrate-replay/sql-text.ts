/** SQL literals and identifiers the plugin writes into its own statements. */

export function quoteString(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''").replace(/\0/g, '\\0')}'`;
}

export function quoteIdent(v: string): string {
  return `\`${v.replace(/`/g, '``')}\``;
}

/** A system variable's value as SQL: numbers bare (numeric variables reject strings), the rest quoted. */
export function variableLiteral(v: string | null): string {
  if (v === null) return 'NULL';
  return /^-?\d+(\.\d+)?$/.test(v) ? v : quoteString(v);
}

/** The first characters of a statement, for a log line or a veto reason. */
export function excerpt(sql: string, max = 80): string {
  const flat = sql.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}
