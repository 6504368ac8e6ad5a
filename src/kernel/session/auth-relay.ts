import type { PacketQueue } from '../net/packet-queue.js';
import type { PacketChannel } from '../net/packet-channel.js';
import {
  AUTH_MORE_DATA_HEADER, AUTH_SWITCH_HEADER, CACHING_SHA2_FAST_AUTH_OK, ERR_HEADER, MYSQL_CLEAR_PASSWORD, OK_HEADER,
} from '../protocol/constants.js';
import { buildAuthSwitch } from '../protocol/handshake-packets.js';
import { challengeResponder, followAuthentication, switchChallenge } from './backend-login.js';

export interface RelayResult {
  ok: boolean;
  /**
   * The last AuthSwitchRequest relayed and the client's answer to it (for credential plugins); when the
   * proxy asked the client for its password, plugin is mysql_clear_password and reply the password.
   */
  exchange: { plugin: string; salt: Buffer; reply: Buffer } | null;
  /** The final OK or ERR payload from the backend. */
  payload: Buffer;
  /** Sequence id to use for the next packet to the client. */
  clientSeq: number;
}

export interface RelayOptions {
  timeoutMs: number;
  /**
   * Asked when the backend challenges the client with an auth plugin: true makes the proxy ask the
   * client for its password in cleartext instead and answer the backend itself (credentials-cleartext).
   */
  askCleartext?: (plugin: string) => boolean;
  backendAddr: string;
  backendTls: boolean;
  user: string;
}

/**
 * Relays an authentication exchange between client and backend after the proxy sent the backend a
 * login (or COM_CHANGE_USER) naming an auth plugin it does not know: the backend answers with an
 * AuthSwitchRequest carrying its own salt, the client answers that, and so on — caching_sha2 fast and
 * full auth, sha256 public-key requests, ed25519 — until the backend says OK or ERR. The proxy never
 * sees a password unless a plugin asks for it (askCleartext); it only renumbers packets for each side
 * (each reply follows the packet it answers).
 */
export async function relayAuthentication(
  client: { queue: PacketQueue; write(payload: Buffer, seq: number): void },
  backend: PacketChannel,
  seqs: { client: number },
  opts: RelayOptions,
): Promise<RelayResult> {
  const { timeoutMs } = opts;
  let clientSeq = seqs.client;
  let exchange: RelayResult['exchange'] = null;
  let lastSwitch: { plugin: string; salt: Buffer } | null = null;
  for (;;) {
    const packet = await backend.read(timeoutMs, 'authentication reply from backend');
    const first = packet.payload[0];
    if (first === AUTH_SWITCH_HEADER) {
      lastSwitch = switchChallenge(packet.payload);
      if (opts.askCleartext?.(lastSwitch.plugin)) {
        return answerWithClientPassword(client, backend, clientSeq, packet.seq, lastSwitch, opts);
      }
    }
    client.write(packet.payload, clientSeq);
    clientSeq = (clientSeq + 1) & 0xff;
    if (first === OK_HEADER || first === ERR_HEADER) return { ok: first === OK_HEADER, payload: packet.payload, clientSeq, exchange };
    // Fast-auth success is followed by the OK without a client reply.
    if (first === AUTH_MORE_DATA_HEADER && packet.payload.length === 2 && packet.payload[1] === CACHING_SHA2_FAST_AUTH_OK) continue;
    const reply = await client.queue.read(timeoutMs, 'authentication reply from client');
    clientSeq = (reply.seq + 1) & 0xff;
    if (lastSwitch) {
      exchange = { ...lastSwitch, reply: Buffer.from(reply.payload) };
      lastSwitch = null;
    }
    backend.write(reply.payload, (packet.seq + 1) & 0xff);
  }
}

/**
 * Asks the client for its password (AuthSwitchRequest to mysql_clear_password; only ever done over
 * TLS), answers the backend's challenge with it and finishes the login proxy-side. The client then
 * gets the backend's OK or ERR.
 */
async function answerWithClientPassword(
  client: { queue: PacketQueue; write(payload: Buffer, seq: number): void },
  backend: PacketChannel,
  clientSeq: number,
  backendSeq: number,
  challenge: { plugin: string; salt: Buffer },
  opts: RelayOptions,
): Promise<RelayResult> {
  client.write(buildAuthSwitch(MYSQL_CLEAR_PASSWORD, Buffer.alloc(0)), clientSeq);
  const reply = await client.queue.read(opts.timeoutMs, 'password from client');
  const end = reply.payload.indexOf(0);
  const password = reply.payload.toString('utf8', 0, end === -1 ? reply.payload.length : end);
  const respond = challengeResponder({ kind: 'cleartext', user: opts.user, password }, opts.backendAddr, opts.backendTls);
  backend.write(respond(challenge.plugin, challenge.salt, false), (backendSeq + 1) & 0xff);
  const final = await followAuthentication(backend, respond, challenge, opts.timeoutMs, opts.backendAddr);
  const nextSeq = (reply.seq + 1) & 0xff;
  client.write(final.payload, nextSeq);
  return {
    ok: final.payload[0] === OK_HEADER,
    payload: final.payload,
    clientSeq: (nextSeq + 1) & 0xff,
    exchange: { plugin: MYSQL_CLEAR_PASSWORD, salt: Buffer.alloc(0), reply: Buffer.from(password, 'utf8') },
  };
}
