// Plugin isolation with real components: one MariaDB 10.11, the proxy in-process, mysql2 clients.
// Faulty plugins (throwing, rejecting, failing to apply, misconfigured) must cost at most the operation
// they failed in — by the hook's fail-open/fail-closed policy — never the proxy or other sessions.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import { ConfigError } from '../../../src/kernel/config/config-error.js';
import { definePlugin, protocol, type TiproxyPlugin } from '../../../src/plugin.js';
import { startMariaDB, ROOT_PASSWORD, ROOT_USER, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { startProxy, type LogLine, type TestProxy } from '../../harness/proxy.js';

interface MysqlError extends Error {
  errno: number;
  sqlMessage: string;
}

const ERROR_LEVEL = 50;

/** Which faults are switched on; the plugins read it on every call. */
const faults = { command: false, connect: false, handshake: false, migrationTarget: false };

const commandThrower = definePlugin<never>({
  name: 'command-thrower', version: '1.0.0',
  apply({ hooks }) {
    hooks.onCommand.for(protocol.COM_QUERY).tap('command-thrower', (ctx) => {
      if (faults.command) throw new Error(`cannot handle ${ctx.sql.slice(0, 20)}`);
      return undefined;
    });
  },
});

const connectThrower = definePlugin<never>({
  name: 'connect-thrower', version: '1.0.0',
  apply({ hooks }) {
    hooks.connect.tap('connect-thrower', () => {
      if (faults.connect) throw new Error('connection table corrupted');
      return undefined;
    });
  },
});

const handshakeRejecter = definePlugin<never>({
  name: 'handshake-rejecter', version: '1.0.0',
  apply({ hooks }) {
    hooks.onHandshake.tapPromise('handshake-rejecter', async ({ user }) => {
      await new Promise((r) => setTimeout(r, 5));
      if (faults.handshake) throw new Error(`directory lookup for ${user} timed out`);
      return undefined;
    });
  },
});

/** Refuses every migration target while faults.migrationTarget is on; records migration outcomes. */
const targetRefuser = definePlugin<never>({
  name: 'target-refuser', version: '1.0.0',
  apply({ hooks }) {
    hooks.selectBackend.tap({ name: 'target-refuser', stage: 10 }, (ctx) => {
      if (ctx.reason !== 'migration' || !faults.migrationTarget) return undefined;
      targetRefusals++;
      return { refuse: { code: protocol.ER_PROXY_NO_BACKEND, message: 'no target in this zone' } };
    });
    hooks.afterMigrate.tap('target-refuser', (outcome) => void migrationOutcomes.push(`${outcome.result}: ${outcome.error ?? ''}`));
  },
});
let targetRefusals = 0;
const migrationOutcomes: string[] = [];

const brokenApply = definePlugin<never>({
  name: 'broken-apply', version: '1.0.0',
  async apply({ hooks }) {
    // Taps made before the failure must not take effect either.
    hooks.onCommand.for(protocol.COM_QUERY).tap('broken-apply', () => ({ error: { code: 9003, message: 'broken-apply is active' } }));
    await Promise.resolve();
    throw new Error('cannot reach the license server');
  },
});

const strict = definePlugin<{ limit: number }>({
  name: 'strict', version: '1.0.0',
  configSchema: {
    type: 'object', additionalProperties: false,
    properties: { limit: { type: 'integer', minimum: 1, default: 10 } },
  },
  apply() {},
});

const plugins = [commandThrower, connectThrower, handshakeRejecter, targetRefuser, brokenApply, strict] as TiproxyPlugin<never>[];

function logsFor(proxy: TestProxy, plugin: string, hook: string): LogLine[] {
  return proxy.logs.filter((l) => l.plugin === plugin && l.hook === hook && l.level === ERROR_LEVEL);
}

describe('plugin isolation', () => {
  let db: MariaDBInstance;
  let proxy: TestProxy;

  before(async () => {
    db = await startMariaDB({ name: 'isolation' });
    proxy = await startProxy({
      backends: [`127.0.0.1:${db.port}`],
      plugins,
      config: { plugins: ['command-thrower', 'connect-thrower', 'handshake-rejecter', 'target-refuser', 'broken-apply'].map((name) => ({ name })) },
    });
  });
  after(async () => {
    await proxy?.stop();
    await db?.destroy();
  });

  function connect(): Promise<mysql.Connection> {
    return mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD });
  }

  async function refusedLogin(): Promise<MysqlError> {
    const err = await connect().then(async (c) => {
      await c.end();
      return null;
    }, (e: unknown) => e as MysqlError);
    assert.ok(err, 'the login was refused');
    return err;
  }

  async function selectOne(c: mysql.Connection): Promise<void> {
    const [rows] = await c.query('SELECT 1 AS one');
    assert.deepEqual(rows, [{ one: 1 }]);
  }

  it('leaves a plugin whose apply() fails out, logs it, and runs without it', async () => {
    assert.ok(!proxy.kernel.generationInfo().plugins.includes('broken-apply'));
    assert.ok(proxy.kernel.generationInfo().plugins.includes('command-thrower'));
    const logged = proxy.logs.find((l) => l.plugin === 'broken-apply' && l.level === ERROR_LEVEL);
    assert.ok(logged, 'the failure is logged');
    assert.match(logged.msg, /plugin broken-apply failed to apply and is left out: cannot reach the license server/);
    const c = await connect();
    await selectOne(c); // broken-apply's tap would have refused this
    await c.end();
  });

  it('onCommand (fail-open): a throwing tap lets queries through; the error is counted and logged with plugin and hook', async () => {
    const c = await connect();
    const before = proxy.kernel.pluginErrors.get('command-thrower/onCommand') ?? 0;
    faults.command = true;
    try {
      for (let i = 0; i < 5; i++) {
        const [rows] = await c.query('SELECT ? AS n', [i]);
        assert.deepEqual(rows, [{ n: i }]);
      }
    } finally {
      faults.command = false;
    }
    assert.equal(proxy.kernel.pluginErrors.get('command-thrower/onCommand'), before + 5);
    const logged = logsFor(proxy, 'command-thrower', 'onCommand');
    assert.ok(logged.length >= 5);
    assert.match(logged.at(-1)!.msg, /plugin command-thrower failed in onCommand: cannot handle SELECT 4 AS n/);
    await selectOne(c);
    await c.end();
  });

  it('connect (fail-closed): a throwing tap refuses new connections with 9004 naming the plugin; open sessions keep working', async () => {
    const open = await connect();
    await selectOne(open);
    faults.connect = true;
    try {
      for (let i = 0; i < 3; i++) {
        const err = await refusedLogin();
        assert.equal(err.errno, protocol.ER_PROXY_PLUGIN_FAILED);
        assert.match(err.message, /plugin connect-thrower failed in connect: connection table corrupted/);
        await selectOne(open);
      }
    } finally {
      faults.connect = false;
    }
    assert.ok((proxy.kernel.pluginErrors.get('connect-thrower/connect') ?? 0) >= 3);
    assert.ok(logsFor(proxy, 'connect-thrower', 'connect').length >= 3);
    const again = await connect();
    await selectOne(again);
    await Promise.all([again.end(), open.end()]);
  });

  it('onHandshake (fail-closed): a rejecting async tap refuses the login with 9004', async () => {
    const open = await connect();
    faults.handshake = true;
    try {
      const err = await refusedLogin();
      assert.equal(err.errno, protocol.ER_PROXY_PLUGIN_FAILED);
      assert.match(err.message, /plugin handshake-rejecter failed in onHandshake: directory lookup for root timed out/);
      await selectOne(open);
    } finally {
      faults.handshake = false;
    }
    assert.equal(proxy.kernel.pluginErrors.get('handshake-rejecter/onHandshake'), 1);
    assert.equal(logsFor(proxy, 'handshake-rejecter', 'onHandshake').length, 1);
    const again = await connect();
    await selectOne(again);
    await Promise.all([again.end(), open.end()]);
  });

  it('selectBackend refusing a migration target fails that migration only; the proxy keeps serving', async () => {
    const c = await connect();
    faults.migrationTarget = true;
    try {
      assert.ok(proxy.kernel.requestMigration(c.threadId, 'test'));
      const deadline = Date.now() + 5000;
      while (migrationOutcomes.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(migrationOutcomes, ['failed: no target in this zone']);
      // The event loop is free: the session and new logins are served while the request waits to be retried.
      await selectOne(c);
      const other = await connect();
      await selectOne(other);
      await other.end();
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(targetRefusals <= 2, `not retried in a loop (${targetRefusals} attempts)`);
    } finally {
      faults.migrationTarget = false;
      await c.end();
    }
  });

  it('a required plugin whose apply() fails makes start-up fail, naming the plugin', async () => {
    const required = definePlugin<never>({
      name: 'must-have', version: '1.0.0',
      apply() {
        throw new Error('no credentials configured');
      },
    });
    await assert.rejects(
      startProxy({ backends: [`127.0.0.1:${db.port}`], plugins: [required], config: { plugins: [{ name: 'must-have', required: true }] } }),
      (err: Error) => {
        assert.equal(err.message, 'required plugin must-have failed to apply: no credentials configured');
        return true;
      },
    );
  });

  it('a plugin config that violates the plugin\'s schema fails with a ConfigError naming plugins[i].config.<key> and the plugin', async () => {
    const attempt = (config: Record<string, unknown>) => startProxy({
      backends: [`127.0.0.1:${db.port}`], plugins,
      config: { plugins: [{ name: 'balance' }, { name: 'strict', config }] },
    });
    await assert.rejects(attempt({ limit: 0 }), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.keyPath, 'plugins[1].config.limit');
      assert.match(err.message, /^plugins\[1\]\.config\.limit: must be >= 1 \(config of plugin strict\)$/);
      return true;
    });
    await assert.rejects(attempt({ limit: 'ten', colour: 'red' }), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.deepEqual(err.issues.map((i) => i.keyPath).sort(), ['plugins[1].config.colour', 'plugins[1].config.limit']);
      assert.match(err.message, /plugins\[1\]\.config\.colour: unknown key/);
      return true;
    });
    // The running proxy is not affected by any of this.
    const c = await connect();
    await selectOne(c);
    await c.end();
  });
});
