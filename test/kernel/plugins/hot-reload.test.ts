// Real components: one MariaDB 10.11, the proxy in-process with a plugin directory, mysql2 clients.
// A client runs queries in a loop the whole time; plugins are added, changed, broken, fixed, removed.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import { startMariaDB, ROOT_PASSWORD, ROOT_USER, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';

const disposals = (): number => ((globalThis as Record<string, unknown>).__hotPluginDisposals as number | undefined) ?? 0;

function guardPlugin(message: string): string {
  return `import { definePlugin, errorReply, protocol } from 'tiproxy/plugin';
export default definePlugin({
  name: 'word-guard',
  version: '1.0.0',
  apply({ hooks }) {
    hooks.onCommand.for(protocol.COM_QUERY).tap('word-guard', (ctx) =>
      ctx.sql.includes('forbidden_word') ? errorReply(${JSON.stringify(message)}) : undefined);
  },
  dispose() {
    const g = globalThis as Record<string, unknown>;
    g.__hotPluginDisposals = ((g.__hotPluginDisposals as number | undefined) ?? 0) + 1;
  },
});
`;
}

describe('hot-loaded plugin directory', () => {
  let db: MariaDBInstance;
  let proxy: TestProxy;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tiproxy-plugins-'));
    db = await startMariaDB({ name: 'hot' });
    proxy = await startProxy({ backends: [`127.0.0.1:${db.port}`], config: { 'plugin-dir': dir } });
  });
  after(async () => {
    await proxy?.stop();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  async function probe(): Promise<string> {
    const c = await mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD });
    try {
        await c.query("SELECT 'forbidden_word' AS w");
        return 'allowed';
      } catch (err) {
        return (err as Error).message;
    } finally {
      await c.end();
    }
  }

  async function until(expected: string, what: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    let last = '';
    while (Date.now() < deadline) {
      last = await probe();
      if (last === expected) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail(`${what}: expected "${expected}", last probe said "${last}"`);
  }

  it('applies every change without a single error on a busy session', async () => {
    const looper = await mysql.createConnection({ host: proxy.host, port: proxy.port, user: ROOT_USER, password: ROOT_PASSWORD });
    let running = true;
    let queries = 0;
    const errors: string[] = [];
    const loop = (async () => {
      while (running) {
        try {
          const [rows] = await looper.query('SELECT ? AS n', [queries]);
          assert.equal((rows as Array<{ n: number }>)[0]!.n, queries);
          queries++;
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
    })();
    const file = join(dir, 'word-guard.ts');
    const generationAtStart = proxy.kernel.generationInfo().id;
    try {

      writeFileSync(file, guardPlugin('refused by v1'));
      await until('refused by v1', 'plugin added');

      writeFileSync(file, guardPlugin('refused by v2'));
      await until('refused by v2', 'plugin changed');

      const logCount = proxy.logs.length;
      writeFileSync(file, guardPlugin('refused by v3').replace('definePlugin({', 'definePlugin({ oops'));
      const deadline = Date.now() + 10_000;
      while (!proxy.logs.slice(logCount).some((l) => /plugin directory change rejected/.test(l.msg)) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const rejection = proxy.logs.slice(logCount).find((l) => /plugin directory change rejected/.test(l.msg));
      assert.ok(rejection, 'a broken plugin is reported');
      assert.equal(rejection.file, file);
      assert.equal(typeof rejection.line, 'number');
      assert.ok((rejection.line as number) >= 1);
      assert.equal(await probe(), 'refused by v2', 'the previous generation keeps running');

      writeFileSync(file, guardPlugin('refused by v3'));
      await until('refused by v3', 'plugin fixed');

      unlinkSync(file);
      await until('allowed', 'plugin removed');
    } finally {
      running = false;
      await loop;
      await looper.end();
    }
    assert.deepEqual(errors, []);
    assert.ok(queries > 50, `the loop kept running (${queries} queries)`);
    assert.ok(proxy.kernel.generationInfo().id >= generationAtStart + 4);
    // v1, v2 and v3 were retired once no session used them (the looping session adopted each newer one).
    const deadlineDispose = Date.now() + 5000;
    while (disposals() < 3 && Date.now() < deadlineDispose) await new Promise((r) => setTimeout(r, 50));
    assert.equal(disposals(), 3);
  });
});
