import {
  CLIENT_CONNECT_ATTRS, CLIENT_CONNECT_WITH_DB, CLIENT_PLUGIN_AUTH, CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
  CLIENT_MYSQL, CLIENT_PROTOCOL_41, CLIENT_SECURE_CONNECTION, CLIENT_SSL, GREETING_EXTENDED_CAPABILITIES_OFFSET, PROTOCOL_VERSION,
  RESPONSE_EXTENDED_CAPABILITIES_OFFSET,
} from './constants.js';
import { MalformedPacketError, PayloadReader } from './payload-reader.js';
import { PayloadWriter } from './payload-writer.js';

/** Initial handshake packet (HandshakeV10) sent by a server. */
export interface Greeting {
  protocolVersion: number;
  serverVersion: string;
  connectionId: number;
  /** Full salt (8 + 12 bytes usually), without the trailing NUL. */
  salt: Buffer;
  capabilities: number;
  /**
   * MariaDB extended capabilities (MARIADB_CLIENT_*): read and written only when CLIENT_MYSQL is
   * clear in `capabilities` (a MariaDB server); 0 otherwise (and when left out).
   */
  extendedCapabilities?: number;
  charset: number;
  status: number;
  authPlugin: string;
}

/** The extended capabilities a packet with `capabilities` carries: none when CLIENT_MYSQL is set (MySQL's reading of the reserved bytes). */
function extendedOf(capabilities: number, extended = 0): number {
  return capabilities & CLIENT_MYSQL ? 0 : extended >>> 0;
}

export function buildGreeting(g: Greeting): Buffer {
  const w = new PayloadWriter(128)
    .u8(PROTOCOL_VERSION).nulString(g.serverVersion).u32(g.connectionId)
    .bytes(g.salt.subarray(0, 8)).u8(0)
    .u16(g.capabilities & 0xffff).u8(g.charset).u16(g.status).u16((g.capabilities >>> 16) & 0xffff)
    .u8(g.salt.length + 1).zeros(GREETING_EXTENDED_CAPABILITIES_OFFSET).u32(extendedOf(g.capabilities, g.extendedCapabilities))
    .bytes(g.salt.subarray(8)).u8(0)
    .nulString(g.authPlugin);
  return w.payload();
}

export function parseGreeting(payload: Buffer): Greeting {
  const r = new PayloadReader(payload);
  const protocolVersion = r.u8('protocol version');
  if (protocolVersion !== PROTOCOL_VERSION) {
    throw new MalformedPacketError(`unsupported protocol version ${protocolVersion}`);
  }
  const serverVersion = r.nulString();
  const connectionId = r.u32('connection id');
  const salt1 = r.bytes(8, 'salt');
  r.skip(1);
  let capabilities = r.u16('capabilities');
  const charset = r.u8('charset');
  const status = r.u16('status');
  capabilities |= r.u16('capabilities (upper)') << 16;
  capabilities >>>= 0;
  const saltLen = r.u8('salt length');
  r.skip(GREETING_EXTENDED_CAPABILITIES_OFFSET, 'reserved');
  const extendedCapabilities = extendedOf(capabilities, r.u32('extended capabilities'));
  let salt2: Buffer = Buffer.alloc(0);
  if (capabilities & CLIENT_SECURE_CONNECTION) {
    const n = Math.max(13, saltLen - 8);
    salt2 = r.bytes(Math.min(n, r.remaining), 'salt part 2');
    if (salt2.length > 0 && salt2[salt2.length - 1] === 0) salt2 = salt2.subarray(0, salt2.length - 1);
  }
  const authPlugin = capabilities & CLIENT_PLUGIN_AUTH && r.remaining > 0 ? r.nulString() : '';
  return {
    protocolVersion, serverVersion, connectionId, salt: Buffer.concat([salt1, salt2]), capabilities, extendedCapabilities,
    charset, status, authPlugin,
  };
}

/** HandshakeResponse41 (or the 32-byte SSLRequest prefix of it). */
export interface HandshakeResponse {
  capabilities: number;
  /** MariaDB extended capabilities, when CLIENT_MYSQL is clear in `capabilities`; 0 otherwise (and when left out). */
  extendedCapabilities?: number;
  maxPacketSize: number;
  charset: number;
  user: string;
  authResponse: Buffer;
  database: string;
  authPlugin: string;
  /** Connection attributes in order; empty when the client sent none. */
  attributes: Array<[string, string]>;
}

export const SSL_REQUEST_LENGTH = 32;

export function isSslRequest(payload: Buffer): boolean {
  if (payload.length !== SSL_REQUEST_LENGTH) return false;
  return (payload.readUInt32LE(0) & CLIENT_SSL) !== 0;
}

export function parseHandshakeResponse(payload: Buffer): HandshakeResponse {
  const r = new PayloadReader(payload);
  const capabilities = r.u32('capabilities') >>> 0;
  if (!(capabilities & CLIENT_PROTOCOL_41)) {
    throw new MalformedPacketError('client does not speak protocol 4.1 (CLIENT_PROTOCOL_41 unset)');
  }
  const maxPacketSize = r.u32('max packet size');
  const charset = r.u8('charset');
  r.skip(RESPONSE_EXTENDED_CAPABILITIES_OFFSET, 'reserved');
  const extendedCapabilities = extendedOf(capabilities, r.u32('extended capabilities'));
  const user = r.nulString();
  let authResponse: Buffer;
  if (capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) authResponse = r.lenencBytes('auth response');
  else if (capabilities & CLIENT_SECURE_CONNECTION) authResponse = r.bytes(r.u8('auth response length'), 'auth response');
  else authResponse = r.nulBytes();
  const database = capabilities & CLIENT_CONNECT_WITH_DB && r.remaining > 0 ? r.nulString() : '';
  const authPlugin = capabilities & CLIENT_PLUGIN_AUTH && r.remaining > 0 ? r.nulString() : '';
  const attributes: Array<[string, string]> = [];
  if (capabilities & CLIENT_CONNECT_ATTRS && r.remaining > 0) {
    const total = r.lenenc('attributes length');
    const stop = r.pos + total;
    if (stop > r.end) throw new MalformedPacketError('connection attributes run past the end of the packet');
    while (r.pos < stop) attributes.push([r.lenencString('attribute key'), r.lenencString('attribute value')]);
  }
  return {
    capabilities, extendedCapabilities, maxPacketSize, charset, user, authResponse: Buffer.from(authResponse), database, authPlugin,
    attributes,
  };
}

/** The SSLRequest: the HandshakeResponse's first 32 bytes (extended capabilities included, as MariaDB's clients send them). */
export function buildSslRequest(capabilities: number, maxPacketSize: number, charset: number, extendedCapabilities = 0): Buffer {
  return new PayloadWriter(32).u32(capabilities | CLIENT_SSL).u32(maxPacketSize).u8(charset)
    .zeros(RESPONSE_EXTENDED_CAPABILITIES_OFFSET).u32(extendedOf(capabilities, extendedCapabilities)).payload();
}

export function buildHandshakeResponse(h: HandshakeResponse): Buffer {
  const w = new PayloadWriter(128 + h.authResponse.length)
    .u32(h.capabilities).u32(h.maxPacketSize).u8(h.charset)
    .zeros(RESPONSE_EXTENDED_CAPABILITIES_OFFSET).u32(extendedOf(h.capabilities, h.extendedCapabilities)).nulString(h.user);
  if (h.capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) w.lenencBytes(h.authResponse);
  else w.u8(h.authResponse.length).bytes(h.authResponse);
  if (h.capabilities & CLIENT_CONNECT_WITH_DB) w.nulString(h.database);
  if (h.capabilities & CLIENT_PLUGIN_AUTH) w.nulString(h.authPlugin);
  if (h.capabilities & CLIENT_CONNECT_ATTRS) {
    const attrs = new PayloadWriter(64);
    for (const [k, v] of h.attributes) attrs.lenencString(k).lenencString(v);
    w.lenencBytes(attrs.payload());
  }
  return w.payload();
}

/** COM_CHANGE_USER payload (after the command byte). */
export interface ChangeUserRequest {
  user: string;
  authResponse: Buffer;
  database: string;
  charset: number;
  authPlugin: string;
  attributes: Array<[string, string]>;
}

export function parseChangeUser(payload: Buffer, capabilities: number): ChangeUserRequest {
  const r = new PayloadReader(payload, 1);
  const user = r.nulString();
  const authResponse = capabilities & CLIENT_SECURE_CONNECTION ? r.bytes(r.u8('auth length'), 'auth response') : r.nulBytes();
  const database = r.nulString();
  let charset = 0;
  let authPlugin = '';
  const attributes: Array<[string, string]> = [];
  if (r.remaining >= 2) charset = r.u16('charset');
  if (capabilities & CLIENT_PLUGIN_AUTH && r.remaining > 0) authPlugin = r.nulString();
  if (capabilities & CLIENT_CONNECT_ATTRS && r.remaining > 0) {
    const total = r.lenenc('attributes length');
    const stop = Math.min(r.end, r.pos + total);
    while (r.pos < stop) attributes.push([r.lenencString('attribute key'), r.lenencString('attribute value')]);
  }
  return { user, authResponse: Buffer.from(authResponse), database, charset, authPlugin, attributes };
}

export function buildChangeUser(command: number, req: ChangeUserRequest, capabilities: number): Buffer {
  const w = new PayloadWriter(64 + req.authResponse.length).u8(command).nulString(req.user);
  if (capabilities & CLIENT_SECURE_CONNECTION) w.u8(req.authResponse.length).bytes(req.authResponse);
  else w.bytes(req.authResponse).u8(0);
  w.nulString(req.database).u16(req.charset);
  if (capabilities & CLIENT_PLUGIN_AUTH) w.nulString(req.authPlugin);
  if (capabilities & CLIENT_CONNECT_ATTRS) {
    const attrs = new PayloadWriter(64);
    for (const [k, v] of req.attributes) attrs.lenencString(k).lenencString(v);
    w.lenencBytes(attrs.payload());
  }
  return w.payload();
}

/** AuthSwitchRequest: 0xFE, plugin name, plugin data. */
export function parseAuthSwitch(payload: Buffer): { plugin: string; data: Buffer } {
  const r = new PayloadReader(payload, 1);
  const plugin = r.nulString();
  return { plugin, data: Buffer.from(r.rest()) };
}

export function buildAuthSwitch(plugin: string, data: Buffer): Buffer {
  return new PayloadWriter(32 + data.length).u8(0xfe).nulString(plugin).bytes(data).payload();
}
