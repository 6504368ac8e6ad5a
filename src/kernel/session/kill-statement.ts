/**
 * Recognises `KILL [HARD|SOFT] [QUERY|CONNECTION] <id>` so a proxy connection id (the one clients see
 * in the greeting) can be mapped to the right backend session. MariaDB's `KILL ... USER` and
 * `KILL QUERY ID <id>` forms are passed through untouched, and so is any statement holding an
 * executable comment (`/*! … *\/`, `/*M! … *\/`): the server runs its body, so it is not ours to drop.
 * Scanned by hand (sql-text-scan.ts), in linear time: a regex here once let one client stall the proxy.
 */
import { keywordAt, skipSpaceAndComments, tokenAfter } from './sql-text-scan.js';

export interface KillStatement {
  scope: 'query' | 'connection';
  id: number;
  /** The modifiers as written ("HARD ", "SOFT "), kept when the statement is rewritten. */
  modifier: string;
}

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

/** The next token after a keyword; an executable comment anywhere makes the statement not ours. */
const separated = (sql: string, end: number): number => tokenAfter(sql, end, 'refuse');

export function parseKill(sql: string): KillStatement | null {
  let i = separated(sql, keywordAt(sql, skipSpaceAndComments(sql, 0, 'refuse'), 'kill'));
  if (i === -1) return null;
  let modifier = '';
  for (const m of ['hard', 'soft']) {
    const next = separated(sql, keywordAt(sql, i, m));
    if (next !== -1) {
      modifier = `${m.toUpperCase()} `;
      i = next;
      break;
    }
  }
  let scope: KillStatement['scope'] = 'connection';
  for (const s of ['query', 'connection'] as const) {
    const next = separated(sql, keywordAt(sql, i, s));
    if (next !== -1) {
      scope = s;
      i = next;
      break;
    }
  }
  const digits = i;
  while (isDigit(sql.charCodeAt(i))) i++;
  if (i === digits) return null;
  const id = Number(sql.slice(digits, i));
  i = skipSpaceAndComments(sql, i, 'refuse');
  if (i !== -1 && sql.charCodeAt(i) === 0x3b /* ; */) i = skipSpaceAndComments(sql, i + 1, 'refuse');
  if (i !== sql.length || !Number.isSafeInteger(id)) return null;
  return { scope, id, modifier };
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
