// One client connection to an emulated TiDB: greeting, authentication, then commands until COM_QUIT.
//
// Authentication follows MySQL/TiDB: the greeting offers mysql_native_password with a 20-byte salt.
// A handshake response naming mysql_native_password is checked against that salt; one naming
// tidb_session_token carries a session token as its auth data (TiDB's token login, used by proxies
// to move a session here); one naming any other plugin — the proxy's deliberately unknown name when it
// relays a client's login password-blind — gets an AuthSwitchRequest to mysql_native_password with a
// fresh salt, and the answer to that is checked. Failures are ERROR 1045.
import { createHash, randomInt } from 'node:crypto';
import type { Socket } from 'node:net';
import {
  CLIENT_CONNECT_WITH_DB, COM_INIT_DB, COM_PING, COM_QUERY, COM_QUIT, COM_RESET_CONNECTION, COM_STMT_CLOSE, COM_STMT_EXECUTE,
  COM_STMT_PREPARE, COM_STMT_RESET, DEFAULT_CHARSET_ID, MYSQL_NATIVE_PASSWORD, SCRAMBLE_LENGTH, SERVER_STATUS_AUTOCOMMIT,
  TIDB_SESSION_TOKEN,
} from '../../../src/kernel/protocol/constants.js';
import { buildAuthSwitch, buildGreeting, isSslRequest, parseHandshakeResponse, type HandshakeResponse } from '../../../src/kernel/protocol/handshake-packets.js';
import { buildErrPayload, buildOkPayload } from '../../../src/kernel/protocol/response-packets.js';
import { ER_ACCESS_DENIED, ER_BAD_DB, ER_UNKNOWN_COM, ER_UNKNOWN_STMT_HANDLER, SqlError } from './errors.js';
import { EmulatedSession, type EmulatorHost } from './session.js';
import { validateSessionToken } from './session-token.js';
import { execute } from './sql-executor.js';
import { parseSql, type Statement } from './sql-parser.js';
import type { SqlValue } from './values.js';
import { decodeExecuteParams, PacketReader, prepareReply, resultSet, ResponseWriter, type Packet } from './wire.js';

export interface LoginEvent {
  user: string;
  /** mysql_native_password or tidb_session_token. */
  plugin: string;
  ok: boolean;
  /** Why a login was refused. */
  reason?: string;
}

/** What a connection needs from its server besides what a session needs. */
export interface ConnectionHost extends EmulatorHost {
  readonly capabilities: number;
  recordLogin(event: LoginEvent): void;
  recordQuery(sql: string): void;
  opened(session: EmulatedSession): void;
  closed(session: EmulatedSession): void;
}

/** Collation ids a handshake may name → the character set and collation the session starts with. */
const HANDSHAKE_COLLATIONS: Record<number, [string, string]> = {
  8: ['latin1', 'latin1_swedish_ci'], 33: ['utf8', 'utf8_general_ci'], 45: ['utf8mb4', 'utf8mb4_general_ci'],
  46: ['utf8mb4', 'utf8mb4_bin'], 63: ['binary', 'binary'], 83: ['utf8', 'utf8_bin'], 224: ['utf8mb4', 'utf8mb4_unicode_ci'],
  255: ['utf8mb4', 'utf8mb4_0900_ai_ci'],
};

function sha1(...parts: Buffer[]): Buffer {
  const h = createHash('sha1');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** A salt without NUL bytes (it is sent NUL-terminated). */
function makeSalt(): Buffer {
  const salt = Buffer.alloc(SCRAMBLE_LENGTH);
  for (let i = 0; i < salt.length; i++) salt[i] = randomInt(1, 128);
  return salt;
}

function nativePasswordMatches(password: string, salt: Buffer, reply: Buffer): boolean {
  if (password === '') return reply.length === 0;
  if (reply.length !== 20) return false;
  const stage1 = sha1(Buffer.from(password, 'utf8'));
  const mask = sha1(salt, sha1(stage1));
  for (let i = 0; i < 20; i++) if ((reply[i]! ^ mask[i]!) !== stage1[i]) return false;
  return true;
}

export class EmulatorConnection {
  private readonly reader: PacketReader;
  private capabilities = 0;
  private session: EmulatedSession | null = null;

  constructor(private readonly socket: Socket, private readonly host: ConnectionHost) {
    socket.setNoDelay(true);
    socket.on('error', () => {});
    this.reader = new PacketReader(socket);
  }

  async run(): Promise<void> {
    try {
      const session = await this.login();
      if (!session) return;
      this.session = session;
      this.host.opened(session);
      for (;;) {
        const packet = await this.reader.read();
        if (!packet || packet.payload.length === 0) break;
        if (packet.payload[0] === COM_QUIT) break;
        this.command(session, packet);
      }
    } finally {
      if (this.session) this.host.closed(this.session);
      this.socket.destroy();
    }
  }

  private error(seq: number, err: unknown): void {
    const e = err instanceof SqlError ? err : new SqlError({ code: 1105, sqlState: 'HY000' }, (err as Error).message);
    new ResponseWriter(seq).add(buildErrPayload(e.kind.code, e.message, e.kind.sqlState)).flush(this.socket);
  }

  private async login(): Promise<EmulatedSession | null> {
    const connectionId = this.host.cluster.connectionId();
    const salt = makeSalt();
    new ResponseWriter(0).add(buildGreeting({
      protocolVersion: 10, serverVersion: this.host.serverVersion, connectionId, salt, capabilities: this.host.capabilities,
      charset: 46, status: SERVER_STATUS_AUTOCOMMIT, authPlugin: MYSQL_NATIVE_PASSWORD,
    })).flush(this.socket);
    const first = await this.reader.read();
    if (!first) return null;
    if (isSslRequest(first.payload)) {
      this.error(first.seq + 1, new SqlError(ER_ACCESS_DENIED, 'the TiDB emulator does not emulate TLS'));
      return null;
    }
    let hs: HandshakeResponse;
    try {
      hs = parseHandshakeResponse(first.payload);
    } catch (err) {
      this.error(first.seq + 1, new SqlError({ code: 1043, sqlState: '08S01' }, `Bad handshake: ${(err as Error).message}`));
      return null;
    }
    this.capabilities = (hs.capabilities & this.host.capabilities) >>> 0;
    const denied = (seq: number, plugin: string, reason: string): null => {
      this.host.recordLogin({ user: hs.user, plugin, ok: false, reason });
      this.error(seq, new SqlError(ER_ACCESS_DENIED, `Access denied for user '${hs.user}'@'${this.socket.remoteAddress ?? ''}' (${reason})`));
      return null;
    };
    let seq = first.seq + 1;
    let plugin = hs.authPlugin || MYSQL_NATIVE_PASSWORD;
    if (plugin === TIDB_SESSION_TOKEN) {
      const check = validateSessionToken(hs.authResponse, hs.user, this.host.verifyKey, this.host.cluster.tokenLifetimeMs, this.host.now());
      if (!check.ok) return denied(seq, plugin, `session token: ${check.reason}`);
      if (!this.host.cluster.users.has(hs.user)) return denied(seq, plugin, 'session token: no such user');
    } else {
      let reply = hs.authResponse;
      let challenge = salt;
      if (plugin !== MYSQL_NATIVE_PASSWORD) {
        challenge = makeSalt();
        new ResponseWriter(seq).add(buildAuthSwitch(MYSQL_NATIVE_PASSWORD, Buffer.concat([challenge, Buffer.from([0])]))).flush(this.socket);
        const answer = await this.reader.read();
        if (!answer) return null;
        reply = answer.payload;
        seq = answer.seq + 1;
        plugin = MYSQL_NATIVE_PASSWORD;
      }
      const password = this.host.cluster.users.get(hs.user);
      if (password === undefined || !nativePasswordMatches(password, challenge, reply)) {
        return denied(seq, plugin, `using password: ${reply.length > 0 ? 'YES' : 'NO'}`);
      }
    }
    const db = this.capabilities & CLIENT_CONNECT_WITH_DB ? hs.database : '';
    if (db && !this.host.cluster.databases.has(db)) {
      this.host.recordLogin({ user: hs.user, plugin, ok: false, reason: `unknown database ${db}` });
      this.error(seq, new SqlError(ER_BAD_DB, `Unknown database '${db}'`));
      return null;
    }
    this.host.recordLogin({ user: hs.user, plugin, ok: true });
    const session = new EmulatedSession(this.host, connectionId, hs.user, db);
    const [charset, collation] = HANDSHAKE_COLLATIONS[hs.charset] ?? HANDSHAKE_COLLATIONS[DEFAULT_CHARSET_ID]!;
    for (const v of ['character_set_client', 'character_set_connection', 'character_set_results']) session.setVariable(v, charset);
    session.setVariable('collation_connection', collation);
    new ResponseWriter(seq).add(buildOkPayload(session.status())).flush(this.socket);
    return session;
  }

  private ok(seq: number, session: EmulatedSession, affectedRows = 0): void {
    new ResponseWriter(seq).add(buildOkPayload(session.status(), { affectedRows })).flush(this.socket);
  }

  private command(session: EmulatedSession, packet: Packet): void {
    const { payload } = packet;
    const seq = packet.seq + 1;
    try {
      switch (payload[0]) {
        case COM_PING:
          return this.ok(seq, session);
        case COM_INIT_DB:
          execute(session, { t: 'use', db: payload.subarray(1).toString('utf8') }, []);
          return this.ok(seq, session);
        case COM_QUERY: {
          const sql = payload.subarray(1).toString('utf8');
          this.host.recordQuery(sql);
          return this.answer(seq, session, parseSql(sql).statement, [], false);
        }
        case COM_STMT_PREPARE: {
          const sql = payload.subarray(1).toString('utf8');
          this.host.recordQuery(sql);
          const { statement, params } = parseSql(sql);
          const id = session.nextStatementId++;
          session.statements.set(id, { id, sql, db: session.db, params, types: null });
          const columns = statement.t === 'select' ? statement.items.map((i) => i.name) : [];
          const out = new ResponseWriter(seq);
          prepareReply(out, id, params, columns, { capabilities: this.capabilities, status: session.status() });
          return out.flush(this.socket);
        }
        case COM_STMT_EXECUTE: {
          const stmt = session.statements.get(payload.readUInt32LE(1));
          if (!stmt) throw new SqlError(ER_UNKNOWN_STMT_HANDLER, `Unknown prepared statement handler (${payload.readUInt32LE(1)}) given to mysqld_stmt_execute`);
          const { values, types } = decodeExecuteParams(payload, stmt.params, stmt.types);
          stmt.types = types;
          return this.answer(seq, session, parseSql(stmt.sql).statement, values, true);
        }
        case COM_STMT_CLOSE:
          session.statements.delete(payload.readUInt32LE(1));
          return;
        case COM_STMT_RESET:
          if (!session.statements.has(payload.readUInt32LE(1))) {
            throw new SqlError(ER_UNKNOWN_STMT_HANDLER, `Unknown prepared statement handler (${payload.readUInt32LE(1)}) given to mysqld_stmt_reset`);
          }
          return this.ok(seq, session);
        case COM_RESET_CONNECTION:
          session.vars.clear();
          session.userVars.clear();
          session.statements.clear();
          session.tempTables.clear();
          session.rollback();
          return this.ok(seq, session);
        default:
          throw new SqlError(ER_UNKNOWN_COM, `Unknown command 0x${(payload[0] ?? 0).toString(16)} (not emulated)`);
      }
    } catch (err) {
      this.error(seq, err);
    }
  }

  private answer(seq: number, session: EmulatedSession, statement: Statement, params: SqlValue[], binary: boolean): void {
    const result = execute(session, statement, params);
    if (result.kind === 'ok') return this.ok(seq, session, result.affectedRows);
    const out = new ResponseWriter(seq);
    resultSet(out, result.columns, result.rows, { binary, capabilities: this.capabilities, status: session.status() });
    out.flush(this.socket);
  }
}
