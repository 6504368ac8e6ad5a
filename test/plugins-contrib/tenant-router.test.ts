// Real components: two MariaDB 10.11 instances (labelled group=a and group=b), the proxy in-process with
// discovery-static (labels) and the contrib tenant-router plugin, mysql2 as the client.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import { startMariaDBs, ROOT_PASSWORD, ROOT_USER, type MariaDBInstance } from '../../local-cluster/mariadb.js';
import { startProxy, type TestProxy } from '../harness/proxy.js';
import { compileNetworks, inNetworks } from '../../plugins-contrib/tenant-router/index.js';
import { namePattern } from '../../src/plugin.js';

const PASSWORD = 'tenant-pw';
const USERS = ['app_a_1', 'app_b_1', 'ops_1', 'rep_1'];

interface MysqlError extends Error {
  errno?: number;
  sqlState?: string;
  sqlMessage?: string;
}

async function rejection(promise: Promise<unknown>): Promise<MysqlError> {
  try {
    await promise;
  } catch (err) {
    return err as MysqlError;
  }
  assert.fail('expected the call to fail');
}

function staticBackends(a: MariaDBInstance, b: MariaDBInstance) {
  return {
    name: 'discovery-static',
    config: { backends: [{ addr: `127.0.0.1:${a.port}`, labels: { group: 'a' } }, { addr: `127.0.0.1:${b.port}`, labels: { group: 'b' } }] },
  };
}

describe('tenant-router plugin', () => {
  let dbA: MariaDBInstance;
  let dbB: MariaDBInstance;
  let proxy: TestProxy;
  const open: mysql.Connection[] = [];

  async function connect(user: string, opts: { password?: string; database?: string; via?: TestProxy } = {}): Promise<mysql.Connection> {
    const via = opts.via ?? proxy;
    const c = await mysql.createConnection({
      host: via.host, port: via.port, user, password: opts.password ?? PASSWORD, ...(opts.database ? { database: opts.database } : {}),
    });
    open.push(c);
    return c;
  }

  async function portOf(c: mysql.Connection): Promise<number> {
    const [rows] = await c.query('SELECT @@port AS port');
    return (rows as Array<{ port: number }>)[0]!.port;
  }

  function tenantOf(c: mysql.Connection, via = proxy): string | undefined {
    return via.kernel.sessions.get(c.threadId!)?.labels.get('tenant');
  }

  before(async () => {
    [dbA, dbB] = (await startMariaDBs(2, { name: 'tenant' })) as [MariaDBInstance, MariaDBInstance];
    for (const db of [dbA, dbB]) {
      for (const user of USERS) {
        await db.query(`CREATE USER '${user}'@'%' IDENTIFIED BY '${PASSWORD}'`);
        await db.query(`GRANT ALL PRIVILEGES ON *.* TO '${user}'@'%'`);
      }
      await db.query('CREATE DATABASE reports');
    }
    proxy = await startProxy({
      config: {
        plugins: [
          staticBackends(dbA, dbB),
          {
            name: 'tenant-router',
            required: true,
            config: {
              tenants: [
                { name: 'tenant-a', users: ['app_a_*'], route: { labels: { group: 'a' } } },
                // Never matches from 127.0.0.1: ops_* fall through to the next tenant.
                { name: 'office-ops', users: ['ops_*'], cidrs: ['10.0.0.0/8', 'fd00::/8'], route: { labels: { group: 'b' } } },
                { name: 'local-ops', users: ['ops_*'], cidrs: ['127.0.0.1/32'], route: { labels: { group: 'a' } } },
                { name: 'reporting', databases: ['reports'], route: { labels: { group: 'a' } } },
                { name: 'tenant-b', users: ['app_b_*'], route: { labels: { group: 'b' } } },
              ],
              'default-tenant': 'tenant-b',
            },
          },
        ],
      },
    });
  });

  after(async () => {
    for (const c of open) c.destroy();
    await proxy?.stop();
    await Promise.all([dbA?.destroy(), dbB?.destroy()]);
  });

  it('routes users by glob to their tenant\'s backend group', async () => {
    for (let i = 0; i < 3; i++) {
      const a = await connect('app_a_1');
      assert.equal(await portOf(a), dbA.port);
      assert.equal(tenantOf(a), 'tenant-a');
      const b = await connect('app_b_1');
      assert.equal(await portOf(b), dbB.port);
      assert.equal(tenantOf(b), 'tenant-b');
    }
  });

  it('puts sessions no tenant matches into the default tenant', async () => {
    const c = await connect(ROOT_USER, { password: ROOT_PASSWORD });
    assert.equal(await portOf(c), dbB.port);
    assert.equal(tenantOf(c), 'tenant-b');
  });

  it('matches client networks (CIDR) together with user globs', async () => {
    const c = await connect('ops_1');
    assert.equal(tenantOf(c), 'local-ops', 'the 10.0.0.0/8 tenant does not match a client on 127.0.0.1');
    assert.equal(await portOf(c), dbA.port);
  });

  it('matches the database given at login', async () => {
    const withDb = await connect('rep_1', { database: 'reports' });
    assert.equal(tenantOf(withDb), 'reporting');
    assert.equal(await portOf(withDb), dbA.port);
    const withoutDb = await connect('rep_1');
    assert.equal(tenantOf(withoutDb), 'tenant-b');
    assert.equal(await portOf(withoutDb), dbB.port);
  });

  it('refuses a tenant whose backends are all unhealthy, naming the tenant; other tenants are unaffected', async () => {
    const addrA = `127.0.0.1:${dbA.port}`;
    const existing = await connect('app_a_1');
    proxy.kernel.backends.setHealth(addrA, false, 'test');
    try {
      const err = await rejection(connect('app_a_1'));
      assert.equal(err.errno, 9001, err.message);
      assert.match(err.message, /tenant "tenant-a" has no healthy backend \(labels group=a; 1 backend: 1 unhealthy, 0 draining\)/);
      // Not sent to group b as a fallback, and tenant b still works.
      const b = await connect('app_b_1');
      assert.equal(await portOf(b), dbB.port);
      // A session already on the backend is not the router's business.
      assert.equal(await portOf(existing), dbA.port);
    } finally {
      proxy.kernel.backends.setHealth(addrA, true, 'test');
    }
    const again = await connect('app_a_1');
    assert.equal(await portOf(again), dbA.port);
  });

  it('refuses a draining-only tenant the same way', async () => {
    const addrA = `127.0.0.1:${dbA.port}`;
    proxy.kernel.backends.setDraining(addrA, true);
    try {
      const err = await rejection(connect('app_a_1'));
      assert.equal(err.errno, 9001);
      assert.match(err.message, /tenant "tenant-a" has no healthy backend .*0 unhealthy, 1 draining/);
    } finally {
      proxy.kernel.backends.setDraining(addrA, false);
    }
  });

  it('refuses COM_CHANGE_USER into a tenant that runs elsewhere, and the session stays usable', async () => {
    const c = await connect('app_a_1');
    const err = await rejection(c.changeUser({ user: 'app_b_1', password: PASSWORD }));
    assert.equal(err.errno, 1045, err.message);
    assert.match(err.message, /tenant "tenant-b"/);
    assert.equal(tenantOf(c), 'tenant-a');
    assert.equal(await portOf(c), dbA.port);
    const [rows] = await c.query('SELECT CURRENT_USER() AS u');
    assert.match((rows as Array<{ u: string }>)[0]!.u, /^app_a_1@/);
  });

  it('allows COM_CHANGE_USER within the same backend group', async () => {
    const c = await connect('app_a_1');
    await c.changeUser({ user: 'ops_1', password: PASSWORD });
    assert.equal(tenantOf(c), 'local-ops');
    const [rows] = await c.query('SELECT CURRENT_USER() AS u, @@port AS port');
    assert.deepEqual(rows, [{ u: 'ops_1@%', port: dbA.port }]);
  });

  describe('with unmatched: refuse and no default tenant', () => {
    let strict: TestProxy;
    before(async () => {
      strict = await startProxy({
        config: {
          plugins: [staticBackends(dbA, dbB), {
            name: 'tenant-router', required: true,
            config: { unmatched: 'refuse', tenants: [{ name: 'tenant-a', users: ['app_a_*'], route: { labels: { group: 'a' } } }] },
          }],
        },
      });
    });
    after(async () => {
      for (const c of open) c.destroy();
      await strict?.stop();
    });

    it('denies logins no tenant matches with a clear message', async () => {
      const err = await rejection(connect(ROOT_USER, { password: ROOT_PASSWORD, via: strict }));
      assert.equal(err.errno, 1045);
      assert.equal(err.sqlState, '28000');
      assert.match(err.message, /Access denied for user 'root'@'127\.0\.0\.1': no tenant matches this login \(tiproxy tenant-router\)/);
      const a = await connect('app_a_1', { via: strict });
      assert.equal(await portOf(a), dbA.port);
    });
  });

  it('fails start-up (when required) on a default-tenant that names no tenant', async () => {
    await assert.rejects(startProxy({
      config: { plugins: [staticBackends(dbA, dbB), { name: 'tenant-router', required: true, config: { tenants: [{ name: 'x' }], 'default-tenant': 'y' } }] },
    }), /default-tenant "y" is not one of the tenants \(x\)/);
  });

  it('rejects malformed networks at start-up', async () => {
    await assert.rejects(startProxy({
      config: { plugins: [staticBackends(dbA, dbB), { name: 'tenant-router', required: true, config: { tenants: [{ name: 'x', cidrs: ['10.0.0.0/33'] }] } }] },
    }), /tenants\[0\]\.cidrs: "10\.0\.0\.0\/33" is not an IPv4 or IPv6 network/);
  });
});

describe('tenant-router matching helpers', () => {
  it('globs match whole user names, case-sensitively', () => {
    assert.ok(namePattern('app_a_*').test('app_a_1'));
    assert.ok(!namePattern('app_a_*').test('xapp_a_1'));
    assert.ok(!namePattern('app_a_*').test('APP_A_1'));
    assert.ok(namePattern('u?.x').test('u1.x'));
    assert.ok(!namePattern('u?.x').test('u1yx'), 'a dot is literal');
  });

  it('CIDRs cover IPv4, IPv4-mapped IPv6 and IPv6 clients', () => {
    const nets = compileNetworks(['10.0.0.0/8', '192.168.1.7', 'fd00::/8'], 'test');
    assert.ok(inNetworks(nets, '10.200.3.4'));
    assert.ok(inNetworks(nets, '::ffff:10.1.1.1'));
    assert.ok(inNetworks(nets, '192.168.1.7'));
    assert.ok(!inNetworks(nets, '192.168.1.8'));
    assert.ok(inNetworks(nets, 'fd12::1'));
    assert.ok(!inNetworks(nets, '127.0.0.1'));
    assert.ok(!inNetworks(nets, ''));
  });
});
