// Real components: etcd 3.4 (plain, and one with TLS + client certificates), two MariaDB 10.11 servers,
// `tiproxyctl register` child processes (the built bin/tiproxyctl, as operators run it), the
// proxy in-process with discovery-etcd, and mysql2 clients. Covers registration → routing latency,
// SIGTERM/SIGKILL of the registrar, etcd down at start and mid-run, TLS to etcd, and how --pd-addrs
// enables the plugin.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { applyOverrides, defaultConfig } from '../../../src/kernel/config/config-loader.js';
import { startEtcd, type EtcdInstance } from '../../../local-cluster/etcd.js';
import { startMariaDBs, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';
import { startRegistrar, type RegistrarProcess } from '../../../local-cluster/registrar.js';
import { ClientPool, portOf, waitFor } from '../../harness/clients.js';

const FAST_ETCD = { 'resync-interval': 1, 'max-retry-interval': 0.5, 'warn-interval': 2, 'request-timeout': 1 };
const FAST_HEALTH = { interval: 0.5, timeout: 0.5, retries: 2 };


const { connect, end, closeAll } = new ClientPool();



const addr = (db: MariaDBInstance) => `127.0.0.1:${db.port}`;

describe('discovery-etcd', () => {
  let etcd: EtcdInstance;
  let dbs: MariaDBInstance[] = [];
  let db0: MariaDBInstance;
  let db1: MariaDBInstance;
  const registrars: RegistrarProcess[] = [];
  const proxies: TestProxy[] = [];

  // Built (bin/tiproxyctl → dist/, rebuilt first when src/ is newer): tsx compiling the CLI for each
  // registrar cost seconds apiece on a loaded machine.
  const register = (db: MariaDBInstance, extra: string[] = [], endpoint = etcd.endpoint) => {
    const r = startRegistrar(['--pd-addrs', endpoint, '--addr', addr(db), ...extra], { built: true });
    registrars.push(r);
    return r;
  };

  const proxyWith = async (opts: { static?: MariaDBInstance[]; etcdConfig?: Record<string, unknown>; pdAddrs?: string } = {}) => {
    const proxy = await startProxy({
      ...(opts.static ? { backends: opts.static.map(addr) } : {}),
      config: {
        proxy: { 'pd-addrs': opts.pdAddrs ?? etcd.endpoint, 'graceful-close-conn-timeout': 1 },
        plugins: [
          { name: 'discovery-etcd', config: { ...FAST_ETCD, ...(opts.etcdConfig ?? {}) } },
          { name: 'health', config: FAST_HEALTH },
        ],
      },
      logLevel: 'debug',
    });
    proxies.push(proxy);
    return proxy;
  };

  const stopProxy = async (proxy: TestProxy) => {
    await closeAll();
    await proxy.stop();
    proxies.splice(proxies.indexOf(proxy), 1);
  };

  const deregisterAll = async () => {
    for (const r of registrars.splice(0)) await r.stop('SIGTERM');
  };

  before(async () => {
    [etcd, dbs] = await Promise.all([startEtcd({ name: 'discovery' }), startMariaDBs(2, { name: 'etcd-disc' })]);
    [db0, db1] = dbs as [MariaDBInstance, MariaDBInstance];
  });
  after(async () => {
    await closeAll();
    for (const p of proxies) await p.stop();
    for (const r of registrars) await r.stop('SIGKILL');
    await etcd?.destroy();
    for (const db of dbs) await db.destroy();
  });

  it('--pd-addrs (or proxy.pd-addrs) adds discovery-etcd unless the config lists it', () => {
    const fromFlag = applyOverrides(defaultConfig(), { pdAddrs: ['127.0.0.1:2379', '127.0.0.1:2380'] });
    assert.equal(fromFlag.proxy['pd-addrs'], '127.0.0.1:2379,127.0.0.1:2380');
    assert.deepEqual(fromFlag.plugins.filter((p) => p.name === 'discovery-etcd'), [{ name: 'discovery-etcd', enabled: true, required: false, config: {} }]);
    const listed = applyOverrides({ ...defaultConfig(), plugins: [{ name: 'discovery-etcd', enabled: false, required: false, config: {} }] }, { pdAddrs: ['a:1'] });
    assert.deepEqual(listed.plugins, [{ name: 'discovery-etcd', enabled: false, required: false, config: {} }]);
    assert.equal(applyOverrides(defaultConfig(), {}).plugins.some((p) => p.name === 'discovery-etcd'), false);
    assert.throws(() => applyOverrides(defaultConfig(), { pdAddrs: ['nope'] }), /--pd-addrs/);
  });

  it('a registered backend receives new sessions within 1 s; after SIGTERM none within 1 s', async (t) => {
    const proxy = await proxyWith({ static: [db0] });
    try {
      // Three sessions on db0 make the newcomer the idlest: the next session must go there.
      for (let i = 0; i < 3; i++) assert.equal(await portOf(await connect(proxy)), db0.port);
      const registrar = register(db1, ['--labels', 'zone=z1,group=g']);
      await registrar.registered();
      const registeredAt = Date.now();
      let reachedAt = 0;
      await waitFor('a new session on the registered backend', async () => {
        const c = await connect(proxy);
        if ((await portOf(c)) !== db1.port) return false;
        reachedAt = Date.now();
        return true;
      }, 3000, 20);
      assert.ok(reachedAt - registeredAt < 1000, `first session on ${addr(db1)} ${reachedAt - registeredAt} ms after registration`);
      t.diagnostic(`first session on the registered backend ${reachedAt - registeredAt} ms after registration`);
      const record = proxy.kernel.backends.get(addr(db1))!;
      assert.deepEqual(record.labels, { zone: 'z1', group: 'g' });
      assert.deepEqual([...record.sources], ['discovery-etcd']);

      const stoppedAt = Date.now();
      const code = await registrar.stop('SIGTERM');
      assert.equal(code, 0, registrar.output());
      const goneAfter = await waitFor('the backend to be withdrawn', () => proxy.kernel.backends.get(addr(db1)) === undefined, 3000);
      assert.ok(Date.now() - stoppedAt < 1000, `withdrawn ${Date.now() - stoppedAt} ms after SIGTERM (${goneAfter} ms after exit)`);
      t.diagnostic(`withdrawn ${Date.now() - stoppedAt} ms after SIGTERM`);
      for (let i = 0; i < 8; i++) assert.equal(await portOf(await connect(proxy)), db0.port);
      // Both keys are gone: SIGTERM deregisters.
      const client = new Etcd3({ hosts: etcd.url });
      try {
        assert.deepEqual(await client.getAll().prefix(`/topology/tidb/${addr(db1)}/`).keys(), []);
      } finally {
        client.close();
      }
      // The session that was on db1 is asked to move away (its backend left discovery).
      await waitFor('a migration request for the session left on the withdrawn backend', () => (proxy.kernel.migrationRequestCounts.get('removed') ?? 0) >= 1, 3000);
    } finally {
      await stopProxy(proxy);
      await deregisterAll();
    }
  });

  it('after SIGKILL of the registrar the backend is marked down when its lease (--ttl 2) expires', async (t) => {
    const proxy = await proxyWith({ static: [db0] });
    try {
      const registrar = register(db1, ['--ttl', '2']);
      await registrar.registered();
      await waitFor('the backend to be discovered', () => proxy.kernel.backends.get(addr(db1)) !== undefined, 2000);
      const killedAt = Date.now();
      await registrar.stop('SIGKILL');
      await new Promise((r) => setTimeout(r, 500));
      assert.ok(proxy.kernel.backends.get(addr(db1)), 'still up while the lease runs');
      await waitFor('the lease to expire and the backend to go', () => proxy.kernel.backends.get(addr(db1)) === undefined, 6000);
      const downAfter = Date.now() - killedAt;
      assert.ok(downAfter >= 1000 && downAfter < 4500, `down ${downAfter} ms after SIGKILL (ttl 2 s)`);
      t.diagnostic(`marked down ${downAfter} ms after SIGKILL`);
      // info stays (no lease), like a crashed TiDB's: down means "no ttl key".
      const client = new Etcd3({ hosts: etcd.url });
      try {
        assert.deepEqual(await client.getAll().prefix(`/topology/tidb/${addr(db1)}/`).keys(), [`/topology/tidb/${addr(db1)}/info`]);
        await client.delete().prefix(`/topology/tidb/${addr(db1)}/`);
      } finally {
        client.close();
      }
      for (let i = 0; i < 4; i++) assert.equal(await portOf(await connect(proxy)), db0.port);
    } finally {
      await stopProxy(proxy);
      registrars.splice(0);
    }
  });

  it('etcd stopped and restarted mid-run changes nothing for clients', async (t) => {
    register(db0);
    register(db1);
    await Promise.all(registrars.map((r) => r.registered()));
    const proxy = await proxyWith();
    try {
      await waitFor('both registered backends', () => proxy.kernel.backends.list().length === 2, 3000);
      const sessions = await Promise.all(Array.from({ length: 4 }, () => connect(proxy)));
      let failures = 0;
      let queries = 0;
      let newSessions = 0;
      const seenPorts = new Set<number>();
      let running = true;
      const traffic = (async () => {
        while (running) {
          for (const c of sessions) {
            await c.query('SELECT 1').then(() => queries++, () => failures++);
          }
          try {
            const c = await connect(proxy);
            seenPorts.add(await portOf(c));
            newSessions++;
            await end(c);
          } catch {
            failures++;
          }
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      await new Promise((r) => setTimeout(r, 300));
      const warnsBefore = proxy.logs.filter((l) => l.msg.startsWith('etcd unreachable')).length;
      await etcd.stop();
      const downAt = Date.now();
      await new Promise((r) => setTimeout(r, 3000));
      assert.equal(proxy.kernel.backends.list().length, 2, 'known backends are kept while etcd is down');
      const newWhileDown = newSessions;
      await etcd.start();
      await waitFor('discovery to report etcd reachable again', () => proxy.logs.some((l) => l.msg === 'etcd reachable again'), 8000);
      const downFor = Date.now() - downAt;
      await new Promise((r) => setTimeout(r, 500));
      running = false;
      await traffic;
      t.diagnostic(`${queries} queries, ${newSessions} new sessions (${newWhileDown} while etcd was down), ${failures} failures; etcd down ${downFor} ms`);
      assert.equal(failures, 0, 'no query or new session failed');
      assert.ok(queries > 40 && newWhileDown > 10, `traffic kept flowing (${queries} queries, ${newWhileDown} new sessions while etcd was down)`);
      assert.deepEqual([...seenPorts].sort(), [db0.port, db1.port].sort());
      assert.deepEqual(proxy.kernel.backends.list().map((b) => b.addr).sort(), [addr(db0), addr(db1)].sort());
      const warns = proxy.logs.filter((l) => l.msg.startsWith('etcd unreachable')).length - warnsBefore;
      // warn-interval is 2 s: a few warnings for the outage, not one per retry.
      assert.ok(warns >= 1 && warns <= Math.ceil(downFor / 2000) + 1, `${warns} warnings over ${downFor} ms`);
      assert.ok(proxy.logs.filter((l) => l.msg === 'etcd still unreachable').length > warns, 'the other failures are logged at debug level');
    } finally {
      await stopProxy(proxy);
      await deregisterAll();
    }
  });

  it('starts without etcd when static backends are configured, and picks registrations up once etcd is back', async () => {
    await etcd.stop();
    let proxy: TestProxy | undefined;
    try {
      const started = Date.now();
      proxy = await proxyWith({ static: [db0] });
      assert.ok(Date.now() - started < 3000, `start-up took ${Date.now() - started} ms with etcd down`);
      assert.ok(proxy.logs.some((l) => l.msg === 'etcd did not answer at start-up: starting without its backends, retrying in the background'));
      assert.equal(await portOf(await connect(proxy)), db0.port);
      await etcd.start();
      const registrar = register(db1);
      await registrar.registered();
      await waitFor('the registered backend once etcd answers', () => proxy!.kernel.backends.get(addr(db1)) !== undefined, 3000);
      assert.ok(proxy.kernel.backends.get(addr(db0)), 'the static backend stays');
    } finally {
      if (proxy) await stopProxy(proxy);
      if (!etcd.running()) await etcd.start();
      await deregisterAll();
    }
  });

  it('talks to etcd over TLS with a client certificate (plugin tls: ca/cert/key; tiproxyctl --etcd-ca/--etcd-cert/--etcd-key)', async () => {
    const secure = await startEtcd({ name: 'discovery-tls', tls: true });
    try {
      const tls = secure.tls!;
      const registrar = register(db1, ['--etcd-ca', tls.ca, '--etcd-cert', tls.cert, '--etcd-key', tls.key, '--status-port', '10080'], secure.endpoint);
      await registrar.registered();
      const proxy = await proxyWith({ pdAddrs: secure.endpoint, etcdConfig: { tls: { ca: tls.ca, cert: tls.cert, key: tls.key } } });
      try {
        const record = proxy.kernel.backends.get(addr(db1));
        assert.ok(record, 'discovered before the proxy listened (initial-wait)');
        assert.equal(record.statusPort, 10080);
      } finally {
        await stopProxy(proxy);
      }
      await registrar.stop('SIGTERM');
      registrars.splice(registrars.indexOf(registrar), 1);
    } finally {
      await secure.destroy();
    }
  });
});
