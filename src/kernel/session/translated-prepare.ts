import { BackendError, ProxyError } from '../errors.js';
import { CLIENT_DEPRECATE_EOF, CR_SERVER_LOST, ERR_HEADER } from '../protocol/constants.js';
import type { InterceptingSession } from './command-pump.js';

/**
 * COM_STMT_PREPARE after a migration translated statement ids. The new backend numbers its statements
 * from 1 again, so the id it gives a new statement can be one the client already uses for another
 * statement (re-prepared there under a different id): passed on as is, the client's two statements
 * would share an id and one of them would run the other's SQL. So the proxy prepares it itself, gives
 * the client an id none of the session's statements uses, and keeps the mapping; the response goes to
 * the client packet by packet with only that id changed. Reading from the client resumes when it is over.
 */
export async function prepareUnderOwnId(session: InterceptingSession, payload: Buffer, seq: number): Promise<void> {
  const { pump, link } = session;
  const conn = link.conn;
  try {
    if (!conn) return;
    const timeoutMs = session.host.config().proxy['backend-connect-timeout'] * 1000 + 10_000;
    await pump.exclusive(conn, async (channel) => {
      channel.write(payload, 0);
      const first = await channel.read(timeoutMs, 'the answer to COM_STMT_PREPARE');
      let out = (seq + 1) & 0xff;
      if (first.payload[0] === ERR_HEADER || first.payload.length < 9) {
        session.client.writePacket(first.payload, out);
        const errorCode = first.payload[0] === ERR_HEADER && first.payload.length >= 3 ? first.payload.readUInt16LE(1) : 0;
        pump.observed.answeredByProxy(payload, { isError: true, errorCode, statementId: 0 }, conn);
        return;
      }
      const backendId = first.payload.readUInt32LE(1);
      const columns = first.payload.readUInt16LE(5);
      const params = first.payload.readUInt16LE(7);
      const clientId = session.state.unusedStatementId();
      const ok = Buffer.from(first.payload);
      ok.writeUInt32LE(clientId, 1);
      session.client.writePacket(ok, out);
      // Parameter then column definitions, each block closed by an EOF unless DEPRECATE_EOF.
      const eofs = (link.capabilities & CLIENT_DEPRECATE_EOF) !== 0 ? 0 : (params > 0 ? 1 : 0) + (columns > 0 ? 1 : 0);
      for (let left = params + columns + eofs; left > 0; left--) {
        const p = await channel.read(timeoutMs, 'a definition of the prepared statement');
        out = (out + 1) & 0xff;
        session.client.writePacket(p.payload, out);
      }
      session.state.preparedAs(clientId, backendId, Buffer.from(payload.subarray(1)), params, columns);
      // Captured as the client saw it: the statement under the id the client got.
      pump.observed.answeredByProxy(payload, { isError: false, errorCode: 0, statementId: clientId }, conn);
    });
  } catch (err) {
    if (session.isClosed) return;
    const e = err instanceof ProxyError ? err : new BackendError(CR_SERVER_LOST, (err as Error).message);
    session.fail(e, seq + 1);
  } finally {
    pump.reader.resume();
  }
}
