// Configuration reloads with real components: one MariaDB 10.11, the proxy in-process, mysql2 clients.
// A reload builds a new plugin generation; a bad one is rejected whole, a good one is adopted by each
// session at its next safe point (never inside a transaction), and a generation nobody uses any more
// is disposed.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import { ConfigError } from '../../../src/kernel/config/config-error.js';
import { buildConfig, freezeConfig } from '../../../src/kernel/config/config-loader.js';
import type { FrozenConfig, ProxyConfig } from '../../../src/kernel/config/proxy-config.js';
import { buildGeneration } from '../../../src/kernel/plugins/generation.js';
import { offlineGenerationServices } from '../../harness/generation-services.js';
import { definePlugin, errorReply, protocol, type TiproxyPlugin } from '../../../src/plugin.js';
import { startMariaDB, ROOT_PASSWORD, ROOT_USER, TEST_DATABASE, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';

interface MysqlError extends Error {
  errno: number;
  sqlMessage: string;
}

const PROBE = "SELECT 'which config'";

/** Per generation it is applied in: which `message` it was configured with, and whether it was disposed. */
const applied: string[] = [];
const disposedViaContext: string[] = [];
let disposeCalls = 0;

/** Answers PROBE with its configured message, so a client can tell which generation serves its session. */
const banner = definePlugin<{ message: string }>({
  name: 'banner', version: '1.0.0',
  configSchema: {
    type: 'object', additionalProperties: false, required: ['message'],
    properties: { message: { type: 'string', minLength: 1 } },
  },
  apply({ hooks, config, onDispose }) {
    applied.push(config.message);
    onDispose(() => void disposedViaContext.push(config.message));
    hooks.onCommand.for(protocol.COM_QUERY).tap('banner', (ctx) => (ctx.sql === PROBE ? errorReply(`config ${config.message}`) : undefined));
  },
  dispose() {
    disposeCalls++;
  },
});

/** Fails to apply whenever it is enabled. */
const mustHave = definePlugin<never>({
  name: 'must-have', version: '1.0.0',
  apply() {
    throw new Error('license expired');
  },
});

async function eventually(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('configuration reload', () => {
  let db: MariaDBInstance;
  let proxy: TestProxy;

  before(async () => {
    db = await startMariaDB({ name: 'config-reload' });
    await db.query(`CREATE TABLE ${TEST_DATABASE}.reload_t (id INT PRIMARY KEY) ENGINE=InnoDB`);
    proxy = await startProxy({
      backends: [`127.0.0.1:${db.port}`],
      plugins: [banner, mustHave] as TiproxyPlugin<never>[],
      config: { plugins: [{ name: 'must-have', enabled: false }, { name: 'banner', config: { message: 'v1' } }] },
    });
  });
  after(async () => {
    await proxy?.stop();
    await db?.destroy();
  });

  /** The running config with banner's config (and optionally must-have) changed. */
  function withBanner(config: Record<string, unknown>, opts: { mustHave?: boolean } = {}): FrozenConfig {
    const raw = structuredClone(proxy.kernel.config()) as ProxyConfig;
    for (const p of raw.plugins) {
      if (p.name === 'banner') p.config = config;
      if (p.name === 'must-have' && opts.mustHave) Object.assign(p, { enabled: true, required: true });
    }
    return freezeConfig(buildConfig(raw));
  }

  function connect(): Promise<mysql.Connection> {
    return mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD, database: TEST_DATABASE });
  }

  /** What banner answers this session: the config of the generation that serves it. */
  async function probe(c: mysql.Connection): Promise<string> {
    const err = await c.query(PROBE).then(() => null, (e: unknown) => e as MysqlError);
    assert.ok(err, 'banner answered the probe');
    assert.equal(err.errno, protocol.ER_PROXY_PLUGIN_REFUSED);
    return err.sqlMessage;
  }

  function sessionOf(c: mysql.Connection) {
    const s = proxy.kernel.sessions.get(c.threadId);
    assert.ok(s, `session ${c.threadId} exists`);
    return s;
  }

  it('rejects a reload with a bad plugin config; the running generation keeps serving', async () => {
    const before = proxy.kernel.generationInfo();
    const config = proxy.kernel.config();
    const c = await connect();
    assert.equal(await probe(c), 'config v1');

    await assert.rejects(proxy.kernel.reload(withBanner({ message: 42 })), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.keyPath, 'plugins[1].config.message');
      return true;
    });
    await assert.rejects(proxy.kernel.reload(withBanner({ mesage: 'v2' })), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.deepEqual(err.issues.map((i) => i.keyPath).sort(), ['plugins[1].config.mesage', 'plugins[1].config.message']);
      return true;
    });
    // A required plugin failing to apply rejects the reload too (config errors apply nothing at all).
    await assert.rejects(proxy.kernel.reload(withBanner({ message: 'v2' }, { mustHave: true })),
      /required plugin must-have failed to apply: license expired/);

    assert.equal(proxy.kernel.generationInfo().id, before.id);
    assert.deepEqual(proxy.kernel.generationInfo().plugins, before.plugins);
    assert.equal(proxy.kernel.config(), config, 'the running config stays');
    assert.equal(await probe(c), 'config v1', 'the open session is served as before');
    const fresh = await connect();
    assert.equal(await probe(fresh), 'config v1', 'new sessions get the running generation');
    await Promise.all([c.end(), fresh.end()]);
    assert.deepEqual(applied, ['v1'], 'no rejected generation was ever applied');
    assert.equal(disposeCalls, 0);
  });

  it('applies a good reload: new generation for new and idle sessions; the old one is disposed once unused', async () => {
    const before = proxy.kernel.generationInfo().id;
    const idle = await connect();
    assert.equal(await probe(idle), 'config v1');
    await proxy.kernel.reload(withBanner({ message: 'v2' }));
    const now = proxy.kernel.generationInfo();
    assert.ok(now.id > before);
    assert.ok(now.plugins.includes('banner'));
    assert.equal(sessionOf(idle).generation.id, now.id, 'an idle session adopts the new generation at once');
    assert.equal(await probe(idle), 'config v2');
    const fresh = await connect();
    assert.equal(await probe(fresh), 'config v2');
    await eventually('generation v1 is disposed', () => disposedViaContext.includes('v1'));
    assert.deepEqual(disposedViaContext, ['v1']);
    assert.equal(disposeCalls, 1);
    await Promise.all([idle.end(), fresh.end()]);
  });

  it('keeps a session in a transaction on its generation until COMMIT, then adopts the new one; the old one is disposed after', async () => {
    const tx = await connect();
    const other = await connect();
    assert.equal(await probe(tx), 'config v2');
    const old = proxy.kernel.generationInfo().id;
    assert.equal(sessionOf(tx).generation.id, old);

    await tx.query('BEGIN');
    await tx.query('INSERT INTO reload_t VALUES (1)');
    await proxy.kernel.reload(withBanner({ message: 'v3' }));
    const current = proxy.kernel.generationInfo();
    assert.ok(current.id > old);

    assert.equal(sessionOf(tx).generation.id, old, 'mid-transaction: still on the old generation');
    assert.equal(sessionOf(other).generation.id, current.id, 'the idle session adopted at once');
    assert.equal(current.sessionsOnOlder, 1);
    assert.equal(await probe(tx), 'config v2', 'the old plugins keep serving the transaction');
    assert.equal(await probe(other), 'config v3');
    await tx.query('INSERT INTO reload_t VALUES (2)');
    assert.equal(sessionOf(tx).generation.id, old, 'statements inside the transaction do not adopt');
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(!disposedViaContext.includes('v2'), 'a generation in use is not disposed');

    await tx.query('COMMIT');
    assert.equal(sessionOf(tx).generation.id, current.id, 'adopted at COMMIT');
    assert.equal(proxy.kernel.generationInfo().sessionsOnOlder, 0);
    assert.equal(await probe(tx), 'config v3');
    await eventually('generation v2 is disposed', () => disposedViaContext.includes('v2'));
    assert.deepEqual(disposedViaContext, ['v1', 'v2']);
    assert.equal(disposeCalls, 2);

    const rows = await db.query<Array<{ id: number }>>(`SELECT id FROM ${TEST_DATABASE}.reload_t ORDER BY id`);
    assert.deepEqual(rows.map((r) => r.id), [1, 2], 'the transaction committed whole');
    await Promise.all([tx.end(), other.end()]);
  });

  it('disposes a generation whose last session closes without adopting', async () => {
    const tx = await connect();
    await tx.query('BEGIN');
    await tx.query('SELECT * FROM reload_t FOR UPDATE');
    const old = sessionOf(tx).generation.id;
    await proxy.kernel.reload(withBanner({ message: 'v4' }));
    assert.equal(sessionOf(tx).generation.id, old);
    assert.ok(!disposedViaContext.includes('v3'));
    tx.destroy(); // gone mid-transaction
    await eventually('generation v3 is disposed', () => disposedViaContext.includes('v3'));
    assert.equal(disposeCalls, 3);
  });
});

describe('plugin config validation across generations', () => {
  it('validates a hot-reloaded plugin whose new schema object reuses the $id of the previous one', async () => {
    const version = (type: string): TiproxyPlugin<never> => definePlugin<never>({
      name: 'versioned', version: '1.0.0',
      configSchema: { $id: 'urn:tiproxy:schema:plugin:versioned', type: 'object', properties: { limit: { type } } },
      apply() {},
    });
    const services = offlineGenerationServices();
    const config = freezeConfig(buildConfig({ plugins: [{ name: 'versioned', config: { limit: 5 } }] }));
    // Each hot reload compiles a new module: a new plugin object and a new schema object, same $id.
    const g1 = await buildGeneration(1, config, () => version('integer'), services);
    assert.deepEqual(g1.applied, ['versioned']);
    await assert.rejects(buildGeneration(2, config, () => version('string'), services), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.keyPath, 'plugins[0].config.limit', 'the new schema is the one used');
      return true;
    });
    const g3 = await buildGeneration(3, config, () => version('number'), services);
    assert.deepEqual(g3.applied, ['versioned']);
  });
});
