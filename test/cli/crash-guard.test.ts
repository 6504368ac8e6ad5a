// Real components: one MariaDB 10.11, the tiproxy CLI (bin/tiproxy) with a hot plugin directory, mysql2.
// A plugin whose background work throws must not take the proxy down.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import { startMariaDB, ROOT_PASSWORD, ROOT_USER, type MariaDBInstance } from '../../local-cluster/mariadb.js';
import { tmpRoot } from '../../local-cluster/paths.js';
import { startProxyProcess, type ProxyProcess } from '../harness/proxy.js';

describe('the CLI survives a plugin\'s background failures', () => {
  let db: MariaDBInstance;
  let proxy: ProxyProcess;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpRoot, 'crash-guard-'));
    writeFileSync(join(dir, 'misbehaving.ts'), `import { definePlugin } from 'tiproxy/plugin';
export default definePlugin({
  name: 'misbehaving',
  version: '1.0.0',
  apply() {
    setTimeout(() => { throw new Error('boom from a timer'); }, 100);
    void Promise.reject(new Error('boom from a promise'));
  },
});
`);
    db = await startMariaDB({ name: 'crash-guard' });
    proxy = await startProxyProcess(['--backend', `127.0.0.1:${db.port}`, '--plugin-dir', dir]);
  });
  after(async () => {
    await proxy?.stop();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('logs a throwing timer and an unhandled rejection and keeps serving', async () => {
    const deadline = Date.now() + 5000;
    while (!/boom from a timer/.test(proxy.output()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(proxy.child.exitCode, null, `still running:\n${proxy.output()}`);
    assert.match(proxy.output(), /uncaught exception \(kept running\): boom from a timer/);
    assert.match(proxy.output(), /unhandled rejection \(kept running\): boom from a promise/);
    const c = await mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD });
    const [[row]] = (await c.query('SELECT 41 + 1 AS answer')) as unknown as [[{ answer: number }]];
    assert.equal(row.answer, 42);
    await c.end();
  });
});
