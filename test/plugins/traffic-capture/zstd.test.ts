// Real components: one MariaDB 10.11, the proxy in-process (default plugins: traffic-capture, admin-api),
// mysql2 clients, the replayer tiproxyctl runs (src/cli/traffic/). The test command runs this file on the
// machine's Node (20: no zstd in zlib, so zstd is refused with the Node version it needs) and again on
// Node 24 (zstd captures are written, read back and replayed).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT_PASSWORD, ROOT_USER, startMariaDB, TEST_DATABASE, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { replayTraffic } from '../../../src/cli/traffic/traffic-replay.js';
import { readCapture } from '../../../src/plugins/traffic-capture/traffic-file-reader.js';
import type { CommandRecord } from '../../../src/plugins/traffic-capture/traffic-record.js';
import { zstdAvailable } from '../../../src/plugins/traffic-capture/zstd-codec.js';
import { ClientPool } from '../../harness/clients.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';

const { connect, end, closeAll } = new ClientPool();
const hasZstd = zstdAvailable();

describe(`zstd-compressed traffic captures (on Node ${process.versions.node}: zstd ${hasZstd ? 'available' : 'unavailable'})`, () => {
  let db: MariaDBInstance;
  let proxy: TestProxy;
  const dir = mkdtempSync(join(tmpdir(), 'tiproxy-zstd-'));
  const api = (path: string, body: unknown) => fetch(`http://127.0.0.1:${proxy.apiPort}${path}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  const replay = (input: string) => replayTraffic({
    input, target: `127.0.0.1:${db.port}`, user: ROOT_USER, password: ROOT_PASSWORD, speed: 10, readOnly: false, shard: null, key: null, connectTimeoutMs: 10_000,
  });

  before(async () => {
    db = await startMariaDB({ name: 'zstd' });
    await db.query(`CREATE TABLE ${TEST_DATABASE}.kv (k INT PRIMARY KEY, v VARCHAR(20))`);
    await db.query(`INSERT INTO ${TEST_DATABASE}.kv SELECT seq, CONCAT('v', seq) FROM ${TEST_DATABASE}.seq_1_to_50`);
    proxy = await startProxy({ backends: [`127.0.0.1:${db.port}`] });
  });
  after(async () => {
    await closeAll();
    await proxy?.stop();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it(hasZstd ? 'captures into .zst files, reads every record back, and replays them with zero differences' : 'refuses to start a zstd capture, naming the Node version it needs', async () => {
    const output = join(dir, 'capture');
    const started = await api('/api/traffic/capture', { output, duration: 60, compress: 'zstd' });
    if (!hasZstd) {
      assert.equal(started.status, 400);
      assert.match(((await started.json()) as { error: string }).error, /zstd.*Node 22\.15 or later.*use gzip/);
      return;
    }
    assert.equal(started.status, 201, await started.clone().text());
    assert.equal(((await started.json()) as { compress: string }).compress, 'zstd');
    const c = await connect(proxy, { database: TEST_DATABASE });
    const sent: string[] = [];
    for (let k = 1; k <= 30; k++) {
      const sql = `SELECT v FROM kv WHERE k = ${k}`;
      await c.query(sql);
      sent.push(sql);
    }
    await c.execute('SELECT COUNT(*) AS n FROM kv WHERE k <= ?', [10]);
    await end(c);
    const stopped = await api('/api/traffic/cancel', {});
    assert.equal(stopped.status, 200);
    const job = await stopped.json() as { commands: number; dropped: number };
    assert.equal(job.dropped, 0);

    const files = readdirSync(output).filter((f) => f.startsWith('traffic-'));
    assert.ok(files.length > 0 && files.every((f) => f.endsWith('.bin.zst')), files.join(', '));
    const { meta, records, badLines } = readCapture(output, null);
    assert.equal(badLines, 0);
    assert.equal(meta?.compress, 'zstd');
    const queries = records.filter((r): r is CommandRecord => r.t === 'cmd' && r.c === 0x03).map((r) => r.p.toString('utf8', 1));
    assert.deepEqual(queries.filter((q) => q.startsWith('SELECT v FROM kv')), sent, 'every query comes back, in order');
    assert.equal(records.filter((r) => r.t === 'cmd').length, job.commands);

    const report = await replay(output);
    assert.deepEqual(report.summary.sessionErrors, []);
    assert.equal(report.summary.differences, 0, JSON.stringify(report.statements.filter((d) => d.differing > 0)));
    assert.equal(report.summary.replayed, report.summary.commands);
    assert.ok(report.summary.replayed >= 31, `${report.summary.replayed} commands replayed`);
  });

  it('refuses to replay a zstd capture on a Node without zstd, naming the version it needs', { skip: hasZstd && 'this Node has zstd' }, async () => {
    // A capture a proxy on a newer Node wrote: the name says zstd (the bytes are never reached).
    const foreign = join(dir, 'foreign');
    mkdirSync(foreign);
    writeFileSync(join(foreign, 'traffic-w0-00001.bin.zst'), Buffer.from([0x28, 0xb5, 0x2f, 0xfd]));
    assert.throws(() => readCapture(foreign, null), /zstd-compressed \(traffic-w0-00001\.bin\.zst\).*this Node \(v[\d.]+\) lacks.*Node 22\.15 or later/);
    await assert.rejects(replay(foreign), /Node 22\.15 or later/);
  });
});
