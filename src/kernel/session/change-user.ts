import { MalformedPacketError } from '../protocol/payload-reader.js';
import { COM_CHANGE_USER, ER_HANDSHAKE_ERROR, PROXY_AUTH_SWITCH_TRIGGER } from '../protocol/constants.js';
import { buildChangeUser, parseChangeUser } from '../protocol/handshake-packets.js';
import { parseOkPayload } from '../protocol/response-packets.js';
import { relayAuthentication } from './auth-relay.js';
import type { InterceptingSession } from './command-pump.js';

/**
 * COM_CHANGE_USER, relayed password-blind like the login: onHandshake may refuse the new user, the
 * backend's auth switch goes to the client and back. On success the session starts over (no prepared
 * statements, no state) as the new user. Reading from the client resumes when it is over.
 */
export async function changeUser(session: InterceptingSession, payload: Buffer, seq: number): Promise<void> {
  const { pump, link } = session;
  const conn = link.conn;
  if (!conn) return;
  try {
    const request = parseChangeUser(payload, session.capabilities);
    const refusal = await session.generation.hooks.onHandshake.promise({
      session, user: request.user, database: request.database, authPlugin: request.authPlugin, capabilities: session.capabilities,
    });
    if (refusal) {
      pump.replyError(seq, refusal.code, refusal.message, refusal.sqlState);
      return;
    }
    const timeoutMs = session.host.config().proxy['handshake-timeout'] * 1000;
    const result = await pump.exclusive(conn, async (channel) => {
      channel.write(buildChangeUser(COM_CHANGE_USER, { ...request, authPlugin: PROXY_AUTH_SWITCH_TRIGGER, authResponse: Buffer.alloc(0) }, link.capabilities), 0);
      return relayAuthentication({ queue: pump.clientQueue, write: (p, s) => session.client.writePacket(p, s) }, channel,
        { client: seq + 1 }, link.relayOptions(conn, request.user, timeoutMs));
    });
    if (result.ok) {
      session.state.reset();
      session.state.applyStatus(parseOkPayload(result.payload, session.capabilities).status);
      session.user = request.user;
      session.host.sessionUserChanged(session);
      session.database = request.database;
      session.authExchange = result.exchange ? { ...result.exchange, tls: session.client.tls } : null;
      session.logger.info({ user: session.user }, 'user changed');
    }
  } catch (err) {
    if (err instanceof MalformedPacketError) pump.replyError(seq, ER_HANDSHAKE_ERROR, err.message);
    else session.fail(err, seq + 1);
  } finally {
    pump.reader.resume();
  }
}
