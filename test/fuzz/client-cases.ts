// Client-side fuzz cases: structure-aware byte streams a client sends the proxy, before the login
// (junk, broken HandshakeResponses, SSLRequest + junk, PROXY v2 headers) and after a real login
// (prepared-statement bodies with bad ids, counts, bitmaps and types, COM_CHANGE_USER, COM_FIELD_LIST,
// empty packets, 16 MiB continuations cut short, pipelined junk, compressed-protocol junk).
// Each case is a pure function of its FuzzRandom: the same seed gives the same bytes.
import {
  CLIENT_COMPRESS, CLIENT_CONNECT_ATTRS, CLIENT_CONNECT_WITH_DB, CLIENT_DEPRECATE_EOF, CLIENT_LONG_PASSWORD, CLIENT_PLUGIN_AUTH,
  CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, CLIENT_PROTOCOL_41, CLIENT_SECURE_CONNECTION, CLIENT_SSL, CLIENT_TRANSACTIONS,
  COM_CHANGE_USER, COM_FIELD_LIST, COM_QUERY, COM_STMT_CLOSE, COM_STMT_EXECUTE, COM_STMT_FETCH, COM_STMT_PREPARE,
  COM_STMT_RESET, COM_STMT_SEND_LONG_DATA, LOGIN_MAX_PAYLOAD, MAX_PACKET_PAYLOAD,
} from '../../src/kernel/protocol/constants.js';
import { buildHandshakeResponse, SSL_REQUEST_LENGTH } from '../../src/kernel/protocol/handshake-packets.js';
import { framePackets, PayloadWriter } from '../../src/kernel/protocol/payload-writer.js';
import { PROXY_V2_SIGNATURE, buildProxyV2 } from '../../src/kernel/protocol/proxy-protocol.js';
import type { FuzzRandom } from './fuzz-random.js';

export type ClientPhase = 'pre-auth' | 'post-auth';

export interface ClientCase {
  kind: string;
  phase: ClientPhase;
  /** Sent in order, a short pause between them (post-auth: after the login). */
  writes: Buffer[];
  /**
   * Pre-auth: no valid login can begin with these bytes, or they form a whole packet, so the proxy must
   * answer (an ERR, an AuthSwitchRequest) or close at once rather than wait for the handshake timeout.
   */
  mustAnswer: boolean;
  /** Post-auth: capability flags asked for at the login on top of the usual ones. */
  capabilities?: number;
}

const BASE_CAPS = CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH |
  CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
const WORDS = ['SELECT', 'SET', 'KILL', 'PREPARE', 'EXECUTE', 'USE', 'BEGIN', 'COMMIT', 'DO', '@x', ':=', '1', "'a'", '/*', '*/', '/*!',
  '--', '#', '\n', ';', 'CONNECTION', 'QUERY', 'FROM', 'seq_1_to_5', 'TEMPORARY', 'LOCK', 'TABLES', 'GET_LOCK', '?', '(', ')', '`', '"', '\\'];

function packet(payload: Buffer, seq: number): Buffer {
  return framePackets(payload, seq).packet;
}

/** A raw header: `length` claimed, whatever follows. */
function header(length: number, seq: number): Buffer {
  const h = Buffer.alloc(4);
  h.writeUIntLE(length & 0xffffff, 0, 3);
  h[3] = seq & 0xff;
  return h;
}

function text(rng: FuzzRandom, words = rng.int(0, 12)): string {
  let out = '';
  for (let i = 0; i < words; i++) out += (rng.chance(0.8) ? ' ' : '') + (rng.chance(0.85) ? rng.pick(WORDS) : rng.bytes(rng.int(1, 6)).toString('latin1'));
  return out;
}

/** A length-encoded integer, sometimes absurd (a length no packet can hold) or cut short. */
function lenenc(rng: FuzzRandom, value: number): Buffer {
  if (rng.chance(0.3)) return Buffer.from(rng.pick([[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], [0xfd, 0xff, 0xff, 0xff], [0xfc, 0xff], [0xfb], [0xff], [0xfe]]));
  return new PayloadWriter(9).lenenc(value).payload();
}

function handshakeResponse(rng: FuzzRandom, capabilities = BASE_CAPS): Buffer {
  const attributes: Array<[string, string]> = [];
  if (rng.chance(0.3)) for (let i = rng.int(0, 5); i > 0; i--) attributes.push([text(rng, 1), text(rng, 2)]);
  return buildHandshakeResponse({
    capabilities: capabilities | (attributes.length ? CLIENT_CONNECT_ATTRS : 0) | (rng.chance(0.3) ? CLIENT_CONNECT_WITH_DB : 0),
    maxPacketSize: rng.next(), charset: rng.int(0, 255), user: rng.pick(['fuzz', 'root', '', text(rng, 1)]),
    authResponse: rng.bytes(rng.pick([0, 20, rng.int(0, 300)])), database: rng.pick(['', 'test', text(rng, 1)]),
    authPlugin: rng.pick(['mysql_native_password', 'client_ed25519', 'mysql_clear_password', 'caching_sha2_password', '', text(rng, 1)]),
    attributes,
  });
}

/** Whether the proxy can tell at once that `bytes` (the first a client sends) begin no valid login. */
function loginImpossibleAtOnce(bytes: Buffer): boolean {
  if (bytes.length < 4 || bytes[0] === PROXY_V2_SIGNATURE[0]) return false;
  const length = bytes.readUIntLE(0, 3);
  return bytes[3] !== 1 || length < SSL_REQUEST_LENGTH || length > LOGIN_MAX_PAYLOAD || bytes.length >= 4 + length;
}

// ---- before the login ------------------------------------------------------------------------------

function preAuth(rng: FuzzRandom): ClientCase {
  const kind = rng.pick(['random-bytes', 'handshake-truncated', 'handshake-absurd-lenenc', 'handshake-wrong-seq', 'handshake-capabilities',
    'ssl-request-junk', 'proxy-v2', 'oversized-login-packet', 'nothing'] as const);
  switch (kind) {
    case 'random-bytes': {
      const bytes = rng.bytes(rng.int(1, 200));
      return { kind, phase: 'pre-auth', writes: [bytes], mustAnswer: loginImpossibleAtOnce(bytes) };
    }
    case 'handshake-truncated': {
      const payload = handshakeResponse(rng);
      const cut = rng.int(0, payload.length - 1);
      // Either the header keeps the full length (the proxy waits, as MariaDB does) or claims the cut one.
      const claimsCut = rng.chance(0.5);
      const bytes = Buffer.concat([header(claimsCut ? cut : payload.length, 1), payload.subarray(0, cut)]);
      return { kind, phase: 'pre-auth', writes: [bytes], mustAnswer: loginImpossibleAtOnce(bytes) };
    }
    case 'handshake-absurd-lenenc': {
      // Fixed part, user, then an auth response / attributes length no packet can hold.
      const w = new PayloadWriter(64).u32(BASE_CAPS | CLIENT_CONNECT_ATTRS).u32(rng.next()).u8(33).zeros(23);
      const user = rng.chance(0.8) ? Buffer.from(`${text(rng, 1)}\0`) : rng.bytes(rng.int(0, 40)); // no NUL: the string runs off the end
      const tail = rng.chance(0.5) ? lenenc(rng, rng.int(0, 1000)) : Buffer.concat([lenenc(rng, 20), rng.bytes(20), Buffer.from('x\0'), lenenc(rng, 99999)]);
      const payload = Buffer.concat([w.payload(), user, tail, rng.bytes(rng.int(0, 16))]);
      return { kind, phase: 'pre-auth', writes: [packet(payload, 1)], mustAnswer: true };
    }
    case 'handshake-wrong-seq': {
      let seq = rng.int(0, 255);
      if (seq === 1) seq = 0;
      return { kind, phase: 'pre-auth', writes: [packet(handshakeResponse(rng), seq)], mustAnswer: true };
    }
    case 'handshake-capabilities': {
      const caps = rng.chance(0.5) ? rng.next() : BASE_CAPS ^ (1 << rng.int(0, 31));
      return { kind, phase: 'pre-auth', writes: [packet(handshakeResponse(rng, caps & ~CLIENT_SSL), 1)], mustAnswer: true };
    }
    case 'ssl-request-junk': {
      const ssl = new PayloadWriter(32).u32(BASE_CAPS | CLIENT_SSL).u32(1 << 24).u8(33).zeros(23).payload();
      // Junk where the TLS ClientHello belongs: random bytes, or a TLS record header with a silly length.
      const junk = rng.chance(0.5) ? rng.bytes(rng.int(1, 300)) : Buffer.concat([Buffer.from([0x16, 0x03, rng.int(0, 4)]), rng.bytes(rng.int(0, 40))]);
      return { kind, phase: 'pre-auth', writes: rng.chance(0.5) ? [packet(ssl, 1), junk] : [Buffer.concat([packet(ssl, 1), junk])], mustAnswer: false };
    }
    case 'proxy-v2':
      return proxyV2Case(rng);
    case 'oversized-login-packet':
      return { kind, phase: 'pre-auth', writes: [Buffer.concat([header(rng.int(LOGIN_MAX_PAYLOAD + 1, MAX_PACKET_PAYLOAD), 1), rng.bytes(rng.int(0, 2000))])], mustAnswer: true };
    case 'nothing':
      return { kind, phase: 'pre-auth', writes: [], mustAnswer: false };
  }
}

function proxyV2Case(rng: FuzzRandom): ClientCase {
  const valid = buildProxyV2({ sourceAddress: `10.${rng.int(0, 255)}.${rng.int(0, 255)}.${rng.int(1, 254)}`, sourcePort: rng.int(1, 65535), destinationAddress: '127.0.0.1', destinationPort: 6000 });
  const variant = rng.int(0, 4);
  let head: Buffer;
  let mustAnswer = true;
  if (variant === 0) head = valid; // a good header: the login behind it goes on
  else if (variant === 1) {
    // Junk right after the signature: refused unless it happens to start like a header.
    head = Buffer.concat([PROXY_V2_SIGNATURE, rng.bytes(rng.int(1, 64))]);
    mustAnswer = head[12] !== 0x20 && head[12] !== 0x21;
  } else if (variant === 2) {
    // A header announcing more address bytes than come: the proxy waits for them (bounded by 64 KiB).
    head = Buffer.from(valid);
    head.writeUInt16BE(rng.int(head.length, 0xffff), 14);
    mustAnswer = false;
  } else if (variant === 3) {
    head = Buffer.from(valid);
    head[12] = rng.pick([0x20, 0x10, 0x22, 0x2f, 0x31]);
    head[13] = rng.int(0, 255);
    head.writeUInt16BE(rng.int(0, 40), 14);
    head = head.subarray(0, Math.min(head.length, 16 + head.readUInt16BE(14)));
    // LOCAL, or PROXY with a known family and enough bytes: a header; anything else is refused at once.
    mustAnswer = head[12] !== 0x20;
  } else {
    head = valid.subarray(0, rng.int(1, valid.length - 1)); // cut short
    mustAnswer = false;
  }
  const login = rng.chance(0.7) ? packet(handshakeResponse(rng), 1) : Buffer.alloc(0);
  if (variant === 2 || variant === 4) return { kind: 'proxy-v2', phase: 'pre-auth', writes: [head], mustAnswer: false };
  const writes = rng.chance(0.5) ? [Buffer.concat([head, login])] : [head, login];
  return { kind: 'proxy-v2', phase: 'pre-auth', writes, mustAnswer: mustAnswer && (login.length > 0 || variant === 1 || variant === 3) };
}

// ---- after a real login ----------------------------------------------------------------------------

/** A COM_STMT_EXECUTE body around statement `id`: flags, iterations, null bitmap, bound flag, types, values — each maybe wrong. */
function executeBody(rng: FuzzRandom, id: number, params: number): Buffer {
  const w = new PayloadWriter(64).u8(COM_STMT_EXECUTE).u32(id).u8(rng.pick([0, 0, 1, 2, 4, 8, rng.int(0, 255)])).u32(rng.chance(0.8) ? 1 : rng.next());
  const claimed = rng.chance(0.6) ? params : rng.int(0, 20);
  let body = w.payload();
  if (claimed > 0) {
    const bitmap = rng.chance(0.7) ? Buffer.alloc((claimed + 7) >> 3) : rng.bytes(rng.int(0, 4));
    const bound = Buffer.from([rng.pick([0, 1, 1, rng.int(0, 255)])]);
    const types = Buffer.alloc(claimed * 2);
    for (let i = 0; i < claimed; i++) types.writeUInt16LE(rng.chance(0.7) ? rng.pick([0x03, 0x08, 0xfd, 0xfe, 0x0c, 0x06]) : rng.int(0, 0xffff), i * 2);
    const values = Buffer.concat(Array.from({ length: claimed }, () => rng.chance(0.5) ? lenenc(rng, rng.int(0, 30)) : rng.bytes(rng.int(0, 12))));
    body = Buffer.concat([body, bitmap, bound, bound[0] === 1 ? types : Buffer.alloc(0), values]);
  }
  return rng.chance(0.2) ? body.subarray(0, rng.int(1, body.length)) : body;
}

function postAuth(rng: FuzzRandom): ClientCase {
  const kind = rng.pick(['stmt-execute-junk', 'stmt-command-junk', 'change-user-junk', 'field-list-junk', 'zero-length-packets',
    'continuation-cut-short', 'pipelined-junk', 'query-junk', 'compressed-junk', 'random-command'] as const);
  const writes: Buffer[] = [];
  let capabilities: number | undefined = rng.chance(0.5) ? CLIENT_DEPRECATE_EOF : 0;
  switch (kind) {
    case 'stmt-execute-junk': {
      const params = rng.int(0, 4);
      writes.push(packet(Buffer.from(`\x16SELECT ${Array.from({ length: params }, () => '?').join(', ') || '1'}`, 'latin1'), 0));
      for (let i = rng.int(1, 4); i > 0; i--) writes.push(packet(executeBody(rng, rng.chance(0.7) ? 1 : rng.next(), params), rng.chance(0.9) ? 0 : rng.int(1, 255)));
      break;
    }
    case 'stmt-command-junk': {
      if (rng.chance(0.5)) writes.push(packet(Buffer.from('\x16SELECT ?', 'latin1'), 0));
      for (let i = rng.int(1, 5); i > 0; i--) {
        const command = rng.pick([COM_STMT_SEND_LONG_DATA, COM_STMT_CLOSE, COM_STMT_RESET, COM_STMT_FETCH, COM_STMT_PREPARE, COM_STMT_EXECUTE]);
        const id = Buffer.alloc(4);
        id.writeUInt32LE(rng.chance(0.6) ? 1 : rng.next());
        writes.push(packet(Buffer.concat([Buffer.from([command]), id.subarray(0, rng.chance(0.85) ? 4 : rng.int(0, 3)), rng.bytes(rng.length(40))]), 0));
      }
      break;
    }
    case 'change-user-junk': {
      const w = new PayloadWriter(64).u8(COM_CHANGE_USER).nulString(rng.pick(['fuzz', 'root', text(rng, 1)]));
      const body = Buffer.concat([w.payload(), rng.chance(0.5) ? lenenc(rng, 20) : Buffer.from([rng.int(0, 255)]), rng.bytes(rng.length(60))]);
      writes.push(packet(rng.chance(0.2) ? Buffer.from([COM_CHANGE_USER]) : body, 0));
      break;
    }
    case 'field-list-junk':
      writes.push(packet(Buffer.concat([Buffer.from([COM_FIELD_LIST]), Buffer.from(rng.pick(['seq_1_to_3', 't', '', text(rng, 1)])), rng.chance(0.5) ? Buffer.from([0]) : Buffer.alloc(0), rng.bytes(rng.length(10))]), 0));
      break;
    case 'zero-length-packets':
      for (let i = rng.int(1, 4); i > 0; i--) writes.push(header(0, rng.chance(0.8) ? 0 : rng.int(0, 255)));
      break;
    case 'continuation-cut-short':
      // A 16 MiB packet that never finishes: the proxy must not wait on it forever once the client leaves.
      writes.push(Buffer.concat([header(MAX_PACKET_PAYLOAD, 0), Buffer.from([rng.pick([COM_QUERY, COM_STMT_PREPARE, COM_STMT_EXECUTE, COM_CHANGE_USER, rng.int(0, 255)])]), rng.bytes(rng.int(0, 64 * 1024))]));
      break;
    case 'pipelined-junk': {
      const parts: Buffer[] = [];
      for (let i = rng.int(2, 20); i > 0; i--) parts.push(packet(Buffer.concat([Buffer.from([rng.int(0, 0x20)]), rng.bytes(rng.length(30))]), rng.chance(0.9) ? 0 : rng.int(0, 255)));
      writes.push(Buffer.concat(parts));
      break;
    }
    case 'query-junk':
      for (let i = rng.int(1, 3); i > 0; i--) writes.push(packet(Buffer.from(`\x03${rng.chance(0.2) ? '/**/'.repeat(rng.int(20, 200)) : ''}${text(rng)}`, 'latin1'), 0));
      break;
    case 'compressed-junk': {
      capabilities = CLIENT_COMPRESS;
      // A compressed frame header (3-byte compressed length, seq, 3-byte uncompressed length) with lies in it.
      const frame = Buffer.alloc(7);
      const body = rng.bytes(rng.length(100));
      frame.writeUIntLE(rng.chance(0.5) ? body.length : rng.int(0, 0xffffff), 0, 3);
      frame[3] = rng.chance(0.8) ? 0 : rng.int(0, 255);
      frame.writeUIntLE(rng.chance(0.5) ? 0 : rng.int(0, 0xffffff), 4, 3);
      writes.push(Buffer.concat([frame, body]));
      break;
    }
    case 'random-command':
      writes.push(packet(Buffer.concat([Buffer.from([rng.int(0, 255)]), rng.bytes(rng.length(50))]), 0));
      break;
  }
  return { kind, phase: 'post-auth', writes, mustAnswer: false, capabilities };
}

/** One client-side case; `postAuthShare` of them are sent after a real login. */
export function clientCase(rng: FuzzRandom, postAuthShare: number): ClientCase {
  return rng.chance(postAuthShare) ? postAuth(rng) : preAuth(rng);
}
