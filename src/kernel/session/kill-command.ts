import { COM_PROCESS_KILL, COM_QUERY, ER_KILL_DENIED_ERROR, ER_NOT_SUPPORTED_YET } from '../protocol/constants.js';
import { buildOkPayload } from '../protocol/response-packets.js';
import type { InterceptingSession } from './command-pump.js';
import { formatKill, parseKill } from './kill-statement.js';

/**
 * KILL with a proxy connection id (the id clients see in the greeting): on the same backend it becomes
 * a KILL of the backend thread; KILL CONNECTION of a session on another backend closes that session
 * here. Returns true when answered, false when the statement is not for the proxy (the backend gets it).
 */
export function interceptKill(session: InterceptingSession, payload: Buffer, seq: number): boolean {
  const kill = payload[0] === COM_PROCESS_KILL
    ? (payload.length >= 5 ? { scope: 'connection' as const, id: payload.readUInt32LE(1), modifier: '' } : null)
    : parseKill(payload.toString('utf8', 1));
  if (!kill) return false;
  const { host, pump } = session;
  const target = host.sessions.get(kill.id);
  const otherWorker = target ? null : host.otherWorkerOf(kill.id);
  if (otherWorker !== null) {
    // Another worker process serves that session and sessions cannot reach across processes.
    pump.replyError(seq, ER_NOT_SUPPORTED_YET, `KILL ${kill.id}: connection ${kill.id} is served by tiproxy worker ${otherWorker}, `
      + `and this connection by worker ${host.workerId() ?? '?'}; KILL works only between connections of the same worker (proxy.workers > 1)`);
    return true;
  }
  const targetConn = target?.link.conn;
  if (!target || !targetConn) return false; // not a proxy id: let the backend interpret it
  const ownConn = session.link.conn;
  if (ownConn && targetConn.backend.addr === ownConn.backend.addr) {
    const sql = Buffer.from(`\u0003${formatKill(kill, targetConn.connectionId)}`, 'utf8');
    sql[0] = COM_QUERY;
    session.logger.debug({ target: kill.id, backendThread: targetConn.connectionId }, 'KILL mapped to backend thread');
    if (kill.scope === 'connection') {
      // The backend will just drop the target's connection: remember why, so it is not taken for a lost backend.
      target.killedBy = session.id;
      // A refused KILL (e.g. not the owner) killed nothing.
      pump.afterResponse = (isError) => {
        if (isError && target.killedBy === session.id) target.killedBy = 0;
      };
    }
    pump.forwardCommand(sql, seq);
    return true;
  }
  if (kill.scope === 'query') {
    pump.replyError(seq, ER_NOT_SUPPORTED_YET,
      `KILL QUERY ${kill.id}: session ${kill.id} runs on backend ${targetConn.backend.addr}, not on this session's backend; use KILL CONNECTION ${kill.id}`);
    return true;
  }
  if (target.user !== session.user) {
    pump.replyError(seq, ER_KILL_DENIED_ERROR, `You are not owner of thread ${kill.id}`);
    return true;
  }
  target.close({ side: 'client', reason: 'killed', detail: `KILL from session ${session.id}` });
  session.client.writePacket(buildOkPayload(session.state.status), seq + 1);
  return true;
}
