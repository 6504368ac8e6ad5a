// TiDB session-token migration, end to end: the proxy in-process with migrate-tidb-token, real mysql2
// clients, and TiDB-behaviour emulators (test/harness/tidb-emulator — TiDB cannot be installed here;
// the emulator is the only stand-in). Covers: state and prepared statements moving under their
// original ids with a token login; the emulator's token rule (tampered, expired, wrong user) and a
// migration whose token is refused; TiDB's 8146 refusal as a veto; draining on /status 500; the
// cluster-wide veto while a TiDB has no signing cert; non-TiDB backends left alone.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { definePlugin, type TiproxyPlugin } from '../../../src/plugin.js';
import { ClientPool, waitFor } from '../../harness/clients.js';
import { startProxy, type LogLine, type TestProxy } from '../../harness/proxy.js';
import {
  createSessionToken, startTidbEmulator, TidbEmulatorCluster, tokenLogin, type TidbEmulator,
} from '../../harness/tidb-emulator/index.js';

const USER = 'app';
const PASSWORD = 'app-secret';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** New sessions go to this backend (when set), so each test knows where a session starts. */
let pinned: string | null = null;
const pinNewSessions = definePlugin({
  name: 'pin-new-sessions',
  version: '1.0.0',
  apply({ hooks }) {
    hooks.selectBackend.tap({ name: 'pin-new-sessions', stage: 10 }, (ctx) => {
      if (pinned && ctx.reason === 'new-session') ctx.restrict(ctx.backends.filter((b) => b.addr === pinned));
      return undefined;
    });
  },
}) as TiproxyPlugin<never>;

const clients = new ClientPool();

function staticBackends(list: TidbEmulator[]): Record<string, unknown> {
  return { name: 'discovery-static', config: { backends: list.map((e) => ({ addr: e.addr, 'status-port': e.statusPort })) } };
}

// Each test's first session is the proxy's first client: it only works because the kernel reads a
// backend's greeting before greeting it (TiDB offers no CLIENT_SESSION_TRACK).
async function startTidbProxy(list: TidbEmulator[], extra: Array<Record<string, unknown>> = [], tidbConfig: Record<string, unknown> = {}): Promise<TestProxy> {
  return startProxy({
    plugins: [pinNewSessions],
    config: {
      plugins: [
        staticBackends(list),
        { name: 'migrate-tidb-token', config: { 'signing-cert-check': { interval: 0.2, timeout: 1 }, ...tidbConfig } },
        { name: 'pin-new-sessions' },
        ...extra,
      ],
    },
  });
}

function sessionOf(proxy: TestProxy, c: Connection) {
  return proxy.kernel.sessions.get(c.threadId!)!;
}

function backendOf(proxy: TestProxy, c: Connection): string {
  return sessionOf(proxy, c).backend!.addr;
}

/** Requests a move to `to` and waits until it happened or the request is gone (vetoed, failed). */
async function migrate(proxy: TestProxy, c: Connection, to: string, ms = 5000): Promise<void> {
  const from = backendOf(proxy, c);
  assert.ok(proxy.kernel.requestMigration(c.threadId!, 'test', to), 'request accepted');
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && backendOf(proxy, c) === from && !lastMigrationLog(proxy, c.threadId!)) await sleep(10);
}

function lastMigrationLog(proxy: TestProxy, conn: number): LogLine | undefined {
  return [...proxy.logs].reverse().find((l) => l['conn'] === conn && /^migration (vetoed|failed)|^session migrated/.test(l.msg));
}

async function row(c: Connection, sql: string): Promise<Record<string, unknown>> {
  const [rows] = await c.query<RowDataPacket[]>(sql);
  return rows[0]!;
}

describe('migrate-tidb-token', () => {
  const cluster = new TidbEmulatorCluster({ users: { [USER]: PASSWORD, root: '' } });
  let a: TidbEmulator;
  let b: TidbEmulator;
  /** Same cluster, clock two minutes ahead: every token from a or b looks expired to it. */
  let skewed: TidbEmulator;
  let proxy: TestProxy;

  const connect = (database = 'test') => clients.connect(proxy, { user: USER, password: PASSWORD, database });

  before(async () => {
    [a, b, skewed] = await Promise.all([
      startTidbEmulator({ cluster }), startTidbEmulator({ cluster }), startTidbEmulator({ cluster, clockOffsetMs: 120_000 }),
    ]);
    // migrate-replay too, as in a mixed fleet: it must leave sessions migrate-tidb-token moves alone.
    proxy = await startTidbProxy([a, b, skewed], [{ name: 'balance', config: { rebalance: { enabled: false } } }, { name: 'migrate-replay' }]);
  });
  after(async () => {
    await clients.closeAll();
    await proxy?.stop();
    await Promise.all([a, b, skewed].map((e) => e?.stop()));
  });

  it('moves a session with its database, variables, user variables and prepared statements, logging in with a session token', async () => {
    pinned = a.addr;
    const c = await connect();
    assert.equal(backendOf(proxy, c), a.addr);
    await c.query("INSERT INTO kv VALUES ('k1', 'shared by the cluster')");
    await c.query("SET SESSION sql_mode = 'ANSI_QUOTES,STRICT_ALL_TABLES', time_zone = '+03:00', tx_isolation = 'READ-COMMITTED'");
    await c.query('SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci');
    await c.query("SET @i = 42, @s = 'h\u00e9llo \\\\ ''quoted''', @n = NULL, @d = 2.5");
    const statements = ['SELECT v FROM kv WHERE k = ?', "SELECT ? + 1 AS r, CONCAT(?, '-x') AS s"];
    const params = [['k1'], [41, 'p']];
    const before = await Promise.all(statements.map((sql, i) => c.execute<RowDataPacket[]>(sql, params[i])));
    const session = sessionOf(proxy, c);
    const ids = [...session.state.statements.keys()].sort();
    assert.equal(ids.length, 2);
    const read = 'SELECT DATABASE() AS db, @@sql_mode AS mode, @@time_zone AS tz, @@tx_isolation AS iso, @@collation_connection AS coll, '
      + '@i AS i, @s AS s, @n AS n, @d AS d';
    const stateBefore = await row(c, read);
    const tokenLoginsBefore = b.logins.filter((l) => l.plugin === 'tidb_session_token').length;

    const started = Date.now();
    await migrate(proxy, c, b.addr);
    const tookMs = Date.now() - started;
    assert.equal(backendOf(proxy, c), b.addr, `moved: ${JSON.stringify(lastMigrationLog(proxy, c.threadId!))}`);
    assert.ok(tookMs < 1000, `migration took ${tookMs} ms`);

    // The new TiDB saw the token login, as the session's user.
    const tokenLogins = b.logins.filter((l) => l.plugin === 'tidb_session_token');
    assert.equal(tokenLogins.length, tokenLoginsBefore + 1);
    assert.deepEqual(tokenLogins.at(-1), { user: USER, plugin: 'tidb_session_token', ok: true });

    const stateAfter = await row(c, `${read}, @@port AS port`);
    assert.equal(stateAfter['port'], b.port);
    delete stateAfter['port'];
    assert.deepEqual(stateAfter, stateBefore);
    assert.equal(stateAfter['s'], "h\u00e9llo \\ 'quoted'");
    assert.equal(stateAfter['mode'], 'ANSI_QUOTES,STRICT_ALL_TABLES');

    // TiDB restored the statements under their original ids: the kernel translates nothing.
    assert.equal(session.state.idsTranslated, false, 'no id translation needed');
    assert.deepEqual([...session.state.statements.values()].map((s) => [s.clientId, s.backendId]).sort(), ids.map((id) => [id, id]));
    const afterRows = await Promise.all(statements.map((sql, i) => c.execute<RowDataPacket[]>(sql, params[i])));
    assert.deepEqual(afterRows.map((r) => r[0]), before.map((r) => r[0]));
    assert.deepEqual(afterRows[0]![0], [{ v: 'shared by the cluster' }]);
    // A new statement on B gets an id after the restored ones.
    await c.execute('SELECT ? AS again', [1]);
    assert.equal(new Set(sessionOf(proxy, c).state.statements.keys()).size, 3);
    assert.ok(![...a.queries, ...b.queries].some((q) => /information_schema/i.test(q)), 'migrate-replay did not query TiDB');
    await waitFor('the old backend connection to close', () => a.sessionCount() === 0, 2000);
    await clients.end(c);
  });

  it('the emulator refuses tampered, expired and foreign tokens (TiDB\'s rule)', async () => {
    const direct = await clients.connect(a, { user: USER, password: PASSWORD });
    const token = String((await row(direct, 'SHOW SESSION_STATES'))['Session_token']);
    const parsed = JSON.parse(token) as Record<string, string>;
    assert.deepEqual(Object.keys(parsed), ['username', 'sign-time', 'expire-time', 'signature']);

    assert.deepEqual(await tokenLogin(b, USER, token), { ok: true }, 'a fresh token from another server of the cluster logs in');
    const refused = async (user: string, t: string, reason: RegExp) => {
      const r = await tokenLogin(b, user, t);
      assert.equal(r.ok, false, `refused: ${t}`);
      if (r.ok) return;
      assert.equal(r.code, 1045);
      assert.match(r.message, reason);
    };
    await refused(USER, JSON.stringify({ ...parsed, 'expire-time': new Date(Date.now() + 3_600_000).toISOString() }), /signature verification failure/);
    await refused('root', JSON.stringify({ ...parsed, username: 'root' }), /signature verification failure/);
    await refused('root', token, /username does not match/);
    await refused(USER, createSessionToken(USER, cluster.privateKey, 60_000, Date.now() - 120_000), /token expired/);
    await refused(USER, createSessionToken(USER, new TidbEmulatorCluster().privateKey, 60_000), /signature verification failure/);
    await refused(USER, 'not json', /not JSON/);
    await clients.end(direct);
  });

  it('a token the target refuses fails the migration; the session stays on its TiDB and keeps working', async () => {
    pinned = a.addr;
    const c = await connect();
    await c.query('SET @keep = 7');
    const [prepared] = await c.execute<RowDataPacket[]>('SELECT ? AS p', [5]);
    await migrate(proxy, c, skewed.addr);
    assert.equal(backendOf(proxy, c), a.addr);
    const log = lastMigrationLog(proxy, c.threadId!);
    assert.match(String(log?.msg), /^migration failed: .*session token: token expired/);
    assert.deepEqual(skewed.logins.at(-1), { user: USER, plugin: 'tidb_session_token', ok: false, reason: skewed.logins.at(-1)!.reason });
    assert.match(String(skewed.logins.at(-1)!.reason), /token expired/);
    const state = await row(c, 'SELECT @keep AS k, @@port AS port');
    assert.deepEqual(state, { k: 7, port: a.port });
    assert.deepEqual((await c.execute<RowDataPacket[]>('SELECT ? AS p', [5]))[0], prepared);
    await clients.end(c);
  });

  it('a session TiDB refuses to export (temporary table: error 8146) is vetoed with TiDB\'s reason and stays', async () => {
    pinned = a.addr;
    const c = await connect();
    await c.query('CREATE TEMPORARY TABLE tmp1 (x INT)');
    await c.query('SET @still = 1');
    const logins = b.logins.length;
    await migrate(proxy, c, b.addr, 3000);
    assert.equal(backendOf(proxy, c), a.addr);
    const log = lastMigrationLog(proxy, c.threadId!);
    assert.match(String(log?.msg), /^migration vetoed: TiDB 127\.0\.0\.1:\d+ refuses to export the session \(error 8146\): cannot migrate the current session: session has local temporary tables$/);
    assert.equal(b.logins.length, logins, 'the target was never logged in to');
    assert.ok(!proxy.logs.some((l) => l.level >= 50 && l['conn'] === c.threadId), 'a veto is not logged as a plugin failure');
    assert.deepEqual(await row(c, 'SELECT @still AS s, @@port AS port'), { s: 1, port: a.port });
    proxy.kernel.cancelMigration(c.threadId!);
    await clients.end(c);
  });
});

describe('migrate-tidb-token: draining a TiDB whose /status answers 500', () => {
  const cluster = new TidbEmulatorCluster({ users: { [USER]: PASSWORD } });
  let d: TidbEmulator;
  let e: TidbEmulator;
  let proxy: TestProxy;

  before(async () => {
    [d, e] = await Promise.all([startTidbEmulator({ cluster }), startTidbEmulator({ cluster })]);
    proxy = await startTidbProxy([d, e], [
      { name: 'health', config: { interval: 0.1, timeout: 0.5, retries: 2 } },
      // Only evacuation moves sessions here: no count or latency rebalancing while they all sit on d.
      { name: 'balance', config: { latency: { enabled: false }, rebalance: { interval: 0.1, 'conn-ratio': 1000, 'evacuate-seconds': 0.2 } } },
    ]);
  });
  after(async () => {
    pinned = null;
    await clients.closeAll();
    await proxy?.stop();
    await Promise.all([d, e].map((x) => x?.stop()));
  });

  it('moves every idle session to the other TiDB within ~2 s, with its state, and no client sees an error', async (t) => {
    pinned = d.addr;
    const sessions: Connection[] = [];
    for (let i = 0; i < 12; i++) {
      const c = await clients.connect(proxy, { user: USER, password: PASSWORD, database: 'test' });
      await c.query(`SET @n = ${i}`);
      await c.execute('SELECT ? + 0 AS p', [i]);
      sessions.push(c);
    }
    assert.ok(sessions.every((c) => backendOf(proxy, c) === d.addr), 'all sessions start on d');
    await sleep(300);
    assert.ok(sessions.every((c) => backendOf(proxy, c) === d.addr), 'nothing moves while d is healthy');
    pinned = null;

    const started = Date.now();
    d.setDraining(true);
    const tookMs = await waitFor('every session to move to e', () => sessions.every((c) => backendOf(proxy, c) === e.addr), 5000);
    t.diagnostic(`12 sessions moved ${tookMs} ms after /status turned 500`);
    assert.ok(tookMs <= 2000, `moved within ${tookMs} ms`);
    assert.ok(proxy.kernel.backends.get(d.addr)!.draining, 'd is drained');
    for (const [i, c] of sessions.entries()) {
      assert.deepEqual(await row(c, 'SELECT @n AS n, @@port AS port'), { n: i, port: e.port });
      assert.deepEqual((await c.execute<RowDataPacket[]>('SELECT ? + 0 AS p', [i]))[0], [{ p: i }]);
    }
    await waitFor('d to have no sessions left', () => d.sessionCount() === 0, 2000);
    assert.ok(proxy.logs.filter((l) => l.msg === 'session migrated').length >= 12);
    assert.ok(!proxy.logs.some((l) => /^migration (failed|vetoed)/.test(l.msg)), 'no move failed or was vetoed');
    const late = await clients.connect(proxy, { user: USER, password: PASSWORD });
    assert.equal(backendOf(proxy, late), e.addr, 'a new session avoids the draining TiDB');
    assert.ok(Date.now() - started < 10_000);
  });
});

describe('migrate-tidb-token: a TiDB without a session-token signing cert', () => {
  const cluster = new TidbEmulatorCluster({ users: { [USER]: PASSWORD } });
  let f: TidbEmulator;
  let g: TidbEmulator;
  let noCert: TidbEmulator;
  let proxy: TestProxy;

  before(async () => {
    [f, g, noCert] = await Promise.all([startTidbEmulator({ cluster }), startTidbEmulator({ cluster }), startTidbEmulator({ cluster, signingCert: false })]);
    proxy = await startTidbProxy([f, g, noCert], [{ name: 'balance', config: { rebalance: { enabled: false } } }]);
  });
  after(async () => {
    pinned = null;
    await clients.closeAll();
    await proxy?.stop();
    await Promise.all([f, g, noCert].map((x) => x?.stop()));
  });

  it('vetoes every TiDB migration, naming the server, until it has one', async () => {
    await waitFor('the missing cert to be noticed', () => proxy.logs.some((l) => /^TiDB session migration disabled for the whole cluster/.test(l.msg)), 3000);
    const disabled = proxy.logs.filter((l) => /^TiDB session migration disabled/.test(l.msg));
    assert.equal(disabled.length, 1, 'logged once');
    assert.equal(disabled[0]!.level, 40, 'as a warning');
    assert.match(disabled[0]!.msg, new RegExp(`TiDB ${noCert.addr.replace(/\./g, '\\.')}: security\\.session-token-signing-cert is empty`));

    pinned = f.addr;
    const c = await clients.connect(proxy, { user: USER, password: PASSWORD, database: 'test' });
    await c.query('SET @x = 1');
    const loginsOnG = g.logins.length;
    await migrate(proxy, c, g.addr, 3000);
    assert.equal(backendOf(proxy, c), f.addr);
    assert.match(String(lastMigrationLog(proxy, c.threadId!)?.msg),
      new RegExp(`^migration vetoed: TiDB session migration is disabled for the whole cluster: TiDB ${noCert.addr.replace(/\./g, '\\.')}: security\\.session-token-signing-cert is empty`));
    assert.equal(g.logins.length, loginsOnG, 'the target was not contacted');
    assert.ok(!f.queries.includes('SHOW SESSION_STATES'), 'the session was not even exported');

    // The operator configures the cert: the next check lifts the veto and the kept request succeeds.
    noCert.setSigningCert(true);
    await waitFor('migration to be enabled again', () => proxy.logs.some((l) => /^TiDB session migration enabled again/.test(l.msg)), 3000);
    await waitFor('the kept request to move the session', () => backendOf(proxy, c) === g.addr, 6000);
    assert.deepEqual(await row(c, 'SELECT @x AS x, @@port AS port'), { x: 1, port: g.port });
  });
});

describe('migrate-tidb-token: backends that are not TiDB', () => {
  const cluster = new TidbEmulatorCluster({ users: { [USER]: PASSWORD } });
  let m1: TidbEmulator;
  let m2: TidbEmulator;

  before(async () => {
    // The emulator posing as MariaDB: only its greeting's server version differs.
    [m1, m2] = await Promise.all([0, 1].map(() => startTidbEmulator({ cluster, serverVersion: '5.5.5-10.11.6-MariaDB-emulator' })));
  });
  after(async () => {
    pinned = null;
    await clients.closeAll();
    await Promise.all([m1, m2].map((x) => x?.stop()));
  });

  it('leaves sessions on a non-TiDB backend to the other plugins (here: none, so no credentials)', async () => {
    const proxy = await startTidbProxy([m1, m2], [{ name: 'balance', config: { rebalance: { enabled: false } } }]);
    try {
      pinned = m1.addr;
      const c = await clients.connect(proxy, { user: USER, password: PASSWORD });
      await migrate(proxy, c, m2.addr, 3000);
      assert.equal(backendOf(proxy, c), m1.addr);
      assert.match(String(lastMigrationLog(proxy, c.threadId!)?.msg), /^migration vetoed: no credentials for user app/);
      assert.ok(!m1.queries.includes('SHOW SESSION_STATES'), 'no SHOW SESSION_STATES on a non-TiDB backend');
      assert.equal(m2.logins.filter((l) => l.plugin === 'tidb_session_token').length, 0);
      await clients.end(c);
    } finally {
      await proxy.stop();
    }
  });

  it('with backends: all, treats every backend as TiDB', async () => {
    const proxy = await startTidbProxy([m1, m2], [{ name: 'balance', config: { rebalance: { enabled: false } } }], { backends: 'all' });
    try {
      pinned = m1.addr;
      const c = await clients.connect(proxy, { user: USER, password: PASSWORD });
      await c.query('SET @y = 2');
      await migrate(proxy, c, m2.addr, 3000);
      assert.equal(backendOf(proxy, c), m2.addr, `moved: ${JSON.stringify(lastMigrationLog(proxy, c.threadId!))}`);
      assert.deepEqual(await row(c, 'SELECT @y AS y, @@port AS port'), { y: 2, port: m2.port });
      await clients.end(c);
    } finally {
      await proxy.stop();
    }
  });
});
