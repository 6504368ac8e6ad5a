// Unit tests (no real components): MariaDB's extended capabilities in the greeting, the
// HandshakeResponse and the SSLRequest, byte by byte. The reference packets are laid out here by hand
// from the protocol documentation, not with the kernel's builders, so a mistake in both cannot cancel out.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CLIENT_CONNECT_WITH_DB, CLIENT_MYSQL, CLIENT_PLUGIN_AUTH, CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, CLIENT_PROTOCOL_41,
  CLIENT_SECURE_CONNECTION, CLIENT_SSL, MARIADB_CLIENT_CACHE_METADATA, MARIADB_CLIENT_EXTENDED_METADATA, MARIADB_CLIENT_PROGRESS,
  MARIADB_CLIENT_STMT_BULK_OPERATIONS,
} from '../../../src/kernel/protocol/constants.js';
import {
  buildGreeting, buildHandshakeResponse, buildSslRequest, parseGreeting, parseHandshakeResponse,
} from '../../../src/kernel/protocol/handshake-packets.js';

/** What MariaDB 10.11 offers: PROGRESS | STMT_BULK_OPERATIONS | EXTENDED_METADATA | CACHE_METADATA. */
const MARIADB_1011_EXTENDED = MARIADB_CLIENT_PROGRESS | MARIADB_CLIENT_STMT_BULK_OPERATIONS | MARIADB_CLIENT_EXTENDED_METADATA
  | MARIADB_CLIENT_CACHE_METADATA;
const BASE_CAPS = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_WITH_DB;
const SALT = Buffer.from('abcdefghijklmnopqrst');

/** A HandshakeV10 laid out by hand; `reserved` is the 10 bytes after the salt length. */
function greetingBytes(capabilities: number, reserved: Buffer): Buffer {
  const caps = Buffer.alloc(4);
  caps.writeUInt32LE(capabilities >>> 0);
  return Buffer.concat([
    Buffer.from([10]), Buffer.from('10.11.6-MariaDB\0'), Buffer.from([7, 0, 0, 0]), SALT.subarray(0, 8), Buffer.from([0]),
    caps.subarray(0, 2), Buffer.from([45]), Buffer.from([2, 0]), caps.subarray(2, 4), Buffer.from([21]), reserved,
    SALT.subarray(8), Buffer.from([0]), Buffer.from('mysql_native_password\0'),
  ]);
}

/** The 10 reserved bytes with `extended` in their last 4 (MariaDB's layout). */
function reservedWith(extended: number, length = 10): Buffer {
  const b = Buffer.alloc(length);
  b.writeUInt32LE(extended >>> 0, length - 4);
  return b;
}

/** A HandshakeResponse41 laid out by hand; `reserved` is its 23 reserved bytes. */
function responseBytes(capabilities: number, reserved: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUInt32LE(capabilities >>> 0, 0);
  head.writeUInt32LE(1 << 24, 4);
  head[8] = 45;
  return Buffer.concat([head, reserved, Buffer.from('app\0'), Buffer.from([20]), Buffer.alloc(20, 7), Buffer.from('shop\0'),
    Buffer.from('mysql_native_password\0')]);
}

describe('MariaDB extended capabilities in the handshake', () => {
  it('a MariaDB greeting (CLIENT_MYSQL clear) carries them in the last 4 of its 10 reserved bytes', () => {
    const bytes = greetingBytes(BASE_CAPS, reservedWith(MARIADB_1011_EXTENDED));
    const g = parseGreeting(bytes);
    assert.equal(g.extendedCapabilities, 0x1d);
    assert.equal(g.capabilities, BASE_CAPS);
    assert.equal(g.salt.toString(), SALT.toString());
    assert.equal(g.authPlugin, 'mysql_native_password');
    // Built again, the greeting is the same bytes.
    assert.deepEqual(buildGreeting({ ...g, serverVersion: '10.11.6-MariaDB', connectionId: 7, charset: 45, status: 2 }), bytes);
  });

  it('a MySQL greeting (CLIENT_MYSQL set) has none, whatever its reserved bytes hold', () => {
    const g = parseGreeting(greetingBytes(BASE_CAPS | CLIENT_MYSQL, reservedWith(0xffffffff)));
    assert.equal(g.extendedCapabilities, 0);
    const built = buildGreeting({ ...g, extendedCapabilities: MARIADB_1011_EXTENDED });
    assert.deepEqual(built, greetingBytes(BASE_CAPS | CLIENT_MYSQL, Buffer.alloc(10)), 'no extended bytes beside CLIENT_MYSQL');
  });

  it('the proxy\'s greeting puts what it offers at the reserved bytes 6..9, little-endian', () => {
    const built = buildGreeting({
      protocolVersion: 10, serverVersion: '10.11.6-MariaDB', connectionId: 7, salt: SALT, capabilities: BASE_CAPS,
      extendedCapabilities: MARIADB_CLIENT_PROGRESS | MARIADB_CLIENT_STMT_BULK_OPERATIONS | MARIADB_CLIENT_EXTENDED_METADATA,
      charset: 45, status: 2, authPlugin: 'mysql_native_password',
    });
    assert.deepEqual(built, greetingBytes(BASE_CAPS, Buffer.from([0, 0, 0, 0, 0, 0, 0x0d, 0, 0, 0])));
  });

  it('a MariaDB client\'s HandshakeResponse carries them in the last 4 of its 23 reserved bytes', () => {
    const caps = BASE_CAPS | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
    const bytes = responseBytes(caps & ~CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, reservedWith(MARIADB_CLIENT_STMT_BULK_OPERATIONS | MARIADB_CLIENT_PROGRESS, 23));
    const h = parseHandshakeResponse(bytes);
    assert.equal(h.extendedCapabilities, MARIADB_CLIENT_STMT_BULK_OPERATIONS | MARIADB_CLIENT_PROGRESS);
    assert.equal(h.user, 'app');
    assert.equal(h.database, 'shop');
    assert.deepEqual(buildHandshakeResponse(h), bytes, 'built again, the same bytes');
  });

  it('a client that sets CLIENT_MYSQL has none; the proxy writes none for it either', () => {
    const bytes = responseBytes(BASE_CAPS | CLIENT_MYSQL, reservedWith(0x1d, 23));
    const h = parseHandshakeResponse(bytes);
    assert.equal(h.extendedCapabilities, 0);
    assert.deepEqual(buildHandshakeResponse({ ...h, extendedCapabilities: 0x1d }), responseBytes(BASE_CAPS | CLIENT_MYSQL, Buffer.alloc(23)));
  });

  it('the SSLRequest is the response\'s first 32 bytes, extended capabilities included', () => {
    const ssl = buildSslRequest(BASE_CAPS, 1 << 24, 45, MARIADB_CLIENT_EXTENDED_METADATA);
    assert.equal(ssl.length, 32);
    assert.deepEqual(ssl, responseBytes(BASE_CAPS | CLIENT_SSL, reservedWith(MARIADB_CLIENT_EXTENDED_METADATA, 23)).subarray(0, 32));
    assert.deepEqual(buildSslRequest(BASE_CAPS | CLIENT_MYSQL, 1 << 24, 45, MARIADB_CLIENT_EXTENDED_METADATA).subarray(9), Buffer.alloc(23));
  });
});
