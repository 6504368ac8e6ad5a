// Real components: two MariaDB 10.11 instances (mariadbd), the proxy in-process (Kernel with the
// built-in plugins), mysql2 as the client, raw node:net sockets as a silent client and as a backend
// that accepts and never greets. Covers KILL, max-connections, handshake timeout, backend dial
// failures, a backend dying mid-query, a client dying mid-result, and what the log says about each.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { startMariaDBs, TEST_DATABASE, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { freePort } from '../../../local-cluster/ports.js';
import { startProxy, type LogLine, type TestProxy } from '../../harness/proxy.js';
import { ClientPool, rejection, waitFor } from '../../harness/clients.js';
import {
  CLIENT_LONG_PASSWORD, DEFAULT_CHARSET_ID, ER_PROXY_BACKEND_LOST, MYSQL_NATIVE_PASSWORD, PROXY_SUPPORTED_CAPABILITIES, SERVER_STATUS_AUTOCOMMIT,
} from '../../../src/kernel/protocol/constants.js';
import { buildGreeting } from '../../../src/kernel/protocol/handshake-packets.js';
import { framePackets } from '../../../src/kernel/protocol/payload-writer.js';


/** Short graceful timeout so stopping a proxy never waits long for a stuck session. */
const BASE_CONFIG = { proxy: { 'graceful-close-conn-timeout': 1 } };

function withBase(config: Record<string, unknown> = {}): Record<string, unknown> {
  const proxy = { ...BASE_CONFIG.proxy, ...((config['proxy'] as Record<string, unknown> | undefined) ?? {}) };
  return { ...config, proxy };
}

const clients = new ClientPool();
const connect = (proxy: { host: string; port: number }, database?: string) => clients.connect(proxy, database ? { database } : {});
/** Sessions here are often killed or cut off: destroy rather than wait for a COM_QUIT answer. */
const closeAll = () => clients.closeAll(false);



function closedLine(proxy: TestProxy, conn: number): LogLine | undefined {
  return proxy.logs.find((l) => l.msg === 'session closed' && l['conn'] === conn);
}

async function expectClosedLog(proxy: TestProxy, conn: number, side: string, reason: string): Promise<LogLine> {
  await waitFor(`'session closed' for conn ${conn}`, () => closedLine(proxy, conn) !== undefined);
  const line = closedLine(proxy, conn)!;
  assert.equal(line['side'], side, `side of ${JSON.stringify(line)}`);
  assert.equal(line['reason'], reason, `reason of ${JSON.stringify(line)}`);
  return line;
}

function backendOf(proxy: TestProxy, c: Connection): string {
  const s = proxy.kernel.sessions.get(c.threadId!);
  assert.ok(s?.backend, `session ${c.threadId} has a backend`);
  return s.backend.addr;
}

async function port(c: Connection): Promise<number> {
  const [rows] = await c.query<RowDataPacket[]>('SELECT @@port AS port');
  return rows[0]!['port'] as number;
}

describe('connection handling', () => {
  let dbs: MariaDBInstance[] = [];
  let db1: MariaDBInstance;
  let db2: MariaDBInstance;
  const addr = (db: MariaDBInstance) => `127.0.0.1:${db.port}`;

  before(async () => {
    dbs = await startMariaDBs(2, { name: 'connhandling' });
    [db1, db2] = dbs as [MariaDBInstance, MariaDBInstance];
  });
  after(async () => {
    await closeAll();
    for (const db of dbs) await db.destroy();
  });

  describe('KILL on one backend', () => {
    let proxy: TestProxy;
    before(async () => {
      proxy = await startProxy({ backends: [addr(db1)], config: withBase(), logLevel: 'info' });
    });
    after(async () => {
      await closeAll();
      await proxy?.stop();
    });

    it('KILL QUERY <proxy id> interrupts the other session\'s query, which keeps working', async () => {
      const a = await connect(proxy);
      const b = await connect(proxy);
      const started = Date.now();
      const sleeping = rejection(a.query('SELECT SLEEP(30)'));
      await waitFor('A to be running SLEEP', async () => {
        const rows = await db1.query<RowDataPacket[]>(
          `SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(30)%'`);
        return rows.length > 0;
      });
      await b.query(`KILL QUERY ${a.threadId}`);
      const err = await sleeping;
      assert.equal(err.errno, 1317, `interrupted: ${err.message}`);
      assert.ok(Date.now() - started < 5000, 'the query ended quickly');
      assert.equal(await port(a), db1.port, 'A still works');
      assert.equal(await port(b), db1.port, 'B still works');
    });

    for (const statement of ['KILL CONNECTION', 'KILL']) {
      it(`${statement} <proxy id> closes the other session; the killer is fine`, async () => {
        const a = await connect(proxy);
        const b = await connect(proxy);
        const aId = a.threadId!;
        await b.query(`${statement} ${aId}`);
        const err = await rejection(a.query('SELECT 1'));
        assert.ok(err, 'A\'s next query fails');
        await waitFor('A\'s session to end', () => !proxy.kernel.sessions.has(aId));
        await expectClosedLog(proxy, aId, 'client', 'killed');
        assert.equal(await port(b), db1.port, 'B still works');
      });
    }

    it('KILL CONNECTION of a session that is running a query ends that query and the session', async () => {
      const a = await connect(proxy);
      const b = await connect(proxy);
      const aId = a.threadId!;
      const started = Date.now();
      const sleeping = rejection(a.query('SELECT SLEEP(30)'));
      await waitFor('A to be running SLEEP', async () => {
        const rows = await db1.query<RowDataPacket[]>(`SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(30)%'`);
        return rows.length > 0;
      });
      await b.query(`KILL CONNECTION ${aId}`);
      const err = await sleeping;
      assert.ok(Date.now() - started < 5000, `ended quickly: ${err.message}`);
      assert.equal(err.errno, 1927, err.message);
      assert.match(err.message, /Connection was killed/);
      await waitFor('A\'s session to end', () => !proxy.kernel.sessions.has(aId));
      await expectClosedLog(proxy, aId, 'client', 'killed');
      assert.equal(await port(b), db1.port);
    });

    it('a KILL CONNECTION the backend refuses (not the owner) kills nothing and leaves no mark', async () => {
      await db1.query(`CREATE USER IF NOT EXISTS 'limited'@'%' IDENTIFIED BY 'limited-pw'`);
      await db1.query(`GRANT SELECT ON ${TEST_DATABASE}.* TO 'limited'@'%'`);
      const a = await connect(proxy);
      const weak = await clients.connect(proxy, { user: 'limited', password: 'limited-pw' });
      const err = await rejection(weak.query(`KILL CONNECTION ${a.threadId}`));
      assert.equal(err.errno, 1095, err.message);
      assert.equal(proxy.kernel.sessions.get(a.threadId!)?.killedBy, 0);
      assert.equal(await port(a), db1.port);
      assert.equal(await port(weak), db1.port);
    });

    it('KILL of an id that is not a proxy session reaches the backend (1094 Unknown thread id)', async () => {
      const b = await connect(proxy);
      const err = await rejection(b.query('KILL 987654'));
      assert.equal(err.errno, 1094, err.message);
      assert.match(err.message, /Unknown thread id/i);
      const err2 = await rejection(b.query('KILL QUERY 987654'));
      assert.equal(err2.errno, 1094, err2.message);
      assert.equal(await port(b), db1.port);
    });

    it('logs client-quit when a client says goodbye, and nothing per query at info level', async () => {
      const c = await connect(proxy);
      const id = c.threadId!;
      await c.query('SELECT 1');
      const before = proxy.logs.length;
      for (let i = 0; i < 100; i++) await c.query('SELECT ? AS n', [i]);
      await c.execute('SELECT ? AS n', [1]);
      assert.equal(proxy.logs.length, before, `no log lines per query: ${JSON.stringify(proxy.logs.slice(before, before + 3))}`);
      await c.end();
      await expectClosedLog(proxy, id, 'client', 'client-quit');
    });
  });

  describe('KILL across two backends', () => {
    let proxy: TestProxy;
    before(async () => {
      proxy = await startProxy({ backends: [addr(db1), addr(db2)], config: withBase(), logLevel: 'info' });
    });
    after(async () => {
      await closeAll();
      await proxy?.stop();
    });

    async function pairOnTwoBackends(): Promise<[Connection, Connection]> {
      const a = await connect(proxy);
      const b = await connect(proxy);
      assert.notEqual(backendOf(proxy, a), backendOf(proxy, b), 'the balancer puts two sessions on two idle backends');
      return [a, b];
    }

    it('KILL CONNECTION closes a session on the other backend', async () => {
      const [a, b] = await pairOnTwoBackends();
      const aId = a.threadId!;
      await b.query(`KILL CONNECTION ${aId}`);
      await waitFor('A\'s session to end', () => !proxy.kernel.sessions.has(aId));
      await rejection(a.query('SELECT 1'));
      await expectClosedLog(proxy, aId, 'client', 'killed');
      assert.ok(await port(b));
      await closeAll();
      await waitFor('sessions to close', () => proxy.kernel.sessions.size === 0);
    });

    it('KILL QUERY of a session on the other backend gives a clear error', async () => {
      const [a, b] = await pairOnTwoBackends();
      const err = await rejection(b.query(`KILL QUERY ${a.threadId}`));
      assert.ok(err.errno && err.errno !== 1105, `a specific code, got ${err.errno}`);
      assert.doesNotMatch(err.message, /unknown error/i);
      assert.match(err.message, new RegExp(`KILL QUERY ${a.threadId}`));
      assert.match(err.message, /other|not on this/i);
      assert.ok(await port(a));
      assert.ok(await port(b));
      await closeAll();
      await waitFor('sessions to close', () => proxy.kernel.sessions.size === 0);
    });
  });

  describe('max-connections', () => {
    let proxy: TestProxy;
    before(async () => {
      proxy = await startProxy({ backends: [addr(db1)], config: withBase({ proxy: { 'max-connections': 2 } }), logLevel: 'info' });
    });
    after(async () => {
      await closeAll();
      await proxy?.stop();
    });

    it('refuses the third client with ERR 1040 naming the limit, and admits one after a close', async () => {
      const c1 = await connect(proxy);
      const c2 = await connect(proxy);
      const err = await rejection(connect(proxy));
      assert.equal(err.errno, 1040, err.message);
      assert.match(err.message, /max-connections is 2/);
      await c1.end();
      await waitFor('a slot to free up', () => proxy.kernel.sessions.size < 2);
      const c3 = await connect(proxy);
      assert.equal(await port(c3), db1.port);
      assert.equal(await port(c2), db1.port);
    });
  });

  describe('handshake timeout', () => {
    let proxy: TestProxy;
    before(async () => {
      proxy = await startProxy({ backends: [addr(db1)], config: withBase({ proxy: { 'handshake-timeout': 1 } }), logLevel: 'info' });
    });
    after(async () => {
      await closeAll();
      await proxy?.stop();
    });

    it('disconnects a client that sends nothing within ~1 s and logs why', async () => {
      const started = Date.now();
      const socket = netConnect({ host: proxy.host, port: proxy.port });
      socket.on('error', () => {});
      socket.resume(); // read (and ignore) the greeting
      await once(socket, 'connect');
      await once(socket, 'close');
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 900 && elapsed < 1500, `closed after ${elapsed} ms`);
      const line = proxy.logs.find((l) => l.msg === 'session closed' && l['reason'] === 'handshake-timeout');
      assert.ok(line, `a handshake-timeout log line: ${JSON.stringify(proxy.logs.filter((l) => l.msg === 'session closed'))}`);
      assert.equal(line['side'], 'client');
      assert.equal(proxy.kernel.sessions.size, 0);
    });
  });

  describe('backend dial failures', () => {
    let silent: Server;
    const silentSockets = new Set<Socket>();
    let silentPort: number;
    before(async () => {
      silent = createServer((s) => {
        silentSockets.add(s);
        s.on('error', () => {});
        s.on('close', () => silentSockets.delete(s));
      });
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
      silentPort = (silent.address() as { port: number }).port;
    });
    after(async () => {
      for (const s of silentSockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    });

    /** Connects `clients` clients (kept open, so the broken backend always has the fewest connections). */
    async function everyClientReachesTheRealOne(backends: string[], clients: number, failure: RegExp): Promise<void> {
      const proxy = await startProxy({ backends, config: withBase({ proxy: { 'backend-connect-timeout': 1 } }), logLevel: 'info' });
      try {
        for (let i = 0; i < clients; i++) {
          const started = Date.now();
          const c = await connect(proxy);
          assert.ok(Date.now() - started < 2500, `client ${i} took ${Date.now() - started} ms`);
          assert.equal(await port(c), db1.port);
        }
        const failed = proxy.logs.filter((l) => l.msg === 'backend dial failed');
        assert.ok(failed.length >= clients - 1, `the broken backend was tried: ${JSON.stringify(failed)}`);
        for (const l of failed) {
          assert.equal(l['backend'], backends[0]);
          assert.match(String(l['err']), failure);
        }
      } finally {
        await closeAll();
        await proxy.stop();
      }
    }

    it('a backend that accepts and never greets is given up after backend-connect-timeout; the next one is used', async () => {
      await everyClientReachesTheRealOne([`127.0.0.1:${silentPort}`, addr(db1)], 3, /timed out/);
    });

    it('a closed port is skipped and the next backend is used', async () => {
      const closed = await freePort();
      await everyClientReachesTheRealOne([`127.0.0.1:${closed}`, addr(db1)], 4, /ECONNREFUSED/);
    });

    it('a backend that greets and then drops the login (shutting down) is left for the next one; the client never notices', async () => {
      // Greets like a server, then closes as soon as the login arrives: what a mariadbd being stopped can do.
      const sockets = new Set<Socket>();
      const dropping = createServer((s) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => {});
        const greeting = buildGreeting({
          protocolVersion: 10, serverVersion: '5.5.5-10.11.0-MariaDB', connectionId: 1, salt: Buffer.alloc(20, 0x41),
          // MariaDB 10.11's: CLIENT_MYSQL clear and its extended capabilities (mysql2 negotiates EXTENDED_METADATA).
          capabilities: PROXY_SUPPORTED_CAPABILITIES & ~CLIENT_LONG_PASSWORD, extendedCapabilities: 0x1d,
          charset: DEFAULT_CHARSET_ID, status: SERVER_STATUS_AUTOCOMMIT,
          authPlugin: MYSQL_NATIVE_PASSWORD,
        });
        s.write(framePackets(greeting, 0).packet);
        s.once('data', () => s.destroy());
      });
      await new Promise<void>((r) => dropping.listen(0, '127.0.0.1', r));
      const droppingAddr = `127.0.0.1:${(dropping.address() as { port: number }).port}`;
      const proxy = await startProxy({ backends: [droppingAddr, addr(db1)], config: withBase(), logLevel: 'info' });
      try {
        for (let i = 0; i < 4; i++) {
          const c = await connect(proxy); // kept open: the dropping backend always has the fewest sessions
          assert.equal(await port(c), db1.port);
        }
        const retried = proxy.logs.filter((l) => l.msg === 'backend failed during login; trying another');
        assert.ok(retried.length >= 3, `the dropping backend was tried and left: ${JSON.stringify(retried)}`);
        for (const l of retried) assert.equal(l['backend'], droppingAddr);
      } finally {
        await closeAll();
        await proxy.stop();
        for (const s of sockets) s.destroy();
        await new Promise<void>((r) => dropping.close(() => r()));
      }
    });

    it('with no reachable backend the client gets 9001 naming the address, quickly; the proxy keeps accepting', async () => {
      const closed = await freePort();
      const proxy = await startProxy({ backends: [`127.0.0.1:${closed}`], config: withBase(), logLevel: 'info' });
      try {
        for (let i = 0; i < 2; i++) {
          const started = Date.now();
          const err = await rejection(connect(proxy));
          assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
          assert.equal(err.errno, 9001, err.message);
          assert.match(err.message, /no backend/i);
          assert.ok(err.message.includes(`127.0.0.1:${closed}`), err.message);
          assert.doesNotMatch(err.message, /unknown error/i);
        }
        await waitFor('sessions to close', () => proxy.kernel.sessions.size === 0);
        const line = proxy.logs.find((l) => l.msg === 'session closed');
        assert.ok(line?.['side'] && line['reason'], JSON.stringify(line));
      } finally {
        await closeAll();
        await proxy.stop();
      }
    });
  });

  describe('a client dies mid-result', () => {
    let proxy: TestProxy;
    before(async () => {
      proxy = await startProxy({ backends: [addr(db1)], config: withBase(), logLevel: 'info' });
    });
    after(async () => {
      await closeAll();
      await proxy?.stop();
    });

    it('the backend thread goes away and the proxy has no session left', async () => {
      const c = await connect(proxy, TEST_DATABASE);
      const session = proxy.kernel.sessions.get(c.threadId!)!;
      const thread = session.backendConnectionId;
      const inner = (c as unknown as { connection: { stream: Socket } }).connection;
      const sent = rejection(c.query('SELECT seq, REPEAT(\'x\', 20) AS pad FROM seq_1_to_200000'));
      await once(inner.stream, 'data');
      inner.stream.destroy();
      await sent;
      const dead = Date.now();
      await waitFor('the proxy to drop the session', () => proxy.kernel.sessions.size === 0, 2000);
      await waitFor('the backend thread to go away', async () => {
        const rows = await db1.query<RowDataPacket[]>('SELECT ID FROM information_schema.PROCESSLIST WHERE ID = ?', [thread]);
        return rows.length === 0;
      }, 2000);
      assert.ok(Date.now() - dead < 2500);
      const line = closedLine(proxy, c.threadId!);
      assert.equal(line?.['side'], 'client', JSON.stringify(line));
    });
  });

  // Last: it kills db2's server.
  describe('a backend dies mid-query', () => {
    let proxy: TestProxy;
    before(async () => {
      proxy = await startProxy({ backends: [addr(db1), addr(db2)], config: withBase(), logLevel: 'info' });
    });
    after(async () => {
      await closeAll();
      await proxy?.stop();
    });

    it('the session on it gets 9006 naming the backend, then closes (no credentials to fail over); others keep working; new clients get in', async () => {
      const a0 = await connect(proxy);
      const b0 = await connect(proxy);
      assert.notEqual(backendOf(proxy, a0), backendOf(proxy, b0));
      // A is the session on db2 (the one to kill), B the one on db1.
      const [a, b] = backendOf(proxy, a0) === addr(db2) ? [a0, b0] : [b0, a0];
      const aId = a.threadId!;
      const sleeping = rejection(a.query('SELECT SLEEP(10)'));
      await waitFor('A to be running SLEEP', async () => {
        const rows = await db2.query<RowDataPacket[]>(`SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(10)%'`);
        return rows.length > 0;
      });
      const killedAt = Date.now();
      await db2.kill();
      const err = await sleeping;
      assert.ok(Date.now() - killedAt < 2000, `A's query ended ${Date.now() - killedAt} ms after the kill`);
      assert.equal(err.errno, ER_PROXY_BACKEND_LOST, err.message);
      assert.ok(err.message.includes(addr(db2)), err.message);
      assert.match(err.message, /effect is unknown/);
      await expectClosedLog(proxy, aId, 'backend', 'backend-lost');
      assert.equal(await port(b), db1.port, 'B on the other backend keeps working');
      for (let i = 0; i < 3; i++) {
        const c = await connect(proxy);
        assert.equal(await port(c), db1.port, 'a new client lands on the live backend');
      }
    });
  });
});
