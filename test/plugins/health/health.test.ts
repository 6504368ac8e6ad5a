// Real components: two MariaDB 10.11 servers (one is stopped and restarted), the proxy in-process with
// the health plugin, mysql2 clients; node:net / node:http stand-ins for a server that greets with an
// ERR packet and for TiDB's HTTP status port. Covers SQL-port checks (interval × retries), recovery, ERR
// greetings, /status 200/500, and the hot-reloadable drain list (with the migration plugins, drained
// sessions really move).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { startMariaDBs, NATIVE_PASSWORD, NATIVE_USER, ROOT_PASSWORD, ROOT_USER, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { reloadPlugin, startProxy, type TestProxy } from '../../harness/proxy.js';
import { ClientPool, portOf, waitFor } from '../../harness/clients.js';

const INTERVAL = 0.3;
const RETRIES = 3;
const TIMEOUT = 0.3;
const HEALTH = { interval: INTERVAL, timeout: TIMEOUT, retries: RETRIES };


const clients = new ClientPool();
const connect = (proxy: TestProxy, user = ROOT_USER, password = ROOT_PASSWORD) => clients.connect(proxy, { user, password, connectTimeout: 5000 });
const { end, closeAll } = clients;



const addr = (db: MariaDBInstance) => `127.0.0.1:${db.port}`;

/** A "server" that answers every connection with ERR 1040 Too many connections, as an overloaded MySQL does. */
async function errGreetingServer(): Promise<{ server: Server; port: number }> {
  const message = Buffer.from('Too many connections');
  const payload = Buffer.concat([Buffer.from([0xff, 0x10, 0x04]), message]);
  const header = Buffer.from([payload.length & 0xff, (payload.length >> 8) & 0xff, payload.length >> 16, 0]);
  const server = createServer((s) => {
    s.on('error', () => {});
    s.end(Buffer.concat([header, payload]));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

/** TiDB's status port: GET /status answers `code` (changeable). */
async function statusServer(): Promise<{ server: HttpServer; port: number; set(code: number): void; hits(): number }> {
  let code = 200;
  let hits = 0;
  const server = createHttpServer((req, res) => {
    if (req.url === '/status') hits++;
    res.writeHead(req.url === '/status' ? code : 404, { 'content-type': 'application/json' });
    res.end('{"connections":0,"version":"8.0.11-TiDB-v7.5.0","git_hash":"x"}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port, set: (c) => (code = c), hits: () => hits };
}

describe('health', () => {
  let dbs: MariaDBInstance[] = [];
  let db0: MariaDBInstance;
  let db1: MariaDBInstance;

  before(async () => {
    dbs = await startMariaDBs(2, { name: 'health' });
    [db0, db1] = dbs as [MariaDBInstance, MariaDBInstance];
  });
  after(async () => {
    await closeAll();
    for (const db of dbs) await db.destroy();
  });

  it(`a stopped mariadbd is unhealthy within interval × retries, no new session gets an error, and one passing check brings it back`, async (t) => {
    const proxy = await startProxy({ backends: [addr(db0), addr(db1)], config: { plugins: [{ name: 'health', config: HEALTH }], proxy: { 'graceful-close-conn-timeout': 1 } }, logLevel: 'info' });
    try {
      await new Promise((r) => setTimeout(r, 2 * INTERVAL * 1000));
      assert.ok(proxy.kernel.backends.list().every((b) => b.healthy), 'both healthy while running');
      let running = true;
      let errors: string[] = [];
      /** Sessions open on db1 when it stopped lose their backend (no credentials to fail over with): expected, and told so. */
      const lostWithDb1: string[] = [];
      let exitedAt = Infinity;
      let sessions = 0;
      const traffic = (async () => {
        while (running) {
          const startedAt = Date.now();
          try {
            const c = await connect(proxy);
            await portOf(c);
            sessions++;
            await end(c);
          } catch (err) {
            if (startedAt < exitedAt && /Backend \S+ went away|Lost connection to backend/.test((err as Error).message)) lostWithDb1.push((err as Error).message);
            else errors.push((err as Error).message);
          }
        }
      })();
      await new Promise((r) => setTimeout(r, 200));
      const stoppedAt = Date.now();
      await db1.stop();
      exitedAt = Date.now();
      const exitedAfter = exitedAt - stoppedAt;
      await waitFor('db1 to be marked unhealthy', () => !proxy.kernel.backends.get(addr(db1))!.healthy, 5000);
      const unhealthyAfter = Date.now() - stoppedAt;
      const event = proxy.logs.find((l) => l.msg === 'backend health' && l['backend'] === addr(db1) && l['healthy'] === false);
      t.diagnostic(`mariadbd exited ${exitedAfter} ms after SIGTERM; unhealthy ${unhealthyAfter} ms after; reason: ${String(event?.['reason'])}`);
      assert.ok(unhealthyAfter <= INTERVAL * RETRIES * 1000 + 250, `unhealthy ${unhealthyAfter} ms after the stop (interval × retries = ${INTERVAL * RETRIES * 1000} ms)`);
      assert.match(String(event?.['reason']), new RegExp(`^${RETRIES} consecutive failed checks: `));
      await new Promise((r) => setTimeout(r, 500));
      running = false;
      await traffic;
      assert.deepEqual(errors, [], 'no session begun after the stop saw an error');
      assert.ok(lostWithDb1.length <= 1, `at most the one session open on db1 when it stopped lost it: ${lostWithDb1.join('; ')}`);
      if (lostWithDb1.length > 0) t.diagnostic(`the session open on db1 at the stop: ${lostWithDb1[0]}`);
      assert.ok(sessions > 20, `${sessions} sessions opened during the outage`);
      assert.ok(proxy.kernel.backends.get(addr(db1)), 'an unhealthy backend stays known (discovery decides membership)');

      const startedAt = Date.now();
      await db1.start();
      await waitFor('db1 to be healthy again', () => proxy.kernel.backends.get(addr(db1))!.healthy, 5000);
      const healthyAfter = Date.now() - startedAt;
      t.diagnostic(`healthy again ${healthyAfter} ms after mariadbd was back`);
      const c = await connect(proxy);
      const d = await connect(proxy);
      assert.deepEqual([await portOf(c), await portOf(d)].sort(), [db0.port, db1.port].sort(), 'new sessions reach it again');
      errors = [];
    } finally {
      await closeAll();
      await proxy.stop();
      if (db1.pid < 0) await db1.start();
    }
  });

  it('a server that greets with ERR (too many connections) is unhealthy; sessions go elsewhere', async () => {
    const bad = await errGreetingServer();
    const proxy = await startProxy({ backends: [`127.0.0.1:${bad.port}`, addr(db0)], config: { plugins: [{ name: 'health', config: HEALTH }] }, logLevel: 'info' });
    try {
      await waitFor('the ERR server to be unhealthy', () => !proxy.kernel.backends.get(`127.0.0.1:${bad.port}`)!.healthy, 3000);
      const event = proxy.logs.find((l) => l.msg === 'backend health' && l['healthy'] === false);
      assert.match(String(event?.['reason']), /ERR 1040: Too many connections/);
      for (let i = 0; i < 4; i++) assert.equal(await portOf(await connect(proxy)), db0.port);
    } finally {
      await closeAll();
      await proxy.stop();
      bad.server.close();
    }
  });

  it('TiDB /status: 500 drains the backend (SQL port still fine), 200 undrains it, no answer counts as a failed check', async () => {
    const status = await statusServer();
    const proxy = await startProxy({
      config: {
        plugins: [
          { name: 'discovery-static', config: { backends: [{ addr: addr(db0), 'status-port': status.port }, { addr: addr(db1) }] } },
          { name: 'health', config: HEALTH },
        ],
      },
      logLevel: 'info',
    });
    try {
      const b0 = () => proxy.kernel.backends.get(addr(db0))!;
      await waitFor('the status port to be checked', () => status.hits() >= 2, 3000);
      assert.equal(b0().draining, false);
      status.set(500);
      await waitFor('db0 to drain on /status 500', () => b0().draining, 3000);
      assert.equal(b0().healthy, true, 'draining, not unhealthy');
      for (let i = 0; i < 4; i++) assert.equal(await portOf(await connect(proxy)), db1.port);
      status.set(200);
      await waitFor('db0 to be undrained on /status 200', () => !b0().draining, 3000);
      await new Promise<void>((r) => status.server.close(() => r()));
      await waitFor('db0 to be unhealthy once its status port is gone', () => !b0().healthy, 3000);
      const event = proxy.logs.find((l) => l.msg === 'backend health' && l['healthy'] === false);
      assert.match(String(event?.['reason']), /status port: .*ECONNREFUSED/);
    } finally {
      await closeAll();
      await proxy.stop();
      status.server.close();
    }
  });

  it('the drain list (hot-reloaded) stops new sessions to a backend and asks for its sessions to move; removing it undrains', async () => {
    const proxy = await startProxy({
      backends: [addr(db0), addr(db1)],
      config: { plugins: [{ name: 'health', config: HEALTH }, { name: 'balance', config: { rebalance: { interval: 0.2 } } }] },
      logLevel: 'debug',
    });
    try {
      const on: Record<number, number[]> = { [db0.port]: [], [db1.port]: [] };
      for (let i = 0; i < 4; i++) {
        const c = await connect(proxy);
        on[await portOf(c)]!.push(c.threadId!);
      }
      assert.equal(on[db1.port]!.length, 2, 'sessions spread over both');
      await reloadPlugin(proxy, 'health', { ...HEALTH, drain: [addr(db1)] });
      await waitFor('db1 to be draining', () => proxy.kernel.backends.get(addr(db1))!.draining, 2000);
      for (let i = 0; i < 6; i++) assert.equal(await portOf(await connect(proxy)), db0.port, 'no new session on the drained backend');
      await waitFor('drain migration requests for both sessions on db1', () => {
        const requested = proxy.logs.filter((l) => l.msg === 'migration requested' && l['reason'] === 'drain').map((l) => l['conn']);
        return on[db1.port]!.every((id) => requested.includes(id));
      }, 3000);
      const targets = new Set(proxy.logs.filter((l) => l.msg === 'migration requested' && l['reason'] === 'drain').map((l) => l['to']));
      assert.deepEqual([...targets], [addr(db0)]);

      await reloadPlugin(proxy, 'health', { ...HEALTH, drain: [] });
      await waitFor('db1 to be undrained', () => !proxy.kernel.backends.get(addr(db1))!.draining, 2000);
      assert.equal(await portOf(await connect(proxy)), db1.port, 'the idlest backend gets sessions again');
    } finally {
      await closeAll();
      await proxy.stop();
    }
  });

  it('a backend on the drain list at start-up gets no session, not even before the first check', async () => {
    const proxy = await startProxy({
      backends: [addr(db0), addr(db1)],
      // A long interval: only the start-up drain list, applied as discovery adds the backend, can keep db1 out.
      config: { plugins: [{ name: 'health', config: { ...HEALTH, interval: 60, drain: [addr(db1)] } }] },
    });
    try {
      assert.equal(proxy.kernel.backends.get(addr(db1))!.draining, true);
      for (let i = 0; i < 6; i++) assert.equal(await portOf(await connect(proxy)), db0.port, 'no new session on the drained backend');
    } finally {
      await closeAll();
      await proxy.stop();
    }
  });

  it('with the migration plugins, drained sessions really move away, and come back half when undrained', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'tiproxy-health-'));
    const stage2 = createHash('sha1').update(createHash('sha1').update(NATIVE_PASSWORD).digest()).digest('hex').toUpperCase();
    writeFileSync(join(dir, 'users'), `${NATIVE_USER}:*${stage2}\n`, { mode: 0o600 }); // a users file must be private
    const proxy = await startProxy({
      backends: [addr(db0), addr(db1)],
      config: {
        plugins: [
          { name: 'credentials-native', config: { 'users-file': join(dir, 'users') } },
          { name: 'migrate-replay' },
          { name: 'health', config: HEALTH },
          { name: 'balance', config: { rebalance: { interval: 0.1, 'evacuate-seconds': 1 } } },
        ],
      },
      logLevel: 'info',
    });
    try {
      const sessions: Connection[] = [];
      for (let i = 0; i < 6; i++) sessions.push(await connect(proxy, NATIVE_USER, NATIVE_PASSWORD));
      await sessions[0]!.query('SET @marker = 42');
      await reloadPlugin(proxy, 'health', { ...HEALTH, drain: [addr(db1)] });
      const drainedIn = await waitFor('every session to leave db1', () => proxy.kernel.backends.get(addr(db1))!.connections === 0, 5000);
      const ports = await Promise.all(sessions.map(portOf));
      assert.ok(ports.every((p) => p === db0.port), `ports ${ports.join(', ')}`);
      const [rows] = await sessions[0]!.query<RowDataPacket[]>('SELECT @marker AS m');
      assert.equal(rows[0]!['m'], 42, 'session state travelled');
      await reloadPlugin(proxy, 'health', { ...HEALTH, drain: [] });
      await waitFor('the rebalancer to even the backends out', () => proxy.kernel.backends.get(addr(db1))!.connections === 3, 5000);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(proxy.kernel.backends.list().map((b) => b.connections), [3, 3], 'and no further (never back and forth)');
      t.diagnostic(`drained in ${drainedIn} ms; results ${JSON.stringify([...proxy.kernel.migrationResults])}`);
    } finally {
      await closeAll();
      await proxy.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
