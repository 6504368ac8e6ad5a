// Real components: scripts/playground.sh run as a user runs it, which starts a real etcd, a real
// MariaDB 10.11 Galera cluster (one node, then a second joining by rsync SST), `tiproxyctl register`
// processes and the built bin/tiproxy; mysql2 as the two demo clients; `playground.sh scale-out` /
// `scale-in` as separate processes. Setup (install-deps, build) is skipped: the test builds dist/ itself
// and must not run `npm ci` in a tree others are working in.
//
// The classic demo of docs/playground.md, step by step: two sessions on one backend; scale out; one
// session moves to the new node on the same connection (new @@port) and still sees the table created
// before the move; scale in; it moves back; no client ever sees an error; everything stops with Ctrl-C.
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { ensureBuilt } from '../../local-cluster/build.js';
import { repoRoot, tmpRoot } from '../../local-cluster/paths.js';
import { freePort } from '../../local-cluster/ports.js';
import { isAlive, spawnTracked, stopProcess } from '../../local-cluster/processes.js';
import { portOf, waitFor } from '../harness/clients.js';
import type { PlaygroundState } from '../../scripts/playground/state.js';

const run = promisify(execFile);
const script = join(repoRoot, 'scripts', 'playground.sh');

describe('the playground demo (docs/playground.md)', () => {
  const dir = join(tmpRoot, `playground-test-${process.pid}`);
  const env = { ...process.env, TIPROXY_PLAYGROUND_SETUP: 'skip' };
  let playground: ChildProcess;
  let output = '';
  let sqlPort: number;
  const clients: Connection[] = [];
  const clientErrors: string[] = [];

  const state = (): PlaygroundState => JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as PlaygroundState;
  const ctl = async (...args: string[]): Promise<string> => {
    const { stdout } = await run(script, [...args, '--dir', dir], { env, cwd: repoRoot, timeout: 120_000 });
    return stdout;
  };

  before(async () => {
    ensureBuilt('tiproxy');
    ensureBuilt('tiproxyctl');
    sqlPort = await freePort();
    const apiPort = await freePort();
    playground = spawnTracked(script, ['--backends', '1', '--port', String(sqlPort), '--api-port', String(apiPort), '--dir', dir], {
      env, cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'],
    });
    playground.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    playground.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    await waitFor('the playground banner', () => {
      if (playground.exitCode !== null) throw new Error(`playground exited with ${playground.exitCode}:\n${output}`);
      return output.includes('tiproxy playground is up');
    }, 90_000, 100);
  });

  after(async () => {
    // For post-mortems: what the playground (and the proxy under it) printed.
    if (process.env.TIPROXY_KEEP_DATADIR) await writeFile(join(tmpRoot, `playground-test-${process.pid}.log`), output);
    for (const c of clients) c.destroy();
    if (playground) await stopProcess(playground, { signal: 'SIGTERM', timeoutMs: 60_000 });
    await rm(dir, { recursive: true, force: true });
  });

  it('moves a session to a scaled-out node and back on scale-in, with the data and no client error', async (t) => {
    const started = Date.now();
    const at = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
    const [node1] = state().backends;
    assert.ok(node1, 'the playground starts with one backend');
    assert.match(output, new RegExp(`SQL: +127\\.0\\.0\\.1:${sqlPort}`), 'the banner prints the SQL address');
    assert.match(output, /API: +http:\/\/127\.0\.0\.1:\d+\/api\/backends/, 'the banner prints the API address');
    assert.match(output, /Console: +http:\/\/127\.0\.0\.1:\d+\//, 'the banner prints the console address');

    // Step 1: two sessions, both on the only backend; one creates a table.
    for (let i = 0; i < 2; i++) {
      const c = await mysql.createConnection({ host: '127.0.0.1', port: sqlPort, user: state().user, password: state().password });
      c.on('error', (err) => clientErrors.push(`session ${i + 1}: ${err.message}`));
      clients.push(c);
    }
    const [a, b] = clients as [Connection, Connection];
    const ids = [a.threadId, b.threadId];
    const port1 = Number(node1.addr.split(':')[1]);
    assert.deepEqual([await portOf(a), await portOf(b)], [port1, port1], 'both sessions start on node1');
    await a.query('CREATE DATABASE demo');
    await a.query('CREATE TABLE demo.items (id INT PRIMARY KEY, note VARCHAR(40))');
    await a.query("INSERT INTO demo.items VALUES (1, 'written before the move')");

    // Step 2: scale out; the balancer evens the sessions out, so one of them moves to the new node.
    const outOut = await ctl('scale-out');
    const node2 = state().backends.find((x) => x.addr !== node1.addr);
    assert.ok(node2, `scale-out added a backend: ${outOut}`);
    assert.match(outOut, new RegExp(`${node2.addr.replace(/\./g, '\\.')} \\(node2\\) joined`));
    t.diagnostic(`scale-out done at ${at()}: ${node2.addr}`);
    const port2 = Number(node2.addr.split(':')[1]);
    let ports: number[] = [];
    await waitFor('one session on the new node', async () => {
      ports = [await portOf(a), await portOf(b)];
      return ports.includes(port2);
    }, 20_000, 200);
    assert.deepEqual([...ports].sort(), [port1, port2].sort(), 'one session moved, the other stayed');
    const moved = ports[0] === port2 ? a : b;
    const stayed = moved === a ? b : a;
    t.diagnostic(`session ${moved === a ? 1 : 2} moved to ${node2.addr} at ${at()}`);
    // Same connection (no reconnect), and the table made before the move is there on the new node.
    const [rows] = await moved.query<RowDataPacket[]>('SELECT note FROM demo.items WHERE id = 1');
    assert.equal(rows[0]?.['note'], 'written before the move');
    await moved.query("INSERT INTO demo.items VALUES (2, 'written on node2')");
    const [seen] = await stayed.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM demo.items');
    assert.equal(Number(seen[0]!['n']), 2, 'the other node sees the moved session\'s write (one data set)');

    // A session holding a temporary table cannot move: scale-in gives up after --timeout, says why,
    // and leaves the node running. COM_RESET_CONNECTION drops the table, and the session can move again.
    await moved.query('CREATE TEMPORARY TABLE demo.scratch (a INT)');
    const refused = await ctl('scale-in', '--timeout', '3').then(
      (out) => assert.fail(`scale-in should time out on a session with a temporary table: ${out}`),
      (err: { code?: number; stderr?: string }) => err);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr ?? '', /still has 1 session\(s\) after 3 s\n {2}session \d+ \(root\): .*temporary tables/, refused.stderr);
    assert.equal(isAlive(node2.pid), true, 'the node keeps running when scale-in gives up');
    assert.equal(await portOf(moved), port2, 'the session stayed on node2');
    await moved.reset();

    // Step 3: scale in the new node: its session moves back, then the node is stopped.
    const inOut = await ctl('scale-in');
    assert.match(inOut, new RegExp(`${node2.addr.replace(/\./g, '\\.')} is empty, stopped and removed`), inOut);
    // The wait followed the proxy's own count (the admin API), not only the node's connections.
    assert.match(inOut, /has \d+ sessions? left \(the proxy's admin API\)/, inOut);
    t.diagnostic(`scale-in done at ${at()}`);
    assert.deepEqual([await portOf(a), await portOf(b)], [port1, port1], 'both sessions are back on node1');
    assert.equal(isAlive(node2.pid), false, 'node2 mariadbd is stopped');
    assert.deepEqual(state().backends.map((x) => x.addr), [node1.addr]);
    const [after2] = await moved.query<RowDataPacket[]>('SELECT id FROM demo.items ORDER BY id');
    assert.deepEqual(after2.map((r) => Number(r['id'])), [1, 2]);

    assert.deepEqual([a.threadId, b.threadId], ids, 'the clients kept their connections');
    assert.deepEqual(clientErrors, [], 'no client saw an error');
  });

  it('stops everything it started on SIGTERM and removes its state file', async () => {
    const s = state();
    for (const c of clients.splice(0)) await c.end();
    await stopProcess(playground, { signal: 'SIGTERM', timeoutMs: 60_000 });
    assert.equal(playground.exitCode, 0, output.slice(-2000));
    assert.equal(existsSync(join(dir, 'state.json')), false);
    for (const pid of [s.proxyPid, s.etcdPid, ...s.backends.map((x) => x.pid)]) assert.equal(isAlive(pid), false, `pid ${pid} is gone`);
  });
});
