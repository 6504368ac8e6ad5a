// Suite "memory": resident memory per idle client connection. Each proxy variant starts fresh (so the
// baseline is not inflated by an earlier run's heap), is warmed up with a few sessions, and then holds N
// idle, logged-in sessions — each with its own backend connection, as in production. The cost per
// connection is (RSS with N open − RSS before) / N, read from /proc/<pid>/status of the proxy process
// tree; the clients live in this process, never in the proxy's.
import type { Certificates } from '../local-cluster/certs.js';
import { SBTEST_PASSWORD, SBTEST_USER, type MariaDBInstance } from '../local-cluster/mariadb.js';
import { rss } from './cpu.js';
import { openMany } from './lean-client.js';
import { cell, markdownTable, passFail, TARGETS, type Check, type SuiteResult } from './report.js';
import { floorRelay, haproxy, nodePipe, tiproxy, tiproxyBaseline, type Target, type TargetName } from './targets.js';

export interface MemoryOptions {
  /** Idle connection counts, e.g. [1000, 10000]. */
  conns: number[];
  certs: Certificates;
  /** Seconds to let the proxy settle after opening the connections, before reading RSS. */
  settle: number;
  /** Another tiproxy build (see tiproxyBaseline), measured as tiproxy-base. */
  baseline?: string;
}

export interface MemorySample {
  target: TargetName;
  conns: number;
  rssBeforeKiB: number;
  rssAfterKiB: number;
  perConnKiB: number;
  /** Per connection, anonymous memory only (heap, buffers): code pages mapped while serving excluded. */
  anonPerConnKiB: number;
  /** Connections MariaDB saw while the clients were idle: confirms each session holds a backend. */
  backendConns: number;
  /** Logins per second while opening (the proxy's login path under a burst). */
  loginsPerSec: number;
  error?: string;
}

const VARIANTS: Array<{ name: TargetName; start: (db: MariaDBInstance, certs: Certificates) => Promise<Target> }> = [
  { name: 'haproxy', start: (db) => haproxy(db) },
  { name: 'node-pipe', start: (db) => nodePipe(db) },
  { name: 'floor', start: (db) => floorRelay(db) },
  { name: 'floor-tls', start: (db, certs) => floorRelay(db, 'onread', certs) },
  { name: 'tiproxy', start: (db) => tiproxy(db) },
  { name: 'tiproxy-tls', start: (db, certs) => tiproxy(db, { tls: certs }) },
];

const sleep = (s: number) => new Promise((r) => setTimeout(r, s * 1000));

async function threadsConnected(db: MariaDBInstance): Promise<number> {
  const rows = await db.query<Array<{ Value: string }>>("SHOW GLOBAL STATUS LIKE 'Threads_connected'");
  return Number(rows[0]?.Value ?? NaN);
}

async function measure(db: MariaDBInstance, target: Target, conns: number, settle: number): Promise<MemorySample> {
  const client = { host: '127.0.0.1', port: target.port, user: SBTEST_USER, password: SBTEST_PASSWORD, tls: target.tls };
  const pid = target.pid!;
  // Warm-up: the first sessions load code paths, TLS contexts and JIT output that later ones reuse.
  for (const c of await openMany(20, 20, client, (c) => c.query('SELECT 1'))) await c.quit();
  await sleep(1);
  const before = rss(pid);
  const sample: MemorySample = {
    target: target.name, conns, rssBeforeKiB: before.totalKiB, rssAfterKiB: NaN, perConnKiB: NaN, anonPerConnKiB: NaN,
    backendConns: NaN, loginsPerSec: NaN,
  };
  const started = performance.now();
  try {
    // SELECT 1 on each makes sure the backend leg is connected and has carried a result.
    const open = await openMany(conns, 64, client, (c) => c.query('SELECT 1'));
    sample.loginsPerSec = conns / ((performance.now() - started) / 1000);
    await sleep(settle);
    const after = rss(pid);
    sample.backendConns = await threadsConnected(db);
    sample.rssAfterKiB = after.totalKiB;
    sample.perConnKiB = (after.totalKiB - before.totalKiB) / conns;
    sample.anonPerConnKiB = (after.anonKiB - before.anonKiB) / conns;
    for (const c of open) c.destroy();
  } catch (err) {
    sample.error = String(err);
  }
  process.stderr.write(`  ${target.name} ${conns} idle: ${cell(sample.perConnKiB, 1)} KiB/conn (RSS ${before.totalKiB} → ` +
    `${sample.rssAfterKiB} KiB), ${sample.backendConns} backend conns${sample.error ? `, error: ${sample.error}` : ''}\n`);
  return sample;
}

async function waitForBackendsToClose(db: MariaDBInstance): Promise<void> {
  for (let i = 0; i < 100 && (await threadsConnected(db)) > 10; i++) await sleep(0.2);
}

export async function memorySuite(db: MariaDBInstance, o: MemoryOptions): Promise<SuiteResult> {
  const samples: MemorySample[] = [];
  const baseline = o.baseline;
  const variants = baseline ? [...VARIANTS.slice(0, 4), { name: 'tiproxy-base' as const, start: (db: MariaDBInstance) => tiproxyBaseline(db, baseline) }, ...VARIANTS.slice(4)] : VARIANTS;
  for (const conns of o.conns) {
    for (const v of variants) {
      const target = await v.start(db, o.certs);
      try {
        samples.push(await measure(db, target, conns, o.settle));
      } finally {
        await target.stop();
      }
      await waitForBackendsToClose(db);
    }
  }
  const checks: Check[] = (['tiproxy', 'tiproxy-tls'] as const).map((name) => {
    // At the largest idle count: smaller counts carry fixed heap growth spread over few sessions.
    const most = Math.max(...samples.map((s) => s.conns));
    const mine = samples.filter((s) => s.target === name && s.conns === most);
    const worst = Math.max(...mine.map((s) => (s.error ? Infinity : s.perConnKiB)));
    return {
      goal: `${name}: RSS per idle connection ≤ ${TARGETS.idleRssKiB} KiB at ${most} connections`,
      measured: mine.length ? `${cell(worst, 1)} KiB` : 'not run',
      pass: mine.length ? worst <= TARGETS.idleRssKiB : undefined,
    };
  });
  const table = markdownTable(
    ['idle conns', 'target', 'RSS before MiB', 'RSS after MiB', 'KiB / conn', 'anon KiB / conn', 'backend conns', 'logins/s', `≤ ${TARGETS.idleRssKiB} KiB`],
    samples.map((s) => [
      String(s.conns), s.target, cell(s.rssBeforeKiB / 1024, 1), cell(s.rssAfterKiB / 1024, 1), s.error ? `error: ${s.error.slice(0, 60)}` : cell(s.perConnKiB, 1),
      cell(s.anonPerConnKiB, 1), cell(s.backendConns), cell(s.loginsPerSec),
      s.target.startsWith('tiproxy') && !s.error ? passFail(s.perConnKiB <= TARGETS.idleRssKiB) : '–',
    ]),
  );
  return {
    name: 'memory', samples, checks,
    markdown: `### Memory per idle connection (client → proxy TLS for tiproxy-tls; node-pipe and floor = bare Node relays)\n\n${table}`,
  };
}
