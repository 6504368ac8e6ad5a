import { BackendError } from '../errors.js';
import { answerChallenge, cleartextPayload, type KnownSecret } from '../auth/auth-answers.js';
import type { BackendCredentials } from '../hooks/hook-types.js';
import type { Packet } from '../net/packet-queue.js';
import type { PacketChannel } from '../net/packet-channel.js';
import {
  AUTH_MORE_DATA_HEADER, AUTH_SWITCH_HEADER, CACHING_SHA2_FAST_AUTH_OK, CACHING_SHA2_FULL_AUTH, CLIENT_CONNECT_WITH_DB,
  ER_ACCESS_DENIED_ERROR, ER_PROXY_BACKEND_HANDSHAKE, ERR_HEADER, MYSQL_NATIVE_PASSWORD, OK_HEADER, SQLSTATE_ACCESS_DENIED,
} from '../protocol/constants.js';
import { buildHandshakeResponse, parseAuthSwitch } from '../protocol/handshake-packets.js';
import { parseErrPayload, parseOkPayload, type OkPacket } from '../protocol/response-packets.js';
import type { BackendConnection } from './backend-connection.js';

/** Answers one challenge of a backend's auth exchange; `fullAuth` is caching_sha2's request for the password itself. */
export type ChallengeResponder = (plugin: string, salt: Buffer, fullAuth: boolean) => Buffer;

/** How the proxy answers a backend's challenges with the credentials it holds; throws BackendError when it cannot. */
export function challengeResponder(credentials: Exclude<BackendCredentials, { kind: 'relay' }>, backendAddr: string, backendTls: boolean): ChallengeResponder {
  if (credentials.kind === 'token') return () => credentials.data;
  const secret: KnownSecret = credentials.kind === 'native-hash' ? { stage1: credentials.stage1 } : { password: credentials.password };
  return (plugin, salt, fullAuth) => {
    if (fullAuth) {
      if ('password' in secret && backendTls) return cleartextPayload(secret.password);
      throw new BackendError(ER_PROXY_BACKEND_HANDSHAKE, `backend ${backendAddr} asks for ${plugin} full authentication, which needs the password and TLS to the backend`);
    }
    const answer = answerChallenge(plugin, secret, salt, backendTls);
    if (typeof answer === 'string') throw new BackendError(ER_PROXY_BACKEND_HANDSHAKE, `backend ${backendAddr}: ${answer}`);
    return answer;
  };
}

/** The salt of an AuthSwitchRequest: NUL-terminated on the wire, hashed without the NUL. */
export function switchChallenge(payload: Buffer): { plugin: string; salt: Buffer } {
  const sw = parseAuthSwitch(payload);
  return { plugin: sw.plugin, salt: sw.data[sw.data.length - 1] === 0 ? sw.data.subarray(0, sw.data.length - 1) : sw.data };
}

/**
 * Follows a backend's authentication after the proxy's first answer, answering auth switches and
 * caching_sha2's follow-ups, until the backend's OK or ERR, which is returned (not interpreted).
 */
export async function followAuthentication(
  channel: PacketChannel, respond: ChallengeResponder, first: { plugin: string; salt: Buffer }, timeoutMs: number, backendAddr: string,
): Promise<Packet> {
  let { plugin, salt } = first;
  for (let rounds = 0; rounds < 6; rounds++) {
    const packet = await channel.read(timeoutMs, `login reply from ${backendAddr}`);
    const kind = packet.payload[0];
    if (kind === OK_HEADER || kind === ERR_HEADER) return packet;
    if (kind === AUTH_SWITCH_HEADER) {
      ({ plugin, salt } = switchChallenge(packet.payload));
      channel.write(respond(plugin, salt, false), (packet.seq + 1) & 0xff);
      continue;
    }
    if (kind === AUTH_MORE_DATA_HEADER && packet.payload.length === 2 && packet.payload[1] === CACHING_SHA2_FAST_AUTH_OK) continue;
    if (kind === AUTH_MORE_DATA_HEADER && packet.payload.length === 2 && packet.payload[1] === CACHING_SHA2_FULL_AUTH) {
      channel.write(respond(plugin, salt, true), (packet.seq + 1) & 0xff);
      continue;
    }
    throw new BackendError(ER_PROXY_BACKEND_HANDSHAKE, `backend ${backendAddr}: unexpected packet 0x${(kind ?? 0).toString(16)} during login`);
  }
  throw new BackendError(ER_PROXY_BACKEND_HANDSHAKE, `backend ${backendAddr}: too many authentication rounds`);
}

/**
 * Logs in to a freshly dialled backend as a user whose credentials the proxy holds (migration, side
 * connections), following auth switches. Throws BackendError with the backend's own error on refusal.
 */
export async function loginWithCredentials(
  conn: BackendConnection,
  credentials: Exclude<BackendCredentials, { kind: 'relay' }>,
  opts: { capabilities: number; extendedCapabilities?: number; charset: number; database: string; timeoutMs: number },
): Promise<OkPacket> {
  const plugin = credentials.kind === 'token' ? credentials.plugin : MYSQL_NATIVE_PASSWORD;
  const salt = conn.greeting.salt;
  const respond = challengeResponder(credentials, conn.backend.addr, conn.tls);
  const capabilities = opts.database ? opts.capabilities | CLIENT_CONNECT_WITH_DB : opts.capabilities & ~CLIENT_CONNECT_WITH_DB;
  conn.channel.write(buildHandshakeResponse({
    capabilities, extendedCapabilities: opts.extendedCapabilities ?? 0, maxPacketSize: 1 << 24, charset: opts.charset, user: credentials.user,
    authResponse: respond(plugin, salt, false), database: opts.database, authPlugin: plugin, attributes: [],
  }), conn.nextSeq);
  const final = await followAuthentication(conn.channel, respond, { plugin, salt }, opts.timeoutMs, conn.backend.addr);
  if (final.payload[0] === OK_HEADER) return parseOkPayload(final.payload, capabilities);
  const e = parseErrPayload(final.payload);
  throw new BackendError(e.code || ER_ACCESS_DENIED_ERROR, `backend ${conn.backend.addr}: ${e.message}`, e.sqlState || SQLSTATE_ACCESS_DENIED);
}
