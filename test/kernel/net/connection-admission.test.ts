// Real components: a MariaDB 10.11 (mariadbd), the proxy in-process (Kernel with the built-in
// plugins), mysql2 as the client. Covers proxy.max-connections-per-address and proxy.memory-limit-mb:
// who is refused, with which error, and that a reload lifts the limit.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startMariaDB, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { buildConfig, freezeConfig } from '../../../src/kernel/config/config-loader.js';
import type { ProxyConfig } from '../../../src/kernel/config/proxy-config.js';
import { ClientPool, rejection, waitFor } from '../../harness/clients.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';

const clients = new ClientPool();

function withProxyKeys(proxy: TestProxy, keys: Record<string, number>): ReturnType<typeof freezeConfig> {
  const next = structuredClone(proxy.kernel.config()) as ProxyConfig;
  Object.assign(next.proxy, keys);
  return freezeConfig(buildConfig(next));
}

describe('connection admission', () => {
  let db: MariaDBInstance;
  let proxy: TestProxy;

  before(async () => {
    db = await startMariaDB({ name: 'admission' });
    proxy = await startProxy({ backends: [`127.0.0.1:${db.port}`], config: { proxy: { 'max-connections-per-address': 2, 'graceful-close-conn-timeout': 1 } }, logLevel: 'info' });
  });
  after(async () => {
    await clients.closeAll(false);
    await proxy?.stop();
    await db?.destroy();
  });

  it('refuses a third connection from one address with ERR 1040 naming the address and the limit, and admits one after a close', async () => {
    const c1 = await clients.connect(proxy);
    const c2 = await clients.connect(proxy);
    const err = await rejection(clients.connect(proxy));
    assert.equal(err.errno, 1040, err.message);
    assert.equal(err.sqlState, '08004');
    assert.match(err.message, /Too many connections from 127\.0\.0\.1 \(tiproxy max-connections-per-address is 2\)/);
    assert.ok(proxy.logs.some((l) => l.msg === 'connection refused: max-connections-per-address reached' && l['max'] === 2));
    // The refused client took no slot: the two sessions still work, and a close frees one.
    await c2.query('SELECT 1');
    await clients.end(c1);
    await waitFor('a slot to free up', () => proxy.kernel.sessions.size < 2);
    const c3 = await clients.connect(proxy);
    await c3.query('SELECT 1');
    await clients.closeAll(false);
    await waitFor('sessions to close', () => proxy.kernel.sessions.size === 0);
  });

  it('refuses new clients with ERR 1040 (08004) while the process is over memory-limit-mb, serving open sessions, until a reload lifts it', async () => {
    await proxy.kernel.reload(withProxyKeys(proxy, { 'max-connections-per-address': 0, 'memory-limit-mb': 100_000 }));
    const open = await clients.connect(proxy);
    // Any Node process is above 1 MiB resident.
    await proxy.kernel.reload(withProxyKeys(proxy, { 'memory-limit-mb': 1 }));
    await new Promise((r) => setTimeout(r, 150)); // the RSS sample is at most 100 ms old
    const err = await rejection(clients.connect(proxy));
    assert.equal(err.errno, 1040, err.message);
    assert.equal(err.sqlState, '08004');
    assert.match(err.message, /tiproxy is over its memory limit \(\d+ MiB resident, memory-limit-mb is 1\); try again later/);
    assert.ok(proxy.logs.some((l) => l.msg === 'connection refused: memory-limit-mb reached'));
    const [rows] = await open.query('SELECT 41 + 1 AS n');
    assert.equal((rows as Array<{ n: number }>)[0]!.n, 42, 'an open session is served as before');
    await proxy.kernel.reload(withProxyKeys(proxy, { 'memory-limit-mb': 0 }));
    const later = await clients.connect(proxy);
    await later.query('SELECT 1');
  });
});
