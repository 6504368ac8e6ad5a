import { createHash } from 'node:crypto';
import { BackendError } from '../errors.js';
import type { BackendCredentials } from '../hooks/hook-types.js';
import {
  AUTH_SWITCH_HEADER, CLIENT_CONNECT_WITH_DB, ER_ACCESS_DENIED_ERROR, ER_PROXY_BACKEND_HANDSHAKE, ERR_HEADER,
  MYSQL_CLEAR_PASSWORD, MYSQL_NATIVE_PASSWORD, OK_HEADER, SQLSTATE_ACCESS_DENIED,
} from '../protocol/constants.js';
import { buildHandshakeResponse, parseAuthSwitch } from '../protocol/handshake-packets.js';
import { parseErrPayload, parseOkPayload, type OkPacket } from '../protocol/response-packets.js';
import type { BackendConnection } from './backend-connection.js';

function sha1(...parts: Buffer[]): Buffer {
  const h = createHash('sha1');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** mysql_native_password reply from SHA1(password): SHA1(pw) XOR SHA1(salt || SHA1(SHA1(pw))). */
export function nativeScramble(stage1: Buffer, salt: Buffer): Buffer {
  const mask = sha1(salt.subarray(0, 20), sha1(stage1));
  const out = Buffer.allocUnsafe(stage1.length);
  for (let i = 0; i < stage1.length; i++) out[i] = stage1[i]! ^ mask[i]!;
  return out;
}

export function stage1Hash(password: string): Buffer {
  return sha1(Buffer.from(password, 'utf8'));
}

/** What the proxy answers to the backend's auth plugin, given what it knows. */
function authData(credentials: Exclude<BackendCredentials, { kind: 'relay' }>, plugin: string, salt: Buffer, tls: boolean): Buffer {
  if (credentials.kind === 'token') return credentials.data;
  if (plugin === MYSQL_NATIVE_PASSWORD) {
    const stage1 = credentials.kind === 'native-hash' ? credentials.stage1 : stage1Hash(credentials.password);
    return nativeScramble(stage1, salt);
  }
  if (plugin === MYSQL_CLEAR_PASSWORD && credentials.kind === 'cleartext') {
    if (!tls) throw new BackendError(ER_PROXY_BACKEND_HANDSHAKE, 'refusing to send a cleartext password to a backend without TLS');
    return Buffer.concat([Buffer.from(credentials.password, 'utf8'), Buffer.from([0])]);
  }
  throw new BackendError(ER_PROXY_BACKEND_HANDSHAKE, `cannot answer auth plugin ${plugin} with ${credentials.kind} credentials`);
}

/**
 * Logs in to a freshly dialled backend as a user whose credentials the proxy holds (migration, side
 * connections), following auth switches. Throws BackendError with the backend's own error on refusal.
 */
export async function loginWithCredentials(
  conn: BackendConnection,
  credentials: Exclude<BackendCredentials, { kind: 'relay' }>,
  opts: { capabilities: number; charset: number; database: string; timeoutMs: number },
): Promise<OkPacket> {
  const plugin = credentials.kind === 'token' ? credentials.plugin : MYSQL_NATIVE_PASSWORD;
  const salt = conn.greeting.salt;
  const capabilities = opts.database ? opts.capabilities | CLIENT_CONNECT_WITH_DB : opts.capabilities & ~CLIENT_CONNECT_WITH_DB;
  conn.channel.write(buildHandshakeResponse({
    capabilities, maxPacketSize: 1 << 24, charset: opts.charset, user: credentials.user,
    authResponse: authData(credentials, plugin, salt, conn.tls), database: opts.database, authPlugin: plugin, attributes: [],
  }), conn.nextSeq);
  for (let rounds = 0; rounds < 5; rounds++) {
    const packet = await conn.channel.read(opts.timeoutMs, `login reply from ${conn.backend.addr}`);
    const first = packet.payload[0];
    if (first === OK_HEADER) return parseOkPayload(packet.payload, capabilities);
    if (first === ERR_HEADER) {
      const e = parseErrPayload(packet.payload);
      throw new BackendError(e.code || ER_ACCESS_DENIED_ERROR, `backend ${conn.backend.addr}: ${e.message}`, e.sqlState || SQLSTATE_ACCESS_DENIED);
    }
    if (first === AUTH_SWITCH_HEADER) {
      const sw = parseAuthSwitch(packet.payload);
      const data = sw.data[sw.data.length - 1] === 0 ? sw.data.subarray(0, sw.data.length - 1) : sw.data;
      conn.channel.write(authData(credentials, sw.plugin, data, conn.tls), (packet.seq + 1) & 0xff);
      continue;
    }
    throw new BackendError(ER_PROXY_BACKEND_HANDSHAKE, `backend ${conn.backend.addr}: unexpected packet 0x${(first ?? 0).toString(16)} during login`);
  }
  throw new BackendError(ER_PROXY_BACKEND_HANDSHAKE, `backend ${conn.backend.addr}: too many authentication rounds`);
}
