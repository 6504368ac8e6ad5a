// Real components: two MariaDB 10.11 servers, the proxy in-process (static discovery, health, balance,
// credentials-native, migrate-replay, metrics), mysql2 clients. A small test plugin reads the metrics
// service the admin API serves; the exposition is parsed and checked against the load that was run.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Connection } from 'mysql2/promise';
import { ROOT_PASSWORD, ROOT_USER, startMariaDBs, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { definePlugin, type PluginContext } from '../../../src/plugin.js';
import { ClientPool, portOf, rejection, waitFor } from '../../harness/clients.js';
import { Exposition } from '../../harness/prometheus-text.js';
import { reloadPlugin, startProxy, type TestProxy } from '../../harness/proxy.js';

const { connect, end, closeAll } = new ClientPool();

/** Lends the test the plugin context of the running generation. */
function probePlugin() {
  const probe: { ctx: PluginContext<never> | null } = { ctx: null };
  const plugin = definePlugin<never>({ name: 'metrics-probe', version: '1.0.0', apply: (ctx) => void (probe.ctx = ctx) });
  return { probe, plugin };
}

/** Throws on every result: its errors must show in the plugin metrics. */
const thrower = definePlugin<never>({
  name: 'thrower', version: '1.0.0',
  apply(ctx) {
    ctx.hooks.onResult.tap('thrower', () => {
      throw new Error('boom');
    });
  },
});

async function scrape(probe: { ctx: PluginContext<never> | null }): Promise<Exposition> {
  const service = probe.ctx?.services.get('metrics');
  assert.ok(service, 'the metrics plugin provides its service');
  assert.match(service.contentType, /^text\/plain; version=0\.0\.4/);
  return new Exposition(await service.render());
}

describe('metrics plugin', () => {
  let dbs: MariaDBInstance[] = [];
  const addr = (db: MariaDBInstance) => `127.0.0.1:${db.port}`;

  before(async () => {
    dbs = await startMariaDBs(2, { name: 'metrics' });
  });
  after(async () => {
    await closeAll();
    for (const db of dbs) await db.destroy();
  });

  it('counts queries and their durations per backend and command, connections, disconnection types, traffic and plugin hooks', async () => {
    const { probe, plugin } = probePlugin();
    const proxy = await startProxy({
      backends: dbs.map(addr), logLevel: 'info', plugins: [plugin, thrower],
      config: { plugins: [{ name: 'health', config: { interval: 0.2 } }, { name: 'thrower' }, { name: 'metrics-probe' }] },
    });
    try {
      // Ten sessions spread over both backends; each runs its own number of text queries and prepared executes.
      const conns: Connection[] = [];
      for (let i = 0; i < 10; i++) conns.push(await connect(proxy));
      const expected = new Map<string, { query: number; execute: number; errors: number }>(dbs.map((db) => [addr(db), { query: 0, execute: 0, errors: 0 }]));
      for (const [i, c] of conns.entries()) {
        const backend = `127.0.0.1:${await portOf(c)}`;
        const e = expected.get(backend)!;
        e.query++; // portOf's SELECT
        for (let q = 0; q < i + 1; q++) await c.query('SELECT 1');
        e.query += i + 1;
        for (let q = 0; q < 2; q++) await c.execute('SELECT ? + 1 AS n', [q]);
        e.execute += 2;
        // Every other session also runs a failing query: counted as an error, not logged per command.
        if (i % 2 === 0) {
          await c.query('SELECT no_such_column FROM DUAL').catch(() => undefined);
          e.query++;
          e.errors++;
        }
      }
      const m = await scrape(probe);
      assert.ok(!proxy.logs.some((l) => JSON.stringify(l).includes('no_such_column')), 'backend query errors are not logged per command');
      for (const [backend, e] of expected) {
        assert.ok(e.query > 0, `sessions landed on ${backend}`);
        assert.equal(m.sum('tiproxy_session_query_total', { backend, cmd_type: 'COM_QUERY' }), e.query, `COM_QUERY on ${backend}`);
        assert.equal(m.sum('tiproxy_session_query_total', { backend, cmd_type: 'COM_STMT_EXECUTE' }), e.execute, `COM_STMT_EXECUTE on ${backend}`);
        assert.equal(m.sum('tiproxy_session_query_error_total', { backend, cmd_type: 'COM_QUERY' }), e.errors, `errors on ${backend}`);
        const count = m.sum('tiproxy_session_query_duration_seconds_count', { backend, cmd_type: 'COM_QUERY' });
        assert.equal(count, e.query);
        const buckets = m.find('tiproxy_session_query_duration_seconds_bucket', { backend, cmd_type: 'COM_QUERY' });
        assert.equal(buckets.at(-1)!.labels['le'], '+Inf');
        assert.equal(buckets.at(-1)!.value, count, '+Inf bucket holds every query');
        for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, 'buckets are cumulative');
        const sum = m.sum('tiproxy_session_query_duration_seconds_sum', { backend, cmd_type: 'COM_QUERY' });
        assert.ok(sum > 0 && sum < count, `a local SELECT 1 takes well under a second on average (sum ${sum})`);
        assert.equal(m.sum('tiproxy_balance_b_conn', { backend }), proxy.kernel.backends.get(backend)!.connections);
        assert.ok(m.sum('tiproxy_traffic_inbound_bytes', { backend }) > 0 && m.sum('tiproxy_traffic_outbound_bytes', { backend }) > 0, `traffic of ${backend}`);
        assert.equal(m.sum('tiproxy_backend_healthy', { backend }), 1);
      }
      assert.equal(m.types.get('tiproxy_session_query_duration_seconds'), 'histogram');
      assert.equal(m.sum('tiproxy_server_connections'), 10);
      assert.equal(m.sum('tiproxy_server_create_connection_total'), 10);
      assert.equal(m.sum('tiproxy_balance_b_conn'), 10);
      const queries = [...expected.values()].reduce((a, e) => a + e.query + e.execute, 0);
      assert.ok(m.sum('tiproxy_plugin_hook_calls_total', { plugin: 'metrics', hook: 'onResult' }) >= queries);
      assert.ok(m.sum('tiproxy_plugin_hook_errors_total', { plugin: 'thrower', hook: 'onResult' }) >= queries, 'a throwing tap is counted');
      assert.equal(m.sum('tiproxy_plugin_hook_errors_total', { plugin: 'metrics' }), 0);
      assert.ok(m.sum('tiproxy_plugin_hook_seconds_total', { plugin: 'metrics', hook: 'onResult' }) > 0);
      assert.ok(m.sum('process_cpu_seconds_total') > 0, 'process metrics');
      await waitFor('health checks of both backends', async () => (await scrape(probe)).find('tiproxy_backend_health_check_seconds_count', { result: 'ok' }).length === 2);

      // Endings: three quit, one drops its socket, one logs in with a wrong password.
      for (const c of conns.splice(0, 3)) await end(c);
      conns.shift()!.destroy();
      await rejection(connect(proxy, { password: 'wrong' }));
      await waitFor('sessions closed', () => proxy.kernel.sessions.size === 6);
      const after = await scrape(probe);
      assert.equal(after.sum('tiproxy_server_disconnection_total', { type: 'success' }), 3);
      assert.equal(after.sum('tiproxy_server_disconnection_total', { type: 'client network break' }), 1);
      assert.equal(after.sum('tiproxy_server_disconnection_total', { type: 'auth fail' }), 1);
      assert.equal(after.sum('tiproxy_server_disconnection_total', { type: 'get backend fail' }), 0, 'every type is exported, zero included');
      assert.equal(after.sum('tiproxy_server_close_reason_total', { side: 'client', reason: 'client-quit' }), 3);
      assert.equal(after.sum('tiproxy_server_connections'), 6);
      assert.equal(after.sum('tiproxy_server_create_connection_total'), 11);

      // A reload of another plugin builds a new generation: counters carry on, the generation and reload count move.
      const generation = after.sum('tiproxy_plugin_generation');
      await reloadPlugin(proxy, 'health', { interval: 0.3 });
      const reloaded = await scrape(probe);
      assert.equal(reloaded.sum('tiproxy_plugin_generation'), generation + 1);
      assert.equal(reloaded.sum('tiproxy_plugin_reload_total', { result: 'succeeded' }), 1);
      assert.equal(reloaded.sum('tiproxy_server_create_connection_total'), 11, 'counters survive the reload');
      assert.equal(reloaded.sum('tiproxy_session_query_total', { cmd_type: 'COM_QUERY' }), m.sum('tiproxy_session_query_total', { cmd_type: 'COM_QUERY' }));
    } finally {
      await closeAll();
      await proxy.stop();
    }
  });

  it('counts migrations by source, target and result after a backend is drained, and sessions that cannot move by reason', async () => {
    const { probe, plugin } = probePlugin();
    const [a, b] = dbs.map(addr) as [string, string];
    const proxy: TestProxy = await startProxy({
      logLevel: 'info', plugins: [plugin],
      config: {
        plugins: [
          { name: 'discovery-static', config: { backends: [{ addr: a }] } },
          { name: 'credentials-native', config: { 'service-account': { user: ROOT_USER, password: ROOT_PASSWORD } } },
          { name: 'migrate-replay' },
          { name: 'metrics-probe' },
        ],
      },
    });
    try {
      const movable = [await connect(proxy), await connect(proxy), await connect(proxy)];
      const pinned = await connect(proxy);
      await pinned.query('BEGIN');
      await pinned.query('SELECT 1');
      for (const c of movable) assert.equal(`127.0.0.1:${await portOf(c)}`, a);
      const before = await scrape(probe);
      assert.equal(before.sum('tiproxy_session_unmovable', { reason: 'in transaction' }), 1);

      probe.ctx!.backends.announce({ addr: b });
      probe.ctx!.backends.setDraining(a, true);
      await waitFor('three sessions moved to b', () => proxy.kernel.backends.get(b)!.connections === 3, 15_000);
      for (const c of movable) assert.equal(`127.0.0.1:${await portOf(c)}`, b);
      const m = await scrape(probe);
      assert.equal(m.sum('tiproxy_balance_migrate_total', { from: a, to: b, migrate_res: 'succeed' }), 3);
      assert.equal(m.sum('tiproxy_balance_migrate_duration_seconds_count', { from: a, to: b, migrate_res: 'succeed' }), 3);
      assert.ok(m.find('tiproxy_balance_migrate_total', { from: a, to: b })[0]!.labels['reason']!.length > 0, 'the reason is a label');
      assert.equal(m.sum('tiproxy_backend_draining', { backend: a }), 1);
      assert.equal(m.sum('tiproxy_balance_b_conn', { backend: a }), 1, 'the session in a transaction stays');
      assert.equal(m.sum('tiproxy_balance_b_conn', { backend: b }), 3);
      assert.ok(m.sum('tiproxy_backend_event_total', { backend: a, event: 'draining' }) >= 1);
      assert.equal(m.sum('tiproxy_balance_migrate_running'), 0, 'the three moves are over; the pinned session waits for its safe point');
      assert.ok(m.sum('tiproxy_balance_migrate_concurrency') >= 1, 'moves are allowed while a request is pending');
    } finally {
      await closeAll();
      await proxy.stop();
    }
  });
});
