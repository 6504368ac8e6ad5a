import {
  COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID, COM_CHANGE_USER, COM_CONNECT, COM_CONNECT_OUT, COM_DAEMON, COM_DELAYED_INSERT,
  COM_PING, COM_PROCESS_KILL, COM_QUERY, COM_QUIT, COM_REGISTER_SLAVE, COM_SLEEP, COM_STMT_PREPARE, COM_TABLE_DUMP,
  COM_TIME, COMMAND_NAMES, ER_SERVER_SHUTDOWN, ER_UNKNOWN_COM_ERROR, SQLSTATE_COMMUNICATION,
} from '../protocol/constants.js';
import type { PASS_THROUGH } from '../protocol/command-reader.js';
import { commitMoveAndBegin } from './begin-move.js';
import { changeUser } from './change-user.js';
import type { CommandInterceptor, InterceptingSession } from './command-pump.js';
import { interceptKill } from './kill-command.js';
import { mayBeKill } from './kill-statement.js';
import { classifyStatement, StatementKind } from './statement-classifier.js';
import { prepareUnderOwnId } from './translated-prepare.js';

/** Commands that would turn the connection into something the pump cannot follow. */
const UNSUPPORTED_COMMANDS = new Set([
  COM_SLEEP, COM_CONNECT, COM_TIME, COM_DELAYED_INSERT, COM_BINLOG_DUMP, COM_TABLE_DUMP, COM_CONNECT_OUT,
  COM_REGISTER_SLAVE, COM_DAEMON, COM_BINLOG_DUMP_GTID,
]);
/** KILL statements are short; longer COM_QUERY packets are never inspected for it. */
const KILL_INSPECT_MAX = 512;

/**
 * The commands the kernel answers or rewrites itself instead of passing them on: COM_QUIT,
 * COM_CHANGE_USER (change-user.ts), KILL (kill-command.ts), a BEGIN that lets a pending move happen
 * (begin-move.ts), COM_PING while shutting down, COM_STMT_PREPARE once statement ids are translated
 * (translated-prepare.ts), and commands the pump cannot follow.
 */
export class InterceptedCommands implements CommandInterceptor {
  constructor(private readonly session: InterceptingSession) {}

  wants(command: number, buf: Buffer, off: number, avail: number, length: number): boolean {
    switch (command) {
      case COM_QUERY:
        if (length <= KILL_INSPECT_MAX && mayBeKill(buf, off + 1, off + avail)) return true;
        return this.beginMovesFirst(buf, off + 1, off + avail);
      case COM_QUIT:
      case COM_CHANGE_USER:
      case COM_PROCESS_KILL:
        return true;
      case COM_PING:
        return this.session.host.shuttingDown;
      default:
        return UNSUPPORTED_COMMANDS.has(command);
    }
  }

  handle(payload: Buffer, seq: number): boolean | typeof PASS_THROUGH | undefined {
    const session = this.session;
    const command = payload[0]!;
    switch (command) {
      case COM_QUIT:
        session.close({ side: 'client', reason: 'client-quit' });
        return false;
      case COM_CHANGE_USER:
        void changeUser(session, payload, seq);
        return false;
      case COM_PING:
        if (session.host.shuttingDown) {
          session.pump.replyError(seq, ER_SERVER_SHUTDOWN, 'tiproxy is shutting down', SQLSTATE_COMMUNICATION);
          return true;
        }
        return undefined;
      case COM_QUERY:
        if (this.beginMovesFirst(payload, 1, payload.length)) {
          void commitMoveAndBegin(session, payload, seq);
          return false;
        }
        return interceptKill(session, payload, seq) || undefined;
      case COM_PROCESS_KILL:
        return interceptKill(session, payload, seq) || undefined;
      case COM_STMT_PREPARE:
        if (!session.state.idsTranslated) return undefined;
        void prepareUnderOwnId(session, payload, seq);
        return false;
      default:
        if (UNSUPPORTED_COMMANDS.has(command)) {
          session.pump.replyError(seq, ER_UNKNOWN_COM_ERROR, `${COMMAND_NAMES[command] ?? `command 0x${command.toString(16)}`} is not supported through tiproxy`);
          return true;
        }
        return undefined;
    }
  }

  /** A BEGIN inside a transaction while a move is pending: the session moves before it (begin-move.ts). */
  private beginMovesFirst(buf: Buffer, start: number, end: number): boolean {
    const session = this.session;
    return session.state.inTransaction && classifyStatement(buf, start, end) === StatementKind.Begin && session.host.migrationPending(session);
  }
}
