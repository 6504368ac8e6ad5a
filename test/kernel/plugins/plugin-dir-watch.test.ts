// Real components: one MariaDB 10.11, the proxy in-process (Kernel) with a plugin directory, mysql2 clients.
// Every way deploy tools and editors change files — in-place writes, atomic renames (write a temp file,
// mv it over), deletions, a plugin in a new sub-folder, a Kubernetes ConfigMap-style `..data` symlink
// swap — must reach the proxy within 2 s, seen by a probe session as a plugin that refuses a query
// appearing, changing and disappearing, while another session runs queries the whole time. The
// configured plugin-dir is itself a symlink to a release directory, swapped at the end: no watched
// directory sees that, only the content poll.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { startMariaDB, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { tmpRoot } from '../../../local-cluster/paths.js';
import { ClientPool } from '../../harness/clients.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';

/** What the issue promises: every write style lands within this. */
const LANDS_WITHIN_MS = 2000;

function guard(name: string, message: string): string {
  return `import { definePlugin, errorReply, protocol } from 'tiproxy/plugin';
export default definePlugin({
  name: ${JSON.stringify(name)},
  version: '1.0.0',
  apply({ hooks }) {
    hooks.onCommand.for(protocol.COM_QUERY).tap(${JSON.stringify(name)}, (ctx) =>
      ctx.sql.includes('forbidden_word') ? errorReply(${JSON.stringify(message)}) : undefined);
  },
});
`;
}

describe('plugin directory watch', { timeout: 60_000 }, () => {
  let db: MariaDBInstance;
  let proxy: TestProxy;
  let root: string;
  /** The configured plugin-dir: a symlink to root/release-1 (then release-2). */
  let dir: string;
  const clients = new ClientPool();
  let probeSession: Connection;
  /** Busy-session loops still running (a failed test leaves its loop to after()). */
  const loops = new Set<() => Promise<unknown>>();

  before(async () => {
    root = mkdtempSync(join(tmpRoot, 'plugin-dir-watch-'));
    mkdirSync(join(root, 'release-1'));
    dir = join(root, 'plugins');
    symlinkSync('release-1', dir);
    db = await startMariaDB({ name: 'plugin-dir-watch' });
    proxy = await startProxy({ backends: [`127.0.0.1:${db.port}`], config: { 'plugin-dir': dir }, logLevel: 'info' });
    probeSession = await clients.connect(proxy);
  });
  after(async () => {
    for (const stop of loops) await stop();
    await clients.closeAll(false);
    await proxy?.stop();
    await db?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  /** What the guard plugins say about a query naming the forbidden word, on a session open all along. */
  async function probe(): Promise<string> {
    try {
      await probeSession.query("SELECT 'forbidden_word' AS w");
      return 'allowed';
    } catch (err) {
      return (err as Error).message;
    }
  }

  /** Changes the directory, then returns how long until the probe said `expected`; fails past 2 s. */
  async function lands(what: string, change: () => void, expected: string): Promise<number> {
    const started = Date.now();
    change();
    let last = '';
    while (Date.now() - started < LANDS_WITHIN_MS + 1000) {
      last = await probe();
      if (last === expected) {
        const took = Date.now() - started;
        assert.ok(took <= LANDS_WITHIN_MS, `${what}: took ${took} ms`);
        return took;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.fail(`${what}: expected "${expected}" within ${LANDS_WITHIN_MS} ms, the probe still says "${last}"`);
  }

  /** Writes a temp file beside `file` and renames it over `file` (what editors, deploy tools and `mv` do). */
  function atomicWrite(file: string, text: string): void {
    const tmp = join(dirname(file), `.tmp-${Date.now()}`);
    writeFileSync(tmp, text);
    renameSync(tmp, file);
  }

  /** A session running queries in a loop; the returned stop() says how many ran and which failed. */
  async function busySession(): Promise<() => Promise<{ queries: number; errors: string[] }>> {
    const c = await clients.connect(proxy);
    let running = true;
    let queries = 0;
    const errors: string[] = [];
    const loop = (async () => {
      while (running) {
        try {
          const [rows] = await c.query<RowDataPacket[]>('SELECT ? AS n', [queries]);
          if (rows[0]!['n'] !== queries) errors.push(`row ${String(rows[0]!['n'])} for query ${queries}`);
          queries++;
        } catch (err) {
          errors.push((err as Error).message);
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    })();
    const stop = async (): Promise<{ queries: number; errors: string[] }> => {
      running = false;
      loops.delete(stop);
      await loop;
      return { queries, errors };
    };
    loops.add(stop);
    return stop;
  }

  it('a single plugin file: atomic rename, in-place write, rename over, write after rename, broken and fixed, deleted', async () => {
    const stop = await busySession();
    const file = join(dir, 'word-guard.ts');
    const took: Record<string, number> = {};
    took['created by rename'] = await lands('created by rename', () => atomicWrite(file, guard('word-guard', 'refused by v1')), 'refused by v1');
    took['in-place write'] = await lands('in-place write', () => writeFileSync(file, guard('word-guard', 'refused by v2')), 'refused by v2');
    took['renamed over'] = await lands('renamed over', () => atomicWrite(file, guard('word-guard', 'refused by v3')), 'refused by v3');
    // Node 20's recursive fs.watch goes deaf to a file once it was renamed over: these two were missed.
    took['write after rename'] = await lands('write after rename', () => writeFileSync(file, guard('word-guard', 'refused by v4')), 'refused by v4');

    // A half-written file fails to compile: the old generation stays and the log says where and why.
    const logsBefore = proxy.logs.length;
    const generation = proxy.kernel.generationInfo().id;
    writeFileSync(file, guard('word-guard', 'refused by v5').slice(0, 120));
    const rejected = (): boolean => proxy.logs.slice(logsBefore).some((l) => /plugin directory change rejected/.test(l.msg));
    const waitStarted = Date.now();
    while (!rejected() && Date.now() - waitStarted < LANDS_WITHIN_MS) await new Promise((r) => setTimeout(r, 20));
    const rejection = proxy.logs.slice(logsBefore).find((l) => /plugin directory change rejected/.test(l.msg));
    assert.ok(rejection, 'the broken file is reported');
    assert.equal(rejection.file, realpathSync(file));
    assert.equal(await probe(), 'refused by v4', 'the running generation stays');
    assert.equal(proxy.kernel.generationInfo().id, generation);
    took['fixed'] = await lands('fixed', () => atomicWrite(file, guard('word-guard', 'refused by v5')), 'refused by v5');

    took['deleted'] = await lands('deleted', () => unlinkSync(file), 'allowed');
    const { queries, errors } = await stop();
    assert.deepEqual(errors, [], 'the busy session saw no error');
    assert.ok(queries > 20, `the busy session kept running (${queries} queries)`);
    console.log(`plugin file changes landed after (ms): ${JSON.stringify(took)}`);
  });

  it('a plugin in a new sub-folder appears when its package.json lands, changes, and goes with the folder', async () => {
    const stop = await busySession();
    const folder = join(dir, 'folder-guard');
    // The folder and its source first, the manifest last (a folder is a plugin once it has a package.json).
    mkdirSync(folder);
    writeFileSync(join(folder, 'index.ts'), guard('folder-guard', 'refused by the folder plugin'));
    await lands('new sub-folder', () => writeFileSync(join(folder, 'package.json'), '{ "name": "folder-guard", "main": "index.ts" }'),
      'refused by the folder plugin');
    await lands('file in the sub-folder renamed over', () => {
      const tmp = join(folder, '.index.ts.tmp');
      writeFileSync(tmp, guard('folder-guard', 'refused by the folder plugin, v2'));
      renameSync(tmp, join(folder, 'index.ts'));
    }, 'refused by the folder plugin, v2');
    await lands('sub-folder removed', () => rmSync(folder, { recursive: true }), 'allowed');
    const { errors } = await stop();
    assert.deepEqual(errors, []);
  });

  it('a Kubernetes ConfigMap-style update (a `..data` symlink swapped) lands, and so does the key being removed', async () => {
    const stop = await busySession();
    // What the kubelet lays out: <key> -> ..data/<key>, ..data -> ..<timestamp>/ holding the files.
    let version = 0;
    const publish = (files: Record<string, string>): void => {
      const stamp = `..2026_12_04_10_00_0${++version}`;
      mkdirSync(join(dir, stamp));
      for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, stamp, name), text);
      symlinkSync(stamp, join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    };
    await lands('first ConfigMap version', () => {
      publish({ 'cm-guard.ts': guard('cm-guard', 'refused by ConfigMap v1') });
      symlinkSync('..data/cm-guard.ts', join(dir, 'cm-guard.ts'));
    }, 'refused by ConfigMap v1');
    await lands('ConfigMap updated', () => publish({ 'cm-guard.ts': guard('cm-guard', 'refused by ConfigMap v2') }), 'refused by ConfigMap v2');
    await lands('ConfigMap updated again', () => publish({ 'cm-guard.ts': guard('cm-guard', 'refused by ConfigMap v3') }), 'refused by ConfigMap v3');
    await lands('key removed from the ConfigMap', () => {
      publish({});
      unlinkSync(join(dir, 'cm-guard.ts'));
    }, 'allowed');
    const { errors } = await stop();
    assert.deepEqual(errors, []);
  });

  it('a write that does not change the content (same bytes, a file no plugin uses) builds no generation', async () => {
    const file = join(dir, 'word-guard.ts');
    await lands('plugin back', () => writeFileSync(file, guard('word-guard', 'refused again')), 'refused again');
    await new Promise((r) => setTimeout(r, 300)); // the reload's own log lines are out
    const generation = proxy.kernel.generationInfo().id;
    const logsBefore = proxy.logs.length;
    writeFileSync(file, guard('word-guard', 'refused again')); // same bytes
    atomicWrite(file, guard('word-guard', 'refused again')); // same bytes, new inode
    writeFileSync(join(dir, 'README.md'), 'notes, not a plugin\n'); // content, but not a plugin's
    await new Promise((r) => setTimeout(r, 1500)); // beyond a poll and a settle
    assert.equal(proxy.kernel.generationInfo().id, generation, 'no new generation');
    const seen = proxy.logs.slice(logsBefore).filter((l) => /plugin directory content changed/.test(l.msg));
    assert.equal(seen.length, 1, `only the README changed the content: ${JSON.stringify(seen)}`);
    assert.equal(await probe(), 'refused again');
  });

  it('the plugin directory, a symlink, swapped to another release directory (seen by the poll alone)', async () => {
    const stop = await busySession();
    mkdirSync(join(root, 'release-2'));
    writeFileSync(join(root, 'release-2', 'release-guard.ts'), guard('release-guard', 'refused by release 2'));
    const took = await lands('release symlink swapped', () => {
      symlinkSync('release-2', join(root, 'plugins.next'));
      renameSync(join(root, 'plugins.next'), dir);
    }, 'refused by release 2');
    console.log(`plugin-dir symlink swap landed after ${took} ms (poll only)`);
    await lands('release 2 edited in place', () => writeFileSync(join(dir, 'release-guard.ts'), guard('release-guard', 'refused by release 2, edited')),
      'refused by release 2, edited');
    const { errors } = await stop();
    assert.deepEqual(errors, []);
  });
});
