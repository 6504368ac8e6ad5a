// Real components: the built CLI (bin/tiproxy → dist/) with proxy.workers: 2 (a primary and two
// node:cluster workers), two MariaDB 10.11 instances, mysql2 clients, and a hot-loaded test plugin
// (plugin-dir) in every worker that serves the metrics service over HTTP on one shared port — as the
// admin API does — and says which worker answered. Every scrape, whichever worker serves it, must return
// the whole proxy: the sum over both workers.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Connection } from 'mysql2/promise';
import { ensureBuilt } from '../../../local-cluster/build.js';
import { startMariaDBs, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { tmpRoot } from '../../../local-cluster/paths.js';
import { freePort } from '../../../local-cluster/ports.js';
import { ClientPool, waitFor } from '../../harness/clients.js';
import { Exposition } from '../../harness/prometheus-text.js';
import { startProxyProcess, type ProxyProcess } from '../../harness/proxy.js';

const SCRAPE_PLUGIN = `import { createServer } from 'node:http';
import { definePlugin } from 'tiproxy/plugin';
export default definePlugin({
  name: 'metrics-http',
  version: '1.0.0',
  apply(ctx) {
    const server = createServer((req, res) => {
      ctx.services.get('metrics').render().then((text) => {
        res.writeHead(200, { 'content-type': ctx.services.get('metrics').contentType, 'x-worker': String(ctx.workers.id) });
        res.end(text);
      }, (err) => { res.writeHead(500); res.end(String(err)); });
    });
    server.listen(ctx.config.port, '127.0.0.1');
    ctx.onDispose(() => server.close());
  },
});
`;

function scrape(port: number): Promise<{ worker: number; metrics: Exposition }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`scrape: ${res.statusCode} ${body}`));
        resolve({ worker: Number(res.headers['x-worker']), metrics: new Exposition(body) });
      });
    }).on('error', reject);
  });
}

describe('metrics with proxy.workers: 2', { timeout: 300_000 }, () => {
  let dbs: MariaDBInstance[] = [];
  let dir: string;
  let proxy: ProxyProcess | null = null;
  const clients = new ClientPool();

  before(async () => {
    ensureBuilt();
    dbs = await startMariaDBs(2, { name: 'metrics-workers' });
    dir = mkdtempSync(join(tmpRoot, 'metrics-workers-'));
  });
  after(async () => {
    await clients.closeAll();
    await proxy?.stop();
    for (const db of dbs) await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('one scrape, served by either worker, sums queries, connections and per-backend counts over both workers', async () => {
    const pluginDir = join(dir, 'plugins');
    const httpPort = await freePort();
    mkdirSync(pluginDir);
    writeFileSync(join(pluginDir, 'metrics-http.ts'), SCRAPE_PLUGIN);
    const file = join(dir, 'proxy.yaml');
    writeFileSync(file, [
      'proxy:', '  workers: 2', 'log:', '  level: info', '  format: json', `plugin-dir: "${pluginDir}"`, 'plugins:',
      '  - name: discovery-static', '    config:', '      backends:', ...dbs.map((db) => `        - addr: "127.0.0.1:${db.port}"`),
      '  - name: metrics-http', '    config:', `      port: ${httpPort}`, '',
    ].join('\n'));
    const p = await startProxyProcess(['--config', file], { expectListening: false });
    proxy = p;
    await waitFor('both workers ready', () => {
      if (p.child.exitCode !== null) assert.fail(`tiproxy exited (${p.child.exitCode}): ${p.output()}`);
      return p.output().includes('all 2 workers ready');
    }, 45_000, 50);

    // Sessions on both workers (the worker is the top 8 bits of the connection id), each running queries.
    const byWorker = new Map<number, Connection[]>([[1, []], [2, []]]);
    for (let opened = 0; [...byWorker.values()].some((cs) => cs.length < 3); opened++) {
      assert.ok(opened < 40, 'sessions reach both workers');
      const c = await clients.connect(p);
      byWorker.get(c.threadId! >>> 24)!.push(c);
    }
    const conns = [...byWorker.values()].flat();
    let queries = 0;
    for (const [i, c] of conns.entries()) {
      for (let q = 0; q <= i; q++) await c.query('SELECT 1');
      queries += i + 1;
    }

    const served = new Set<number>();
    for (let attempt = 0; served.size < 2; attempt++) {
      assert.ok(attempt < 40, `scrapes reached both workers (${[...served].join(',')})`);
      const { worker, metrics } = await scrape(httpPort);
      served.add(worker);
      assert.equal(metrics.sum('tiproxy_session_query_total', { cmd_type: 'COM_QUERY' }), queries, `worker ${worker}'s scrape counts both workers' queries`);
      assert.equal(metrics.sum('tiproxy_session_query_duration_seconds_count', { cmd_type: 'COM_QUERY' }), queries);
      assert.equal(metrics.sum('tiproxy_server_connections'), conns.length);
      assert.equal(metrics.sum('tiproxy_server_create_connection_total'), conns.length);
      assert.equal(metrics.sum('tiproxy_balance_b_conn'), conns.length, 'each worker counts its own sessions per backend; the sum is the whole proxy');
      for (const db of dbs) assert.equal(metrics.sum('tiproxy_backend_healthy', { backend: `127.0.0.1:${db.port}` }), 1, 'states are not multiplied by the workers');
      assert.equal(metrics.find('tiproxy_server_connections').length, 1, 'one series, not one per worker');
    }
  });
});
