// What traffic capture costs the proxy: sysbench oltp_point_select at 64 threads (tiny queries, so
// per-command overhead dominates) through one tiproxy CLI on a private MariaDB, runs alternating
// between no capture and a running capture (started and cancelled through the admin API), so
// background load on the shared machine hits both alike. Besides QPS, the proxy's CPU time per query
// (main thread, and all threads: the capture's writer thread included) from /proc, which a loaded
// machine disturbs far less than throughput. Then the last capture is replayed (read-only,
// 10×) against the same server: the replayer's throughput in commands/s. Target: capture ≤ 5 % QPS.
// `node --import tsx bench/traffic-capture-cost.ts [--time S] [--repeat N] [--threads N] [--baseline DIR] [--compress gzip|zstd|none]`
// --toggle P: instead of separate runs, ONE sysbench run of --time seconds during which the capture is
// switched on and off every P seconds (off, on, on, off, …), each window's first second dropped: the two
// modes are compared on the same connections, a few seconds apart, so the machine's drift between
// separate runs (±20 % here) mostly cancels. Adds the whole machine's CPU per query (/proc/stat).
// --baseline DIR: also another build (a checkout at DIR with `npm run build` done) as tiproxy-base, its
// off/on runs interleaved with this build's: before/after in one run.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureBuilt } from '../local-cluster/build.js';
import { ROOT_PASSWORD, ROOT_USER, SBTEST_PASSWORD, SBTEST_USER, startMariaDB } from '../local-cluster/mariadb.js';
import { tmpRoot } from '../local-cluster/paths.js';
import { replayTraffic } from '../src/cli/traffic/traffic-replay.js';
import { freePort } from '../local-cluster/ports.js';
import { spawnTracked, stopProcess } from '../local-cluster/processes.js';
import { accepts, startProxyProcess } from '../test/harness/proxy.js';
import { sysbench } from '../test/harness/sysbench.js';
import { prepare, type SysbenchData } from './sysbench-runs.js';
import { cpuPerQuery, medianInterval, modeQps, pairCosts, toggleMode, type ToggleWindow } from './toggle-windows.js';

const TARGET_COST = 0.05;
const { values: v } = parseArgs({
  options: { time: { type: 'string', default: '15' }, repeat: { type: 'string', default: '3' }, threads: { type: 'string', default: '64' }, baseline: { type: 'string' }, compress: { type: 'string', default: 'gzip' }, toggle: { type: 'string' } },
});
const time = Number(v.time);
const repeat = Number(v.repeat);
const threads = Number(v.threads);

/** A proxy the bench drives: its SQL port and admin API port. */
interface BenchProxy {
  port: number;
  apiPort: number;
  pid: number;
  stop(): Promise<void>;
}

/** Another build's bin/tiproxy (the baseline), like startProxyProcess starts this one. */
async function startBaseline(checkout: string, args: string[]): Promise<BenchProxy> {
  const [port, apiPort] = [await freePort(), await freePort()];
  const child = spawnTracked(process.execPath, [join(checkout, 'bin', 'tiproxy'), '--addr', `127.0.0.1:${port}`, '--api-addr', `127.0.0.1:${apiPort}`, ...args], { stdio: 'ignore' });
  for (const deadline = Date.now() + 30_000; !(await accepts(port));) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the baseline tiproxy (${checkout}) did not start listening`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port, apiPort, pid: child.pid!, stop: () => stopProcess(child, { signal: 'SIGTERM', timeoutMs: 20_000 }) };
}

/** CPU seconds (user + system) of a process, or of one thread with `task`. */
function cpuSeconds(pid: number, task?: number): number {
  const stat = readFileSync(task === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${task}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

interface Variant {
  name: string;
  proxy: BenchProxy;
  qps: { off: number[]; on: number[] };
  /** Microseconds of CPU per query: the main thread, and the whole process. */
  mainUs: { off: number[]; on: number[] };
  allUs: { off: number[]; on: number[] };
  captured: { commands: number; dropped: number };
}

async function api(proxy: BenchProxy, path: string, body: unknown): Promise<{ commands: number; dropped: number }> {
  const r = await fetch(`http://127.0.0.1:${proxy.apiPort}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
  return r.json() as Promise<{ commands: number; dropped: number }>;
}

/** Busy CPU seconds of the whole machine (all CPUs, everything but idle and iowait) from /proc/stat. */
function machineBusySeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (f.reduce((a, b) => a + b, 0) - f[3]! - f[4]!) / 100;
}

interface ToggleResult {
  period: number;
  windows: ToggleWindow[];
  captured: { commands: number; dropped: number };
  /** The directory of the last capture. */
  lastOutput: string;
}

/** One sysbench run with the capture switched every `period` seconds at sysbench's own second marks. */
async function toggleRun(variant: Variant, data: SysbenchData, period: number): Promise<ToggleResult> {
  const pid = variant.proxy.pid;
  const sample = () => ({ main: cpuSeconds(pid, pid), all: cpuSeconds(pid), machine: machineBusySeconds() });
  const windows: ToggleWindow[] = [];
  let mark = sample();
  let capturing = false;
  let captured = { commands: 0, dropped: 0 };
  let lastOutput = '';
  let switching: Promise<void> = Promise.resolve();
  let failure: Error | null = null;
  const open = (w: number): ToggleWindow => (windows[w] ??= { mode: toggleMode(w), qps: [], cpu: { main: 0, all: 0, machine: 0 } });
  await sysbench('oltp_point_select', 'run', {
    host: '127.0.0.1', port: variant.proxy.port, user: SBTEST_USER, password: SBTEST_PASSWORD, db: data.database,
    tables: data.tables, tableSize: data.tableSize, threads, time, extra: ['--db-ps-mode=disable'],
    onInterval(second, qps) {
      const w = Math.floor((second - 1) / period);
      const pos = (second - 1) % period;
      const now = sample();
      if (pos === 0) {
        // The switch happened in this second: measuring starts after it.
        mark = now;
        // On the monotonic clock V8's CPU profiles use (µs), to line a --cpu-prof of the proxy up with the windows.
        process.stderr.write(`  window ${w} capture ${open(w).mode} from ${Number(process.hrtime.bigint() / 1000n)} µs\n`);
        return;
      }
      const win = open(w);
      win.qps.push(qps);
      win.cpu = { main: win.cpu.main + now.main - mark.main, all: win.cpu.all + now.all - mark.all, machine: win.cpu.machine + now.machine - mark.machine };
      mark = now;
      if (pos !== period - 1) return;
      const next = open(w + 1).mode === 'on';
      if (next === capturing) return;
      capturing = next;
      switching = switching.then(async () => {
        if (next) await api(variant.proxy, '/api/traffic/capture', { output: (lastOutput = join(dir, `toggle-${w + 1}`)), duration: time * 2, compress: v.compress });
        else captured = await api(variant.proxy, '/api/traffic/cancel', {});
      }).catch((err: Error) => void (failure ??= err));
    },
  });
  await switching;
  if (capturing) captured = await api(variant.proxy, '/api/traffic/cancel', {});
  if (failure) throw failure;
  return { period, windows: windows.filter((w) => w.qps.length === period - 1), captured, lastOutput };
}

/** The toggled run as table lines: per pair of neighbouring windows, and over all of them. */
function toggleLines(r: ToggleResult): string[] {
  const costs = pairCosts(r.windows);
  const { median: medianCost, low: lo, high: hi } = medianInterval(costs);
  const per = (mode: 'off' | 'on', key: 'main' | 'all' | 'machine') => cpuPerQuery(r.windows, mode, key);
  const qpsOf = (mode: 'off' | 'on') => modeQps(r.windows, mode);
  const overall = (1 - qpsOf('on') / qpsOf('off')) * 100;
  const cpuRow = (key: 'main' | 'all' | 'machine', label: string) =>
    `| ${label} | ${per('off', key).toFixed(1)} µs | ${per('on', key).toFixed(1)} µs | +${(per('on', key) - per('off', key)).toFixed(1)} µs (${((per('on', key) / per('off', key) - 1) * 100).toFixed(1)} %) |`;
  return [
    `### traffic capture cost, toggled: oltp_point_select, ${threads} threads, one ${time}-s run, capture switched every ${r.period} s (${r.windows.length} windows, ${costs.length} pairs, first second of each dropped), compress ${v.compress}`, '',
    '| | capture off | capture on | difference |', '|---|---|---|---|',
    `| QPS (mean of measured seconds) | ${qpsOf('off').toFixed(0)} | ${qpsOf('on').toFixed(0)} | ${overall.toFixed(1)} % ${overall <= TARGET_COST * 100 ? 'pass' : 'FAIL'} |`,
    cpuRow('main', 'proxy main-thread CPU / query'), cpuRow('all', 'proxy process CPU / query'), cpuRow('machine', 'whole machine CPU / query'), '',
    `QPS cost per pair (median, 95 % interval of the median): **${medianCost.toFixed(1)} %** [${lo.toFixed(1)}, ${hi.toFixed(1)}] ${medianCost <= TARGET_COST * 100 ? 'pass' : 'FAIL'}`,
    `pair costs: ${costs.map((c) => c.toFixed(1)).join(' ')}`,
    `last capture: ${r.captured.commands} commands, ${r.captured.dropped} dropped`,
  ];
}

ensureBuilt();
const db = await startMariaDB({ name: 'bench-capture', config: { max_connections: 1000, innodb_buffer_pool_size: '256M' } });
const dir = mkdtempSync(join(tmpRoot, 'bench-capture-'));
let lastCapture = '';
let replay: Awaited<ReturnType<typeof replayTraffic>> | null = null;
let toggled: ToggleResult | null = null;
const args = ['--backend', `127.0.0.1:${db.port}`, '--log-level', 'warn'];
const variants: Variant[] = [];
try {
  const fresh = () => ({ qps: { off: [], on: [] }, mainUs: { off: [], on: [] }, allUs: { off: [], on: [] }, captured: { commands: 0, dropped: 0 } });
  const own = await startProxyProcess(args, { startTimeoutMs: 30_000, nodeArgs: process.env.CAPTURE_PROXY_NODE_ARGS?.split(' ').filter(Boolean) });
  variants.push({ name: 'tiproxy', proxy: { ...own, pid: own.child.pid! }, ...fresh() });
  if (v.baseline) variants.push({ name: 'tiproxy-base', proxy: await startBaseline(v.baseline, args), ...fresh() });
  const data: SysbenchData = { database: 'sbtest', tables: 4, tableSize: 10_000 };
  await prepare(db, data);
  if (v.toggle) toggled = await toggleRun(variants[0]!, data, Number(v.toggle));
  for (let run = 1; run <= (v.toggle ? 0 : repeat); run++) {
    // The order rotates, so neither variant nor mode always runs first.
    const order = variants.flatMap((variant) => (['off', 'on'] as const).map((mode) => ({ variant, mode })));
    for (let k = 0; k < order.length; k++) {
      const { variant, mode } = order[(k + run - 1) % order.length]!;
      const capture = join(dir, `${variant.name}-run-${run}`);
      if (mode === 'on') await api(variant.proxy, '/api/traffic/capture', { output: capture, duration: time * 4, compress: v.compress });
      const pid = variant.proxy.pid;
      const cpu0 = { main: cpuSeconds(pid, pid), all: cpuSeconds(pid) };
      const r = await sysbench('oltp_point_select', 'run', {
        host: '127.0.0.1', port: variant.proxy.port, user: SBTEST_USER, password: SBTEST_PASSWORD, db: data.database,
        tables: data.tables, tableSize: data.tableSize, threads, time, extra: ['--db-ps-mode=disable'],
      });
      const cpu = { main: cpuSeconds(pid, pid) - cpu0.main, all: cpuSeconds(pid) - cpu0.all };
      if (mode === 'on') {
        variant.captured = await api(variant.proxy, '/api/traffic/cancel', {});
        if (variant.name === 'tiproxy') lastCapture = capture;
      }
      if (r.errors > 0) throw new Error(`${variant.name} capture ${mode}: ${r.errors} sysbench errors`);
      variant.qps[mode].push(r.qps);
      variant.mainUs[mode].push((cpu.main / r.queries) * 1e6);
      variant.allUs[mode].push((cpu.all / r.queries) * 1e6);
      process.stderr.write(`  ${variant.name} point_select/${threads} capture ${mode} #${run}: ${r.qps.toFixed(0)} qps, p95 ${r.p95Ms} ms, CPU/query ${((cpu.main / r.queries) * 1e6).toFixed(1)} µs main, ${((cpu.all / r.queries) * 1e6).toFixed(1)} µs all${mode === 'on' ? `, ${variant.captured.commands} captured, ${variant.captured.dropped} dropped` : ''}\n`);
    }
  }
  if (toggled) lastCapture = toggled.lastOutput;
  replay = await replayTraffic({
    input: lastCapture, target: `127.0.0.1:${db.port}`, user: ROOT_USER, password: ROOT_PASSWORD, speed: 10, readOnly: true, shard: null, key: null, connectTimeoutMs: 10_000,
  });
} finally {
  for (const variant of variants) await variant.proxy.stop();
  await db.destroy();
  rmSync(dir, { recursive: true, force: true });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const lines = toggled ? toggleLines(toggled) : [
  `### traffic capture cost: oltp_point_select, ${threads} threads (median of ${repeat}, ${time} s each, interleaved), compress ${v.compress}`, '',
  '| build | QPS off → on | QPS cost (medians) | QPS cost (paired) | main-thread CPU/query off → on | main CPU cost | process CPU/query off → on | process CPU cost |',
  '|---|---|---|---|---|---|---|---|',
];
/** Run k's on against run k's off (the two ran next to each other): the median of those costs, less swayed by a slow stretch of the machine. */
const paired = (on: number[], off: number[]) => median(on.map((q, k) => 1 - q / off[k]!)) * 100;
const pct = (on: number[], off: number[], more: boolean) => ((more ? median(on) / median(off) - 1 : 1 - median(on) / median(off)) * 100);
for (const x of toggled ? [] : variants) {
  const cost = pct(x.qps.on, x.qps.off, false);
  const pairedCost = paired(x.qps.on, x.qps.off);
  lines.push(`| ${x.name} | ${median(x.qps.off).toFixed(0)} → ${median(x.qps.on).toFixed(0)} | ${cost.toFixed(1)} % ${cost <= TARGET_COST * 100 ? 'pass' : 'FAIL'} `
    + `| ${pairedCost.toFixed(1)} % ${pairedCost <= TARGET_COST * 100 ? 'pass' : 'FAIL'} `
    + `| ${median(x.mainUs.off).toFixed(1)} → ${median(x.mainUs.on).toFixed(1)} µs | ${pct(x.mainUs.on, x.mainUs.off, true).toFixed(1)} % `
    + `| ${median(x.allUs.off).toFixed(1)} → ${median(x.allUs.on).toFixed(1)} µs | ${pct(x.allUs.on, x.allUs.off, true).toFixed(1)} % |`);
}
if (!toggled) lines.push('', 'all runs (QPS off / on):', ...variants.map((x) => `  ${x.name}: ${x.qps.off.map((q) => q.toFixed(0)).join(' ')} / ${x.qps.on.map((q) => q.toFixed(0)).join(' ')}`));
const main = variants[0]!;
if (!toggled) lines.push('', `target ≤ ${TARGET_COST * 100} %; last capture: ${main.captured.commands} commands, ${main.captured.dropped} dropped`);
if (replay) lines.push(`replay of the last capture (read-only, 10×, ${replay.summary.sessions} sessions): ${replay.summary.replayed} commands in ${replay.summary.seconds} s = ${replay.summary.commandsPerSecond} commands/s, ${replay.summary.differences} differences`);
process.stdout.write(lines.join('\n') + '\n');
