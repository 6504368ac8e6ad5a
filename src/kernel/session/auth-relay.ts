import type { PacketQueue } from '../net/packet-queue.js';
import type { PacketChannel } from '../net/packet-channel.js';
import {
  AUTH_MORE_DATA_HEADER, AUTH_SWITCH_HEADER, CACHING_SHA2_FAST_AUTH_OK, ERR_HEADER, OK_HEADER,
} from '../protocol/constants.js';
import { parseAuthSwitch } from '../protocol/handshake-packets.js';

export interface RelayResult {
  ok: boolean;
  /** The last AuthSwitchRequest relayed and the client's answer to it (for credential plugins). */
  exchange: { plugin: string; salt: Buffer; reply: Buffer } | null;
  /** The final OK or ERR payload from the backend. */
  payload: Buffer;
  /** Sequence id to use for the next packet to the client. */
  clientSeq: number;
}

/**
 * Relays an authentication exchange between client and backend after the proxy sent the backend a
 * login (or COM_CHANGE_USER) naming an auth plugin it does not know: the backend answers with an
 * AuthSwitchRequest carrying its own salt, the client answers that, and so on — caching_sha2 fast and
 * full auth, sha256 public-key requests, ed25519 — until the backend says OK or ERR. The proxy never
 * sees a password; it only renumbers packets for each side (each reply follows the packet it answers).
 */
export async function relayAuthentication(
  client: { queue: PacketQueue; write(payload: Buffer, seq: number): void },
  backend: PacketChannel,
  seqs: { client: number },
  timeoutMs: number,
): Promise<RelayResult> {
  let clientSeq = seqs.client;
  let exchange: RelayResult['exchange'] = null;
  let lastSwitch: { plugin: string; salt: Buffer } | null = null;
  for (;;) {
    const packet = await backend.read(timeoutMs, 'authentication reply from backend');
    const first = packet.payload[0];
    client.write(packet.payload, clientSeq);
    clientSeq = (clientSeq + 1) & 0xff;
    if (first === OK_HEADER || first === ERR_HEADER) return { ok: first === OK_HEADER, payload: packet.payload, clientSeq, exchange };
    if (first === AUTH_SWITCH_HEADER) {
      const sw = parseAuthSwitch(packet.payload);
      // The salt is NUL-terminated in the request; the client hashes it without the NUL.
      lastSwitch = { plugin: sw.plugin, salt: sw.data[sw.data.length - 1] === 0 ? sw.data.subarray(0, sw.data.length - 1) : sw.data };
    }
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
