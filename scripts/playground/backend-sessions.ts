// How many client sessions a backend still has, for scale-in's wait: from the proxy's admin API when it
// answers (GET /api/sessions?backend=ADDR: /api/backends stops listing a backend once it has left
// discovery, while its sessions are still there), and always from the node itself (its client
// connections in PROCESSLIST), so a node is never stopped under a client the API does not count.
import mysql from 'mysql2/promise';
import type { RowDataPacket } from 'mysql2/promise';

/** A session on the backend as the admin API describes it (the fields scale-in reports). */
export interface ApiSession {
  id: number;
  user: string;
  not_migratable_reason?: string | null;
}

export interface SessionCount {
  sessions: number;
  /** The proxy's sessions on the backend, when the API answered. */
  viaProxy?: ApiSession[];
  /** Where the number comes from, for the progress line: the proxy's API, or the node's own PROCESSLIST. */
  source: 'api' | 'node';
  /** Why the API was not used. */
  apiProblem?: string;
}

/** This proxy's sessions on `addr`, from GET /api/sessions?backend=ADDR (a JSON array). */
async function apiSessions(api: string, addr: string): Promise<ApiSession[]> {
  const url = `http://${api}/api/sessions?backend=${encodeURIComponent(addr)}`;
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw new Error(`the admin API at http://${api} is not reachable (${cause})`);
  }
  if (!res.ok) throw new Error(`GET ${url} answered HTTP ${res.status}`);
  const body = (await res.json()) as unknown;
  if (!Array.isArray(body)) throw new Error(`GET ${url} did not return a list of sessions`);
  return body as ApiSession[];
}

/** Client connections on the node, not counting server threads, logins in progress and this check. */
async function nodeSessions(addr: string, user: string, password: string): Promise<number> {
  const [host, port] = addr.split(':');
  const conn = await mysql.createConnection({ host, port: Number(port), user, password, connectTimeout: 2000 });
  try {
    const [rows] = await conn.query<RowDataPacket[]>(
      "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND COMMAND NOT IN ('Daemon', 'Binlog Dump') AND USER NOT IN ('system user', 'unauthenticated user', 'event_scheduler')");
    return Number(rows[0]!['n']);
  } finally {
    await conn.end();
  }
}

export async function countSessions(api: string, addr: string, user: string, password: string): Promise<SessionCount> {
  const onNode = await nodeSessions(addr, user, password);
  try {
    const viaProxy = await apiSessions(api, addr);
    // Clients connected to the node directly (or a proxy session the API missed) keep it busy too.
    return viaProxy.length === 0 && onNode > 0
      ? { sessions: onNode, source: 'node', viaProxy }
      : { sessions: viaProxy.length, source: 'api', viaProxy };
  } catch (err) {
    return { sessions: onNode, source: 'node', apiProblem: (err as Error).message };
  }
}
