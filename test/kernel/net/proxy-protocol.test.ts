// Real components: unit tests of the PROXY v2 codec (no processes); then one MariaDB 10.11 instance
// started with proxy_protocol_networks=127.0.0.0/8, in-process proxies with proxy.proxy-protocol and
// proxy.backend-proxy-protocol set to v2, and mysql2 as the client (over a pre-connected net.Socket
// that carries a PROXY v2 header naming 10.9.8.7:4242 — an address that exists only inside the header).
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import type { RowDataPacket } from 'mysql2/promise';
import { buildProxyV2, parseProxyV2, PROXY_V2_SIGNATURE, type ProxiedAddress } from '../../../src/kernel/protocol/proxy-protocol.js';
import { ROOT_PASSWORD, ROOT_USER, startMariaDB, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { startProxy, type LogLine, type TestProxy } from '../../harness/proxy.js';

const PROXIED_SOURCE = '10.9.8.7';
const PROXIED_PORT = 4242;

describe('PROXY v2 codec', () => {
  const roundTrip = (address: ProxiedAddress) => {
    const header = buildProxyV2(address);
    const parsed = parseProxyV2(header);
    assert.equal(parsed.kind, 'header');
    assert.ok(parsed.kind === 'header');
    assert.equal(parsed.length, header.length);
    return { header, parsed };
  };

  it('round-trips an IPv4 address pair', () => {
    const address = { sourceAddress: '10.9.8.7', sourcePort: 4242, destinationAddress: '192.168.1.20', destinationPort: 6000 };
    const { header, parsed } = roundTrip(address);
    assert.ok(header.subarray(0, 12).equals(PROXY_V2_SIGNATURE));
    assert.equal(header[12], 0x21, 'version 2, PROXY command');
    assert.equal(header[13], 0x11, 'TCP over IPv4');
    assert.equal(header.length, 16 + 12);
    assert.deepEqual(parsed.kind === 'header' && parsed.address, address);
  });

  it('round-trips an IPv6 address pair (addresses in canonical form)', () => {
    const address = { sourceAddress: '2001:db8::1', sourcePort: 65535, destinationAddress: 'fe80::a:b:c', destinationPort: 1 };
    const { header, parsed } = roundTrip(address);
    assert.equal(header[13], 0x21, 'TCP over IPv6');
    assert.equal(header.length, 16 + 36);
    assert.deepEqual(parsed.kind === 'header' && parsed.address, address);
  });

  it('sends IPv4-mapped IPv6 addresses as IPv4, and mixed families as IPv6', () => {
    const mapped = roundTrip({ sourceAddress: '::ffff:127.0.0.1', sourcePort: 5000, destinationAddress: '::ffff:127.0.0.1', destinationPort: 6000 });
    assert.equal(mapped.header[13], 0x11);
    assert.deepEqual(mapped.parsed.kind === 'header' && mapped.parsed.address,
      { sourceAddress: '127.0.0.1', sourcePort: 5000, destinationAddress: '127.0.0.1', destinationPort: 6000 });
    const mixed = roundTrip({ sourceAddress: '10.0.0.1', sourcePort: 1, destinationAddress: '::1', destinationPort: 2 });
    assert.equal(mixed.header[13], 0x21);
    assert.deepEqual(mixed.parsed.kind === 'header' && mixed.parsed.address,
      { sourceAddress: '::ffff:10.0.0.1', sourcePort: 1, destinationAddress: '::1', destinationPort: 2 });
  });

  it('reports an incomplete header until every byte is there, at every split point', () => {
    const header = buildProxyV2({ sourceAddress: PROXIED_SOURCE, sourcePort: PROXIED_PORT, destinationAddress: '127.0.0.1', destinationPort: 3306 });
    for (let n = 1; n < header.length; n++) {
      assert.deepEqual(parseProxyV2(header.subarray(0, n)), { kind: 'incomplete' }, `${n} of ${header.length} bytes`);
    }
    // Bytes after the header (the MySQL handshake) are not part of it.
    const withPayload = Buffer.concat([header, Buffer.from([0x20, 0x00, 0x00, 0x01])]);
    const parsed = parseProxyV2(withPayload);
    assert.equal(parsed.kind === 'header' && parsed.length, header.length);
  });

  it('says none for a stream that does not start with the signature', () => {
    // A HandshakeResponse packet header, and a v1 text header.
    assert.deepEqual(parseProxyV2(Buffer.from([0x55, 0x00, 0x00, 0x01, 0x8d, 0xa6])), { kind: 'none' });
    assert.deepEqual(parseProxyV2(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n')), { kind: 'none' });
    // A partial signature that already diverges.
    assert.deepEqual(parseProxyV2(Buffer.from([0x0d, 0x0a, 0x0d, 0x0b])), { kind: 'none' });
  });

  it('accepts a LOCAL header (no address) and skips TLVs after the addresses', () => {
    const local = Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
    assert.deepEqual(parseProxyV2(local), { kind: 'header', length: 16, address: null });
    // An IPv4 header followed by a 7-byte TLV (type 0x04 NOOP, length 4).
    const base = buildProxyV2({ sourceAddress: '1.2.3.4', sourcePort: 1, destinationAddress: '5.6.7.8', destinationPort: 2 });
    const tlv = Buffer.from([0x04, 0x00, 0x04, 0, 0, 0, 0]);
    const withTlv = Buffer.concat([base, tlv]);
    withTlv.writeUInt16BE(12 + tlv.length, 14);
    const parsed = parseProxyV2(withTlv);
    assert.equal(parsed.kind === 'header' && parsed.length, withTlv.length);
    assert.equal(parsed.kind === 'header' && parsed.address?.sourceAddress, '1.2.3.4');
  });

  it('rejects an unsupported version or command', () => {
    const bad = buildProxyV2({ sourceAddress: '1.2.3.4', sourcePort: 1, destinationAddress: '5.6.7.8', destinationPort: 2 });
    bad[12] = 0x11;
    assert.throws(() => parseProxyV2(bad), /unsupported version/);
    bad[12] = 0x2f;
    assert.throws(() => parseProxyV2(bad), /unsupported command/);
  });
});

/** A TCP connection to the proxy on which `header` (if any) was written first, in `pieces` writes. */
async function socketWithHeader(proxy: TestProxy, header: Buffer | null, pieces = 1): Promise<Socket> {
  const socket = connect({ host: proxy.host, port: proxy.port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  if (header) {
    const step = Math.ceil(header.length / pieces);
    for (let off = 0; off < header.length; off += step) {
      socket.write(header.subarray(off, off + step));
      if (pieces > 1) await new Promise((r) => setTimeout(r, 20));
    }
  }
  return socket;
}

function proxiedHeader(proxy: TestProxy): Buffer {
  return buildProxyV2({ sourceAddress: PROXIED_SOURCE, sourcePort: PROXIED_PORT, destinationAddress: proxy.host, destinationPort: proxy.port });
}

async function backendHost(c: mysql.Connection): Promise<string> {
  const [rows] = await c.query<RowDataPacket[]>('SELECT host FROM information_schema.processlist WHERE id = CONNECTION_ID()');
  return String(rows[0]!.host);
}

function openedLog(proxy: TestProxy, sessionId: number): LogLine | undefined {
  return proxy.logs.find((l) => l.msg === 'session opened' && l.conn === sessionId);
}

describe('PROXY v2 through the proxy', () => {
  let db: MariaDBInstance;
  before(async () => {
    db = await startMariaDB({ name: 'pp', config: { proxy_protocol_networks: '127.0.0.0/8' } });
  });
  after(async () => {
    await db?.destroy();
  });

  describe('inbound (proxy.proxy-protocol: v2)', () => {
    let proxy: TestProxy;
    before(async () => {
      proxy = await startProxy({ backends: [`127.0.0.1:${db.port}`], config: { proxy: { 'proxy-protocol': 'v2' } } });
    });
    after(async () => {
      await proxy?.stop();
    });

    it('a client that sends a header is seen with the address inside it', async () => {
      const stream = await socketWithHeader(proxy, proxiedHeader(proxy));
      const c = await mysql.createConnection({ stream, user: ROOT_USER, password: ROOT_PASSWORD });
      try {
        const session = proxy.kernel.sessions.get(c.threadId!);
        assert.ok(session);
        assert.equal(session.clientAddress, PROXIED_SOURCE);
        assert.equal(session.clientPort, PROXIED_PORT);
        assert.equal(openedLog(proxy, c.threadId!)?.client, `${PROXIED_SOURCE}:${PROXIED_PORT}`);
        const [rows] = await c.query<RowDataPacket[]>('SELECT 1 + 1 AS two');
        assert.equal(rows[0]!.two, 2);
      } finally {
        await c.end();
      }
    });

    it('a header that arrives in pieces is still recognised', async () => {
      const stream = await socketWithHeader(proxy, proxiedHeader(proxy), 4);
      const c = await mysql.createConnection({ stream, user: ROOT_USER, password: ROOT_PASSWORD });
      try {
        assert.equal(proxy.kernel.sessions.get(c.threadId!)?.clientAddress, PROXIED_SOURCE);
      } finally {
        await c.end();
      }
    });

    it('a client without a header still works on the same port (detection is optional)', async () => {
      const c = await mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD });
      try {
        const session = proxy.kernel.sessions.get(c.threadId!);
        assert.equal(session?.clientAddress, '127.0.0.1');
        assert.equal(openedLog(proxy, c.threadId!)?.client, `127.0.0.1:${session?.clientPort}`);
        const [rows] = await c.query<RowDataPacket[]>('SELECT 1 AS one');
        assert.equal(rows[0]!.one, 1);
      } finally {
        await c.end();
      }
    });

    it('without proxy-protocol configured, a header is not taken as an address', async () => {
      const plain = await startProxy({ backends: [`127.0.0.1:${db.port}`] });
      try {
        const stream = await socketWithHeader(plain, proxiedHeader(plain));
        stream.on('error', () => {});
        await assert.rejects(mysql.createConnection({ stream, user: ROOT_USER, password: ROOT_PASSWORD, connectTimeout: 1500 }));
        stream.destroy();
        assert.ok(![...plain.kernel.sessions.values()].some((s) => s.clientAddress === PROXIED_SOURCE));
      } finally {
        await plain.stop();
      }
    });
  });

  describe('outbound (proxy.backend-proxy-protocol: v2)', () => {
    let proxy: TestProxy;
    before(async () => {
      proxy = await startProxy({
        backends: [`127.0.0.1:${db.port}`], config: { proxy: { 'proxy-protocol': 'v2', 'backend-proxy-protocol': 'v2' } },
      });
    });
    after(async () => {
      await proxy?.stop();
    });

    it('the backend sees the address from the inbound header', async () => {
      const stream = await socketWithHeader(proxy, proxiedHeader(proxy));
      const c = await mysql.createConnection({ stream, user: ROOT_USER, password: ROOT_PASSWORD });
      try {
        assert.equal(await backendHost(c), `${PROXIED_SOURCE}:${PROXIED_PORT}`);
      } finally {
        await c.end();
      }
    });

    it('without an inbound header the backend sees the client\'s own address and port, not the proxy\'s', async () => {
      const stream = await socketWithHeader(proxy, null);
      const c = await mysql.createConnection({ stream, user: ROOT_USER, password: ROOT_PASSWORD });
      try {
        assert.equal(await backendHost(c), `127.0.0.1:${stream.localPort}`);
      } finally {
        await c.end();
      }
    });

    it('without backend-proxy-protocol the backend sees the proxy\'s address', async () => {
      const inboundOnly = await startProxy({ backends: [`127.0.0.1:${db.port}`], config: { proxy: { 'proxy-protocol': 'v2' } } });
      try {
        const stream = await socketWithHeader(inboundOnly, proxiedHeader(inboundOnly));
        const c = await mysql.createConnection({ stream, user: ROOT_USER, password: ROOT_PASSWORD });
        try {
          const host = await backendHost(c);
          assert.match(host, /^127\.0\.0\.1:\d+$/);
          assert.notEqual(host, `127.0.0.1:${stream.localPort}`);
        } finally {
          await c.end();
        }
      } finally {
        await inboundOnly.stop();
      }
    });
  });
});
