import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { ClientError } from '../errors.js';
import type { SessionInfo } from '../hooks/hook-types.js';
import type { PacketQueue } from '../net/packet-queue.js';
import type { Generation } from '../plugins/generation.js';
import {
  CLIENT_COMPRESS, CLIENT_MYSQL, CLIENT_PLUGIN_AUTH, CLIENT_SSL, DEFAULT_CHARSET_ID, ER_HANDSHAKE_ERROR, LOGIN_MAX_PAYLOAD, MYSQL_NATIVE_PASSWORD,
  PROXY_SUPPORTED_CAPABILITIES, PROXY_SUPPORTED_EXTENDED_CAPABILITIES, SCRAMBLE_LENGTH, SERVER_STATUS_AUTOCOMMIT, SQLSTATE_COMMUNICATION,
} from '../protocol/constants.js';
import { buildGreeting, isSslRequest, parseHandshakeResponse, SSL_REQUEST_LENGTH, type HandshakeResponse } from '../protocol/handshake-packets.js';
import { refusalError } from './backend-link.js';
import type { ClientConnection } from './client-connection.js';
import type { SessionHost } from './session-host.js';

/** What the client's login fills in on its session. */
export interface LoginSession extends SessionInfo {
  logger: Logger;
  /** The client address the session's logger names; null while it has not been made (it will name the current one). */
  readonly loggerBoundTo: string | null;
  readonly host: SessionHost;
  readonly generation: Generation;
  readonly client: ClientConnection;
  capabilities: number;
  extendedCapabilities: number;
  charset: number;
  user: string;
  database: string;
  attributes: ReadonlyMap<string, string>;
  /** Sequence id an ERR must carry if the handshake fails now. */
  handshakeErrorSeq: number;
}

export interface ClientHello {
  handshake: HandshakeResponse;
  /** Sequence id of the client's HandshakeResponse packet. */
  seq: number;
}

/**
 * The client's side of the login: the proxy's own greeting (server version mirroring the backends,
 * its own salt, the proxy connection id), TLS when the client asks for it, the HandshakeResponse, and
 * the onHandshake taps that may refuse it. The password is never seen: the backend login relays it.
 */
export async function greetClient(session: LoginSession, queue: PacketQueue): Promise<ClientHello> {
  const { host, client } = session;
  const config = host.config();
  const announced = await host.announcedServer();
  const tlsContext = host.serverTlsContext();
  const options = session.generation.hooks.greeting.call({
    serverVersion: announced.version,
    capabilities: (announced.capabilities & PROXY_SUPPORTED_CAPABILITIES) | (config.proxy['enable-compression'] ? CLIENT_COMPRESS : 0),
    extendedCapabilities: announced.extendedCapabilities,
    authPlugin: MYSQL_NATIVE_PASSWORD,
    offerTls: tlsContext !== null,
  });
  const offered = (options.capabilities | (options.offerTls && tlsContext ? CLIENT_SSL : 0)) >>> 0;
  // MariaDB's extended capabilities exist only while CLIENT_MYSQL is clear (a MariaDB greeting).
  const offeredExtended = offered & CLIENT_MYSQL ? 0 : ((options.extendedCapabilities ?? 0) & PROXY_SUPPORTED_EXTENDED_CAPABILITIES) >>> 0;
  client.writePacket(buildGreeting({
    protocolVersion: 10, serverVersion: options.serverVersion, connectionId: session.id, salt: makeSalt(),
    capabilities: offered, extendedCapabilities: offeredExtended, charset: DEFAULT_CHARSET_ID, status: SERVER_STATUS_AUTOCOMMIT,
    authPlugin: options.authPlugin,
  }), 0);
  const timeoutMs = config.proxy['handshake-timeout'] * 1000;
  session.handshakeErrorSeq = 1;
  queue.headerCheck = handshakeHeaderCheck(queue, 1);
  let packet = await queue.read(timeoutMs, 'handshake response');
  session.handshakeErrorSeq = packet.seq + 1;
  // An inbound PROXY v2 header came ahead of this packet: from here on, log under the address it named.
  const clientAddr = `${client.remoteAddress}:${client.remotePort}`;
  if (session.loggerBoundTo !== null && session.loggerBoundTo !== clientAddr) session.logger = host.logger.child({ conn: session.id, client: clientAddr });
  if (isSslRequest(packet.payload)) {
    if (!(offered & CLIENT_SSL) || !tlsContext) throw new ClientError(ER_HANDSHAKE_ERROR, 'client requested TLS, which this proxy does not offer');
    // The ClientHello may already sit in the queue behind the SSLRequest: hand it to the TLS layer.
    try {
      await client.startTls(tlsContext, host.serverTlsRequestsCert(), timeoutMs, queue.drain());
    } catch (err) {
      // The client's TLS (version, ciphers, certificate) failed: its side, not a backend problem.
      throw new ClientError(ER_HANDSHAKE_ERROR, `TLS handshake with the client failed: ${(err as Error).message}`, undefined, { cause: err });
    }
    queue.headerCheck = handshakeHeaderCheck(queue, packet.seq + 1);
    packet = await queue.read(timeoutMs, 'handshake response');
    session.handshakeErrorSeq = packet.seq + 1;
  }
  // The authentication exchange that follows (relayed to a backend) is bounded in size too; the
  // pump drops the check when the session starts.
  queue.headerCheck = loginHeaderCheck;
  let handshake: HandshakeResponse;
  try {
    handshake = parseHandshakeResponse(packet.payload);
  } catch (err) {
    throw new ClientError(ER_HANDSHAKE_ERROR, `bad handshake: ${(err as Error).message}`, undefined, { cause: err });
  }
  if (!(handshake.capabilities & CLIENT_PLUGIN_AUTH)) {
    throw new ClientError(ER_HANDSHAKE_ERROR, 'client does not support pluggable authentication (CLIENT_PLUGIN_AUTH), which tiproxy needs');
  }
  handshake.capabilities = (handshake.capabilities & offered) >>> 0;
  handshake.extendedCapabilities = ((handshake.extendedCapabilities ?? 0) & offeredExtended) >>> 0;
  session.capabilities = handshake.capabilities;
  session.extendedCapabilities = handshake.extendedCapabilities;
  session.charset = handshake.charset;
  session.user = handshake.user;
  session.database = handshake.database;
  session.attributes = new Map(handshake.attributes);
  const onHandshake = session.generation.hooks.onHandshake;
  if (onHandshake.taps.length > 0) { // not isUsed(): the isolation interceptor makes that always true
    const refusal = await onHandshake.promise({
      session, user: handshake.user, database: handshake.database, authPlugin: handshake.authPlugin,
      capabilities: handshake.capabilities,
    });
    if (refusal) throw refusalError(refusal);
  }
  return { handshake, seq: packet.seq };
}

/**
 * The client's first packet (after the greeting, or after TLS) must be an SSLRequest or a
 * HandshakeResponse: a header announcing anything else — a length no such packet has, a wrong
 * sequence id — is refused as soon as it arrives, as MariaDB does, instead of waiting for the body.
 */
function handshakeHeaderCheck(queue: PacketQueue, expectedSeq: number): (length: number, seq: number) => Error | null {
  return (length, seq) => {
    if (seq !== expectedSeq) return badHandshake(`packet sequence id ${seq}, expected ${expectedSeq}`);
    if (length < SSL_REQUEST_LENGTH) return badHandshake(`a ${length}-byte packet is too short for a handshake response`);
    // An SSLRequest's size: the TLS ClientHello may follow in the same read, and it is no packet.
    if (length === SSL_REQUEST_LENGTH) queue.headerCheck = null;
    return loginHeaderCheck(length);
  };
}

function loginHeaderCheck(length: number): Error | null {
  return length > LOGIN_MAX_PAYLOAD ? badHandshake(`a ${length}-byte packet during login (at most ${LOGIN_MAX_PAYLOAD} accepted)`) : null;
}

function badHandshake(detail: string): ClientError {
  return new ClientError(ER_HANDSHAKE_ERROR, `Bad handshake: ${detail}`, SQLSTATE_COMMUNICATION);
}

/** Salts drawn per randomBytes() call: one CSPRNG call per this many connections instead of one each. */
const SALTS_PER_DRAW = 64;
let saltPool = Buffer.alloc(0);
let saltAt = 0;

function makeSalt(): Buffer {
  if (saltAt + SCRAMBLE_LENGTH > saltPool.length) {
    // A fresh buffer each draw: salts handed out earlier are never overwritten.
    saltPool = randomBytes(SCRAMBLE_LENGTH * SALTS_PER_DRAW);
    // Printable, non-NUL bytes: some clients treat the salt as a C string.
    for (let i = 0; i < saltPool.length; i++) saltPool[i] = (saltPool[i]! % 94) + 33;
    saltAt = 0;
  }
  saltAt += SCRAMBLE_LENGTH;
  return saltPool.subarray(saltAt - SCRAMBLE_LENGTH, saltAt);
}
