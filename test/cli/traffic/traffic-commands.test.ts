// Real components: one MariaDB 10.11, the real `bin/tiproxy` (built dist/) as a child process over it,
// mysql2 clients, the real `bin/tiproxyctl` run as a child process for `traffic capture / show / cancel /
// replay`, and Debian's chromium (headless, playwright-core) rendering the replay's report.html. The
// screenshot goes to the test's temp dir; with TIPROXY_UPDATE_SCREENSHOTS=1 it replaces
// docs/images/traffic-report.png (the one docs/traffic.md shows).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { ensureBuilt } from '../../../local-cluster/build.js';
import { startMariaDB, ROOT_PASSWORD, ROOT_USER, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { repoRoot, tmpRoot } from '../../../local-cluster/paths.js';
import type { ReplayReport } from '../../../src/cli/traffic/replay-report.js';
import { launchChromium } from '../../harness/browser.js';
import { ClientPool } from '../../harness/clients.js';
import { startProxyProcess, type ProxyProcess } from '../../harness/proxy.js';
import { runTiproxyctl } from '../../harness/tiproxyctl.js';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The built bin/tiproxyctl. */
const tiproxyctl = (...args: string[]) => runTiproxyctl(args, { built: true });

const { connect, closeAll } = new ClientPool();

describe('tiproxyctl traffic capture / show / cancel / replay (the built CLIs, end to end)', () => {
  let db: MariaDBInstance;
  let proxy: ProxyProcess;
  const dir = mkdtempSync(join(tmpRoot, 'traffic-ctl-'));
  const capture = join(dir, 'capture');
  const passwordFile = join(dir, 'password');
  const api = () => `127.0.0.1:${proxy.apiPort}`;
  const replayArgs = (report: string) => [
    'traffic', 'replay', '--input', capture, '--target', `127.0.0.1:${db.port}`, '--user', ROOT_USER, '--password-file', passwordFile, '--report', report,
  ];

  before(async () => {
    ensureBuilt('tiproxy');
    ensureBuilt('tiproxyctl');
    db = await startMariaDB({ name: 'traffic-ctl' });
    await db.query('CREATE DATABASE shop');
    await db.query('CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL, note VARCHAR(20))');
    await db.query("INSERT INTO shop.items SELECT seq, CONCAT('item', seq), CONCAT('note', seq) FROM shop.seq_1_to_20");
    writeFileSync(passwordFile, `${ROOT_PASSWORD}\n`, { mode: 0o600 });
    proxy = await startProxyProcess(['--backend', `127.0.0.1:${db.port}`, '--log-level', 'warn'], { startTimeoutMs: 30_000 });
  });
  after(async () => {
    await closeAll();
    await proxy?.stop();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('captures through the admin API, shows the job, refuses a second one, cancels, and replays with exit 0 then 4 when results differ', async () => {
    const started = await tiproxyctl('traffic', 'capture', '--api', api(), '--output', capture, '--duration', '120', '--result-digest');
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stdout, /running/);
    const second = await tiproxyctl('traffic', 'capture', '--api', api(), '--output', join(dir, 'other'), '--duration', '5');
    assert.equal(second.code, 3, 'a second capture is refused (409)');
    assert.match(second.stderr, /already running/);

    // The application, through the proxy: lookups, a count, a prepared statement, a non-deterministic query, a failing one.
    const c = await connect({ host: '127.0.0.1', port: proxy.port }, { database: 'shop' });
    for (let id = 1; id <= 8; id++) await c.query(`SELECT name FROM items WHERE id = ${id}`);
    for (let id = 1; id <= 3; id++) await c.execute('SELECT id, name, note FROM items WHERE id <= ?', [id]);
    await c.query('SELECT COUNT(*) AS n FROM items');
    await c.query('SELECT NOW(6) AS t, name FROM items WHERE id = 3');
    await assert.rejects(c.query('SELECT * FROM no_such_table'));

    const shown = await tiproxyctl('traffic', 'show', '--api', api(), '--json');
    assert.equal(shown.code, 0, shown.stderr);
    const jobs = JSON.parse(shown.stdout) as Array<{ status: string; commands: number; result_digest: boolean; output: string }>;
    assert.equal(jobs[0]?.status, 'running', shown.stdout);
    assert.equal(jobs[0]?.output, capture);
    assert.ok(jobs[0]!.commands >= 14, `${jobs[0]!.commands} commands captured so far`);

    const cancelled = await tiproxyctl('traffic', 'cancel', '--api', api(), '--json');
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.equal((JSON.parse(cancelled.stdout) as Array<{ status: string }>)[0]?.status, 'canceled');
    const again = await tiproxyctl('traffic', 'cancel', '--api', api());
    assert.equal(again.code, 3, 'nothing to cancel (404)');
    assert.match(again.stderr, /no capture is running/);
    const meta = JSON.parse(readFileSync(join(capture, 'meta.json'), 'utf8')) as { status: string; resultDigest: boolean; dropped: number };
    assert.deepEqual({ status: meta.status, resultDigest: meta.resultDigest, dropped: meta.dropped }, { status: 'canceled', resultDigest: true, dropped: 0 });

    // Against the unchanged server: nothing differs, exit 0.
    const same = await tiproxyctl(...replayArgs(join(dir, 'report-same')));
    assert.equal(same.code, 0, same.stdout + same.stderr);
    assert.match(same.stdout, /no differences/);
    assert.ok(existsSync(join(dir, 'report-same', 'report.html')));
    const sameReport = JSON.parse(readFileSync(join(dir, 'report-same', 'report.json'), 'utf8')) as ReplayReport;
    assert.equal(sameReport.summary.differences, 0);
    assert.equal(sameReport.summary.replayed, sameReport.summary.commands);

    // The "upgraded" server: one row's value changed, a column dropped.
    await db.query("UPDATE shop.items SET name = 'renamed' WHERE id = 3");
    await db.query('ALTER TABLE shop.items DROP COLUMN note');
    const changed = await tiproxyctl(...replayArgs(join(dir, 'report-changed')), '--speed', '2');
    assert.equal(changed.code, 4, `differences exit 4: ${changed.stdout}${changed.stderr}`);
    assert.match(changed.stdout, /different-result 1: SELECT name FROM items WHERE id=\?/);
    assert.match(changed.stdout, /report: .*report\.html/);
    const report = JSON.parse(readFileSync(join(dir, 'report-changed', 'report.json'), 'utf8')) as ReplayReport;
    const differing = Object.fromEntries(report.statements.filter((d) => d.differing > 0).map((d) => [d.statement, d.differences]));
    assert.deepEqual(differing, {
      'SELECT name FROM items WHERE id=?': { 'different-result': 1 },
      'PREPARE SELECT id,name,note FROM items WHERE id<=?': { 'error-on-target': 1 },
    }, JSON.stringify(report.statements, null, 1));

    // The page a person reads, rendered by a real browser.
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await page.goto(pathToFileURL(join(dir, 'report-changed', 'report.html')).href);
      assert.match(await page.locator('.verdict').innerText(), /2 differing executions in 2 statements/);
      const bad = page.locator('tr.bad');
      assert.equal(await bad.count(), 2);
      assert.match(await bad.first().innerText(), /different-result|error-on-target/);
      const shot = process.env['TIPROXY_UPDATE_SCREENSHOTS'] === '1' ? join(repoRoot, 'docs', 'images', 'traffic-report.png') : join(dir, 'traffic-report.png');
      mkdirSync(join(shot, '..'), { recursive: true });
      await page.screenshot({ path: shot, fullPage: true });
      const png = readFileSync(shot);
      assert.ok(png.subarray(0, 8).equals(PNG_SIGNATURE) && png.length > 10_000, `a real screenshot at ${shot}`);
    } finally {
      await browser.close();
    }
  });
});
