import type { CommandContext, CommandReply, SessionInfo } from '../hooks/hook-types.js';
import type { Logger } from 'pino';
import type { Generation } from '../plugins/generation.js';
import { COM_QUERY, COM_STMT_PREPARE } from '../protocol/constants.js';
import { PASS_THROUGH, type CommandReader } from '../protocol/command-reader.js';
import { framePackets } from '../protocol/payload-writer.js';
import { buildOkPayload } from '../protocol/response-packets.js';
import type { ClientConnection } from './client-connection.js';
import type { SessionState } from './session-state.js';

/** The session as the onCommand taps' answers need it. */
interface TappedSession extends SessionInfo {
  readonly generation: Generation;
  readonly logger: Logger;
  readonly client: ClientConnection;
  readonly state: SessionState;
  readonly isClosed: boolean;
}

/** The pump as a held command needs it once the plugin has decided. */
interface HoldingPump {
  readonly reader: CommandReader;
  handleCommand(payload: Buffer, seq: number): boolean | typeof PASS_THROUGH;
  forward(bytes: Buffer): void;
  replyError(seq: number, code: number, message: string, sqlState?: string): void;
}

/**
 * Runs the onCommand taps for a command somebody tapped: a refusal or an OK is answered here (true), a
 * hold pauses reading until the plugin decides (false), and undefined lets the kernel handle the
 * command as usual.
 */
export function runCommandTaps(session: TappedSession, pump: HoldingPump, payload: Buffer, seq: number): boolean | undefined {
  const command = payload[0]!;
  let sql: string | undefined;
  const ctx: CommandContext = {
    session, command, payload,
    get sql() {
      sql ??= command === COM_QUERY || command === COM_STMT_PREPARE ? payload.toString('utf8', 1) : '';
      return sql;
    },
  };
  const reply = session.generation.hooks.onCommand.get(command)?.call(ctx);
  if (!reply) return undefined;
  if ('hold' in reply) {
    void awaitHold(session, pump, reply.hold, payload, seq);
    return false;
  }
  return answer(session, pump, reply, seq);
}

/** Sends a plugin's ERR/OK answer instead of forwarding the command. */
function answer(session: TappedSession, pump: HoldingPump, reply: Exclude<CommandReply, { hold: unknown }>, seq: number): true {
  if ('error' in reply) pump.replyError(seq, reply.error.code, reply.error.message, reply.error.sqlState);
  else session.client.writePacket(buildOkPayload(session.state.status, { affectedRows: reply.ok.affectedRows ?? 0, info: reply.ok.info ?? '' }), seq + 1);
  return true;
}

/** A plugin held the command (queueing): reading from the client waits until it decides. */
async function awaitHold(session: TappedSession, pump: HoldingPump, hold: Promise<CommandReply | undefined>, payload: Buffer, seq: number): Promise<void> {
  // The payload may be a view into a socket chunk; keep our own copy while we wait.
  const own = Buffer.from(payload);
  let reply: CommandReply | undefined;
  try {
    reply = await hold;
  } catch (err) {
    session.logger.warn({ err: (err as Error).message }, 'a plugin hold failed; the command goes through');
  }
  if (session.isClosed) return;
  if (reply && 'hold' in reply) reply = undefined;
  if (reply) answer(session, pump, reply, seq);
  else {
    // No reader to pass bytes on for us after a hold: send the (possibly id-translated) copy ourselves.
    const verdict = pump.handleCommand(own, seq);
    if (verdict === PASS_THROUGH) pump.forward(framePackets(own, seq).packet);
    else if (!verdict) return;
  }
  pump.reader.resume();
}
