// Whose error is it? The soak counts a client-visible error against the proxy unless the database itself
// raised it: these server error codes, which tiproxy only relays from a backend (it never makes them up).
// Galera turns host overload into them: a node that loses the group's primary component fails commits
// with 1180, and reads that wait for it to catch up (wsrep_sync_wait) end in 1205.

export const DATABASE_ERROR_CODES: ReadonlyMap<number, string> = new Map([
  [1213, 'deadlock, or a Galera certification failure'],
  [1205, 'lock wait timeout (also a Galera read waiting for a node without quorum)'],
  [1020, 'record changed since it was read'],
  [1180, 'Galera: commit failed, not connected to the primary component'],
  [1047, 'Galera: node not ready for clients (WSREP has not yet prepared node)'],
]);

/** The code when `err` is a server error (mysql2: a positive errno) the database raises itself, else undefined. */
export function databaseErrorCode(err: unknown): number | undefined {
  const errno = (err as { errno?: unknown } | null)?.errno;
  return typeof errno === 'number' && DATABASE_ERROR_CODES.has(errno) ? errno : undefined;
}

/**
 * The MySQL error codes sysbench's FATAL lines name ("returned error 1180 (…)", "MySQL error: 1205 …",
 * "errno = 1180"), deduplicated. A failed run is the database's when it names some and all are in
 * DATABASE_ERROR_CODES.
 */
export function sysbenchFatalCodes(output: string): number[] {
  const codes = new Set<number>();
  for (const line of output.split('\n')) {
    if (!line.includes('FATAL')) continue;
    for (const m of line.matchAll(/(?:returned error|MySQL error:|errno =) (\d{4})\b/g)) codes.add(Number(m[1]));
  }
  return [...codes];
}
