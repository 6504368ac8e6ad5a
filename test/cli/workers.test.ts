// Real components: the built CLI (bin/tiproxy → dist/) started with `proxy.workers: 2` (a primary that
// forks two node:cluster workers sharing the SQL port), two MariaDB 10.11 instances (mariadbd via
// local-cluster/mariadb.ts), mysql2 as the client. Workers are told apart by connection ids (worker w
// hands out ids w << 24 | n) and by the `worker` field of log lines. Covers: both workers serve;
// balancing on cluster-wide counts (new sessions and the rebalancer); KILL across workers; SIGTERM
// stops every process; a killed worker is restarted; a port in use fails the start with one line.
// How the workers share the port depends on the Node running the tests (the test command runs this file
// on the machine's Node and again on Node 24): from Node 22.12 each worker binds its own SO_REUSEPORT
// socket, before that the primary holds the cluster's shared handle; /proc tells which (listening-sockets.ts).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { ensureBuilt } from '../../local-cluster/build.js';
import { ClientPool, portOf, rejection, waitFor } from '../harness/clients.js';
import { NATIVE_PASSWORD, NATIVE_USER, ROOT_PASSWORD, ROOT_USER, startMariaDBs, TEST_DATABASE, type MariaDBInstance } from '../../local-cluster/mariadb.js';
import { repoRoot, tmpRoot } from '../../local-cluster/paths.js';
import { freePort } from '../../local-cluster/ports.js';
import { spawnTracked } from '../../local-cluster/processes.js';
import { portListeners } from '../harness/listening-sockets.js';
import { exitCode, startProxyProcess, type ProxyProcess } from '../harness/proxy.js';

interface JsonLine {
  msg: string;
  [key: string]: unknown;
}

function jsonLines(output: string): JsonLine[] {
  return output.split('\n').filter((l) => l.startsWith('{') && l.endsWith('}')).map((l) => JSON.parse(l) as JsonLine);
}

/** Node >= 22.12 (or 23.1): `reusePort` listeners; the proxy under test runs on this same Node (process.execPath). */
const [nodeMajor = 0, nodeMinor = 0] = process.versions.node.split('.').map(Number);
const reusePort = nodeMajor >= 24 || (nodeMajor === 23 && nodeMinor >= 1) || (nodeMajor === 22 && nodeMinor >= 12);
const listenMode = reusePort ? 'a SO_REUSEPORT socket in each worker' : "the primary's shared handle";

/** The worker (1..N) serving a connection: the top 8 bits of its proxy connection id. */
const workerOf = (c: Connection): number => c.threadId! >>> 24;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface ConfigOptions {
  backends: number[];
  rebalance?: Record<string, unknown>;
  migration?: boolean;
}

function configYaml({ backends, rebalance, migration }: ConfigOptions): string {
  const lines = [
    'proxy:', '  workers: 2', 'log:', '  level: info', '  format: json', 'plugins:',
    '  - name: discovery-static', '    config:', '      backends:', ...backends.map((p) => `        - addr: "127.0.0.1:${p}"`),
    // Latency off: these tests are about session counts, and on a loaded machine one MariaDB can
    // measure slow enough (≥ 2× and 5 ms) for the latency factor, ranked before counts, to steer routing.
    '  - name: balance', '    config:', `      rebalance: ${JSON.stringify(rebalance ?? { enabled: false })}`, '      latency: { enabled: false }',
  ];
  if (migration) {
    lines.push('  - name: credentials-native', '    config:', `      service-account: { user: ${ROOT_USER}, password: ${ROOT_PASSWORD} }`);
  }
  return `${lines.join('\n')}\n`;
}

describe('tiproxy with proxy.workers: 2', { timeout: 600_000 }, () => {
  let dbs: MariaDBInstance[] = [];
  let a: MariaDBInstance;
  let b: MariaDBInstance;
  let dir: string;
  const procs: ProxyProcess[] = [];
  const clients = new ClientPool();
  const connect = (p: ProxyProcess) => clients.connect(p, { user: NATIVE_USER, password: NATIVE_PASSWORD, database: TEST_DATABASE });

  /** Worker PIDs by worker number, from their "listening" lines (the latest per worker). */
  function workerPids(p: ProxyProcess): Map<number, number> {
    const out = new Map<number, number>();
    for (const l of jsonLines(p.output())) if (l.msg === 'listening for MySQL clients') out.set(l['worker'] as number, l['pid'] as number);
    return out;
  }

  let configCount = 0;
  async function start(options: ConfigOptions): Promise<ProxyProcess & { file: string }> {
    const file = join(dir, `workers-${++configCount}.yaml`);
    writeFileSync(file, configYaml(options));
    // Three Node processes start (the primary, two workers): give a loaded 2-core machine time.
    const p = await startProxyProcess(['--config', file], { expectListening: false });
    procs.push(p);
    await waitFor('both workers to be ready', () => {
      if (p.child.exitCode !== null) assert.fail(`tiproxy exited (${p.child.exitCode}): ${p.output()}`);
      return jsonLines(p.output()).some((l) => l.msg === 'all 2 workers ready');
    }, 45_000, 50);
    return Object.assign(p, { file });
  }

  /**
   * Opens sessions until every worker serves at least `each` of them, by worker. SO_REUSEPORT spreads
   * connections by address hash, not in turn, so a few more than 2 × `each` may be needed.
   */
  async function onEveryWorker(p: ProxyProcess, each: number): Promise<Map<number, Connection[]>> {
    const byWorker = new Map<number, Connection[]>([[1, []], [2, []]]);
    for (let opened = 0; [...byWorker.values()].some((cs) => cs.length < each); opened++) {
      assert.ok(opened < 40, `${opened} sessions and still not ${each} on each worker: ${[...byWorker.values()].map((cs) => cs.length).join('/')}`);
      const c = await connect(p);
      byWorker.get(workerOf(c))!.push(c);
    }
    return byWorker;
  }

  /** Sessions of the test user on each backend, as MariaDB itself counts them. */
  async function sessionsOn(db: MariaDBInstance): Promise<number> {
    const rows = await db.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = '${NATIVE_USER}'`);
    return Number(rows[0]!['n']);
  }

  before(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpRoot, 'workers-'));
    dbs = await startMariaDBs(2, { name: 'workers' });
    [a, b] = dbs as [MariaDBInstance, MariaDBInstance];
  });
  after(async () => {
    await clients.closeAll(false);
    for (const p of procs) {
      const pids = [...workerPids(p).values()];
      await p.stop('SIGKILL');
      for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
    for (const db of dbs) await db.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`listens through ${listenMode} on Node ${nodeMajor}; both workers serve; logs carry the worker; KILL across workers is refused clearly`, { timeout: 120_000 }, async () => {
    const p = await start({ backends: [a.port, b.port] });
    const pids = workerPids(p);
    assert.deepEqual([...pids.keys()].sort(), [1, 2], p.output());
    assert.notEqual(pids.get(1), pids.get(2));
    assert.ok(!pids.has(0) && ![...pids.values()].includes(p.child.pid!), 'the primary serves nothing itself');

    // The proxy runs on the Node running this file (the test command's Node 24 pass tests Node 24's proxy).
    for (const pid of [p.child.pid!, pids.get(1)!, pids.get(2)!]) assert.equal(realpathSync(`/proc/${pid}/exe`), realpathSync(process.execPath), `pid ${pid}`);
    const starting = jsonLines(p.output()).find((l) => l.msg === 'starting 2 workers');
    assert.equal(starting?.['listen'], reusePort ? 'reuseport' : 'cluster', JSON.stringify(starting));
    const sockets = portListeners(p.port, [p.child.pid!, pids.get(1)!, pids.get(2)!]);
    const held = [p.child.pid!, pids.get(1)!, pids.get(2)!].map((pid) => sockets.byPid.get(pid));
    // [primary, worker 1, worker 2]: listening sockets on the SQL port each process holds.
    if (reusePort) assert.deepEqual({ total: sockets.total, held }, { total: 2, held: [0, 1, 1] }, 'each worker binds its own socket');
    else assert.deepEqual({ total: sockets.total, held }, { total: 1, held: [1, 0, 0] }, 'the primary holds the one socket');

    if (!reusePort) {
      // Round-robin hand-off by the primary: both workers get a fair part of any 8 connections.
      const eight: Connection[] = [];
      for (let i = 0; i < 8; i++) eight.push(await connect(p));
      const onOne = eight.filter((c) => workerOf(c) === 1).length;
      assert.ok(onOne >= 2 && onOne <= 6, `${onOne}/${8 - onOne}`);
    }
    const byWorker = await onEveryWorker(p, 2);
    for (const c of [...byWorker.values()].flat()) {
      await c.query('SELECT 1');
      const opened = jsonLines(p.output()).find((l) => l.msg === 'session opened' && l['conn'] === c.threadId);
      assert.equal(opened?.['worker'], workerOf(c), JSON.stringify(opened));
      assert.equal(opened?.['pid'], pids.get(workerOf(c)), 'logged by that worker process');
    }

    const [one, two] = [byWorker.get(1)![0]!, byWorker.get(2)![0]!];
    const err = await rejection(one.query(`KILL ${two.threadId}`));
    assert.match(err.message, new RegExp(`connection ${two.threadId} is served by tiproxy worker 2`), err.message);
    assert.ok([a.port, b.port].includes(await portOf(two)), 'the other worker\'s session is untouched');
    // Within one worker KILL still works.
    const victim = byWorker.get(1)![1]!;
    await one.query(`KILL CONNECTION ${victim.threadId}`);
    await rejection(victim.query('SELECT 1'));
    await clients.closeAll();
    await p.stop();
  });

  it('routes new sessions on cluster-wide counts: 40 sessions end up 20/20 although one worker only sees its own', { timeout: 120_000 }, async () => {
    const p = await start({ backends: [a.port, b.port] });
    // Skew: of 40 sessions, worker 1 keeps only those on the backend where it has more of them and
    // worker 2 none. (With the primary's round robin that is about half of worker 1's; with SO_REUSEPORT
    // a worker's sessions tend to land on one backend, the other worker's on the other.)
    const opened: Array<{ c: Connection; worker: number; port: number }> = [];
    for (let i = 0; i < 40; i++) {
      const c = await connect(p);
      opened.push({ c, worker: workerOf(c), port: await portOf(c) });
    }
    const onWorker1 = (db: MariaDBInstance) => opened.filter((o) => o.worker === 1 && o.port === db.port).length;
    const [full, empty] = onWorker1(a) >= onWorker1(b) ? [a, b] : [b, a];
    const k = onWorker1(full);
    for (const o of opened) if (o.worker !== 1 || o.port !== full.port) await clients.end(o.c);
    assert.ok(k >= 6, `worker 1 kept ${k} sessions`);
    await waitFor('MariaDB to see only the kept sessions', async () => (await sessionsOn(full)) === k && (await sessionsOn(empty)) === 0, 10_000, 50);
    await new Promise((r) => setTimeout(r, 500)); // worker 1's counts reach worker 2 (reported every 100 ms)

    // Worker 2 takes the rest. Seeing only its own sessions it would split them evenly and leave one
    // backend ahead by k; with worker 1's counts it fills the empty one first.
    let onWorker2 = 0;
    while (onWorker2 < 40 - k) {
      const c = await connect(p);
      if (workerOf(c) === 2) onWorker2++;
      else await clients.end(c);
    }
    await waitFor('40 sessions on the backends', async () => (await sessionsOn(a)) + (await sessionsOn(b)) === 40, 10_000, 50);
    const [onFull, onEmpty] = [await sessionsOn(full), await sessionsOn(empty)];
    assert.ok(Math.abs(onFull - onEmpty) <= 2, `${onFull} / ${onEmpty} (worker 1 held ${k} on the first)`);
    await clients.closeAll();
    await p.stop();
  });

  it('rebalances on cluster-wide counts without over-migrating: each worker moves only its share', { timeout: 120_000 }, async () => {
    // A high rate, so the rate limit does not hide over-migration: 40/0 needs 18 moves in one round.
    const rebalance = { enabled: true, interval: 1, 'migrations-per-second': 100 };
    const p = await start({ backends: [a.port], rebalance, migration: true });
    for (let i = 0; i < 40; i++) await connect(p);
    assert.equal(await sessionsOn(a), 40);

    // Add B by saving the file the way editors do: the primary's watcher tells each worker, once.
    const reloads = () => jsonLines(p.output()).filter((l) => l.msg === 'plugins and configuration applied');
    writeFileSync(`${p.file}.swp`, configYaml({ backends: [a.port, b.port], rebalance, migration: true }));
    renameSync(`${p.file}.swp`, p.file);
    await waitFor('both workers to reload', () => new Set(reloads().map((l) => l['worker'])).size === 2, 10_000);
    await waitFor('sessions to move to B', async () => (await sessionsOn(b)) >= 15, 20_000, 100);
    await new Promise((r) => setTimeout(r, 3000)); // three more rounds: nothing may swing back or overshoot
    const [onA, onB] = [await sessionsOn(a), await sessionsOn(b)];
    const migrated = jsonLines(p.output()).filter((l) => l.msg === 'session migrated');
    assert.equal(onA + onB, 40);
    assert.ok(onB >= 16 && onB <= 22, `A ${onA} / B ${onB} after ${migrated.length} migrations`);
    // One proxy would make 18 moves (40/0 → 22/18 at conn-ratio 1.2); two workers each acting on the
    // totals would make about twice that and then move sessions back.
    assert.ok(migrated.length <= 24, `${migrated.length} migrations`);
    assert.ok(migrated.every((l) => l['to'] === `127.0.0.1:${b.port}`), 'no session moved back to A');
    assert.deepEqual(new Set(migrated.map((l) => l['worker'])), new Set([1, 2]), 'both workers moved their own sessions');
    assert.equal(reloads().length, 2, 'one reload per worker for one file change');
    await clients.closeAll();
    await p.stop();
  });

  it('SIGTERM stops every worker gracefully and the primary exits 0, leaving no process', { timeout: 120_000 }, async () => {
    const p = await start({ backends: [a.port] });
    const pids = [...workerPids(p).values()];
    assert.equal(pids.length, 2);
    const sessions = [...(await onEveryWorker(p, 1)).values()].flat();
    p.child.kill('SIGTERM');
    assert.equal(await exitCode(p.child), 0, p.output());
    for (const pid of pids) assert.ok(!alive(pid), `worker pid ${pid} is gone`);
    const lines = jsonLines(p.output());
    for (const w of [1, 2]) assert.ok(lines.some((l) => l.msg === 'shutdown complete' && l['worker'] === w), `worker ${w} shut down gracefully`);
    for (const c of sessions) await rejection(c.query('SELECT 1'));
  });

  it('restarts a worker killed with SIGKILL; the port keeps serving and the other worker\'s sessions survive', { timeout: 120_000 }, async () => {
    const p = await start({ backends: [a.port] });
    const before = workerPids(p);
    const survivors: Connection[] = [];
    while (survivors.length < 2) {
      const c = await connect(p);
      if (workerOf(c) === 2) survivors.push(c);
    }
    process.kill(before.get(1)!, 'SIGKILL');
    // Once the primary knows (a connection it was handing to worker 1 at the instant it died would be
    // lost: node:cluster's round-robin limit), connections keep being served, by worker 2 meanwhile.
    await waitFor('the primary to notice', () => jsonLines(p.output()).some((l) => /worker 1 exited unexpectedly/.test(l.msg)), 15_000);
    for (let i = 0; i < 6; i++) assert.equal(await portOf(await connect(p)), a.port);
    await waitFor('worker 1 to be restarted', () => {
      const now = workerPids(p).get(1);
      return now !== undefined && now !== before.get(1);
    }, 15_000);
    const crash = jsonLines(p.output()).find((l) => /worker 1 exited unexpectedly/.test(l.msg));
    assert.equal(crash?.['signal'], 'SIGKILL', JSON.stringify(crash));
    assert.equal(crash?.['level'], 50, 'logged as an error');
    assert.ok(alive(workerPids(p).get(1)!) && !alive(before.get(1)!));
    // The restarted worker serves again.
    for (const c of [...(await onEveryWorker(p, 1)).values()].flat()) assert.equal(await portOf(c), a.port);
    for (const c of survivors) assert.equal(await portOf(c), a.port);
    await clients.closeAll();
    await p.stop();
  });

  /** Starts `--workers 2` on a port `blocker` holds: one line on stderr, exit 1, no worker left. */
  async function assertPortInUseFailsStart(blocker: Server, port: number): Promise<void> {
    try {
      const child = spawnTracked(process.execPath, [join(repoRoot, 'bin', 'tiproxy'), '--addr', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${a.port}`,
        '--workers', '2', '--log-format', 'json'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      let stdout = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 1);
      assert.equal(stderr, `tiproxy: cannot listen on 127.0.0.1:${port}: address already in use\n`);
      // No worker is even forked: the primary's plain pre-flight bind (one a second SO_REUSEPORT
      // listener cannot share either) fails first.
      assert.deepEqual(jsonLines(stdout).filter((l) => (l['worker'] as number) > 0), [], stdout);
    } finally {
      blocker.close();
    }
  }

  it('a port in use fails the start: one line, exit 1, no worker left', { timeout: 30_000 }, async () => {
    const port = await freePort();
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', r));
    await assertPortInUseFailsStart(blocker, port);
  });

  it('a port held by another SO_REUSEPORT listener (say, a tiproxy still running) fails the start too, instead of sharing it', {
    timeout: 30_000, skip: !reusePort && `reusePort needs Node >= 22.12 (this is ${process.version})`,
  }, async () => {
    const port = await freePort();
    const blocker = createServer();
    // `reusePort` is not in Node 20's typings (the project's @types/node), hence the widened object.
    const options: object = { host: '127.0.0.1', port, reusePort: true };
    await new Promise<void>((r) => blocker.listen(options, r));
    await assertPortInUseFailsStart(blocker, port);
  });
});
