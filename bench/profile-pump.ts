// Where a query's CPU goes, tiproxy against the floor relay: runs sysbench point_select through each
// under `node --cpu-prof` (both from source, so frames name their files), reads each process's user and
// system time from /proc for the load window, and charges every profile sample to a stage of the
// steady-state packet pump (socket read, framing, classification, tracking, writes, hooks, timers, GC).
//   node --import tsx bench/profile-pump.ts [--test oltp_point_select] [--threads 64] [--time 10] [--rounds 1] [--capture]
// --capture: a third run, tiproxy with a traffic capture running (started through the admin API), so the
// capture's own stage shows beside the plain pump.
// Starts: one MariaDB (local-cluster), the floor relay and tiproxy (in turn), sysbench.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SBTEST_DATABASE, SBTEST_PASSWORD, SBTEST_USER, startMariaDB } from '../local-cluster/mariadb.js';
import { repoRoot, tmpRoot } from '../local-cluster/paths.js';
import { freePort } from '../local-cluster/ports.js';
import { spawnTracked, stopProcess } from '../local-cluster/processes.js';
import { accepts } from '../test/harness/proxy.js';
import { sysbench, type SysbenchTest } from '../test/harness/sysbench.js';

const { values } = parseArgs({
  options: {
    test: { type: 'string', default: 'oltp_point_select' },
    threads: { type: 'string', default: '64' },
    time: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '1' },
    capture: { type: 'boolean', default: false },
  },
});

/** The parts of a V8 .cpuprofile read here. */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Stages, in the order the table lists them. */
const STAGES = [
  'socket read (libuv, Node Readable, `data` events)',
  'framing: command reader (client bytes)',
  'classification + bookkeeping (classifier, state-change scan, KILL/BEGIN checks)',
  'response tracker (backend bytes)',
  'pump glue (onClientBytes, forward, onBackendData, onResponseComplete)',
  'socket write (Writable, writeGeneric, the write system call)',
  'hooks: onResult taps (metrics, balance, admin-api)',
  'traffic capture (observe hooks, record encoding, writer hand-over)',
  'kernel per response (sessionIdle, migration scheduler)',
  'relay callback (floor only)',
  'timers',
  'GC',
  'other (program, microtasks, Node internals)',
] as const;
type Stage = (typeof STAGES)[number];

/** Our files by stage (self time, and Node work they call directly: Buffer ops, performance.now). */
function ourStage(url: string, name: string): Stage | null {
  if (/\/bench\/floor-relay\.ts$/.test(url)) return 'relay callback (floor only)';
  if (!/\/src\//.test(url) || url.includes('node_modules')) return null;
  if (/\/plugins\/traffic-capture\/|\/session\/observed-traffic\.ts$/.test(url)) return 'traffic capture (observe hooks, record encoding, writer hand-over)';
  if (/\/plugins\/|\/kernel\/hooks\//.test(url)) return 'hooks: onResult taps (metrics, balance, admin-api)';
  if (/\/protocol\/command-reader\.ts$/.test(url)) return 'framing: command reader (client bytes)';
  if (/\/protocol\/response-tracker\.ts$/.test(url)) return 'response tracker (backend bytes)';
  if (/\/session\/(command-bookkeeping|state-change-scan|statement-classifier|sql-text-scan|kill-statement|intercepted-commands|session-state)\.ts$/.test(url)) {
    return 'classification + bookkeeping (classifier, state-change scan, KILL/BEGIN checks)';
  }
  if (/\/session\/command-pump\.ts$/.test(url)) {
    return name === 'commandAction' || name === 'commandSent' ? 'classification + bookkeeping (classifier, state-change scan, KILL/BEGIN checks)' : 'pump glue (onClientBytes, forward, onBackendData, onResponseComplete)';
  }
  if (/\/session\/client-connection\.ts$/.test(url)) return name === 'write' ? 'socket write (Writable, writeGeneric, the write system call)' : 'pump glue (onClientBytes, forward, onBackendData, onResponseComplete)';
  if (/\/kernel\/(kernel|migration\/)/.test(url)) return 'kernel per response (sessionIdle, migration scheduler)';
  return 'other (program, microtasks, Node internals)';
}

const WRITE_FRAME = /^(writeGeneric|writevGeneric|writeOrBuffer|_write|_writeGeneric|_writev|writeBuffer|writev|writeUtf8String|Writable\.write|write|cork|uncork|clearBuffer|doWrite|onWriteComplete|afterWriteDispatched|afterWrite|afterWriteTick)$/;

/** Charges one sample: the innermost frame that names a stage wins. */
function stageOf(stack: ProfileNode[]): Stage | 'idle' | 'startup' | 'syscall' {
  const leaf = stack[0]!.callFrame;
  if (leaf.functionName === '(idle)') return 'idle';
  if (leaf.functionName === '(garbage collector)') return 'GC';
  // The write system call itself: priced by the process's system time, not by samples (wall-clock
  // samples of a preempted process pile up inside system calls).
  if (leaf.url === '' && (leaf.functionName === 'writeBuffer' || leaf.functionName === 'writev' || leaf.functionName === 'writeUtf8String')) return 'syscall';
  for (const node of stack) {
    const { url, functionName } = node.callFrame;
    if (/^node:internal\/modules\/|\/node_modules\/tsx\//.test(url)) return 'startup';
    const ours = ourStage(url, functionName);
    if (ours) return ours;
    if ((url.startsWith('node:') || url === '') && WRITE_FRAME.test(functionName)) return 'socket write (Writable, writeGeneric, the write system call)';
    if (url === 'node:internal/timers' && (functionName === 'listOnTimeout' || functionName === 'processTimers')) return 'timers';
    if (url === 'node:internal/stream_base_commons' && functionName === 'onStreamRead') return 'socket read (libuv, Node Readable, `data` events)';
  }
  return 'other (program, microtasks, Node internals)';
}

/** Samples in the load window only (the proxy's start-up and shutdown are not a query's cost). */
function breakdown(profile: CpuProfile, windowUs: [number, number]): Map<Stage, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, ProfileNode>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n);
  const memo = new Map<number, Stage | 'idle' | 'startup' | 'syscall'>();
  const counts = new Map<Stage, number>(STAGES.map((s) => [s, 0]));
  let t = profile.startTime;
  for (let k = 0; k < profile.samples.length; k++) {
    t += profile.timeDeltas[k]!;
    if (t < windowUs[0] || t > windowUs[1]) continue;
    const id = profile.samples[k]!;
    let stage = memo.get(id);
    if (stage === undefined) {
      const stack: ProfileNode[] = [];
      for (let n: ProfileNode | undefined = byId.get(id); n; n = parent.get(n.id)) stack.push(n);
      stage = stageOf(stack);
      memo.set(id, stage);
    }
    if (stage !== 'idle' && stage !== 'startup' && stage !== 'syscall') counts.set(stage, counts.get(stage)! + 1);
  }
  return counts;
}

/** Self time by function among our files (for the notes). */
function ourFunctions(profile: CpuProfile, windowUs: [number, number]): Array<[string, number]> {
  const out = new Map<string, number>();
  const counts = new Map<number, number>();
  let t = profile.startTime;
  for (let k = 0; k < profile.samples.length; k++) {
    t += profile.timeDeltas[k]!;
    if (t >= windowUs[0] && t <= windowUs[1]) counts.set(profile.samples[k]!, (counts.get(profile.samples[k]!) ?? 0) + 1);
  }
  for (const n of profile.nodes) {
    const hits = counts.get(n.id) ?? 0;
    if (!hits) continue;
    const { url, functionName, lineNumber } = n.callFrame;
    if (functionName === '(idle)' || (url === '' && functionName === 'writeBuffer')) continue;
    const key = `${functionName || '(anon)'} ${url.replace(/^.*\/(src|bench|node_modules)\//, '$1/') || '(native)'}:${lineNumber + 1}`;
    out.set(key, (out.get(key) ?? 0) + hits);
  }
  return [...out].sort((a, b) => b[1] - a[1]);
}

const TICKS = 100;
function cpu(pid: number): { user: number; sys: number } {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return { user: Number(f[11]) / TICKS, sys: Number(f[12]) / TICKS };
}

interface Run { name: string; queries: number; qps: number; user: number; sys: number; stages: Map<Stage, number>; busy: number; top: Array<[string, number]> }

async function main(): Promise<void> {
  const db = await startMariaDB({ name: 'profile-pump', config: { max_connections: 1000 } });
  const common = { host: '127.0.0.1', user: SBTEST_USER, password: SBTEST_PASSWORD, db: SBTEST_DATABASE, tables: 1, tableSize: 10_000 };
  const runs: Run[] = [];
  try {
    await sysbench('oltp_read_write', 'prepare', { ...common, port: db.port, threads: 1, time: 1 });
    for (let round = 0; round < Number(values.rounds); round++) {
      for (const name of values.capture ? ['floor', 'tiproxy', 'tiproxy+capture'] as const : ['floor', 'tiproxy'] as const) {
        const dir = join(tmpRoot, `cpu-prof-pump-${name}-${Date.now()}`);
        mkdirSync(dir, { recursive: true });
        const port = await freePort();
        const apiPort = await freePort();
        // The floor relay has no SIGTERM handler of its own: exit cleanly so --cpu-prof writes the profile.
        const exitOnTerm = `data:text/javascript,process.on('SIGTERM',()=>process.exit(0))`;
        const args = name === 'floor'
          ? ['--cpu-prof', '--cpu-prof-dir', dir, '--import', exitOnTerm, '--import', 'tsx', join(repoRoot, 'bench/floor-relay.ts'), '--port', String(port), '--backend-port', String(db.port)]
          : ['--cpu-prof', '--cpu-prof-dir', dir, '--import', 'tsx', join(repoRoot, 'src/cli/tiproxy.ts'), '--addr', `127.0.0.1:${port}`,
            '--api-addr', `127.0.0.1:${apiPort}`, '--backend', `127.0.0.1:${db.port}`, '--log-level', 'warn'];
        const proc = spawnTracked(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
        for (const deadline = Date.now() + 30_000; !(await accepts(port));) {
          if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`${name} did not start listening`);
          await new Promise((r) => setTimeout(r, 100));
        }
        if (name === 'tiproxy+capture') {
          const r = await fetch(`http://127.0.0.1:${apiPort}/api/traffic/capture`, {
            method: 'POST', headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ output: join(dir, 'capture'), duration: Number(values.time) * 4 }),
          });
          if (!r.ok) throw new Error(`starting the capture: ${r.status} ${await r.text()}`);
        }
        const before = cpu(proc.pid!);
        // V8 stamps samples with the monotonic clock in µs, the clock process.hrtime reads: the load window in the profile's terms.
        const t0 = Number(process.hrtime.bigint() / 1000n);
        const result = await sysbench(values.test as SysbenchTest, 'run', { ...common, port, threads: Number(values.threads), time: Number(values.time), extra: ['--db-ps-mode=disable'] });
        const after = cpu(proc.pid!);
        const t1 = Number(process.hrtime.bigint() / 1000n);
        await stopProcess(proc, { signal: 'SIGTERM', timeoutMs: 20_000 });
        // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main thread (a capture's writer thread writes its own).
        const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile') && f.split('.')[4] === '0');
        if (!file) throw new Error(`no profile written in ${dir}`);
        const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
        const window: [number, number] = [t0 + 500_000, t1 - 500_000];
        const stages = breakdown(profile, window);
        const busy = [...stages.values()].reduce((a, b) => a + b, 0);
        runs.push({ name, queries: result.queries, qps: result.qps, user: after.user - before.user, sys: after.sys - before.sys, stages, busy, top: ourFunctions(profile, window).slice(0, 30) });
        console.error(`${name}: ${result.qps.toFixed(0)} QPS, profile ${join(dir, file)}`);
      }
    }
  } finally {
    await db.destroy();
  }
  const per10k = (s: number, r: Run) => (s / (r.queries / 10_000)).toFixed(3);
  console.log(`\n${values.test}, ${values.threads} threads, ${values.time} s per run, under --cpu-prof (from source)\n`);
  console.log('| target | QPS | user s / 10k q | system s / 10k q | total |\n|---|---|---|---|---|');
  for (const r of runs) console.log(`| ${r.name} | ${r.qps.toFixed(0)} | ${per10k(r.user, r)} | ${per10k(r.sys, r)} | ${per10k(r.user + r.sys, r)} |`);
  console.log(`\nµs per query: system time (the socket system calls) from /proc; user time split by the stage shares of the main thread's busy samples (write-syscall samples left out).\n`);
  console.log(`| stage | ${runs.map((r) => `${r.name} %`).join(' | ')} | ${runs.map((r) => `${r.name} µs/q`).join(' | ')} |`);
  console.log(`|---|${runs.map(() => '---|').join('')}${runs.map(() => '---|').join('')}`);
  console.log(`| kernel: socket system calls (system time) | ${runs.map(() => '–').join(' | ')} | ${runs.map((r) => (r.sys / r.queries * 1e6).toFixed(2)).join(' | ')} |`);
  for (const s of STAGES) {
    const pct = runs.map((r) => ((100 * r.stages.get(s)!) / r.busy).toFixed(1));
    const us = runs.map((r) => ((r.stages.get(s)! / r.busy) * (r.user / r.queries) * 1e6).toFixed(2));
    console.log(`| ${s} | ${pct.join(' | ')} | ${us.join(' | ')} |`);
  }
  for (const r of runs) {
    console.log(`\n${r.name}: top self-time functions (share of busy samples, write-syscall samples left out)`);
    for (const [k, v] of r.top.slice(0, 25)) console.log(`  ${((100 * v) / r.busy).toFixed(1).padStart(5)} %  ${k}`);
  }
}

await main();
