/**
 * Recognises `KILL [HARD|SOFT] [QUERY|CONNECTION] <id>` so a proxy connection id (the one clients see
 * in the greeting) can be mapped to the right backend session. MariaDB's `KILL ... USER` and
 * `KILL QUERY ID <id>` forms are passed through untouched.
 */
export interface KillStatement {
  scope: 'query' | 'connection';
  id: number;
  /** The modifiers as written ("HARD ", "SOFT "), kept when the statement is rewritten. */
  modifier: string;
}

const KILL_PATTERN = /^\s*(?:\/\*.*?\*\/\s*)*kill\s+((?:hard|soft)\s+)?(?:(query|connection)\s+)?(\d+)\s*;?\s*$/is;

export function parseKill(sql: string): KillStatement | null {
  const m = KILL_PATTERN.exec(sql);
  if (!m) return null;
  const id = Number(m[3]);
  if (!Number.isSafeInteger(id)) return null;
  return { scope: m[2]?.toLowerCase() === 'query' ? 'query' : 'connection', id, modifier: (m[1] ?? '').toUpperCase() };
}

export function formatKill(k: KillStatement, id: number): string {
  return `KILL ${k.modifier}${k.scope === 'query' ? 'QUERY' : 'CONNECTION'} ${id}`;
}

/** Cheap test on the first bytes of a COM_QUERY payload (after the command byte): could this be KILL? */
export function mayBeKill(buf: Buffer, off: number, end: number): boolean {
  let i = off;
  while (i < end && (buf[i] === 0x20 || buf[i] === 0x09 || buf[i] === 0x0a || buf[i] === 0x0d)) i++;
  if (i >= end) return false;
  const c = buf[i]! | 0x20;
  return c === 0x6b /* k */ || buf[i] === 0x2f /* '/' comment */;
}
