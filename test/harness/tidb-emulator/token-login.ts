// A client that logs in with TiDB's session-token auth, as a proxy moving a session does: the
// handshake response names auth plugin tidb_session_token and carries the token JSON as auth data.
// For testing the emulator's token rule directly (mysql2 cannot send a chosen plugin in the handshake).
import { connect } from 'node:net';
import { CLIENT_PLUGIN_AUTH, CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, CLIENT_PROTOCOL_41, CLIENT_SECURE_CONNECTION, ERR_HEADER, OK_HEADER, TIDB_SESSION_TOKEN } from '../../../src/kernel/protocol/constants.js';
import { buildHandshakeResponse } from '../../../src/kernel/protocol/handshake-packets.js';
import { framePackets } from '../../../src/kernel/protocol/payload-writer.js';
import { parseErrPayload } from '../../../src/kernel/protocol/response-packets.js';
import { PacketReader } from './wire.js';

export type TokenLoginResult = { ok: true } | { ok: false; code: number; message: string };

export async function tokenLogin(target: { host: string; port: number }, user: string, token: Buffer | string): Promise<TokenLoginResult> {
  const socket = connect({ host: target.host, port: target.port });
  socket.on('error', () => {});
  const reader = new PacketReader(socket);
  try {
    const greeting = await reader.read();
    if (!greeting) throw new Error('closed before the greeting');
    const capabilities = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
    socket.write(framePackets(buildHandshakeResponse({
      capabilities, maxPacketSize: 1 << 24, charset: 46, user, authResponse: Buffer.from(token), database: '',
      authPlugin: TIDB_SESSION_TOKEN, attributes: [],
    }), greeting.seq + 1).packet);
    const reply = await reader.read();
    if (!reply) throw new Error('closed before answering the login');
    if (reply.payload[0] === OK_HEADER) return { ok: true };
    if (reply.payload[0] === ERR_HEADER) {
      const e = parseErrPayload(reply.payload);
      return { ok: false, code: e.code, message: e.message };
    }
    throw new Error(`unexpected reply 0x${(reply.payload[0] ?? 0).toString(16)} to a token login`);
  } finally {
    socket.destroy();
  }
}
