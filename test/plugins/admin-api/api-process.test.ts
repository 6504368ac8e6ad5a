// Real components: the built CLI (bin/tiproxy → dist/, rebuilt when src/ is newer) as a child process
// with its admin API on 0.0.0.0 (reached through 127.0.0.1) and no token, one MariaDB 10.11 instance
// (mariadbd), mysql2 clients and Node's fetch.
// Covers what only a whole process shows: SIGTERM's order (health 502 during the graceful wait while
// SQL still answers, then the SQL listener closes), the 401 of an API beyond loopback without a token,
// a start-up that fails on an API port in use, and the web console served from dist/.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startMariaDB, TEST_DATABASE, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { ensureBuilt } from '../../../local-cluster/build.js';
import { repoRoot, tmpRoot } from '../../../local-cluster/paths.js';
import { freePort } from '../../../local-cluster/ports.js';
import { ClientPool, waitFor } from '../../harness/clients.js';
import { accepts, exitCode, startProxyProcess, type ProxyProcess } from '../../harness/proxy.js';

const GRACEFUL_WAIT_S = 3;

describe('the admin API of a tiproxy process', { timeout: 120_000 }, () => {
  let db: MariaDBInstance;
  let dir: string;
  const procs: ProxyProcess[] = [];
  const clients = new ClientPool();

  before(async () => {
    await ensureBuilt();
    db = await startMariaDB({ name: 'admin-api-process' });
    dir = mkdtempSync(join(tmpRoot, 'admin-api-'));
  });
  after(async () => {
    await clients.closeAll(false);
    for (const p of procs) await p.stop('SIGKILL');
    await db?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('on SIGTERM, health answers 502 for the graceful wait while SQL still answers, then the SQL listener closes', async () => {
    const file = join(dir, 'graceful.yaml');
    writeFileSync(file, `proxy:\n  graceful-wait-before-shutdown: ${GRACEFUL_WAIT_S}\n  graceful-close-conn-timeout: 2\nlog:\n  level: info\n`);
    const apiPort = await freePort();
    const p = await startProxyProcess(['--config', file, '--backend', `127.0.0.1:${db.port}`, '--api-addr', `0.0.0.0:${apiPort}`], { apiPort });
    procs.push(p);
    const api = `http://127.0.0.1:${apiPort}`;
    assert.equal((await fetch(`${api}/api/debug/health`)).status, 200);
    // The bundle serves the web console from the files the build copied beside it.
    for (const path of ['/', '/console/console.js', '/console/console.css']) assert.equal((await fetch(`${api}${path}`)).status, 200, path);

    // Beyond loopback without api.token: changes are refused, reads are not.
    const refused = await fetch(`${api}/api/debug/health`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"healthy":false}' });
    assert.equal(refused.status, 401);
    assert.match(((await refused.json()) as { error: string }).error, /no api\.token is configured/);
    assert.equal((await fetch(`${api}/api/debug/health`)).status, 200);

    const c = await clients.connect(p, { database: TEST_DATABASE });
    const sigterm = Date.now();
    p.child.kill('SIGTERM');
    await waitFor('health to turn 502', async () => (await fetch(`${api}/api/debug/health`)).status === 502, 2000, 20);
    const body = (await (await fetch(`${api}/api/debug/health`)).json()) as { unhealthy_reason: string };
    assert.equal(body.unhealthy_reason, 'shutting down');
    // During the wait: the open session and new ones are served.
    const [rows] = await c.query('SELECT 1 AS one');
    assert.deepEqual(rows, [{ one: 1 }]);
    const fresh = await clients.connect(p, { database: TEST_DATABASE });
    await fresh.query('SELECT 1');
    assert.ok(Date.now() - sigterm < GRACEFUL_WAIT_S * 1000, 'all of that happened inside the graceful wait');
    // Then the SQL listener closes (not before the wait is over).
    await waitFor('the SQL port to close', async () => !(await accepts(p.port)), GRACEFUL_WAIT_S * 1000 + 3000, 50);
    assert.ok(Date.now() - sigterm >= GRACEFUL_WAIT_S * 1000 - 100, `closed after ${Date.now() - sigterm} ms`);
    assert.equal(await exitCode(p.child), 0);
    assert.equal(await accepts(apiPort), false, 'the API port is closed at exit');
  });

  it('an API port in use fails the start with one line', async () => {
    const busy = await freePort();
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(busy, '127.0.0.1', r));
    try {
      const sqlPort = await freePort();
      const child = spawn(process.execPath, [join(repoRoot, 'bin', 'tiproxy'), '--addr', `127.0.0.1:${sqlPort}`, '--api-addr', `127.0.0.1:${busy}`,
        '--backend', `127.0.0.1:${db.port}`, '--log-level', 'silent'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 1);
      assert.equal(stderr, `tiproxy: cannot listen on 127.0.0.1:${busy} (api.addr): address already in use\n`);
      assert.equal(await accepts(sqlPort), false, 'the SQL port is not left open');
    } finally {
      blocker.close();
    }
  });
});
