// A fuzz run against the real thing: a MariaDB 10.11, two bin/tiproxy processes — one facing the
// client-side cases (PROXY protocol v2 accepted, TLS offered), one whose only
// backend is the mutating relay in front of the same MariaDB — and a canary session on each proxy that
// runs SELECT 1 every 50 ms throughout, timing every answer. Cases run `concurrency` at a time; each is
// seeded by (run seed, index), so any one replays alone. Shared by test/fuzz/fuzz.test.ts (short run)
// and bench/fuzz.ts (long run).
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import mysql, { type Connection } from 'mysql2/promise';
import { LeanConnection } from '../../bench/lean-client.js';
import { ensureBuilt } from '../../local-cluster/build.js';
import { makeCertificates } from '../../local-cluster/certs.js';
import { ROOT_PASSWORD, ROOT_USER, startMariaDB, TEST_DATABASE, type MariaDBInstance } from '../../local-cluster/mariadb.js';
import { tmpRoot } from '../../local-cluster/paths.js';
import { startProxyProcess, type ProxyProcess } from '../harness/proxy.js';
import { clientCase, type ClientCase } from './client-cases.js';
import { caseSeed, FuzzRandom } from './fuzz-random.js';
import { FUZZ_CASE_ATTRIBUTE, MutatingRelay } from './mutating-relay.js';

export const FUZZ_USER = 'fuzz';
const FUZZ_PASSWORD = 'fuzz-pw';
/** How long a pre-auth case that must be answered at once waits (a busy machine delays even a prompt answer). */
const PROMPT_ANSWER_MS = 4000;
/** Queries a backend-side case runs while the relay corrupts the answers. */
const BACKEND_QUERIES = [
  'SELECT seq FROM seq_1_to_50', 'SELECT seq, seq * 2, REPEAT("x", seq) FROM seq_1_to_300', 'SELECT @@version, @@port', "SHOW VARIABLES LIKE 'max%'",
  'DO 1', 'SELECT 1; SELECT 2', 'SET @a = 1', 'SELECT REPEAT("y", 70000)', 'SELECT * FROM information_schema.COLLATIONS LIMIT 20', 'BEGIN', 'COMMIT',
];

export interface FuzzRunOptions {
  cases: number;
  seed: number;
  /** Cases in flight at once (default 24). */
  concurrency?: number;
  /** Share of cases sent through the mutating relay (default 0.1). */
  backendShare?: number;
  /** Share of client-side cases sent after a real login (default 0.3). */
  postAuthShare?: number;
  /** Run only the case with this index (replay). */
  onlyCase?: number;
  /** Index of the first case (default 0): `cases` cases from here. */
  first?: number;
  log?: (line: string) => void;
  /**
   * Also read each proxy's heap after a full GC, before and after the run: the proxies start with
   * --heapsnapshot-signal, and a snapshot (which collects all garbage first) is taken on SIGUSR2, then
   * deleted. Tells live memory from garbage not yet collected, for long runs.
   */
  forcedGc?: boolean;
}

export interface CaseOutcome {
  index: number;
  seed: number;
  side: 'client' | 'backend';
  kind: string;
  /** What the proxy did: answered (bytes after the greeting), closed, stayed silent, or (backend side) how the queries went. */
  result: 'answered' | 'closed' | 'silent' | 'login-failed' | 'queries-ok' | 'queries-failed';
  /** Pre-auth: the proxy had to answer at once. */
  mustAnswer: boolean;
  /** The MySQL error code of the first ERR the proxy sent, if any. */
  errorCode?: number;
}

export interface ProcessFigures {
  alive: boolean;
  /** Log lines of crashes caught by the CLI's guard (uncaught exceptions, unhandled rejections). */
  crashLines: string[];
  fdBefore: number;
  fdAfter: number;
  rssBeforeMb: number;
  rssPeakMb: number;
  rssAfterMb: number;
  /** V8 heap in use (live objects plus garbage not yet collected), before and after. */
  heapBeforeMb: number;
  heapAfterMb: number;
  /** V8 heap in use right after a full GC (the one a heap snapshot forces), before and after; with `forcedGc`. */
  heapBeforeGcMb?: number;
  heapAfterGcMb?: number;
  /** The proxy's own event-loop delay, worst over the run (prom-client's nodejs_eventloop_lag_max_seconds, scraped each second). */
  eventLoopLagMaxMs: number;
}

export interface FuzzReport {
  cases: number;
  seed: number;
  durationMs: number;
  casesPerSecond: number;
  /** count per "side/kind/result". */
  outcomes: Record<string, number>;
  errorCodes: Record<string, number>;
  /** Pre-auth cases the proxy had to answer at once but did not (index and seed to replay). */
  silentWhenMustAnswer: Array<Pick<CaseOutcome, 'index' | 'seed' | 'kind'>>;
  clientProxy: ProcessFigures;
  backendProxy: ProcessFigures;
  /** Sessions of the fuzz user on MariaDB before and after the run (after a settle time). */
  backendSessionsBefore: number;
  backendSessionsAfter: number;
  relay: MutatingRelay['stats'] & { openAfter: number };
  /** The canary sessions (on the client-side proxy, on the backend-side proxy): queries run, the longest wait for an answer, errors. */
  canary: { queries: number; maxLatencyMs: number; errors: string[]; maxLatencyByProxyMs: [number, number] };
  /**
   * The longest the fuzzing process itself waited to run (its event-loop delay): how much a busy
   * machine, not the proxy, held everything up. Latency limits are relaxed by it.
   */
  driverLagMaxMs: number;
  /** A fresh client logged in and ran queries (text and prepared) through each proxy after the run. */
  normalClientAfter: boolean;
  normalClientError?: string;
}

function procFigures(pid: number): { fds: number; rssMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { fds: readdirSync(`/proc/${pid}/fd`).length, rssMb: rssKb / 1024 };
}

/** A metric from the proxy's /metrics (prom-client's process metrics), or 0 when unreadable. */
async function processMetric(p: ProxyProcess, name: 'nodejs_eventloop_lag_max_seconds' | 'nodejs_heap_size_used_bytes'): Promise<number> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${p.apiPort}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
    return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

const eventLoopLagMaxMs = async (p: ProxyProcess): Promise<number> => (await processMetric(p, 'nodejs_eventloop_lag_max_seconds')) * 1000;
const heapUsedMb = async (p: ProxyProcess): Promise<number> => (await processMetric(p, 'nodejs_heap_size_used_bytes')) / (1024 * 1024);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The case with index `index` of a run seeded `seed`: which side, and its bytes or its relay seed. */
export function describeCase(seed: number, index: number, opts: Pick<FuzzRunOptions, 'backendShare' | 'postAuthShare'> = {}):
  { seed: number; side: 'backend' } | { seed: number; side: 'client'; case: ClientCase } {
  const s = caseSeed(seed, index);
  const rng = new FuzzRandom(s);
  if (rng.chance(opts.backendShare ?? 0.1)) return { seed: s, side: 'backend' };
  return { seed: s, side: 'client', case: clientCase(rng, opts.postAuthShare ?? 0.3) };
}

class FuzzEnvironment {
  db!: MariaDBInstance;
  relay!: MutatingRelay;
  clientProxy!: ProxyProcess;
  backendProxy!: ProxyProcess;
  private readonly dir = join(tmpRoot, `fuzz-${process.pid}-${Date.now()}`);
  /** Where the proxies write heap snapshots (forcedGc). */
  readonly snapshotDir = join(this.dir, 'heap');

  /** The proxy's heap in use right after a full GC: a heap snapshot forces one; the snapshot is deleted. */
  async heapAfterGcMb(p: ProxyProcess): Promise<number> {
    const pid = p.child.pid!;
    const mine = () => readdirSync(this.snapshotDir).filter((f) => f.endsWith('.heapsnapshot') && f.includes(`.${pid}.`));
    const known = new Set(mine());
    p.child.kill('SIGUSR2');
    // The snapshot is written on the proxy's main thread: once its file stops growing, the next request is served after it.
    let size = -1;
    for (const deadline = Date.now() + 120_000; Date.now() < deadline; await sleep(250)) {
      const file = mine().find((f) => !known.has(f));
      if (!file) continue;
      const now = statSync(join(this.snapshotDir, file)).size;
      if (now > 0 && now === size) {
        const heap = await heapUsedMb(p);
        rmSync(join(this.snapshotDir, file), { force: true });
        return heap;
      }
      size = now;
    }
    throw new Error(`proxy ${pid} wrote no heap snapshot within 120 s`);
  }

  async start(): Promise<void> {
    ensureBuilt();
    mkdirSync(this.dir, { recursive: true });
    // Many aborted logins come from one address: MariaDB must not block it for "too many connection errors".
    this.db = await startMariaDB({ name: 'fuzz', config: { max_connect_errors: 1_000_000_000 } });
    // No SHUTDOWN, PROCESS or SUPER: a junk COM_SHUTDOWN or KILL cannot take the run down with it.
    await this.db.query(`CREATE USER ${FUZZ_USER}@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('${FUZZ_PASSWORD}')`);
    await this.db.query(`GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, CREATE TEMPORARY TABLES, LOCK TABLES ON ${TEST_DATABASE}.* TO ${FUZZ_USER}@'%'`);
    this.relay = new MutatingRelay({ host: '127.0.0.1', port: this.db.port });
    const relayPort = await this.relay.listen();
    const certs = await makeCertificates();
    // The client side's handshake timeout is well above how long a case waits for a prompt answer, so a
    // proxy that stays silent is not rescued by its timeout ERR.
    // Log level error: a warn line per refused case would make the proxy wait on its stdout pipe.
    const common = `  graceful-close-conn-timeout: 1\nlog:\n  level: error\n`;
    writeFileSync(join(this.dir, 'client.yaml'),
      `proxy:\n  proxy-protocol: v2\n  handshake-timeout: 10\n${common}security:\n  server-tls:\n    cert: ${certs.serverCert}\n    key: ${certs.serverKey}\n`);
    writeFileSync(join(this.dir, 'backend.yaml'), `proxy:\n  handshake-timeout: 2\n${common}`);
    // A machine busy with other test runs can take a while to start Node.
    const nodeArgs = ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${this.snapshotDir}`];
    mkdirSync(this.snapshotDir, { recursive: true });
    this.clientProxy = await startProxyProcess(['--config', join(this.dir, 'client.yaml'), '--backend', `127.0.0.1:${this.db.port}`], { startTimeoutMs: 60_000, nodeArgs });
    this.backendProxy = await startProxyProcess(['--config', join(this.dir, 'backend.yaml'), '--backend', `127.0.0.1:${relayPort}`], { startTimeoutMs: 60_000, nodeArgs });
  }

  async stop(): Promise<void> {
    await this.clientProxy?.stop('SIGKILL');
    await this.backendProxy?.stop('SIGKILL');
    await this.relay?.close();
    await this.db?.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }

  async fuzzSessions(): Promise<number> {
    const rows = await this.db.query<Array<{ n: number }>>(`SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = '${FUZZ_USER}'`);
    return Number(rows[0]!.n);
  }
}

/** A session that asks SELECT 1 every 50 ms for the whole run and remembers the slowest answer. */
class Canary {
  queries = 0;
  maxLatencyMs = 0;
  readonly errors: string[] = [];
  private running = true;
  private done: Promise<void> = Promise.resolve();

  async start(port: number): Promise<void> {
    const c = await openNormalClient(port);
    this.done = (async () => {
      while (this.running) {
        const t0 = performance.now();
        try {
          await c.query('SELECT 1');
          this.queries++;
        } catch (err) {
          this.errors.push((err as Error).message);
          if (this.errors.length > 5) break;
        }
        this.maxLatencyMs = Math.max(this.maxLatencyMs, performance.now() - t0);
        await sleep(50);
      }
      c.destroy();
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

async function openNormalClient(port: number): Promise<Connection> {
  const c = await mysql.createConnection({ host: '127.0.0.1', port, user: ROOT_USER, password: ROOT_PASSWORD, database: TEST_DATABASE, connectTimeout: 10_000 });
  c.on('error', () => {});
  return c;
}

/** Logs in through `port` and runs a text query and a prepared statement. */
async function normalClientWorks(port: number): Promise<void> {
  const c = await openNormalClient(port);
  try {
    const [rows] = await c.query('SELECT COUNT(*) AS n FROM seq_1_to_1000');
    if (Number((rows as Array<{ n: number }>)[0]!.n) !== 1000) throw new Error(`wrong count through port ${port}`);
    const [prepared] = await c.execute('SELECT ? + ? AS s', [40, 2]);
    if (Number((prepared as Array<{ s: number }>)[0]!.s) !== 42) throw new Error(`wrong prepared result through port ${port}`);
  } finally {
    await c.end().catch(() => c.destroy());
  }
}

/** Collects what the proxy sends after its greeting, until `quietMs` pass with nothing or it closes. */
class Observer {
  bytes: Buffer = Buffer.alloc(0);
  greetingEnd = -1;
  closed = false;
  private wake: (() => void) | null = null;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.bytes = Buffer.concat([this.bytes, chunk]);
      if (this.greetingEnd === -1 && this.bytes.length >= 4 && this.bytes.length >= 4 + this.bytes.readUIntLE(0, 3)) this.greetingEnd = 4 + this.bytes.readUIntLE(0, 3);
      this.wake?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on('error', () => {});
  }

  get answered(): boolean {
    return this.greetingEnd !== -1 && this.bytes.length > this.greetingEnd;
  }

  /** The error code of the first packet after the greeting, when it is an ERR. */
  get errorCode(): number | undefined {
    const at = this.greetingEnd;
    return at !== -1 && this.bytes.length >= at + 7 && this.bytes[at + 4] === 0xff ? this.bytes.readUInt16LE(at + 5) : undefined;
  }

  /** Resolves when `done()` holds or `ms` pass. */
  until(done: () => boolean, ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (done()) return resolve();
      const timer = setTimeout(finish, ms);
      function finish(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        if (done()) {
          this.wake = null;
          finish();
        }
      };
    });
  }
}

async function writeAll(socket: Socket, writes: readonly Buffer[]): Promise<void> {
  for (const w of writes) {
    if (socket.destroyed) return;
    socket.write(w);
    await new Promise((r) => setImmediate(r));
  }
}

async function runPreAuth(port: number, c: ClientCase): Promise<Pick<CaseOutcome, 'result' | 'errorCode'>> {
  const socket = connect({ host: '127.0.0.1', port });
  const o = new Observer(socket);
  // A load balancer's PROXY header comes first; a client speaks after the greeting.
  if (c.kind !== 'proxy-v2') await o.until(() => o.greetingEnd !== -1 || o.closed, 3000);
  await writeAll(socket, c.writes);
  await o.until(() => o.answered || o.closed, c.mustAnswer ? PROMPT_ANSWER_MS : 30);
  const result = o.answered ? 'answered' : o.closed ? 'closed' : 'silent';
  socket.destroy();
  return { result, ...(o.errorCode !== undefined ? { errorCode: o.errorCode } : {}) };
}

async function runPostAuth(port: number, c: ClientCase, rng: FuzzRandom): Promise<Pick<CaseOutcome, 'result' | 'errorCode'>> {
  let conn: LeanConnection;
  try {
    conn = await LeanConnection.open({ host: '127.0.0.1', port, user: FUZZ_USER, password: FUZZ_PASSWORD, database: TEST_DATABASE, capabilities: c.capabilities ?? 0, timeoutMs: 5000 });
  } catch {
    return { result: 'login-failed' };
  }
  const socket = conn.takeSocket();
  const o = new Observer(socket);
  o.greetingEnd = 0; // everything from here on is an answer
  await writeAll(socket, c.writes);
  // Wait for the answers to stop (or the proxy to close), then leave as clients do: abruptly or with a FIN.
  let seen = -1;
  for (let waited = 0; waited < 300 && !o.closed && o.bytes.length !== seen; waited += 20) {
    seen = o.bytes.length;
    await sleep(20);
  }
  const result = o.closed ? 'closed' : o.answered ? 'answered' : 'silent';
  if (rng.chance(0.5)) socket.destroy();
  else socket.end();
  return { result, ...(o.errorCode !== undefined ? { errorCode: o.errorCode } : {}) };
}

async function runBackendCase(port: number, seed: number, rng: FuzzRandom): Promise<Pick<CaseOutcome, 'result'>> {
  let conn: LeanConnection;
  try {
    conn = await LeanConnection.open({ host: '127.0.0.1', port, user: FUZZ_USER, password: FUZZ_PASSWORD, database: TEST_DATABASE, attributes: { [FUZZ_CASE_ATTRIBUTE]: String(seed) }, timeoutMs: 500 });
  } catch {
    return { result: 'login-failed' };
  }
  let failed = false;
  for (let i = rng.int(1, 3); i > 0 && !failed; i--) {
    try {
      await conn.query(rng.pick(BACKEND_QUERIES));
    } catch {
      failed = true;
    }
  }
  if (failed || rng.chance(0.3)) conn.destroy();
  else await conn.quit();
  return { result: failed ? 'queries-failed' : 'queries-ok' };
}

async function runCase(env: FuzzEnvironment, seed: number, index: number, opts: FuzzRunOptions): Promise<CaseOutcome> {
  const described = describeCase(seed, index, opts);
  const rng = new FuzzRandom(described.seed ^ 0x2545f491);
  if (described.side === 'backend') {
    const r = await runBackendCase(env.backendProxy.port, described.seed, rng);
    return { index, seed: described.seed, side: 'backend', kind: 'mutating-relay', mustAnswer: false, ...r };
  }
  const c = described.case;
  const r = c.phase === 'pre-auth' ? await runPreAuth(env.clientProxy.port, c) : await runPostAuth(env.clientProxy.port, c, rng);
  return { index, seed: described.seed, side: 'client', kind: `${c.phase}/${c.kind}`, mustAnswer: c.mustAnswer, ...r };
}

function crashLines(p: ProxyProcess): string[] {
  return p.output().split('\n').filter((l) => /uncaught exception|unhandled rejection|FATAL|out of memory/i.test(l)).slice(0, 20);
}

/** Starts everything, runs the cases, lets things settle, measures, stops everything. */
export async function runFuzz(opts: FuzzRunOptions): Promise<FuzzReport> {
  const log = opts.log ?? (() => {});
  const env = new FuzzEnvironment();
  try {
    await env.start();
    log(`MariaDB :${env.db.port}, client-side proxy :${env.clientProxy.port} (pid ${env.clientProxy.child.pid}), backend-side proxy :${env.backendProxy.port} (pid ${env.backendProxy.child.pid})`);
    // Warm up both proxies (first greeting probe, code paths compiled), then take the baselines.
    await normalClientWorks(env.clientProxy.port);
    await normalClientWorks(env.backendProxy.port);
    // Before the canaries: writing a heap snapshot stops a proxy's loop for a while.
    const heapBeforeGc = opts.forcedGc ? await Promise.all([env.clientProxy, env.backendProxy].map((p) => env.heapAfterGcMb(p))) : null;
    const canaries = [new Canary(), new Canary()];
    await canaries[0]!.start(env.clientProxy.port);
    await canaries[1]!.start(env.backendProxy.port);
    await sleep(300);
    const pids = [env.clientProxy.child.pid!, env.backendProxy.child.pid!] as const;
    const before = pids.map(procFigures);
    const peak = before.map((b) => b.rssMb);
    const proxies = [env.clientProxy, env.backendProxy] as const;
    const lag = [0, 0];
    await Promise.all(proxies.map(eventLoopLagMaxMs)); // the warm-up's worst is not the run's
    const heapBefore = await Promise.all(proxies.map(heapUsedMb));
    const backendSessionsBefore = await env.fuzzSessions();
    const relayBefore = env.relay.openSockets;

    const outcomes: Record<string, number> = {};
    const errorCodes: Record<string, number> = {};
    const silentWhenMustAnswer: FuzzReport['silentWhenMustAnswer'] = [];
    const indexes = opts.onlyCase !== undefined ? [opts.onlyCase] : Array.from({ length: opts.cases }, (_, i) => (opts.first ?? 0) + i);
    let next = 0;
    let done = 0;
    const started = performance.now();
    const driverLag = monitorEventLoopDelay({ resolution: 20 });
    driverLag.enable();
    const sampler = setInterval(() => {
      pids.forEach((pid, k) => {
        try {
          peak[k] = Math.max(peak[k]!, procFigures(pid).rssMb);
        } catch {
          // the process is gone: reported below
        }
      });
      proxies.forEach((p, k) => void eventLoopLagMaxMs(p).then((ms) => (lag[k] = Math.max(lag[k]!, ms))));
      if (indexes.length >= 10_000) log(`${done} / ${indexes.length} cases, ${Math.round(done / ((performance.now() - started) / 1000))}/s`);
    }, 1000);
    const worker = async (): Promise<void> => {
      while (next < indexes.length) {
        const index = indexes[next++]!;
        const o = await runCase(env, opts.seed, index, opts);
        done++;
        const key = `${o.side}/${o.kind}/${o.result}`;
        outcomes[key] = (outcomes[key] ?? 0) + 1;
        if (o.errorCode !== undefined) errorCodes[o.errorCode] = (errorCodes[o.errorCode] ?? 0) + 1;
        if (o.mustAnswer && o.result === 'silent') silentWhenMustAnswer.push({ index: o.index, seed: o.seed, kind: o.kind });
      }
    };
    await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 24, indexes.length) }, worker));
    const durationMs = performance.now() - started;
    clearInterval(sampler);
    driverLag.disable();
    for (const c of canaries) await c.stop();

    // Settle: closed clients' sessions end, backend connections close, descriptors are released.
    const settleDeadline = Date.now() + 15_000;
    let backendSessionsAfter = await env.fuzzSessions();
    let after = pids.map(procFigures);
    while (Date.now() < settleDeadline && (backendSessionsAfter > backendSessionsBefore || after.some((a, k) => a.fds > before[k]!.fds) || env.relay.openSockets > relayBefore)) {
      await sleep(250);
      backendSessionsAfter = await env.fuzzSessions();
      after = pids.map(procFigures);
    }
    if (env.relay.openSockets > relayBefore || backendSessionsAfter > backendSessionsBefore) {
      // What is still open, for the report: the proxy's own view of its sessions.
      const sessions = await fetch(`http://127.0.0.1:${env.backendProxy.apiPort}/api/sessions`).then((r) => r.text(), (e: Error) => e.message);
      log(`still open after the settle time: relay sockets ${env.relay.openSockets - relayBefore}, backend sessions ${backendSessionsAfter}; backend-side proxy sessions: ${sessions.slice(0, 3000)}; relay connections (case seed, mutations): ${JSON.stringify(env.relay.openConnections())}; its log ends: ${env.backendProxy.output().slice(-3000)}`);
    }
    const heapAfter = await Promise.all(proxies.map(heapUsedMb));
    const heapAfterGc = opts.forcedGc ? await Promise.all(proxies.map((p) => env.heapAfterGcMb(p))) : null;
    let normalClientAfter = true;
    let normalClientError: string | undefined;
    try {
      await normalClientWorks(env.clientProxy.port);
      await normalClientWorks(env.backendProxy.port);
    } catch (err) {
      normalClientAfter = false;
      normalClientError = (err as Error).message;
    }
    const figures = (p: ProxyProcess, k: number): ProcessFigures => ({
      alive: p.child.exitCode === null && p.child.signalCode === null, crashLines: crashLines(p),
      fdBefore: before[k]!.fds, fdAfter: after[k]!.fds, rssBeforeMb: before[k]!.rssMb, rssPeakMb: peak[k]!, rssAfterMb: after[k]!.rssMb,
      eventLoopLagMaxMs: lag[k]!, heapBeforeMb: heapBefore[k]!, heapAfterMb: heapAfter[k]!,
      ...(heapBeforeGc && heapAfterGc ? { heapBeforeGcMb: heapBeforeGc[k]!, heapAfterGcMb: heapAfterGc[k]! } : {}),
    });
    return {
      cases: indexes.length, seed: opts.seed, durationMs, casesPerSecond: indexes.length / (durationMs / 1000), outcomes, errorCodes,
      silentWhenMustAnswer, clientProxy: figures(env.clientProxy, 0), backendProxy: figures(env.backendProxy, 1),
      backendSessionsBefore, backendSessionsAfter, relay: { ...env.relay.stats, openAfter: env.relay.openSockets - relayBefore },
      canary: {
        queries: canaries.reduce((n, c) => n + c.queries, 0), maxLatencyMs: Math.max(...canaries.map((c) => c.maxLatencyMs)),
        errors: canaries.flatMap((c) => c.errors), maxLatencyByProxyMs: [canaries[0]!.maxLatencyMs, canaries[1]!.maxLatencyMs],
      },
      driverLagMaxMs: driverLag.max / 1e6, normalClientAfter, ...(normalClientError ? { normalClientError } : {}),
    };
  } finally {
    await env.stop();
  }
}

/**
 * Allowed growth of the live heap over a run: caches that fill once (compiled code, the statement
 * classifier's, TLS session state) but nothing that grows with the number of cases.
 */
export const LIVE_HEAP_GROWTH_MB = 16;

/** What makes a run fail, in words (empty: passed). */
export function fuzzFailures(
  r: FuzzReport,
  limits: { canaryMs: number; rssGrowthMb: number; /** Growth of the heap after a full GC (forcedGc runs). */ liveHeapGrowthMb?: number } = { canaryMs: 1000, rssGrowthMb: 160 },
): string[] {
  const out: string[] = [];
  for (const [name, p] of [['client-side proxy', r.clientProxy], ['backend-side proxy', r.backendProxy]] as const) {
    if (!p.alive) out.push(`${name} died`);
    if (p.crashLines.length) out.push(`${name} logged crashes: ${p.crashLines[0]}`);
    if (p.fdAfter > p.fdBefore + 2) out.push(`${name} holds ${p.fdAfter - p.fdBefore} more descriptors than before`);
    if (p.rssAfterMb > p.rssBeforeMb + limits.rssGrowthMb) out.push(`${name} RSS grew from ${Math.round(p.rssBeforeMb)} to ${Math.round(p.rssAfterMb)} MiB`);
    // Live objects only: a leak keeps them past a full GC, garbage does not.
    const liveGrowth = (p.heapAfterGcMb ?? NaN) - (p.heapBeforeGcMb ?? NaN);
    if (liveGrowth > (limits.liveHeapGrowthMb ?? LIVE_HEAP_GROWTH_MB)) {
      out.push(`${name} heap after a full GC grew from ${p.heapBeforeGcMb!.toFixed(1)} to ${p.heapAfterGcMb!.toFixed(1)} MiB`);
    }
  }
  if (r.backendSessionsAfter > r.backendSessionsBefore) out.push(`${r.backendSessionsAfter - r.backendSessionsBefore} backend sessions leaked`);
  if (r.relay.openAfter > 0) out.push(`${r.relay.openAfter} relay sockets still open`);
  if (r.canary.errors.length) out.push(`canary errors: ${r.canary.errors[0]}`);
  if (r.canary.maxLatencyMs > limits.canaryMs + r.driverLagMaxMs) out.push(`a canary query waited ${Math.round(r.canary.maxLatencyMs)} ms`);
  if (!r.normalClientAfter) out.push(`a normal client failed afterwards: ${r.normalClientError}`);
  if (r.silentWhenMustAnswer.length) out.push(`${r.silentWhenMustAnswer.length} cases got no answer where one was due (first: ${JSON.stringify(r.silentWhenMustAnswer[0])})`);
  return out;
}
