// Real components: one MariaDB 10.11, the proxy in-process (default plugins: traffic-capture, admin-api),
// mysql2 clients. Captures are started and cancelled through the admin API and read back from disk.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { startMariaDB, TEST_DATABASE, type MariaDBInstance } from '../../../local-cluster/mariadb.js';
import { definePlugin } from '../../../src/plugin.js';
import { readCapture } from '../../../src/plugins/traffic-capture/traffic-file-reader.js';
import { RECORD_BUFFER_BYTES, TrafficFileWriter } from '../../../src/plugins/traffic-capture/traffic-file-writer.js';
import type { BootRecord, CommandRecord } from '../../../src/plugins/traffic-capture/traffic-record.js';
import { WRITER_NICE_STEP } from '../../../src/plugins/traffic-capture/traffic-writer-messages.js';
import { ClientPool, waitFor } from '../../harness/clients.js';
import { startProxy, type TestProxy } from '../../harness/proxy.js';

const { connect, end, closeAll } = new ClientPool();
const COM_QUERY = 0x03;
const COM_STMT_EXECUTE = 0x17;

/** Counts observeCommand calls: the kernel must not call it while no capture runs. */
const observed = { commands: 0 };
const counter = definePlugin<never>({
  name: 'observe-counter', version: '1.0.0',
  apply(ctx) {
    ctx.hooks.observeCommand.tap('observe-counter', () => void observed.commands++);
  },
});

const sqlOf = (r: CommandRecord) => r.p.toString('utf8', 1);

/** Threads of this process (the proxy runs in it) whose nice value is WRITER_NICE_STEP above the main thread's. */
function lowerPriorityThreads(): number {
  const niceOf = (tid: string): number => {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]); // field 19, nice
    } catch {
      return NaN; // the thread ended meanwhile
    }
  };
  const lowered = Math.min(19, niceOf(String(process.pid)) + WRITER_NICE_STEP);
  return readdirSync('/proc/self/task').filter((tid) => niceOf(tid) === lowered).length;
}

describe('traffic-capture plugin', () => {
  let db: MariaDBInstance;
  let proxy: TestProxy;
  const dir = mkdtempSync(join(tmpdir(), 'tiproxy-capture-'));
  const api = (path: string, body?: unknown) => fetch(`http://127.0.0.1:${proxy.apiPort}${path}`, {
    method: body === undefined ? 'GET' : 'POST', headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? null : JSON.stringify(body),
  });

  before(async () => {
    db = await startMariaDB({ name: 'capture' });
    await db.query(`CREATE TABLE ${TEST_DATABASE}.kv (k INT PRIMARY KEY, v VARCHAR(20))`);
    proxy = await startProxy({ backends: [`127.0.0.1:${db.port}`], plugins: [counter], config: { plugins: [{ name: 'observe-counter' }] }, logLevel: 'info' });
  });
  after(async () => {
    await closeAll();
    await proxy?.stop();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is idle until started: no observation call for commands run before a capture', async () => {
    const c = await connect(proxy, { database: TEST_DATABASE });
    for (let i = 0; i < 20; i++) await c.query('SELECT 1');
    await end(c);
    assert.equal(observed.commands, 0);
    const jobs = await (await api('/api/traffic')).json() as unknown[];
    assert.deepEqual(jobs, []);
  });

  it('records every command with its outcome, and bootstraps sessions open before the start (encrypted files)', async () => {
    const keyFile = join(dir, 'key');
    writeFileSync(keyFile, 'ab'.repeat(32) + '\n');
    const output = join(dir, 'cap1');
    // A session with state (database, variables, a prepared statement) before the capture.
    const early = await connect(proxy, { database: TEST_DATABASE });
    await early.query("SET SESSION sql_mode = 'ANSI_QUOTES', @greeting = 'hi'");
    await early.execute('SELECT ? + 1 AS n', [41]);

    const started = await api('/api/traffic/capture', { output, duration: 60, encryption_key_file: keyFile });
    assert.equal(started.status, 201, await started.clone().text());
    assert.equal(((await started.json()) as { status: string }).status, 'running');
    const second = await api('/api/traffic/capture', { output: join(dir, 'other'), duration: 5 });
    assert.equal(second.status, 409);

    const [rows] = await early.execute('SELECT ? + 1 AS n', [1]);
    assert.deepEqual(rows, [{ n: 2 }]);
    const late = await connect(proxy, { database: TEST_DATABASE });
    await late.query("INSERT INTO kv VALUES (1, 'a'), (2, 'b')");
    await late.query('SELECT * FROM kv');
    await assert.rejects(late.query('SELECT * FROM no_such_table'));
    await late.query(`SELECT '${'x'.repeat(100_000)}' AS big`);
    await end(late);
    assert.ok(observed.commands > 0, 'observeCommand runs while capturing');

    const cancelled = await api('/api/traffic/cancel', {});
    assert.equal(cancelled.status, 200);
    const job = await cancelled.json() as { status: string; commands: number; dropped: number; encrypted: boolean };
    assert.equal(job.status, 'canceled');
    assert.equal(job.dropped, 0);
    assert.equal(job.encrypted, true);
    assert.ok(readdirSync(output).some((f) => f.endsWith('.bin.gz.enc')));

    assert.throws(() => readCapture(output, null), /is encrypted/);
    assert.throws(() => readCapture(output, Buffer.alloc(32, 1)), /cannot be decrypted/);
    const { meta, records, badLines } = readCapture(output, Buffer.from('ab'.repeat(32), 'hex'));
    assert.equal(badLines, 0);
    assert.equal(meta?.status, 'canceled');
    assert.equal(meta?.commands, job.commands);

    const earlyId = (records.find((r) => r.t === 'cmd' && r.c === COM_STMT_EXECUTE) as CommandRecord).s;
    const boot = records.find((r): r is BootRecord => r.t === 'boot' && r.s === earlyId)!;
    assert.equal(boot.db, TEST_DATABASE);
    assert.ok(boot.sets.some((s) => s.includes('ANSI_QUOTES')), JSON.stringify(boot.sets));
    assert.deepEqual(boot.stmts.map((s) => s.sql), ['SELECT ? + 1 AS n']);

    const lateCmds = records.filter((r): r is CommandRecord => r.t === 'cmd' && r.s !== earlyId && r.c === COM_QUERY);
    const insert = lateCmds.find((r) => sqlOf(r).startsWith('INSERT'))!;
    assert.deepEqual({ err: insert.r?.err, aff: insert.r?.aff }, { err: 0, aff: 2 });
    assert.equal(lateCmds.find((r) => sqlOf(r) === 'SELECT * FROM kv')?.r?.rows, 2);
    assert.equal(lateCmds.find((r) => sqlOf(r).includes('no_such_table'))?.r?.err, 1146);
    const big = lateCmds.find((r) => sqlOf(r).includes('AS big'))!;
    assert.equal(big.p.length, big.len, 'a command spanning socket chunks is recorded whole');
    assert.ok(records.some((r) => r.t === 'end' && r.s !== earlyId), 'the late session ended during the capture');
    // Commands are numbered in order per session.
    const seq = records.filter((r): r is CommandRecord => r.t === 'cmd' && r.s === insert.s).map((r) => r.i).sort((a, b) => a - b);
    assert.deepEqual(seq, [...seq.keys()]);

    // Observation is off again.
    const before = observed.commands;
    await early.query('SELECT 1');
    assert.equal(observed.commands, before);
  });

  it('stops by itself after its duration and writes meta.json', async () => {
    const output = join(dir, 'cap2');
    const started = await api('/api/traffic/capture', { output, duration: 0.5, compress: 'none' });
    assert.equal(started.status, 201);
    const c = await connect(proxy);
    await c.query('SELECT 2');
    await waitFor('the capture to end', async () => ((await (await api('/api/traffic')).json()) as Array<{ status: string }>)[0]?.status === 'done', 5000, 50);
    const meta = JSON.parse(readFileSync(join(output, 'meta.json'), 'utf8')) as { status: string; files: string[] };
    assert.equal(meta.status, 'done');
    assert.match(meta.files[0]!, /^traffic-w0-00001\.bin$/);
    assert.ok(readCapture(output, null).records.some((r) => r.t === 'cmd' && sqlOf(r).includes('SELECT 2')));
  });

  it('runs its writer thread at a lower priority than the proxy, only while capturing', async () => {
    assert.equal(lowerPriorityThreads(), 0, 'no thread below the main one before a capture');
    const started = await api('/api/traffic/capture', { output: join(dir, 'nice'), duration: 30 });
    assert.equal(started.status, 201);
    await waitFor('the writer thread to lower its priority', () => lowerPriorityThreads() === 1, 5000, 20);
    assert.equal((await api('/api/traffic/cancel', {})).status, 200);
    await waitFor('the writer thread to end', () => lowerPriorityThreads() === 0, 5000, 20);
  });

  it('refuses a non-empty output directory and a missing key file with the reason', async () => {
    const taken = await api('/api/traffic/capture', { output: join(dir, 'cap2'), duration: 5 });
    assert.equal(taken.status, 400);
    assert.match(((await taken.json()) as { error: string }).error, /already holds a capture/);
    const noKey = await api('/api/traffic/capture', { output: join(dir, 'cap3'), duration: 5, encryption_key_file: join(dir, 'nope') });
    assert.equal(noKey.status, 400);
    assert.match(((await noKey.json()) as { error: string }).error, /cannot read the encryption key file/);
  });
});

describe('traffic file writer', () => {
  it('drops and counts records beyond its memory bound instead of queueing them, and rotates by size', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiproxy-writer-'));
    try {
      const errors: Error[] = [];
      // Room for one record buffer: while it is with the writer thread, nothing else fits.
      const writer = new TrafficFileWriter({
        dir, prefix: 'traffic-w0', compress: 'gzip', key: null, rotateBytes: 4096, rotateSeconds: 600, maxBufferBytes: RECORD_BUFFER_BYTES + 1000,
        onError: (e) => errors.push(e),
      });
      // Random payloads, each its own: compressed, each record still takes ~450 bytes on disk, so files fill up.
      const written: Buffer[] = [];
      const write = (session: number) => {
        const payload = Buffer.concat([Buffer.from([COM_QUERY]), randomBytes(449)]);
        const ok = writer.writeCommand(session, 0, 0, payload, 0, payload.length, payload.length);
        if (ok) written.push(payload);
        return ok;
      };
      // Written in one go, faster than any disk: the bound must cut in.
      let accepted = 0;
      for (let i = 0; i < 2000; i++) if (write(1)) accepted++;
      assert.ok(writer.dropped > 0, 'some records were dropped');
      assert.equal(accepted + writer.dropped, 2000);
      // Later, once written out, it accepts again (several buffers: several files).
      await waitFor('the writer thread to hand the first buffer back', () => write(2), 20_000, 50);
      accepted++;
      for (let k = 0; k < 5; k++) {
        await new Promise((r) => setTimeout(r, 150));
        for (let i = 0; i < 100; i++) if (write(2 + k)) accepted++;
      }
      await writer.close();
      assert.deepEqual(errors, []);
      assert.ok(writer.files.length > 1, `rotated into ${writer.files.length} files`);
      const { records, badLines } = readCapture(dir, null);
      assert.equal(badLines, 0);
      assert.equal(records.length, accepted);
      assert.deepEqual(records.map((r) => (r.t === 'cmd' ? r.p.toString('hex') : r.t)), written.map((p) => p.toString('hex')), 'payloads come back intact, in order');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('still reads a format 1 capture (JSON lines) as the replayer needs it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tiproxy-format1-'));
    try {
      const lines = [
        { t: 'boot', s: 7, ts: 0, user: 'app', db: 'test', sets: [], prepares: [], stmts: [], inTx: false, unseen: null },
        { t: 'cmd', s: 7, ts: 1.5, i: 0, c: COM_QUERY, p: Buffer.from('\x03SELECT 1', 'latin1').toString('base64'), len: 9, r: { err: 0, aff: 0, rows: 1, ms: 0.2 } },
      ].map((r) => JSON.stringify(r)).join('\n') + '\n';
      writeFileSync(join(dir, 'traffic-w0-00001.jsonl.gz'), gzipSync(lines));
      writeFileSync(join(dir, 'meta.json'), JSON.stringify({ format: 1, status: 'done' }));
      const { records } = readCapture(dir, null);
      const cmd = records.find((r): r is CommandRecord => r.t === 'cmd')!;
      assert.equal(sqlOf(cmd), 'SELECT 1');
      assert.deepEqual(cmd.r, { err: 0, aff: 0, rows: 1, ms: 0.2 });
      writeFileSync(join(dir, 'meta.json'), JSON.stringify({ format: 99, status: 'done' }));
      assert.throws(() => readCapture(dir, null), /capture format 99 is not supported/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
