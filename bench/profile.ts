// Where tiproxy's CPU goes on the hot path: runs sysbench through the real CLI started with
// `node --cpu-prof`, then summarises the V8 profile by self time (functions, and files/categories).
//   node --import tsx bench/profile.ts [--test oltp_point_select] [--threads 64] [--time 15] [--top 25]
//   [--plugin-dir bench/plugins]   (profile with a trivial onCommand tap)
//   [--workload churn] [--workers 16]  (connect → SELECT 1 → quit loops instead of sysbench: the set-up path;
//                                       also prints µs per connection by login stage, bench/profile-stages.ts)
//   [--capture [--result-digest]]  (a traffic capture runs during the workload: its cost on the main thread)
// Starts: one MariaDB (test harness), tiproxy under --cpu-prof, sysbench. Writes the .cpuprofile under .tmp/.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SBTEST_DATABASE, SBTEST_PASSWORD, SBTEST_USER, startMariaDB } from '../local-cluster/mariadb.js';
import { tmpRoot, repoRoot } from '../local-cluster/paths.js';
import { freePort } from '../local-cluster/ports.js';
import { spawnTracked, stopProcess } from '../local-cluster/processes.js';
import { accepts } from '../test/harness/proxy.js';
import { sysbench, type SysbenchTest } from '../test/harness/sysbench.js';
import { cpuSeconds } from './cpu.js';
import { LeanConnection } from './lean-client.js';
import { stageBreakdown, stageTable, type CpuProfile, type ProfileNode } from './profile-stages.js';

/** Frames whose whole subtree is the capture's cost: the kernel's observation calls, the plugin, compression on the main thread. */
const CAPTURE_FRAME = /\/kernel\/session\/observed-traffic\.ts|\/plugins\/traffic-capture\/|^node:zlib/;

/** Samples in subtrees rooted at a capture frame (each counted once). */
function captureSamples(nodes: ProfileNode[]): number {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const subtree = (n: ProfileNode): number => (n.hitCount ?? 0) + (n.children ?? []).reduce((sum, c) => sum + subtree(byId.get(c)!), 0);
  const walk = (n: ProfileNode): number => (CAPTURE_FRAME.test(n.callFrame.url) ? subtree(n) : (n.children ?? []).reduce((sum, c) => sum + walk(byId.get(c)!), 0));
  return walk(nodes[0]!);
}

const { values } = parseArgs({
  options: {
    test: { type: 'string', default: 'oltp_point_select' },
    threads: { type: 'string', default: '64' },
    time: { type: 'string', default: '15' },
    top: { type: 'string', default: '25' },
    'plugin-dir': { type: 'string' },
    workload: { type: 'string', default: 'sysbench' },
    workers: { type: 'string', default: '16' },
    capture: { type: 'boolean', default: false },
    'result-digest': { type: 'boolean', default: false },
  },
});

/** Groups a frame into what an operator can act on: our files by path, Node internals by module, V8 states by name. */
function category(url: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : '(native)';
  const ours = /\/(src|dist)\/(.*)$/.exec(url);
  if (ours && url.includes(repoRoot) && !url.includes('node_modules')) return ours[2]!;
  const mod = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (mod) return `npm:${mod[1]}`;
  if (url.startsWith('node:')) return url;
  return url;
}

/** W workers each looping connect → SELECT 1 → quit; a "query" here is one whole connection. */
async function churnLoop(port: number, workers: number, seconds: number): Promise<{ qps: number; queries: number }> {
  const deadline = performance.now() + seconds * 1000;
  let connections = 0;
  const worker = async () => {
    while (performance.now() < deadline) {
      await LeanConnection.churnOnce({ host: '127.0.0.1', port, user: SBTEST_USER, password: SBTEST_PASSWORD, timeoutMs: 10_000 });
      connections++;
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  return { qps: connections / seconds, queries: connections };
}

async function main(): Promise<void> {
  const db = await startMariaDB({ name: 'profile', config: { max_connections: 1000 } });
  const dir = join(tmpRoot, `cpu-prof-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  try {
    const common = { host: '127.0.0.1', user: SBTEST_USER, password: SBTEST_PASSWORD, db: SBTEST_DATABASE, tables: 1, tableSize: 10_000 };
    await sysbench('oltp_read_write', 'prepare', { ...common, port: db.port, threads: 1, time: 1 });
    const port = await freePort();
    const apiPort = await freePort();
    const proxy = spawnTracked(process.execPath, [
      // From source (tsx), so frames name src/ files rather than one bundle.
      '--cpu-prof', '--cpu-prof-dir', dir, '--import', 'tsx', join(repoRoot, 'src/cli/tiproxy.ts'), '--addr', `127.0.0.1:${port}`,
      '--api-addr', `127.0.0.1:${apiPort}`, '--backend', `127.0.0.1:${db.port}`, '--log-level', 'warn', ...(values['plugin-dir'] ? ['--plugin-dir', values['plugin-dir']] : []),
    ], { stdio: ['ignore', 'inherit', 'inherit'] });
    // From source on a busy machine, start-up can take several seconds.
    for (const deadline = Date.now() + 30_000; !(await accepts(port));) {
      if (proxy.exitCode !== null || Date.now() > deadline) throw new Error('tiproxy did not start listening');
      await new Promise((r) => setTimeout(r, 100));
    }
    if (values.capture) {
      const r = await fetch(`http://127.0.0.1:${apiPort}/api/traffic/capture`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ output: join(dir, 'capture'), duration: Number(values.time) * 4, result_digest: values['result-digest'] }),
      });
      if (!r.ok) throw new Error(`starting the capture: ${r.status} ${await r.text()}`);
    }
    const cpuBefore = cpuSeconds(proxy.pid!);
    const result = values.workload === 'churn'
      ? await churnLoop(port, Number(values.workers), Number(values.time))
      : await sysbench(values.test as SysbenchTest, 'run', {
        ...common, port, threads: Number(values.threads), time: Number(values.time), extra: ['--db-ps-mode=disable'],
      });
    const processCpu = cpuSeconds(proxy.pid!) - cpuBefore;
    await stopProcess(proxy, { signal: 'SIGTERM', timeoutMs: 20_000 });
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) throw new Error(`no profile written in ${dir}`);
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
    const perSampleMs = (profile.endTime - profile.startTime) / 1000 / profile.samples.length;
    const total = profile.nodes.reduce((n, node) => n + (node.hitCount ?? 0), 0);
    const idle = profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').reduce((n, node) => n + (node.hitCount ?? 0), 0);
    const busy = total - idle;
    const byFunction = new Map<string, number>();
    const byCategory = new Map<string, number>();
    for (const node of profile.nodes) {
      const hits = node.hitCount ?? 0;
      const { functionName, url, lineNumber } = node.callFrame;
      if (!hits || functionName === '(idle)') continue;
      const cat = category(url, functionName);
      const fn = `${functionName || '(anonymous)'}  ${url ? `${url.replace(repoRoot + '/', '')}:${lineNumber + 1}` : ''}`;
      byFunction.set(fn, (byFunction.get(fn) ?? 0) + hits);
      byCategory.set(cat, (byCategory.get(cat) ?? 0) + hits);
    }
    const pct = (h: number) => `${((100 * h) / busy).toFixed(1)}%`;
    const what = values.workload === 'churn' ? `churn, ${values.workers} workers` : `${values.test}, ${values.threads} threads`;
    console.log(`\n${what}, ${values.time} s: ${result.qps.toFixed(0)} QPS; proxy busy ${(busy * perSampleMs / 1000).toFixed(2)} s of ${(total * perSampleMs / 1000).toFixed(2)} s sampled (${(busy * perSampleMs / 1000 / (result.queries / 10_000)).toFixed(3)} CPU s / 10k queries, main thread only)`);
    if (values.capture) console.log(`capture's share of main-thread busy time (observed-traffic.ts, plugins/traffic-capture/, node:zlib, with callees): ${pct(captureSamples(profile.nodes))}`);
    if (values.workload === 'churn') {
      console.log(`whole proxy process (all threads, user + system, under the profiler): ${(processCpu / result.queries * 1e6).toFixed(0)} µs CPU per connection\n`);
      console.log(`Main-thread CPU per connection by stage (load window only):\n\n${stageTable(stageBreakdown(profile), result.queries)}\n`);
    }
    console.log(`profile: ${join(dir, file)}\n\n| where (self time) | share of busy |\n|---|---|`);
    for (const [k, v] of [...byCategory].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`| ${k} | ${pct(v)} |`);
    console.log(`\n| function | share of busy |\n|---|---|`);
    for (const [k, v] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) console.log(`| \`${k.trim()}\` | ${pct(v)} |`);
  } finally {
    await db.destroy();
  }
}

await main();
