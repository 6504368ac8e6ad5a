// Real components: two MariaDB 10.11 instances (mariadbd), the proxy in-process with its admin API
// listening on 0.0.0.0 (reached through 127.0.0.1) with a bearer token, credentials-native and
// migrate-replay (so sessions can move), mysql2 clients and Node's fetch as the HTTP client.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { definePlugin, type TiproxyPlugin } from '../../../src/plugin.js';
import { startMariaDBs, ROOT_PASSWORD, ROOT_USER, TEST_DATABASE, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { freePort } from '../../../local-cluster/ports.js';
import { ClientPool, portOf, waitFor } from '../../harness/clients.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';

const TOKEN = 'test-api-token-5f2c';

/** Stands in for the metrics plugin's service (the admin API only forwards its scrape). */
const scrapeProvider = definePlugin({
  name: 'scrape-provider',
  version: '1.0.0',
  apply({ services }) {
    services.provide('metrics', {
      contentType: 'text/plain; version=0.0.4', render: async () => '# HELP test_up 1\ntest_up 1\n',
    });
  },
}) as TiproxyPlugin<never>;

interface Answer {
  status: number;
  body: unknown;
  text: string;
  type: string;
}

describe('admin API plugin', { timeout: 180_000 }, () => {
  let dbs: MariaDBInstance[];
  let proxy: TestProxy;
  let api: string;
  const clients = new ClientPool();
  const addrOf = (d: MariaDBInstance) => `127.0.0.1:${d.port}`;

  async function call(method: string, path: string, opts: { body?: unknown; token?: string | null; type?: string } = {}): Promise<Answer> {
    const headers: Record<string, string> = {};
    const token = opts.token === undefined ? TOKEN : opts.token;
    if (token) headers['authorization'] = `Bearer ${token}`;
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers['content-type'] = opts.type ?? 'application/json';
      body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    }
    const res = await fetch(`${api}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await res.text();
    const type = res.headers.get('content-type') ?? '';
    return { status: res.status, text, type, body: type.includes('json') && text ? JSON.parse(text) : undefined };
  }

  const connect = () => clients.connect(proxy, { database: TEST_DATABASE });

  before(async () => {
    dbs = await startMariaDBs(2, { name: 'admin-api' });
    const apiPort = await freePort();
    proxy = await startProxy({
      backends: dbs.map(addrOf),
      plugins: [scrapeProvider],
      logLevel: 'info',
      config: {
        // 0.0.0.0 is beyond loopback: changes need the token.
        api: { addr: `0.0.0.0:${apiPort}`, token: TOKEN },
        plugins: [
          { name: 'metrics', enabled: false },
          { name: 'scrape-provider' },
          { name: 'credentials-native', config: { 'service-account': { user: ROOT_USER, password: ROOT_PASSWORD } } },
          { name: 'migrate-replay' },
        ],
      },
    });
    api = `http://127.0.0.1:${apiPort}`;
  });
  after(async () => {
    await clients.closeAll();
    await proxy?.stop();
    await Promise.all((dbs ?? []).map((d) => d.destroy()));
  });

  describe('health (TiProxy-compatible)', () => {
    it('answers 200 with the config checksum while backends are healthy', async () => {
      const r = await call('GET', '/api/debug/health');
      assert.equal(r.status, 200);
      const body = r.body as { config_checksum: number; unhealthy_reason?: string };
      assert.ok(Number.isInteger(body.config_checksum) && body.config_checksum >= 0);
      assert.equal(body.unhealthy_reason, undefined);
    });

    it('a manual override answers 502 with its reason until DELETE clears it', async () => {
      const set = await call('PUT', '/api/debug/health', { body: { healthy: false, reason: 'maintenance window' } });
      assert.equal(set.status, 502);
      assert.equal((set.body as { unhealthy_reason: string }).unhealthy_reason, 'maintenance window');
      const during = await call('GET', '/api/debug/health');
      assert.equal(during.status, 502);
      assert.equal((during.body as { unhealthy_reason: string }).unhealthy_reason, 'maintenance window');
      const cleared = await call('DELETE', '/api/debug/health');
      assert.equal(cleared.status, 200);
      assert.equal((await call('GET', '/api/debug/health')).status, 200);
    });

    it('rejects a malformed override with 400', async () => {
      const r = await call('PUT', '/api/debug/health', { body: { healthy: 'nope' } });
      assert.equal(r.status, 400);
      assert.match((r.body as { error: string }).error, /healthy/);
    });
  });

  describe('security', () => {
    it('refuses changes without the token (401) and logs the attempt without any token', async () => {
      const none = await call('PUT', '/api/debug/health', { body: { healthy: false }, token: null });
      assert.equal(none.status, 401);
      assert.match((none.body as { error: string }).error, /bearer token/);
      const wrong = await call('POST', `/api/backends/${addrOf(dbs[0]!)}/drain`, { token: 'not-the-token' });
      assert.equal(wrong.status, 401);
      assert.equal((await call('GET', '/api/debug/health')).status, 200, 'nothing changed');
      assert.equal((await call('GET', '/api/backends')).body instanceof Array, true, 'reading needs no token');
      const refusals = proxy.logs.filter((l) => l.msg === 'API change refused (401)');
      assert.ok(refusals.length >= 2);
      assert.ok(!JSON.stringify(proxy.logs).includes('not-the-token'), 'the offered token is never logged');
      assert.ok(!JSON.stringify(proxy.logs).includes(TOKEN), 'the configured token is never logged');
    });

    it('the config answer redacts the token and the service account password', async () => {
      const yaml = await call('GET', '/api/admin/config/');
      assert.equal(yaml.status, 200);
      assert.match(yaml.type, /yaml/);
      assert.ok(!yaml.text.includes(TOKEN) && !yaml.text.includes(ROOT_PASSWORD), 'no secret in the YAML');
      const json = await call('GET', '/api/admin/config/?format=json');
      const config = json.body as { api: { token: string }; plugins: Array<{ name: string; config: Record<string, Record<string, string>> }> };
      assert.equal(config.api.token, '<redacted>');
      assert.equal(config.plugins.find((p) => p.name === 'credentials-native')!.config['service-account']!['password'], '<redacted>');
    });
  });

  describe('config', () => {
    it('a partial change is merged, validated and applied as a new generation; the API keeps answering across the reload', async () => {
      const before = (await call('GET', '/api/plugins')).body as { generation: { id: number } };
      // Requests in flight while the generation is replaced all complete.
      const reads = Array.from({ length: 20 }, () => call('GET', '/api/backends'));
      const r = await call('PUT', '/api/admin/config/', { body: { proxy: { 'max-connections': 500 } } });
      assert.equal(r.status, 200, r.text);
      assert.ok((r.body as { generation: number }).generation > before.generation.id);
      for (const read of await Promise.all(reads)) assert.equal(read.status, 200);
      const now = (await call('GET', '/api/admin/config?format=json')).body as { proxy: Record<string, unknown>; api: { token: string } };
      assert.equal(now.proxy['max-connections'], 500);
      // The redacted token sent back keeps the running one: the token still works.
      const back = await call('PUT', '/api/admin/config/', { body: { api: now.api } });
      assert.equal(back.status, 200, back.text);
      assert.equal(proxy.kernel.config().api.token, TOKEN);
      assert.equal((await call('GET', '/api/debug/health')).status, 200);
    });

    it('accepts YAML', async () => {
      const r = await call('PUT', '/api/admin/config', { body: 'proxy:\n  max-connections: 400\n', type: 'application/yaml' });
      assert.equal(r.status, 200, r.text);
      assert.equal(proxy.kernel.config().proxy['max-connections'], 400);
    });

    it('an invalid change answers 400 naming the key path and keeps the running config', async () => {
      const generation = proxy.kernel.generationInfo().id;
      const bad = await call('PUT', '/api/admin/config/', { body: { proxy: { 'max-connections': -1 } } });
      assert.equal(bad.status, 400);
      assert.equal((bad.body as { key_path: string }).key_path, 'proxy.max-connections');
      const badPlugin = await call('PUT', '/api/admin/config/', { body: { plugins: [{ name: 'balance', config: { policy: 'fastest' } }] } });
      assert.equal(badPlugin.status, 400);
      assert.match((badPlugin.body as { key_path: string }).key_path, /^plugins\[\d+\]\.config\.policy$/);
      const unknown = await call('PUT', '/api/admin/config/', { body: { proxy: { 'no-such-key': 1 } } });
      assert.equal((unknown.body as { key_path: string }).key_path, 'proxy.no-such-key');
      assert.equal(proxy.kernel.generationInfo().id, generation, 'no generation was built');
      assert.equal(proxy.kernel.config().proxy['max-connections'], 400);
    });
  });

  describe('backends and sessions', () => {
    it('lists backends with health, sessions, QPS and p99', async () => {
      const c = await connect();
      for (let i = 0; i < 50; i++) await c.query('SELECT 1');
      const on = `127.0.0.1:${await portOf(c)}`;
      // QPS counts complete seconds.
      await new Promise((r) => setTimeout(r, 1100));
      const list = (await call('GET', '/api/backends')).body as Array<Record<string, unknown>>;
      assert.deepEqual(list.map((b) => b['addr']).sort(), dbs.map(addrOf).sort());
      const b = list.find((x) => x['addr'] === on)!;
      assert.equal(b['healthy'], true);
      assert.equal(b['draining'], false);
      assert.ok((b['sessions'] as number) >= 1);
      assert.ok((b['qps'] as number) > 0, `qps ${String(b['qps'])}`);
      assert.equal(typeof b['p99_ms'], 'number');
      assert.equal((b['balance'] as { routable: boolean }).routable, true);
      await c.end();
    });

    it('lists sessions with their facts, filtered by backend and user', async () => {
      const a = await connect();
      const b = await connect();
      await b.query('BEGIN');
      const all = (await call('GET', '/api/sessions')).body as Array<Record<string, unknown>>;
      const mine = all.find((s) => s['id'] === b.threadId)!;
      assert.equal(mine['user'], ROOT_USER);
      assert.equal(mine['database'], TEST_DATABASE);
      assert.match(mine['client'] as string, /^127\.0\.0\.1:\d+$/);
      assert.equal(mine['in_transaction'], true);
      assert.equal(mine['migratable'], false);
      assert.equal(mine['not_migratable_reason'], 'in-transaction');
      assert.equal(typeof mine['generation'], 'number');
      const on = `127.0.0.1:${await portOf(a)}`;
      const filtered = (await call('GET', `/api/sessions?backend=${encodeURIComponent(on)}`)).body as Array<Record<string, unknown>>;
      assert.ok(filtered.length >= 1 && filtered.every((s) => s['backend'] === on));
      assert.ok(filtered.some((s) => s['id'] === a.threadId));
      assert.deepEqual((await call('GET', '/api/sessions?user=nobody')).body, []);
      await b.query('ROLLBACK');
      await Promise.all([a.end(), b.end()]);
    });

    it('a session migrated through the API answers from the other backend', async () => {
      const c = await connect();
      await c.query('SET @kept = 7');
      const from = await portOf(c);
      const to = addrOf(dbs.find((d) => d.port !== from)!);
      const r = await call('POST', `/api/sessions/${c.threadId}/migrate?wait=10`, { body: { to } });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body, { session: c.threadId, status: 'succeeded', from: `127.0.0.1:${from}`, to });
      assert.equal(`127.0.0.1:${await portOf(c)}`, to);
      const migrations = (await call('GET', '/api/migrations')).body as { recent: Array<Record<string, unknown>>; pending: unknown[] };
      const last = migrations.recent.find((m) => m['session'] === c.threadId)!;
      assert.equal(last['result'], 'succeeded');
      assert.equal(last['reason'], 'admin');
      assert.equal(last['to'], to);
      await c.end();
    });

    it('migration errors: unknown session or backend 404, same backend 409, bad id 400', async () => {
      const c = await connect();
      const on = `127.0.0.1:${await portOf(c)}`;
      assert.equal((await call('POST', '/api/sessions/999999/migrate', { body: {} })).status, 404);
      assert.equal((await call('POST', `/api/sessions/${c.threadId}/migrate`, { body: { to: '127.0.0.1:1' } })).status, 404);
      assert.equal((await call('POST', `/api/sessions/${c.threadId}/migrate`, { body: { to: on } })).status, 409);
      assert.equal((await call('POST', '/api/sessions/abc/migrate', { body: {} })).status, 400);
      assert.equal((await call('DELETE', '/api/sessions/999999')).status, 404);
      assert.equal((await call('POST', '/api/backends/127.0.0.1:1/drain')).status, 404);
      assert.equal((await call('GET', '/api/nothing-here')).status, 404);
      await c.end();
    });

    it('DELETE closes a session', async () => {
      const c = await connect();
      const r = await call('DELETE', `/api/sessions/${c.threadId}`);
      assert.equal(r.status, 200);
      await assert.rejects(c.query('SELECT 1'));
      await waitFor('session gone', () => !proxy.kernel.sessions.has(c.threadId!));
    });

    it('drain moves the sessions of a backend away; undrain lets sessions back', async () => {
      const a = await connect();
      const b = await connect();
      const source = `127.0.0.1:${await portOf(a)}`;
      const r = await call('POST', `/api/backends/${encodeURIComponent(source)}/drain`);
      assert.equal(r.status, 200);
      assert.equal((r.body as { draining: boolean }).draining, true);
      await waitFor('no session left on the drained backend', async () => {
        const list = (await call('GET', '/api/backends')).body as Array<{ addr: string; sessions: number; draining: boolean }>;
        const s = list.find((x) => x.addr === source)!;
        return s.draining && s.sessions === 0;
      }, 20_000, 200);
      assert.notEqual(`127.0.0.1:${await portOf(a)}`, source);
      assert.notEqual(`127.0.0.1:${await portOf(b)}`, source);
      const undrained = await call('POST', `/api/backends/${encodeURIComponent(source)}/undrain`);
      assert.equal((undrained.body as { draining: boolean }).draining, false);
      assert.equal(proxy.kernel.backends.get(source)!.draining, false);
      await Promise.all([a.end(), b.end()]);
    });
  });

  describe('plugins, metrics, OpenAPI', () => {
    it('lists the generation and its plugins with versions and error counts; reload builds a new generation', async () => {
      const r = (await call('GET', '/api/plugins')).body as {
        generation: { id: number }; plugins: Array<{ name: string; version: string; errors: number }>; last_compile_error: unknown;
      };
      const admin = r.plugins.find((p) => p.name === 'admin-api')!;
      assert.equal(admin.version, '1.0.0');
      assert.equal(admin.errors, 0);
      assert.equal(r.last_compile_error, null);
      const reloaded = await call('POST', '/api/plugins/reload');
      assert.equal(reloaded.status, 200, reloaded.text);
      assert.ok((reloaded.body as { generation: { id: number } }).generation.id > r.generation.id);
      assert.equal(proxy.kernel.generationInfo().id, (reloaded.body as { generation: { id: number } }).generation.id);
    });

    it('serves the metrics service on /metrics and /api/metrics/, 404 when no metrics plugin runs', async () => {
      for (const path of ['/metrics', '/api/metrics/']) {
        const r = await call('GET', path);
        assert.equal(r.status, 200);
        assert.match(r.text, /^test_up 1$/m);
        assert.match(r.type, /^text\/plain/);
      }
      const off = await call('PUT', '/api/admin/config', { body: { plugins: [{ name: 'scrape-provider', enabled: false }] } });
      assert.equal(off.status, 200, off.text);
      const r = await call('GET', '/metrics');
      assert.equal(r.status, 404);
      assert.match((r.body as { error: string }).error, /metrics plugin is disabled/);
    });

    it('describes every endpoint in /api/openapi.json', async () => {
      const doc = (await call('GET', '/api/openapi.json')).body as { openapi: string; paths: Record<string, Record<string, unknown>> };
      assert.equal(doc.openapi, '3.1.0');
      const ops = Object.entries(doc.paths).flatMap(([p, m]) => Object.keys(m).map((x) => `${x.toUpperCase()} ${p}`));
      for (const op of [
        'GET /api/debug/health', 'PUT /api/debug/health', 'DELETE /api/debug/health', 'GET /metrics', 'GET /api/metrics',
        'GET /api/admin/config', 'PUT /api/admin/config', 'GET /api/backends', 'POST /api/backends/{addr}/drain',
        'POST /api/backends/{addr}/undrain', 'GET /api/sessions', 'POST /api/sessions/{id}/migrate', 'DELETE /api/sessions/{id}',
        'GET /api/plugins', 'POST /api/plugins/reload', 'GET /api/migrations',
      ]) assert.ok(ops.includes(op), `${op} in ${ops.join(', ')}`);
    });

    it('no answer contains the token or a password', async () => {
      for (const path of ['/api/admin/config', '/api/admin/config?format=json', '/api/sessions', '/api/plugins', '/api/backends', '/api/migrations']) {
        const r = await call('GET', path);
        assert.ok(!r.text.includes(TOKEN) && !r.text.includes(ROOT_PASSWORD), path);
      }
    });
  });
});
