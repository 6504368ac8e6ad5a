// Real components: the built CLI (bin/tiproxy → dist/) started with `proxy.workers: 2` (a primary and two
// node:cluster workers sharing the SQL and API ports), one MariaDB 10.11, mysql2 clients, and the
// replayer tiproxyctl runs (src/cli/traffic/) in-process. A capture started through the admin API —
// whichever worker answers — runs on both workers; each writes its own files; the replay reads them all.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Connection } from 'mysql2/promise';
import { ensureBuilt } from '../../../local-cluster/build.js';
import { ROOT_PASSWORD, ROOT_USER, startMariaDB, TEST_DATABASE, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { tmpRoot } from '../../../local-cluster/paths.js';
import { replayTraffic } from '../../../src/cli/traffic/traffic-replay.js';
import { readCapture } from '../../../src/plugins/traffic-capture/traffic-file-reader.js';
import type { CommandRecord } from '../../../src/plugins/traffic-capture/traffic-record.js';
import { ClientPool, waitFor } from '../../harness/clients.js';
import { startProxyProcess, type ProxyProcess } from '../../harness/proxy.js';

interface WorkerPart {
  worker: number;
  status: string;
  commands: number;
  files: string[];
}
interface JobAnswer {
  id: string;
  status: string;
  commands: number;
  dropped: number;
  sessions: number;
  files: string[];
  workers: WorkerPart[];
}

const { connect, end, closeAll } = new ClientPool();
/** The worker (1..N) serving a connection: the top 8 bits of its proxy connection id (and of its captured session id). */
const workerOfId = (id: number): number => id >>> 24;

describe('traffic capture with proxy.workers: 2', { timeout: 180_000 }, () => {
  let db: MariaDBInstance;
  let proxy: ProxyProcess;
  const dir = mkdtempSync(join(tmpRoot, 'capture-workers-'));
  const capture = join(dir, 'capture');
  const api = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
    const res = await fetch(`http://127.0.0.1:${proxy.apiPort}${path}`, {
      method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? null : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as unknown };
  };

  before(async () => {
    ensureBuilt();
    db = await startMariaDB({ name: 'capture-workers' });
    await db.query(`CREATE TABLE ${TEST_DATABASE}.kv (k INT PRIMARY KEY, v VARCHAR(20))`);
    await db.query(`INSERT INTO ${TEST_DATABASE}.kv SELECT seq, CONCAT('v', seq) FROM ${TEST_DATABASE}.seq_1_to_100`);
    const config = join(dir, 'proxy.yaml');
    writeFileSync(config, ['proxy:', '  workers: 2', 'log:', '  level: info', 'plugins:', '  - name: discovery-static', '    config:', '      backends:',
      `        - addr: "127.0.0.1:${db.port}"`, ''].join('\n'));
    proxy = await startProxyProcess(['--config', config], { expectListening: false });
    await waitFor('both workers to be ready', () => {
      if (proxy.child.exitCode !== null) assert.fail(`tiproxy exited (${proxy.child.exitCode}): ${proxy.output()}`);
      return proxy.output().includes('all 2 workers ready');
    }, 45_000, 50);
  });
  after(async () => {
    await closeAll(false);
    await proxy?.stop();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts, shows and cancels a capture on both workers through the API; each writes its own files; the replay reads them all', async () => {
    const started = await api('POST', '/api/traffic/capture', { output: capture, duration: 120 });
    assert.equal(started.status, 201, JSON.stringify(started.body));
    const job = started.body as JobAnswer;
    assert.deepEqual(job.workers.map((w) => [w.worker, w.status]), [[1, 'running'], [2, 'running']]);
    // Whichever worker answers knows the capture runs: a second one is refused every time.
    for (let i = 0; i < 4; i++) {
      const again = await api('POST', '/api/traffic/capture', { output: join(dir, 'other'), duration: 5 });
      assert.equal(again.status, 409, JSON.stringify(again.body));
    }

    // Sessions until both workers serve at least two; each runs queries naming its session.
    const byWorker = new Map<number, Connection[]>([[1, []], [2, []]]);
    for (let opened = 0; [...byWorker.values()].some((cs) => cs.length < 2); opened++) {
      assert.ok(opened < 40, `${opened} sessions and still not two on each worker`);
      const c = await connect({ host: '127.0.0.1', port: proxy.port }, { database: TEST_DATABASE });
      byWorker.get(workerOfId(c.threadId!))!.push(c);
    }
    const sessions = [...byWorker.values()].flat();
    const sent: string[] = [];
    for (const c of sessions) {
      for (let k = 1; k <= 5; k++) {
        const sql = `SELECT v, ${c.threadId} AS session FROM kv WHERE k = ${k}`;
        await c.query(sql);
        sent.push(sql);
      }
    }
    for (const c of sessions) await end(c);

    const shown = await api('GET', '/api/traffic');
    const running = (shown.body as JobAnswer[])[0]!;
    assert.equal(running.id, job.id);
    assert.equal(running.status, 'running');
    assert.deepEqual(running.workers.map((w) => w.worker), [1, 2]);
    assert.ok(running.workers.every((w) => w.commands > 0), JSON.stringify(running.workers));

    const cancelled = await api('POST', '/api/traffic/cancel', {});
    assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
    const done = cancelled.body as JobAnswer;
    assert.equal(done.status, 'canceled');
    assert.deepEqual(done.workers.map((w) => [w.worker, w.status]), [[1, 'canceled'], [2, 'canceled']]);
    assert.equal(done.dropped, 0);
    assert.equal(done.commands, done.workers.reduce((n, w) => n + w.commands, 0));
    assert.equal((await api('POST', '/api/traffic/cancel', {})).status, 404, 'nothing runs on any worker');

    const names = readdirSync(capture);
    for (const w of [1, 2]) {
      assert.ok(names.some((n) => n.startsWith(`traffic-w${w}-`) && n.endsWith('.bin.gz')), `worker ${w}'s files: ${names.join(', ')}`);
      assert.ok(names.includes(`meta-w${w}.json`), names.join(', '));
    }
    const { meta, records, badLines } = readCapture(capture, null);
    assert.equal(badLines, 0);
    assert.equal(meta?.status, 'canceled');
    assert.equal(meta?.commands, done.commands);
    const queries = records.filter((r): r is CommandRecord => r.t === 'cmd' && r.c === 0x03);
    assert.deepEqual(new Set(queries.map((r) => workerOfId(r.s))), new Set([1, 2]), 'records of both workers');
    const captured = new Set(queries.map((r) => r.p.toString('utf8', 1)));
    assert.deepEqual(sent.filter((q) => !captured.has(q)), [], 'every query of every session is in the capture');

    const report = await replayTraffic({
      input: capture, target: `127.0.0.1:${db.port}`, user: ROOT_USER, password: ROOT_PASSWORD, speed: 10, readOnly: true, shard: null, key: null, connectTimeoutMs: 10_000,
    });
    assert.deepEqual(report.summary.sessionErrors, []);
    assert.equal(report.summary.sessions, sessions.length);
    assert.equal(report.summary.replayed, report.summary.commands, JSON.stringify(report.summary.skipped));
    assert.ok(report.summary.replayed >= sent.length, `${report.summary.replayed} replayed, ${sent.length} sent`);
    assert.equal(report.summary.differences, 0, JSON.stringify(report.statements.filter((d) => d.differing > 0)));
  });
});
