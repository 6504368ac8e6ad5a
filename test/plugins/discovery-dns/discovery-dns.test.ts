// Real components: two MariaDB 10.11 servers, the proxy in-process with discovery-dns, mysql2 clients,
// the system resolver for `localhost` (/etc/hosts), and a tiny UDP DNS server on 127.0.0.1
// (test/harness/dns-server.ts) whose A/SRV answers the tests change. No external DNS is used.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDnsServer, type DnsServer } from '../../harness/dns-server.js';
import { startMariaDBs, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';
import { ClientPool, portOf, waitFor } from '../../harness/clients.js';


const { connect, closeAll } = new ClientPool();

async function portThroughProxy(proxy: TestProxy): Promise<number> {
  return portOf(await connect(proxy, { connectTimeout: 5000 }));
}

const addrs = (proxy: TestProxy) => proxy.kernel.backends.list().map((b) => b.addr).sort();

describe('discovery-dns', () => {
  let dbs: MariaDBInstance[] = [];
  let db0: MariaDBInstance;
  let db1: MariaDBInstance;
  let dns: DnsServer;

  before(async () => {
    [dbs, dns] = await Promise.all([startMariaDBs(2, { name: 'dns' }), startDnsServer()]);
    [db0, db1] = dbs as [MariaDBInstance, MariaDBInstance];
  });
  after(async () => {
    await closeAll();
    await dns?.close();
    for (const db of dbs) await db.destroy();
  });

  it('an A name resolved by the system resolver (localhost → 127.0.0.1) serves the port from config', async () => {
    const proxy = await startProxy({
      config: { plugins: [{ name: 'discovery-dns', config: { names: [{ name: 'localhost', labels: { zone: 'a' } }], port: db0.port, interval: 0.2 } }] },
      logLevel: 'info',
    });
    try {
      assert.deepEqual(addrs(proxy), [`127.0.0.1:${db0.port}`], 'resolved before the proxy listened');
      assert.deepEqual(proxy.kernel.backends.get(`127.0.0.1:${db0.port}`)?.labels, { zone: 'a' });
      assert.equal(await portThroughProxy(proxy), db0.port);
    } finally {
      await closeAll();
      await proxy.stop();
    }
  });

  it('each answer set replaces the backends (SRV ports, A records from a configured server); NXDOMAIN empties, SERVFAIL keeps the last answer', async () => {
    dns.set({ srv: { '_mysql._tcp.db.test': [{ target: '127.0.0.1', port: db0.port }] }, a: { 'one.db.test': ['127.0.0.1'] } });
    const proxy = await startProxy({
      config: {
        plugins: [{
          name: 'discovery-dns',
          config: { names: [{ name: '_mysql._tcp.db.test', type: 'SRV' }, { name: 'one.db.test', port: db1.port }], servers: [dns.server], interval: 0.2, timeout: 0.5, 'warn-interval': 0 },
        }],
      },
      logLevel: 'info',
    });
    try {
      assert.deepEqual(addrs(proxy), [`127.0.0.1:${db0.port}`, `127.0.0.1:${db1.port}`].sort());
      assert.ok(dns.queries().includes('SRV _mysql._tcp.db.test') && dns.queries().includes('A one.db.test'), dns.queries().join(', '));

      // The SRV answer moves to db1's port and the A name disappears (NXDOMAIN): only db1 is left.
      dns.set({ srv: { '_mysql._tcp.db.test': [{ target: '127.0.0.1', port: db1.port }] } });
      await waitFor('the new answer set', () => addrs(proxy).join() === `127.0.0.1:${db1.port}`, 3000);
      assert.equal(await portThroughProxy(proxy), db1.port);

      // A failing server is not an empty answer: the backends stay.
      dns.set({ fail: ['_mysql._tcp.db.test', 'one.db.test'] });
      await waitFor('a failed lookup to be logged', () => proxy.logs.some((l) => l.msg === 'DNS lookup failed: keeping the previous answer'), 3000);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(addrs(proxy), [`127.0.0.1:${db1.port}`]);
      assert.equal(await portThroughProxy(proxy), db1.port);

      dns.set({ srv: { '_mysql._tcp.db.test': [{ target: '127.0.0.1', port: db0.port }, { target: '127.0.0.1', port: db1.port }] } });
      await waitFor('both SRV targets', () => addrs(proxy).length === 2, 3000);
    } finally {
      await closeAll();
      await proxy.stop();
    }
  });
});
