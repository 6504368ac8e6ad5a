// The example plugin examples/plugins/route-and-guard, hot-loaded from a plugin directory (a temporary
// copy of the example folder) with the plugin list of examples/proxy-with-plugins.yaml, against two
// real MariaDB servers labelled group=oltp and group=reporting; mysql2 clients.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import { loadConfigFile } from '../../src/kernel/config/config-loader.js';
import { ER_PROXY_NO_BACKEND, ER_PROXY_PLUGIN_REFUSED } from '../../src/kernel/protocol/constants.js';
import { startMariaDBs, ROOT_PASSWORD, ROOT_USER, TEST_DATABASE, type MariaDBInstance } from '../../local-cluster/mariadb.js';
import { repoRoot } from '../../local-cluster/paths.js';
import { startProxy, type TestProxy } from '../harness/proxy.js';

const EXAMPLE_DIR = join(repoRoot, 'examples', 'plugins', 'route-and-guard');
const EXAMPLE_CONFIG = join(repoRoot, 'examples', 'proxy-with-plugins.yaml');
const PASSWORD = 'example-pw';
/** Users the example config routes and guards; created on both backends. */
const USERS = ['report_alice', 'app'] as const;

interface MysqlError extends Error {
  errno: number;
  sqlMessage: string;
}

describe('example plugin route-and-guard (hot plugin directory, two labelled MariaDBs)', () => {
  let oltp: MariaDBInstance;
  let reporting: MariaDBInstance;
  let proxy: TestProxy;
  let pluginDir: string;

  before(async () => {
    [oltp, reporting] = (await startMariaDBs(2, { name: 'route-and-guard' })) as [MariaDBInstance, MariaDBInstance];
    for (const db of [oltp, reporting]) {
      for (const user of USERS) {
        await db.query(`CREATE USER ${user}@'%' IDENTIFIED BY '${PASSWORD}'`);
        await db.query(`GRANT ALL PRIVILEGES ON ${TEST_DATABASE}.* TO ${user}@'%'`);
      }
    }
    // The plugin directory is a copy of the example folder: what ships is what is tested.
    pluginDir = mkdtempSync(join(tmpdir(), 'tiproxy-example-plugins-'));
    cpSync(EXAMPLE_DIR, pluginDir, { recursive: true });
    // The example config's plugin list, with the backends' addresses replaced by the test servers'.
    const example = loadConfigFile(EXAMPLE_CONFIG);
    const ports: Record<string, number> = { oltp: oltp.port, reporting: reporting.port };
    const plugins = example.plugins.map((p) => {
      if (p.name !== 'discovery-static') return p;
      const backends = (p.config.backends as Array<{ addr: string; labels: Record<string, string> }>)
        .map((b) => ({ ...b, addr: `127.0.0.1:${ports[b.labels.group!]}` }));
      return { ...p, config: { ...p.config, backends } };
    });
    proxy = await startProxy({ config: { 'plugin-dir': pluginDir, plugins } });
  });

  after(async () => {
    await proxy?.stop();
    await Promise.all([oltp?.destroy(), reporting?.destroy()]);
    if (pluginDir) rmSync(pluginDir, { recursive: true, force: true });
  });

  function connect(user: string, password = PASSWORD): Promise<mysql.Connection> {
    return mysql.createConnection({ host: proxy.host, port: proxy.port, user, password, database: TEST_DATABASE });
  }

  async function backendPort(c: mysql.Connection): Promise<number> {
    const [rows] = await c.query('SELECT @@port AS port');
    return Number((rows as Array<{ port: number }>)[0]!.port);
  }

  async function refusal(c: mysql.Connection, sql: string, prepared = false): Promise<MysqlError> {
    const err = await (prepared ? c.execute(sql) : c.query(sql)).then(() => null, (e: unknown) => e as MysqlError);
    assert.ok(err, `${sql} was refused`);
    return err;
  }

  it('is compiled from the plugin directory and applied', () => {
    assert.ok(proxy.kernel.generationInfo().plugins.includes('route-and-guard'), `applied: ${proxy.kernel.generationInfo().plugins.join(', ')}`);
    assert.ok(proxy.logs.some((l) => l.plugin === 'route-and-guard' && l.msg === 'route-and-guard applied'));
  });

  it('routes report_* users to the reporting backend and everybody else to oltp', async () => {
    const sessions: Array<{ user: string; conn: mysql.Connection }> = [];
    try {
      // Several at once, so the balancer (least-connections over every backend) would spread them if unrestricted.
      for (let i = 0; i < 3; i++) {
        for (const [user, password] of [['report_alice', PASSWORD], ['app', PASSWORD], [ROOT_USER, ROOT_PASSWORD]] as const) {
          sessions.push({ user, conn: await connect(user, password) });
        }
      }
      for (const { user, conn } of sessions) {
        assert.equal(await backendPort(conn), user === 'report_alice' ? reporting.port : oltp.port, `${user} landed on the wrong backend`);
      }
    } finally {
      await Promise.all(sessions.map((s) => s.conn.end()));
    }
  });

  it('vetoes a migration that would take a routed session out of its group', async () => {
    const alice = await connect('report_alice');
    try {
      const logCount = proxy.logs.length;
      assert.ok(proxy.kernel.requestMigration(alice.threadId, 'test', `127.0.0.1:${oltp.port}`));
      const deadline = Date.now() + 5000;
      let veto;
      while (!(veto = proxy.logs.slice(logCount).find((l) => l.conn === alice.threadId && /^migration vetoed/.test(l.msg))) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(veto, 'the migration was vetoed');
      assert.match(veto.msg, /route-and-guard: sessions of 'report_alice' stay on backends with group=reporting/);
      assert.equal(await backendPort(alice), reporting.port);
    } finally {
      await alice.end();
    }
  });

  it('refuses DROP for the guarded user, in every disguise, and lets everything else through', async () => {
    await oltp.query(`CREATE TABLE ${TEST_DATABASE}.guarded (id INT PRIMARY KEY, note VARCHAR(50))`);
    const app = await connect('app');
    try {
      for (const sql of [
        'DROP TABLE guarded',
        '  /* maintenance */ drop table if exists guarded',
        'SELECT 1; DROP TABLE guarded',
        'ALTER TABLE guarded DROP COLUMN note',
        '/*!50000 DROP TABLE guarded */',
        "EXECUTE IMMEDIATE 'DROP TABLE guarded'",
      ]) {
        const err = await refusal(app, sql);
        assert.equal(err.errno, ER_PROXY_PLUGIN_REFUSED, sql);
        assert.equal(err.sqlMessage, "DROP statements are not allowed for user 'app' (route-and-guard)", sql);
      }
      const prepared = await refusal(app, 'DROP TABLE guarded', true);
      assert.equal(prepared.errno, ER_PROXY_PLUGIN_REFUSED, 'a prepared DROP is refused at COM_STMT_PREPARE');

      // The session is still fine, and statements that merely mention drop go through.
      await app.query("INSERT INTO guarded VALUES (1, 'drop table guarded')");
      const [rows] = await app.query('SELECT note AS `drop` FROM guarded -- DROP');
      assert.deepEqual(rows, [{ drop: 'drop table guarded' }]);
      const tables = await oltp.query<Array<{ n: number }>>(
        `SELECT COUNT(*) AS n FROM information_schema.columns WHERE table_schema = '${TEST_DATABASE}' AND table_name = 'guarded'`);
      assert.equal(Number(tables[0]!.n), 2, 'the table and both its columns are still there');
      assert.ok(proxy.logs.some((l) => l.plugin === 'route-and-guard' && l.msg === 'DROP refused' && l.user === 'app'));
    } finally {
      await app.end();
    }
  });

  it('lets users not in refuse-drop-for run DROP', async () => {
    const root = await connect(ROOT_USER, ROOT_PASSWORD);
    try {
      assert.equal(await backendPort(root), oltp.port);
      await root.query('DROP TABLE guarded');
      const tables = await oltp.query<Array<{ n: number }>>(
        `SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = '${TEST_DATABASE}' AND table_name = 'guarded'`);
      assert.equal(Number(tables[0]!.n), 0);
    } finally {
      await root.end();
    }
  });

  it('refuses a routed user whose group has no healthy backend, naming the group', async () => {
    const addr = `127.0.0.1:${reporting.port}`;
    proxy.kernel.backends.setHealth(addr, false, 'test');
    try {
      const err = await connect('report_alice').then(async (c) => {
        await c.end();
        return null;
      }, (e: unknown) => e as MysqlError);
      assert.ok(err, 'the login was refused');
      assert.equal(err.errno, ER_PROXY_NO_BACKEND);
      assert.equal(err.sqlMessage, "no healthy backend with group=reporting for user 'report_alice' (route-and-guard)");
      // Other users are not affected.
      const app = await connect('app');
      assert.equal(await backendPort(app), oltp.port);
      await app.end();
    } finally {
      proxy.kernel.backends.setHealth(addr, true, 'test');
    }
    const alice = await connect('report_alice');
    assert.equal(await backendPort(alice), reporting.port);
    await alice.end();
  });
});
