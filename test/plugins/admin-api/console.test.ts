// Real components: two MariaDB 10.11 instances (mariadbd), the proxy in-process with its admin API on
// 0.0.0.0 (reached through 127.0.0.1) with a bearer token, credentials-native and migrate-replay (so
// sessions can move), mysql2 clients, and Debian's chromium (headless, driven by playwright-core)
// loading the web console the API serves at `/`.
// The screenshot goes to the test's temp dir; with TIPROXY_UPDATE_SCREENSHOTS=1 it replaces
// docs/images/console.png (the one operations.md shows).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, ConsoleMessage, Page } from 'playwright-core';
import { startMariaDBs, ROOT_PASSWORD, ROOT_USER, TEST_DATABASE, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { repoRoot, tmpRoot } from '../../../local-cluster/paths.js';
import { freePort } from '../../../local-cluster/ports.js';
import { launchChromium } from '../../harness/browser.js';
import { ClientPool, portOf, waitFor } from '../../harness/clients.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';

const TOKEN = 'console-test-token-8d1e';
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe('web console', { timeout: 120_000 }, () => {
  let dbs: MariaDBInstance[];
  let proxy: TestProxy;
  let browser: Browser;
  let page: Page;
  let api: string;
  let dir: string;
  const clients = new ClientPool();
  const addrOf = (d: MariaDBInstance) => `127.0.0.1:${d.port}`;
  const connect = () => clients.connect(proxy, { database: TEST_DATABASE });

  /** The text of the cell in column `column` (1-based) of the backend row `addr`. */
  const backendCell = (addr: string, column: number) => page.locator(`#backends tr[data-addr="${addr}"] td:nth-child(${column})`).innerText();
  const SESSIONS_COLUMN = 5;
  const STATE_COLUMN = 3;

  before(async () => {
    dir = mkdtempSync(join(tmpRoot, 'console-'));
    [dbs, browser] = await Promise.all([startMariaDBs(2, { name: 'console' }), launchChromium()]);
    const apiPort = await freePort();
    proxy = await startProxy({
      logLevel: 'info',
      config: {
        api: { addr: `0.0.0.0:${apiPort}`, token: TOKEN },
        plugins: [
          { name: 'discovery-static', config: { backends: dbs.map((d, i) => ({ addr: addrOf(d), labels: { zone: `az-${i + 1}` } })) } },
          { name: 'credentials-native', config: { 'service-account': { user: ROOT_USER, password: ROOT_PASSWORD } } },
          { name: 'migrate-replay' },
        ],
      },
    });
    api = `http://127.0.0.1:${apiPort}`;
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    // The Drain button asks before it acts.
    page.on('dialog', (d) => void d.accept());
  });
  after(async () => {
    await browser?.close();
    await clients.closeAll();
    await proxy?.stop();
    await Promise.all((dbs ?? []).map((d) => d.destroy()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves the page and its files from the API, with a policy that loads nothing from elsewhere', async () => {
    const res = await fetch(`${api}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self'/);
    const html = await res.text();
    assert.ok(!/https?:\/\//.test(html), 'the page references no other site');
    for (const [path, type] of [['/console/console.js', /^text\/javascript/], ['/console/console.css', /^text\/css/]] as const) {
      const r = await fetch(`${api}${path}`);
      assert.equal(r.status, 200, path);
      assert.match(r.headers.get('content-type') ?? '', type);
      assert.ok(html.includes(path), `the page loads ${path}`);
    }
    const doc = (await (await fetch(`${api}/api/openapi.json`)).json()) as { paths: Record<string, unknown> };
    assert.ok(!('/' in doc.paths) && !Object.keys(doc.paths).some((p) => p.startsWith('/console')), 'the console is not part of the API document');
  });

  it('lists both backends with their labels and session counts, and follows new sessions live', async () => {
    const c = await connect();
    const on = `127.0.0.1:${await portOf(c)}`;
    const other = addrOf(dbs.find((d) => addrOf(d) !== on)!);
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    // A content-security-policy violation (an inline style, a file from elsewhere) logs a console error.
    const onConsole = (m: ConsoleMessage) => void (m.type() === 'error' && errors.push(m.text()));
    page.on('console', onConsole);
    await page.goto(`${api}/`);
    await page.locator('#backends tr[data-addr]').nth(1).waitFor();
    assert.deepEqual((await page.locator('#backends tr[data-addr]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-addr')))).sort(), dbs.map(addrOf).sort());
    assert.equal(await backendCell(on, SESSIONS_COLUMN), '1');
    assert.equal(await backendCell(other, SESSIONS_COLUMN), '0');
    assert.match(await backendCell(on, 4), /zone=az-\d/);
    assert.equal(await backendCell(on, STATE_COLUMN), 'routable');
    assert.match(await page.locator(`#backends tr[data-addr="${on}"] td:nth-child(2)`).innerText(), /healthy/);
    await page.locator(`#sessions tr[data-session="${c.threadId}"]`).waitFor();

    // A session opened after the page loaded shows up without a reload.
    const d = await connect();
    const dOn = `127.0.0.1:${await portOf(d)}`;
    await waitFor('the page to count the new session', async () =>
      Number(await backendCell(dOn, SESSIONS_COLUMN)) === (dOn === on ? 2 : 1), 5000, 100);
    await page.locator(`#sessions tr[data-session="${d.threadId}"]`).waitFor({ timeout: 5000 });

    // The session search filters the table as one types; the backend filter keeps that backend's sessions.
    const shownIds = () => page.locator('#sessions tbody tr[data-session]').evaluateAll((rows) => rows.map((r) => Number(r.getAttribute('data-session'))));
    const dClient = await page.locator(`#sessions tr[data-session="${d.threadId}"] td:nth-child(3)`).innerText();
    await page.fill('#session-search', dClient);
    await waitFor('the search to keep only that session', async () => (await shownIds()).join() === String(d.threadId), 2000, 50);
    await page.fill('#session-search', '');
    await page.selectOption('#session-backend', other);
    await waitFor('the backend filter', async () => {
      const ids = await shownIds();
      return !ids.includes(c.threadId!) && ids.includes(d.threadId!) === (dOn === other);
    }, 2000, 50);
    await page.selectOption('#session-backend', '');
    await page.fill('#session-search', 'no-such-user');
    await page.locator('#sessions tr.empty', { hasText: 'No session matches the filter.' }).waitFor({ timeout: 2000 });
    await page.fill('#session-search', '');
    await d.end();
    page.off('console', onConsole);
    assert.deepEqual(errors, [], 'no script or policy error in the page');
  });

  it('lists the plugins of the running generation', async () => {
    const text = await page.locator('#plugins').innerText();
    for (const name of ['admin-api', 'credentials-native', 'migrate-replay', 'discovery-static']) assert.ok(text.includes(name), `${name} in ${text}`);
    assert.match(await page.locator('#plugins-summary').innerText(), new RegExp(`generation ${proxy.kernel.generationInfo().id}\\b`));
  });

  it('Drain refuses clearly without the token (401); with the token it drains the backend and the session moves', async () => {
    const c = await connect();
    await c.query('SET @kept = 42');
    const source = `127.0.0.1:${await portOf(c)}`;
    const target = addrOf(dbs.find((d) => addrOf(d) !== source)!);
    await page.locator(`#backends tr[data-addr="${source}"] button`, { hasText: 'Drain' }).waitFor();

    await page.locator(`#backends tr[data-addr="${source}"] button`, { hasText: 'Drain' }).click();
    await page.locator('#notice.bad', { hasText: '401 Unauthorized' }).waitFor({ timeout: 5000 });
    assert.match(await page.locator('#notice').innerText(), /bearer token/);
    assert.equal(proxy.kernel.backends.get(source)!.draining, false, 'nothing changed without the token');

    await page.fill('#token', TOKEN);
    await page.click('#token-form button[type=submit]');
    assert.equal(await page.locator('#token-state').innerText(), 'token set for this tab');
    await page.locator(`#backends tr[data-addr="${source}"] button`, { hasText: 'Drain' }).click();
    await page.locator('#notice.ok', { hasText: `Draining ${source}` }).waitFor({ timeout: 5000 });

    await waitFor('the session to answer from the other backend', async () => `127.0.0.1:${await portOf(c)}` === target, 15_000, 100);
    const [[row]] = (await c.query('SELECT @kept AS kept')) as unknown as [[{ kept: number }]];
    assert.equal(Number(row.kept), 42, 'the session kept its state');

    await waitFor('the page to show the backend draining and empty', async () =>
      (await backendCell(source, STATE_COLUMN)) === 'draining' && (await backendCell(source, SESSIONS_COLUMN)) === '0', 5000, 100);
    const moved = page.locator(`#migrations tr[data-session="${c.threadId}"][data-result="succeeded"]`);
    await moved.waitFor({ timeout: 5000 });
    assert.ok((await moved.innerText()).includes(`${source} → ${target}`));
    await page.locator(`#backends tr[data-addr="${source}"] button`, { hasText: 'Undrain' }).waitFor();

    const shot = process.env['TIPROXY_UPDATE_SCREENSHOTS'] === '1' ? join(repoRoot, 'docs', 'images', 'console.png') : join(dir, 'console.png');
    mkdirSync(join(shot, '..'), { recursive: true });
    await page.screenshot({ path: shot, fullPage: true });
    const png = readFileSync(shot);
    assert.ok(png.subarray(0, 8).equals(PNG_SIGNATURE) && png.length > 10_000, `a real screenshot at ${shot}`);

    // Undrain from the page: the backend takes sessions again.
    await page.locator(`#backends tr[data-addr="${source}"] button`, { hasText: 'Undrain' }).click();
    await waitFor('the backend to be routable again', async () => !proxy.kernel.backends.get(source)!.draining, 5000, 50);
    await waitFor('the page to show it routable', async () => (await backendCell(source, STATE_COLUMN)) === 'routable', 5000, 100);
  });
});
