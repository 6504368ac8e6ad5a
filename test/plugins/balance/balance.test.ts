// Real components: three MariaDB 10.11 servers, the proxy in-process (static discovery with labels,
// health, balance), mysql2 clients. Covers the even spread of many concurrent sessions, zone
// preference, label isolation, the random policy, and the rebalance loop asking for moves to a new
// idle backend (rate-limited, oldest first, one way).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ROOT_PASSWORD, ROOT_USER, startMariaDBs, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { reloadPlugin, startProxy, type LogLine, type TestProxy } from '../../harness/proxy.js';
import { ClientPool, portOf, waitFor } from '../../harness/clients.js';

interface MysqlError extends Error {
  errno?: number;
}


const { connect, end, closeAll } = new ClientPool();



const addr = (db: MariaDBInstance) => `127.0.0.1:${db.port}`;
const requested = (proxy: TestProxy, reason?: string): LogLine[] =>
  proxy.logs.filter((l) => l.msg === 'migration requested' && (reason === undefined || l['reason'] === reason));

describe('balance', () => {
  let dbs: MariaDBInstance[] = [];
  let db0: MariaDBInstance;
  let db1: MariaDBInstance;
  let db2: MariaDBInstance;

  before(async () => {
    dbs = await startMariaDBs(3, { name: 'balance' });
    [db0, db1, db2] = dbs as [MariaDBInstance, MariaDBInstance, MariaDBInstance];
  });
  after(async () => {
    await closeAll();
    for (const db of dbs) await db.destroy();
  });

  it('300 sessions arriving 30 at a time over 3 equal backends end up within ±1 of even', async (t) => {
    const proxy = await startProxy({ backends: dbs.map(addr), logLevel: 'info' });
    try {
      for (let wave = 0; wave < 10; wave++) await Promise.all(Array.from({ length: 30 }, () => connect(proxy)));
      const counts = proxy.kernel.backends.list().map((b) => b.connections);
      t.diagnostic(`connections per backend: ${counts.join(', ')}`);
      for (const n of counts) assert.ok(n >= 99 && n <= 101, `counts ${counts.join(', ')}`);
      assert.equal(counts.reduce((a, b) => a + b, 0), 300);
      await new Promise((r) => setTimeout(r, 1200));
      assert.equal(requested(proxy).length, 0, 'nothing to rebalance');
    } finally {
      await closeAll();
      await proxy.stop();
    }
  });

  it('prefers backends in the proxy\'s zone, uses others only when the zone has none, and moves sessions home', async () => {
    const proxy = await startProxy({
      config: {
        plugins: [
          { name: 'discovery-static', config: { backends: [{ addr: addr(db1), labels: { zone: 'b' } }] } },
          { name: 'balance', config: { labels: { zone: 'a' }, rebalance: { interval: 0.2 } } },
        ],
      },
      logLevel: 'debug',
    });
    try {
      const remote: number[] = [];
      for (let i = 0; i < 3; i++) {
        const c = await connect(proxy);
        assert.equal(await portOf(c), db1.port, 'no backend in zone a yet: zone b serves');
        remote.push(c.threadId!);
      }
      await reloadPlugin(proxy, 'discovery-static', { backends: [{ addr: addr(db1), labels: { zone: 'b' } }, { addr: addr(db0), labels: { zone: 'a' } }, { addr: addr(db2), labels: { zone: 'a' } }] });
      const ports = new Set<number>();
      for (let i = 0; i < 6; i++) ports.add(await portOf(await connect(proxy)));
      assert.deepEqual([...ports].sort(), [db0.port, db2.port].sort(), 'new sessions stay in zone a even though zone b is idler');
      await waitFor('location moves for every session in zone b', () => remote.every((id) => requested(proxy, 'location').some((l) => l['conn'] === id)), 3000);
      for (const l of requested(proxy, 'location')) assert.ok(l['to'] === addr(db0) || l['to'] === addr(db2), JSON.stringify(l));
      assert.equal(requested(proxy).filter((l) => l['to'] === addr(db1)).length, 0, 'nothing is sent back to zone b');
    } finally {
      await closeAll();
      await proxy.stop();
    }
  });

  it('label isolation: only backends with the proxy\'s labels get sessions, even when they cannot take any', async () => {
    const plugins = (labels: Record<string, string>) => [
      { name: 'discovery-static', config: { backends: [{ addr: addr(db0), labels: { group: 'x' } }, { addr: addr(db1), labels: { group: 'y' } }] } },
      { name: 'balance', config: { labels } },
    ];
    const proxy = await startProxy({ config: { plugins: plugins({ group: 'x' }) }, logLevel: 'info' });
    try {
      for (let i = 0; i < 5; i++) assert.equal(await portOf(await connect(proxy)), db0.port);
      proxy.kernel.backends.setDraining(addr(db0), true);
      const err = await connect(proxy).then(() => undefined, (e: MysqlError) => e);
      assert.equal(err?.errno, 9001, 'the other group is never used as a fallback');
      assert.match(err!.message, /no healthy backend/i);
      // The error names each backend and why it is out.
      assert.ok(err!.message.includes(`${addr(db0)}: draining`), err!.message);
      assert.ok(err!.message.includes(`${addr(db1)}: not chosen by the routing plugins`), err!.message);
      proxy.kernel.backends.setHealth(addr(db1), false, 'connect ECONNREFUSED');
      const unhealthy = await connect(proxy).then(() => undefined, (e: MysqlError) => e);
      assert.ok(unhealthy!.message.includes(`${addr(db1)}: unhealthy (connect ECONNREFUSED)`), unhealthy!.message);
      proxy.kernel.backends.setHealth(addr(db1), true, '');
      proxy.kernel.backends.setDraining(addr(db0), false);
      await reloadPlugin(proxy, 'balance', { labels: { group: 'z' } });
      const refused = await connect(proxy).then(() => undefined, (e: MysqlError) => e);
      assert.equal(refused?.errno, 9001);
      assert.match(refused!.message, /no backend with labels group=z/);
    } finally {
      await closeAll();
      await proxy.stop();
    }
  });

  it('random policy uses every eligible backend', async () => {
    const proxy = await startProxy({ backends: dbs.map(addr), config: { plugins: [{ name: 'balance', config: { policy: 'random' } }] }, logLevel: 'info' });
    try {
      proxy.kernel.backends.setDraining(addr(db2), true);
      const ports = new Set<number>();
      for (let i = 0; i < 24; i++) {
        const c = await connect(proxy);
        ports.add(await portOf(c));
        await end(c);
      }
      assert.deepEqual([...ports].sort(), [db0.port, db1.port].sort());
    } finally {
      await closeAll();
      await proxy.stop();
    }
  });

  it('the rebalance loop asks to move sessions from a busy backend to a new idle one: rate-limited, oldest first, one way', async (t) => {
    const proxy = await startProxy({
      backends: [addr(db0)],
      // With credentials and state replay the moves really happen (a session that cannot move is skipped).
      config: { plugins: [
        { name: 'balance', config: { rebalance: { interval: 0.1, 'migrations-per-second': 5 } } },
        { name: 'credentials-native', config: { 'service-account': { user: ROOT_USER, password: ROOT_PASSWORD } } },
        { name: 'migrate-replay' },
      ] },
      logLevel: 'debug',
    });
    try {
      const ids: number[] = [];
      for (let i = 0; i < 20; i++) {
        ids.push((await connect(proxy)).threadId!);
        await new Promise((r) => setTimeout(r, 2)); // distinct ages
      }
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(requested(proxy).length, 0, 'a single backend has nothing to balance with');
      await reloadPlugin(proxy, 'discovery-static', { backends: [{ addr: addr(db0) }, { addr: addr(db1) }] });
      await waitFor('the first move', () => requested(proxy, 'rebalance').length > 0, 2000);
      const firstAt = requested(proxy, 'rebalance')[0]!.time as number;
      await waitFor('moves to stop (balanced)', async () => {
        const n = requested(proxy, 'rebalance').length;
        await new Promise((r) => setTimeout(r, 600));
        return n === requested(proxy, 'rebalance').length;
      }, 6000);
      const moves = requested(proxy, 'rebalance');
      const times = moves.map((l) => (l.time as number) - firstAt);
      t.diagnostic(`${moves.length} moves at +${times.join(', +')} ms`);
      // 20 on db0, 0 on db1: requested moves count as done, so it stops at 11/9 (11 ≤ (9 + 1) × 1.2).
      assert.equal(moves.length, 9);
      assert.deepEqual(moves.map((l) => l['conn']), ids.slice(0, 9), 'oldest sessions first');
      assert.ok(moves.every((l) => l['to'] === addr(db1)), 'all towards the idle backend');
      // 5 per second: the 9th move cannot come before ~1.4 s after the first.
      assert.ok(times[8]! >= 1300, `9 moves within ${times[8]} ms exceeds 5 per second`);
      assert.ok(moves.filter((_, i) => times[i]! < 1000).length <= 6, 'at most about 5 in the first second');
      // New sessions see db1 as the idler one (requested moves count there), and nothing moves back.
      const extra = await connect(proxy);
      const landed = await portOf(extra);
      assert.equal(landed, db1.port, `the next session went to ${landed}; backends ${JSON.stringify(proxy.kernel.backends.list().map((b) => [b.addr, b.connections, b.healthy]))}; `
        + `its log: ${JSON.stringify(proxy.logs.filter((l) => l['conn'] === extra.threadId || /dial|health/.test(l.msg)))}`);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(requested(proxy).filter((l) => l['to'] === addr(db0)).length, 0, 'never back');
    } finally {
      await closeAll();
      await proxy.stop();
    }
  });

  it('asks each session that cannot move (no credentials) once, then leaves it alone', async () => {
    const proxy = await startProxy({
      backends: [addr(db0)],
      config: { plugins: [{ name: 'balance', config: { rebalance: { interval: 0.1, 'migrations-per-second': 50 } } }] },
      logLevel: 'debug',
    });
    try {
      const ids: number[] = [];
      for (let i = 0; i < 6; i++) ids.push((await connect(proxy)).threadId!);
      await reloadPlugin(proxy, 'discovery-static', { backends: [{ addr: addr(db0) }, { addr: addr(db1) }] });
      await waitFor('every session refused once', () => ids.every((id) => proxy.kernel.unmovableReason(id) !== null), 5000);
      await new Promise((r) => setTimeout(r, 800)); // a few more rebalance rounds
      const perSession = ids.map((id) => requested(proxy, 'rebalance').filter((l) => l['conn'] === id).length);
      assert.deepEqual(perSession, ids.map(() => 1), 'one request per session, no repeats');
      assert.match(proxy.kernel.unmovableReason(ids[0]!)!, /no credentials for user root/);
      assert.equal(proxy.kernel.requestMigration(ids[0]!, 'manual', addr(db1)), false, 'later requests refused');
      assert.equal(proxy.kernel.backends.get(addr(db0))!.connections, 6, 'nobody moved');
    } finally {
      await closeAll();
      await proxy.stop();
    }
  });
});
