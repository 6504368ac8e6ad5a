// Real components: the built CLI (bin/tiproxy → dist/, rebuilt by `node scripts/build.mjs` when src/ is
// newer) as a child process, two MariaDB 10.11 instances (mariadbd), mysql2 as the client.
// Covers --version, start-up failures, graceful shutdown on SIGTERM, and SIGHUP config reload.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { startMariaDBs, ROOT_PASSWORD, ROOT_USER, TEST_DATABASE, type MariaDBInstance } from '../../local-cluster/mariadb.js';
import { ensureBuilt } from '../../local-cluster/build.js';
import { repoRoot, tmpRoot } from '../../local-cluster/paths.js';
import { exitCode, startProxyProcess, type ProxyProcess } from '../harness/proxy.js';
import { ClientPool, rejection, waitFor } from '../harness/clients.js';


interface JsonLine {
  msg: string;
  [key: string]: unknown;
}


/** Runs bin/tiproxy to completion; stdout and stderr kept apart. */
async function runCli(args: string[], timeoutMs = 10_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [join(repoRoot, 'bin', 'tiproxy'), ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

function jsonLines(output: string): JsonLine[] {
  // A line still being written has no closing brace yet.
  return output.split('\n').filter((l) => l.startsWith('{') && l.endsWith('}')).map((l) => JSON.parse(l) as JsonLine);
}

/** The 'session closed' log line of the session behind client `c` (the greeting's id is the proxy's). */
function closedLine(p: ProxyProcess, c: Connection): JsonLine | undefined {
  return jsonLines(p.output()).find((l) => l.msg === 'session closed' && l['conn'] === c.threadId);
}



const clients = new ClientPool();
const connect = (proxy: { host: string; port: number }) => clients.connect(proxy, { database: TEST_DATABASE });

/** Resolves when the server side closes the client's socket. */
function socketClosed(c: Connection): Promise<unknown> {
  const stream = (c as unknown as { connection: { stream: Socket } }).connection.stream;
  return stream.destroyed ? Promise.resolve() : once(stream, 'close');
}

async function port(c: Connection): Promise<number> {
  const [rows] = await c.query<RowDataPacket[]>('SELECT @@port AS port');
  return rows[0]!['port'] as number;
}

function configYaml(backend: string, proxy: Record<string, number> = {}): string {
  const proxyLines = Object.entries(proxy).map(([k, v]) => `  ${k}: ${v}\n`).join('');
  return `proxy:\n${proxyLines || '  max-connections: 0\n'}log:\n  level: info\n  format: json\nplugins:\n`
    + `  - name: discovery-static\n    config:\n      backends:\n        - addr: "${backend}"\n`;
}

describe('the tiproxy CLI process', { timeout: 120_000 }, () => {
  let dbs: MariaDBInstance[] = [];
  let x: MariaDBInstance;
  let y: MariaDBInstance;
  let dir: string;
  const procs: ProxyProcess[] = [];

  async function start(args: string[]): Promise<ProxyProcess> {
    const p = await startProxyProcess(args);
    procs.push(p);
    return p;
  }

  before(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpRoot, 'signals-'));
    dbs = await startMariaDBs(2, { name: 'signals' });
    [x, y] = dbs as [MariaDBInstance, MariaDBInstance];
    await x.query(`CREATE TABLE IF NOT EXISTS ${TEST_DATABASE}.t (id INT PRIMARY KEY)`);
  });
  after(async () => {
    await clients.closeAll(false);
    for (const p of procs) await p.stop('SIGKILL');
    for (const db of dbs) await db.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe('start-up', () => {
    it('--version prints version and commit', { timeout: 30_000 }, async () => {
      for (const flag of ['--version', '-v']) {
        const r = await runCli([flag]);
        assert.equal(r.code, 0, r.stderr);
        const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).trim();
        assert.match(r.stdout, /^tiproxy \d+\.\d+\.\d+ \(commit [0-9a-f]{7,}, node v\d+/);
        assert.ok(r.stdout.includes(`commit ${commit}`), `${r.stdout} names ${commit}`);
      }
    });

    it('a bad flag exits non-zero with one clear line', { timeout: 30_000 }, async () => {
      const r = await runCli(['--no-such-flag']);
      assert.notEqual(r.code, 0);
      assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /^tiproxy: .*--no-such-flag/);
      assert.equal(r.stdout, '');
    });

    it('a bad config exits non-zero with one clear line naming the key', { timeout: 30_000 }, async () => {
      const file = join(dir, 'bad.yaml');
      writeFileSync(file, 'proxy:\n  max-connections: lots\n');
      const r = await runCli(['--config', file]);
      assert.notEqual(r.code, 0);
      assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /^tiproxy: .*proxy\.max-connections/);
      const missing = await runCli(['--config', join(dir, 'missing.yaml')]);
      assert.notEqual(missing.code, 0);
      assert.equal(missing.stderr.trimEnd().split('\n').length, 1, missing.stderr);
      assert.match(missing.stderr, /no such file/);
    });

    it('a port in use exits non-zero with "address already in use" as the only output, before any plugin logs', { timeout: 30_000 }, async () => {
      const busy: Server = createServer();
      await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
      const busyPort = (busy.address() as { port: number }).port;
      try {
        const r = await runCli(['--addr', `127.0.0.1:${busyPort}`, '--backend', `127.0.0.1:${x.port}`, '--log-format', 'json']);
        assert.notEqual(r.code, 0);
        assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
        assert.match(r.stderr, /^tiproxy: cannot listen on 127\.0\.0\.1:\d+: address already in use$/m);
        assert.equal(r.stdout, '', 'nothing logged before the failure');
      } finally {
        busy.close();
      }
    });
  });

  describe('SIGTERM', () => {
    it('closes an idle session and exits 0 promptly', { timeout: 30_000 }, async () => {
      const p = await start(['--backend', `127.0.0.1:${x.port}`]);
      const c = await connect(p);
      assert.equal(await port(c), x.port);
      const closed = socketClosed(c);
      const sent = Date.now();
      p.child.kill('SIGTERM');
      assert.equal(await exitCode(p.child), 0, p.output());
      assert.ok(Date.now() - sent < 2000, `exited after ${Date.now() - sent} ms`);
      await closed;
      const line = closedLine(p, c);
      assert.equal(line?.['side'], 'proxy', JSON.stringify(line));
      assert.equal(line?.['reason'], 'shutdown');
    });

    it('lets a session in a transaction finish: pings get 1053, COMMIT works, then it closes and the process exits 0', { timeout: 30_000 }, async () => {
      const file = join(dir, 'graceful.yaml');
      writeFileSync(file, configYaml(`127.0.0.1:${x.port}`, { 'graceful-close-conn-timeout': 3 }));
      const p = await start(['--config', file]);
      const busy = await connect(p);
      const idle = await connect(p);
      await busy.query('BEGIN');
      await busy.query('INSERT INTO t VALUES (1)');
      const idleClosed = socketClosed(idle);
      const busyClosed = socketClosed(busy);
      const sent = Date.now();
      p.child.kill('SIGTERM');
      await idleClosed;
      assert.ok(Date.now() - sent < 1500, 'the idle session is closed right away');
      const err = await rejection(busy.ping());
      assert.equal(err.errno, 1053, err.message);
      assert.match(err.message, /shutting down/);
      assert.equal(p.child.exitCode, null, 'still serving the session in a transaction');
      // New clients are not accepted any more.
      await rejection(mysql.createConnection({ host: p.host, port: p.port, user: ROOT_USER, password: ROOT_PASSWORD }));
      const [rows] = await busy.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM t');
      assert.equal(rows[0]!['n'], 1, 'the transaction sees its own row');
      await busy.query('COMMIT');
      await busyClosed;
      assert.equal(await exitCode(p.child), 0, p.output());
      assert.ok(Date.now() - sent < 2500, `exited ${Date.now() - sent} ms after SIGTERM, well before the 3 s timeout`);
      const committed = await x.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${TEST_DATABASE}.t WHERE id = 1`);
      assert.equal(committed[0]!['n'], 1, 'COMMIT reached the backend');
      for (const c of [idle, busy]) {
        const l = closedLine(p, c);
        assert.deepEqual([l?.['side'], l?.['reason']], ['proxy', 'shutdown'], JSON.stringify(l));
      }
    });

    it('closes a session that never commits after graceful-close-conn-timeout', { timeout: 30_000 }, async () => {
      const file = join(dir, 'timeout.yaml');
      writeFileSync(file, configYaml(`127.0.0.1:${x.port}`, { 'graceful-close-conn-timeout': 3 }));
      const p = await start(['--config', file]);
      const busy = await connect(p);
      await busy.query('BEGIN');
      await busy.query('INSERT INTO t VALUES (2)');
      const busyClosed = socketClosed(busy);
      const sent = Date.now();
      p.child.kill('SIGTERM');
      await busyClosed;
      const elapsed = Date.now() - sent;
      assert.ok(elapsed >= 2800 && elapsed < 4500, `closed ${elapsed} ms after SIGTERM`);
      assert.equal(await exitCode(p.child), 0, p.output());
      const line = closedLine(p, busy);
      assert.equal(line?.['side'], 'proxy', JSON.stringify(line));
      assert.equal(line?.['reason'], 'shutdown-timeout');
      await waitFor('the backend to roll back', async () => {
        const rows = await x.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${TEST_DATABASE}.t WHERE id = 2`);
        return rows[0]!['n'] === 0;
      });
    });
  });

  describe('SIGHUP', () => {
    it('reloads the config: new sessions follow it, old ones stay; broken edits are rejected with reason and key', { timeout: 30_000 }, async () => {
      const file = join(dir, 'reload.yaml');
      writeFileSync(file, configYaml(`127.0.0.1:${x.port}`));
      const p = await start(['--config', file]);
      const old = await connect(p);
      assert.equal(await port(old), x.port);

      // "configuration reloaded" / "plugins and configuration applied"
      const reloaded = () => jsonLines(p.output()).filter((l) => /configuration (reloaded|applied)/.test(l.msg)).length;
      const rejected = () => jsonLines(p.output()).filter((l) => /config reload rejected/.test(l.msg));

      // SIGHUP alone reloads (the file watcher has nothing to react to).
      const unchanged = reloaded();
      p.child.kill('SIGHUP');
      await waitFor('a reload on SIGHUP', () => reloaded() > unchanged);

      writeFileSync(file, configYaml(`127.0.0.1:${y.port}`));
      const before = reloaded();
      p.child.kill('SIGHUP');
      await waitFor('a reload', () => reloaded() > before);
      const fresh = await connect(p);
      assert.equal(await port(fresh), y.port, 'a new session goes to the new backend');
      assert.equal(await port(old), x.port, 'the old session stays on its backend');
      assert.equal(await port(old), x.port, 'and keeps working');

      // Invalid YAML: rejected, the reason and where it is wrong are logged, nothing changes.
      writeFileSync(file, `${configYaml(`127.0.0.1:${x.port}`)}proxy: [unclosed\n`);
      p.child.kill('SIGHUP');
      await waitFor('a SIGHUP rejection', () => rejected().some((l) => l['why'] === 'SIGHUP'));
      const syntax = rejected().find((l) => l['why'] === 'SIGHUP')!;
      assert.equal(syntax['level'], 50, 'logged as an error');
      assert.ok(syntax.msg.includes(file), syntax.msg);
      assert.match(syntax.msg, /line \d+:\d+: YAML syntax error/);

      // Valid YAML, invalid value: the key path is named.
      writeFileSync(file, configYaml(`127.0.0.1:${x.port}`, { 'max-connections': -5 }));
      const seen = rejected().length;
      p.child.kill('SIGHUP');
      await waitFor('a second rejection', () => rejected().slice(seen).some((l) => l['why'] === 'SIGHUP'));
      const value = rejected().slice(seen).find((l) => l['why'] === 'SIGHUP')!;
      assert.match(value.msg, /proxy\.max-connections: /);

      // Still running, still with the config from before the broken edits.
      assert.equal(p.child.exitCode, null);
      const after = await connect(p);
      assert.equal(await port(after), y.port, 'the previous config is still in force');
      assert.equal(await port(old), x.port);
    });

    it('reloads when the config file is replaced the way editors save (rename over it), every time', { timeout: 30_000 }, async () => {
      const file = join(dir, 'watched.yaml');
      writeFileSync(file, configYaml(`127.0.0.1:${x.port}`));
      const p = await start(['--config', file]);
      const c = await connect(p);
      assert.equal(await port(c), x.port);
      for (const target of [y, x, y]) {
        writeFileSync(`${file}.swp`, configYaml(`127.0.0.1:${target.port}`));
        renameSync(`${file}.swp`, file);
        await waitFor(`new sessions to go to ${target.port}`, async () => {
          const fresh = await connect(p);
          return (await port(fresh)) === target.port;
        });
      }
      assert.equal(await port(c), x.port, 'the first session never moved');
    });
  });
});
