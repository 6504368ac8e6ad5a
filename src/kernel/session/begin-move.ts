import { BackendError, ProxyError } from '../errors.js';
import { CR_SERVER_LOST } from '../protocol/constants.js';
import { BackendSqlRunner } from './backend-sql.js';
import type { InterceptingSession } from './command-pump.js';

/**
 * A session asked to move that never leaves its transaction (apps that never COMMIT) moves when it
 * starts the next one (DESIGN §5). BEGIN inside a transaction commits it implicitly anyway: do that
 * COMMIT on the old backend, let the pending move happen now that the session is outside a
 * transaction, then run the BEGIN wherever the session is. A failing COMMIT is the BEGIN's answer,
 * exactly as the server would give it. Reading from the client resumes when it is over.
 */
export async function commitMoveAndBegin(session: InterceptingSession, payload: Buffer, seq: number): Promise<void> {
  const { pump, link } = session;
  const begin = Buffer.from(payload);
  const conn = link.conn;
  try {
    if (!conn) return;
    const timeoutMs = session.host.config().proxy['backend-connect-timeout'] * 1000 + 10_000;
    try {
      const status = await pump.exclusive(conn, async (channel) =>
        (await new BackendSqlRunner(conn.backend.addr, channel, link.capabilities, timeoutMs).query('COMMIT')).status);
      session.state.applyStatus(status);
    } catch (err) {
      if (session.isClosed) return;
      const e = err instanceof ProxyError ? err : new BackendError(CR_SERVER_LOST, (err as Error).message);
      pump.replyError(seq, e.code, e.message, e.sqlState);
      return;
    }
    pump.holdingBegin = true;
    try {
      await session.host.migrateNow(session);
    } finally {
      pump.holdingBegin = false;
    }
    if (!session.isClosed) pump.forwardCommand(begin, seq);
  } finally {
    pump.reader.resume();
  }
}
