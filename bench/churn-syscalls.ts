// System calls per churned connection (connect → log in → SELECT 1 → quit), counted by `strace -c -f`
// attached to each proxy: HAProxy, the floor relay and tiproxy (the built CLI) side by side, so the
// per-connection kernel work a design needs is visible apart from CPU noise. strace slows a process
// down many times, so only the counts mean anything here, not the rate.
//   node --import tsx bench/churn-syscalls.ts [--connections 2000] [--workers 8]
// Starts: one MariaDB (test harness), HAProxy, the floor relay and tiproxy; strace (root or ptrace rights).
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { SBTEST_PASSWORD, SBTEST_USER, startMariaDB } from '../local-cluster/mariadb.js';
import { ensureBuilt } from '../local-cluster/build.js';
import { LeanConnection } from './lean-client.js';
import { startProxyProcess } from '../test/harness/proxy.js';
import { floorRelay, haproxy, type Target } from './targets.js';

const { values } = parseArgs({ options: { connections: { type: 'string', default: '2000' }, workers: { type: 'string', default: '8' } } });
const total = Number(values.connections);

async function churn(port: number, n: number, workers: number): Promise<void> {
  let left = n;
  const worker = async () => {
    while (left-- > 0) {
      await LeanConnection.churnOnce({ host: '127.0.0.1', port, user: SBTEST_USER, password: SBTEST_PASSWORD, timeoutMs: 30_000 });
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
}

/** strace's summary table: calls by system call name. */
async function straced(target: Target, n: number): Promise<Map<string, number>> {
  const strace = spawn('strace', ['-c', '-f', '-p', String(target.pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let out = '';
  strace.stderr.on('data', (c: Buffer) => (out += c.toString()));
  await new Promise((r) => setTimeout(r, 1000)); // attached to every thread
  await churn(target.port, n, Number(values.workers));
  await new Promise((r) => setTimeout(r, 500)); // closes finish
  const done = new Promise((r) => strace.once('exit', r));
  strace.kill('SIGINT');
  await done;
  const calls = new Map<string, number>();
  for (const line of out.split('\n')) {
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/.exec(line);
    if (m && m[2] !== 'total') calls.set(m[2]!, Number(m[1]));
  }
  return calls;
}

ensureBuilt();
const db = await startMariaDB({ name: 'syscalls', config: { max_connections: 1000, max_connect_errors: 1_000_000_000 } });
const targets: Target[] = [];
try {
  // The built CLI with default plugins; a loaded machine can take many seconds to start it.
  const proxy = await startProxyProcess(['--backend', `127.0.0.1:${db.port}`, '--log-level', 'warn'], { startTimeoutMs: 60_000 });
  targets.push(await haproxy(db), await floorRelay(db), { name: 'tiproxy', port: proxy.port, pid: proxy.child.pid!, stop: () => proxy.stop() });
  const counts = new Map<string, Map<string, number>>();
  for (const t of targets) {
    await churn(t.port, 200, 8); // warm-up: JIT, pools
    counts.set(t.name, await straced(t, total));
    process.stderr.write(`  ${t.name}: counted\n`);
  }
  const names = [...new Set([...counts.values()].flatMap((m) => [...m.keys()]))]
    .map((name) => ({ name, max: Math.max(...[...counts.values()].map((m) => m.get(name) ?? 0)) }))
    .filter((x) => x.max / total >= 0.05).sort((a, b) => b.max - a.max).map((x) => x.name);
  const per = (m: Map<string, number>, name: string) => ((m.get(name) ?? 0) / total).toFixed(2);
  console.log(`\nSystem calls per connection (${total} connections, strace -c -f):\n`);
  console.log(`| system call | ${targets.map((t) => t.name).join(' | ')} |\n|---|${targets.map(() => '---|').join('')}`);
  for (const name of names) console.log(`| ${name} | ${targets.map((t) => per(counts.get(t.name)!, name)).join(' | ')} |`);
  const sum = (m: Map<string, number>) => ([...m.values()].reduce((a, b) => a + b, 0) / total).toFixed(1);
  console.log(`| **all** | ${targets.map((t) => sum(counts.get(t.name)!)).join(' | ')} |`);
} finally {
  for (const t of targets) await t.stop();
  await db.destroy();
}
