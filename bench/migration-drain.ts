// One command: `node --import tsx bench/migration-drain.ts [--sessions 1000] [--before 10]
//   [--sysbench-threads 4] [--sysbench-test oltp_read_only] [--evacuate-seconds N] [--table-size 10000]
//   [--state none|typical] [--cpu-profile FILE]`
// Migration under load (issue 5 item 7): two MariaDB 10.11 instances A and B, the proxy in-process with
// credentials-native (service account), migrate-replay, health and balance. `--sessions` idle raw
// clients are opened, all on A (B is on the drain list while they connect), and sysbench runs on its own
// sessions through the proxy. Then one reload swaps the drain list to A — what an operator does to
// empty a backend — and the bench measures:
//   * the time until no session is left on A, and that every idle client then answers from B (0 errors);
//   * each migration's duration (the kernel's afterMigrate outcome, tapped by a tiny bench plugin): p50/p99;
//   * sysbench QPS (per-second reports) in the `--before` seconds before the drain vs during it.
// `--state typical` gives every idle session the state of issue 11 before the drain: three session
// variables (sql_mode, time_zone, SET NAMES), two user variables, three prepared statements; the table
// then shows CPU per migration (proxy process, old and new MariaDB, from /proc/<pid>/stat, divided by the
// migrations). `--sysbench-threads 0` runs no sysbench, so the proxy's CPU is the migrations' alone.
// The evacuation pace is the balance plugin's `rebalance.evacuate-seconds` (default 1: a drained
// backend's sessions are asked to move at count / 1 per second, the kernel pacing them); `--evacuate-seconds` overrides it.
// Prints a markdown table and writes JSON to bench/results/.
import { mkdirSync, writeFileSync } from 'node:fs';
import inspector from 'node:inspector/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { definePlugin, type TiproxyPlugin } from '../src/plugin.js';
import {
  ROOT_PASSWORD, ROOT_USER, SBTEST_DATABASE, SBTEST_PASSWORD, SBTEST_USER, startMariaDBs, type MariaDBInstance,
} from '../local-cluster/mariadb.js';
import { repoRoot } from '../local-cluster/paths.js';
import { configWithPlugin, startProxy, type TestProxy } from '../test/harness/proxy.js';
import { RawClient } from '../test/harness/raw-client.js';
import { sysbench, type SysbenchTest } from '../test/harness/sysbench.js';
import { cpuSeconds } from './cpu.js';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '1000' },
    before: { type: 'string', default: '10' },
    'sysbench-threads': { type: 'string', default: '4' },
    'sysbench-test': { type: 'string', default: 'oltp_read_only' },
    'evacuate-seconds': { type: 'string' },
    'table-size': { type: 'string', default: '10000' },
    'drain-budget': { type: 'string', default: '30' },
    state: { type: 'string', default: 'none' },
    'cpu-profile': { type: 'string' },
  },
});
const SESSIONS = Number(values.sessions);
const BEFORE_S = Number(values.before);
const WARMUP_S = 3;
const DRAIN_BUDGET_S = Number(values['drain-budget']);
const SB_THREADS = Number(values['sysbench-threads']);
const SB_TEST = values['sysbench-test'] as SysbenchTest;
const evacuateSeconds = values['evacuate-seconds'] === undefined ? undefined : Number(values['evacuate-seconds']);
const STATE = values.state;
if (STATE !== 'none' && STATE !== 'typical') throw new Error(`--state must be none or typical, not ${STATE}`);

/** Issue 11's typical session state: a few session variables, two user variables, three prepared statements. */
async function giveTypicalState(c: RawClient, i: number): Promise<void> {
  await c.query("SET SESSION sql_mode = 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION', time_zone = '+02:00'");
  await c.query('SET NAMES utf8mb4');
  await c.query(`SET @tenant = ${i}, @label = 'session-${i}'`);
  await c.prepare('SELECT c FROM sbtest1 WHERE id = ?');
  await c.prepare('SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN ? AND ?');
  await c.prepare('UPDATE sbtest1 SET k = k + 1 WHERE id = ?');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (msg: string) => process.stderr.write(`${msg}\n`);

/** Every finished migration's outcome, as the kernel reports it to plugins. */
const outcomes: Array<{ at: number; result: string; durationMs: number; from: string; to: string }> = [];
const migrationTap = definePlugin({
  name: 'bench-migration-tap',
  version: '1.0.0',
  apply({ hooks }) {
    hooks.afterMigrate.tap('bench-migration-tap', (o) => {
      outcomes.push({ at: Date.now(), result: o.result, durationMs: o.durationMs, from: o.from.addr, to: o.to.addr });
    });
  },
}) as TiproxyPlugin<never>;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function inBatches<T>(items: readonly T[], size: number, fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

const [dbA, dbB] = (await startMariaDBs(2, { name: 'drain-bench', config: { max_connections: SESSIONS * 2 + 200 } })) as [MariaDBInstance, MariaDBInstance];
const A = `127.0.0.1:${dbA.port}`;
const B = `127.0.0.1:${dbB.port}`;
const sb = { user: SBTEST_USER, password: SBTEST_PASSWORD, db: SBTEST_DATABASE, tables: 4, tableSize: Number(values['table-size']), threads: 4, time: 0 };
// Same data on both: sysbench's sessions are moved too and must find their tables on B.
await Promise.all([dbA, dbB].map((d) => sysbench('oltp_read_write', 'prepare', { ...sb, host: '127.0.0.1', port: d.port })));

const pluginsWithDrain = (drain: string[]) => [
  { name: 'credentials-native', config: { 'service-account': { user: ROOT_USER, password: ROOT_PASSWORD } } },
  { name: 'migrate-replay' },
  { name: 'health', config: { drain } },
  { name: 'balance', config: evacuateSeconds === undefined ? {} : { rebalance: { 'evacuate-seconds': evacuateSeconds } } },
  { name: 'bench-migration-tap' },
];
let proxy: TestProxy | undefined;
const clients: RawClient[] = [];
let exitCode = 0;
try {
  proxy = await startProxy({ backends: [A, B], plugins: [migrationTap], config: { plugins: pluginsWithDrain([B]) }, logLevel: 'warn' });
  const p = proxy;
  // The backend's own session count: walking every session each poll would add its cost to the proxy's CPU.
  const sessionsOn = (addr: string) => p.kernel.backends.get(addr)?.connections ?? 0;

  // 1. The idle sessions, all on A (B is drained while they connect). The drain list of the first
  // configuration takes effect at the health plugin's first check round (backends discovered while the
  // first plugin generation is built do not reach its backendEvent tap): wait for it.
  while (!p.kernel.backends.get(B)?.draining) await sleep(50);
  const openedAt = Date.now();
  await inBatches(Array.from({ length: SESSIONS }, (_, i) => i), 100, async (i) => {
    const c = await RawClient.connect({ host: p.host, port: p.port, user: SBTEST_USER, password: SBTEST_PASSWORD, database: SBTEST_DATABASE });
    if (STATE === 'typical') await giveTypicalState(c, i);
    clients.push(c);
  });
  log(`${SESSIONS} sessions opened in ${Date.now() - openedAt} ms: ${sessionsOn(A)} on A, ${sessionsOn(B)} on B`);

  // 2. sysbench on its own sessions (also on A), with per-second reports.
  const sbTime = WARMUP_S + BEFORE_S + DRAIN_BUDGET_S;
  const sbStartedAt = Date.now();
  const sbRun = SB_THREADS > 0
    ? sysbench(SB_TEST, 'run', { ...sb, host: p.host, port: p.port, threads: SB_THREADS, time: sbTime, extra: ['--report-interval=1'] })
    : Promise.resolve({ raw: '', errors: 0, reconnects: 0 });
  await sleep((WARMUP_S + BEFORE_S) * 1000);

  // 3. The drain: one reload moves the drain list from B to A.
  const next = configWithPlugin(p.kernel, 'health', { drain: [A] });
  // CPU used while draining: this process (the in-process proxy; the idle clients do nothing), A and B.
  // The proxy's CPU is this process's own (process.cpuUsage): cpuSeconds(process.pid) would add its
  // children — the MariaDBs and sysbench this bench started.
  const cpuOf = {
    proxy: () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; },
    proxyKernel: () => process.cpuUsage().system / 1e6,
    mariadbA: () => cpuSeconds(dbA.pid), mariadbB: () => cpuSeconds(dbB.pid) };
  const cpuBefore = Object.fromEntries(Object.entries(cpuOf).map(([k, read]) => [k, read()]));
  // --cpu-profile: the V8 profile of this process (the in-process proxy) over the drain only.
  const profiler = values['cpu-profile'] ? new inspector.Session() : null;
  if (profiler) {
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.start');
  }
  // The kernel's pacing while the drain runs: how many moves it allowed at once (it follows the foreground).
  const allowed: number[] = [];
  const pacingTimer = setInterval(() => allowed.push(p.kernel.migrations.pacingSnapshot().concurrency), 100);
  const drainAt = Date.now();
  await p.kernel.reload(next);
  let drainedAt = 0;
  while (Date.now() - drainAt < DRAIN_BUDGET_S * 1000) {
    if (sessionsOn(A) === 0) {
      drainedAt = Date.now();
      break;
    }
    await sleep(10);
  }
  const drainMs = drainedAt ? drainedAt - drainAt : NaN;
  clearInterval(pacingTimer);
  const undisturbedRate = p.kernel.migrations.pacingSnapshot().undisturbedRate;
  if (profiler) {
    const { profile } = await profiler.post('Profiler.stop');
    writeFileSync(values['cpu-profile']!, JSON.stringify(profile));
    profiler.disconnect();
  }
  const cpuDuring = Object.fromEntries(Object.entries(cpuOf).map(([k, read]) => [k, read() - cpuBefore[k]!]));
  log(drainedAt ? `A drained in ${drainMs} ms` : `A NOT drained within ${DRAIN_BUDGET_S} s: ${sessionsOn(A)} sessions left`);

  const sbResult = await sbRun;

  // 4. Every idle client still works, and answers from B (with its state, when it had some).
  let clientErrors = 0;
  let onB = 0;
  let stateLost = 0;
  await inBatches(clients, 100, async (c) => {
    try {
      const rows = await c.rows('SELECT @@port, @tenant, @label, @@time_zone, @@character_set_client');
      if (Number(rows[0]![0]) === dbB.port) onB++;
      if (STATE === 'typical' && (rows[0]![1] === null || rows[0]![2] !== `session-${rows[0]![1]}` || rows[0]![3] !== '+02:00' || rows[0]![4] !== 'utf8mb4')) stateLost++;
    } catch {
      clientErrors++;
    }
  });
  const closedUnderClients = p.logs.filter((l) => l.msg === 'session closed' && l['side'] !== 'client').length;

  // Per-second sysbench QPS, placed on the bench's clock (reports are counted from sysbench's start).
  const reports = [...sbResult.raw.matchAll(/^\[ (\d+)s \].*?qps: ([\d.]+)/gm)].map((m) => ({ at: sbStartedAt + Number(m[1]) * 1000, qps: Number(m[2]) }));
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
  const qpsBefore = mean(reports.filter((r) => r.at > drainAt - BEFORE_S * 1000 && r.at <= drainAt).map((r) => r.qps));
  const duringEnd = drainedAt || drainAt + DRAIN_BUDGET_S * 1000;
  // A report covers the second before its timestamp: "during" is every report whose second overlaps the drain.
  const during = reports.filter((r) => r.at > drainAt && r.at - 1000 < duringEnd);
  const qpsDuring = mean(during.map((r) => r.qps));
  const qpsMinDuring = during.length ? Math.min(...during.map((r) => r.qps)) : NaN;

  const moved = outcomes.filter((o) => o.at >= drainAt && o.from === A);
  const ok = moved.filter((o) => o.result === 'succeeded').map((o) => o.durationMs).sort((a, b) => a - b);
  const notOk = moved.filter((o) => o.result !== 'succeeded');
  const settings = `evacuate-seconds=${evacuateSeconds ?? '1 (default)'}, state=${STATE}, sysbench threads=${SB_THREADS}`;
  const perMigrationMs = (k: string) => (moved.length ? ((cpuDuring[k]! * 1000) / moved.length).toFixed(2) : 'n/a');

  const rows: Array<[string, string]> = [
    ['idle sessions on A before the drain', String(SESSIONS)],
    ['time until A had no session (incl. sysbench\'s)', `${Number.isNaN(drainMs) ? 'not drained' : `${(drainMs / 1000).toFixed(2)} s`}`],
    ['migrations succeeded / failed or vetoed', `${ok.length} / ${notOk.length}`],
    ['migration duration p50 / p99 / max', `${percentile(ok, 50)} / ${percentile(ok, 99)} / ${ok.at(-1) ?? NaN} ms`],
    ['idle clients answering from B afterwards', `${onB} / ${SESSIONS}`],
    ['client errors (failed queries + sessions closed by proxy/backend)', String(clientErrors + closedUnderClients)],
    [`sysbench ${SB_TEST} ${SB_THREADS} threads: QPS in the ${BEFORE_S} s before`, qpsBefore.toFixed(0)],
    ['sysbench QPS during the drain (mean / lowest second)', `${qpsDuring.toFixed(0)} / ${qpsMinDuring.toFixed(0)}`],
    ['sysbench errors / reconnects (whole run)', `${sbResult.errors} / ${sbResult.reconnects}`],
    ['CPU seconds during the drain: proxy / MariaDB A / MariaDB B',
      `${cpuDuring['proxy']!.toFixed(1)} / ${cpuDuring['mariadbA']!.toFixed(1)} / ${cpuDuring['mariadbB']!.toFixed(1)}`],
    ['CPU ms per migration: proxy / old backend (A) / new backend (B)', `${perMigrationMs('proxy')} / ${perMigrationMs('mariadbA')} / ${perMigrationMs('mariadbB')}`],
    ['… of which the proxy spent in the kernel (system time: socket calls, loopback TCP)', `${perMigrationMs('proxyKernel')} ms`],
    ['moves allowed at once during the drain (mean / max of 100 ms samples)',
      `${allowed.length ? (allowed.reduce((a, b) => a + b, 0) / allowed.length).toFixed(1) : 'n/a'} / ${allowed.length ? Math.max(...allowed) : 'n/a'}`],
    ['foreground rate the pacing measured with no move running (commands/s)', undisturbedRate === null ? 'n/a' : undisturbedRate.toFixed(0)],
    ['idle clients whose state was lost', STATE === 'typical' ? String(stateLost) : 'n/a'],
  ];
  const table = [`Migration drain, ${settings}`, '', '| measure | value |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
  process.stdout.write(`${table}\n`);
  if (clientErrors + closedUnderClients + stateLost > 0 || onB !== SESSIONS || Number.isNaN(drainMs)) exitCode = 1;

  const out = join(repoRoot, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  const file = join(out, `migration-drain-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({
    node: process.version, sessions: SESSIONS, evacuateSeconds: evacuateSeconds ?? null, sysbench: { test: SB_TEST, threads: SB_THREADS },
    drainMs, migrations: { succeeded: ok.length, other: notOk.map((o) => o.result), p50Ms: percentile(ok, 50), p99Ms: percentile(ok, 99), maxMs: ok.at(-1) ?? null },
    clientErrors, closedUnderClients, onB, qpsBefore, qpsDuring, qpsMinDuring, reports: reports.map((r) => ({ t: r.at - drainAt, qps: r.qps })),
    sysbenchErrors: sbResult.errors, sysbenchReconnects: sbResult.reconnects, cpuSecondsDuringDrain: cpuDuring,
    pacing: { allowed, undisturbedRate },
    state: STATE, stateLost, cpuMsPerMigration: { proxy: perMigrationMs('proxy'), old: perMigrationMs('mariadbA'), new: perMigrationMs('mariadbB') },
  }, null, 2));
  log(`wrote ${file}`);
} finally {
  await inBatches(clients, 200, async (c) => { await c.close().catch(() => c.destroy()); });
  await proxy?.stop();
  await dbA.destroy();
  await dbB.destroy();
}
process.exit(exitCode);
