/**
 * The primary process of proxy.workers > 1. It serves no sessions: it forks N workers (node:cluster),
 * relays signals and config changes to them, aggregates their per-backend session counts, restarts a
 * worker that dies and stops everything when workers cannot start.
 *
 * Sharing the SQL port: on Node < 22.12 (this project's Node 20) the workers' listen() goes through
 * the primary, which owns the socket. Scheduling is round-robin (cluster.SCHED_RR, Node's default on
 * Linux, set explicitly here): the primary accepts each connection and hands it to the next worker, so
 * long-lived MySQL sessions spread evenly; the cost is one extra hand-off per *connection* (not per
 * query — after the hand-off the worker owns the socket). SCHED_NONE (the OS wakes whichever worker
 * accepts first) is known to skew badly towards busy workers; NODE_CLUSTER_SCHED_POLICY=none still
 * selects it. On Node >= 22.12 workers bind their own SO_REUSEPORT sockets instead and the kernel
 * spreads connections by address hash, without the primary in the path (see worker.ts).
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { FrozenConfig } from '../../kernel/config/proxy-config.js';
import { parseListenAddr } from '../../kernel/kernel.js';
import { createLogger } from '../../kernel/logger.js';
import type { ParsedArguments } from '../arguments.js';
import { configForReload, watchConfigFile } from '../config-watch.js';
import { ClusterCounts } from './cluster-counts.js';
import { isWorkerMessage, type PrimaryMessage, type WorkerMessage } from './messages.js';
import { QuestionRelay } from './worker-questions.js';
import { listensWithReusePort } from './worker.js';

/** A worker that fails this many times in a row before it is ready makes the primary give up. */
const MAX_START_FAILURES = 5;
/** Restart delay after a crash: doubles from this for each crash soon after start, up to the maximum. */
const RESTART_DELAY_MS = 100;
const MAX_RESTART_DELAY_MS = 10_000;
/** A worker that ran this long before it died is restarted without backoff. */
const STABLE_AFTER_MS = 10_000;

export interface PrimaryOptions {
  args: ParsedArguments;
  config: FrozenConfig;
  /** Reads and validates the config file again (throws on a bad one). */
  resolveConfig(args: ParsedArguments): FrozenConfig;
  /** The config file's content digest from before it was read (see configFileBaseline). */
  configBaseline?: { digest: string } | undefined;
}

interface Slot {
  readonly id: number;
  worker: Worker | null;
  startedAt: number;
  ready: boolean;
  everReady: boolean;
  /** Deaths before ready, in a row. */
  startFailures: number;
  /** Deaths within STABLE_AFTER_MS of start, in a row (drives the backoff). */
  quickCrashes: number;
  /** What the worker said before it died (`fatal` message). */
  fatal: string | null;
  restartTimer: NodeJS.Timeout | null;
}

function describeExit(code: number | null, signal: string | null): string {
  return signal ? `signal ${signal}` : `exit code ${code ?? '?'}`;
}

export function runPrimary({ args, config, resolveConfig, configBaseline }: PrimaryOptions): void {
  const n = config.proxy.workers;
  // Field `worker`: 1..N in worker lines, 0 for the primary.
  const logger: Logger = createLogger(config.log).child({ worker: 0 });
  // A port in use, even by another SO_REUSEPORT listener, already failed tiproxy.ts's plain pre-flight bind.
  const reusePort = listensWithReusePort(parseListenAddr(config.proxy.addr).port);
  if (!process.env['NODE_CLUSTER_SCHED_POLICY']) cluster.schedulingPolicy = cluster.SCHED_RR;
  const counts = new ClusterCounts();
  const slots: Slot[] = Array.from({ length: n }, (_, i) => ({
    id: i + 1, worker: null, startedAt: 0, ready: false, everReady: false, startFailures: 0, quickCrashes: 0, fatal: null, restartTimer: null,
  }));
  let startupDone = false;
  let stopping = false;
  let exitCode = 0;
  /** Workers still starting when shutdown began: stopped with SIGTERM, their exit status is no failure. */
  const unreadyAtStop = new Set<number>();

  const send = (slot: Slot, message: PrimaryMessage): void => {
    const w = slot.worker;
    if (w?.isConnected()) w.send(message);
  };
  const broadcastCounts = (except?: number): void => {
    for (const slot of slots) if (slot.id !== except && slot.ready) send(slot, { type: 'remote-counts', counts: counts.othersOf(slot.id) });
  };
  const alive = (): Slot[] => slots.filter((s) => s.worker !== null);
  const questions = new QuestionRelay((id, message) => {
    const slot = slots[id - 1];
    if (slot) send(slot, message);
  });

  const fork = (slot: Slot): void => {
    slot.restartTimer = null;
    const worker = cluster.fork({ TIPROXY_WORKER_ID: String(slot.id), TIPROXY_WORKERS: String(n) });
    Object.assign(slot, { worker, startedAt: Date.now(), ready: false, fatal: null });
    worker.on('message', (message: unknown) => {
      if (slot.worker === worker && isWorkerMessage(message)) onMessage(slot, message);
    });
    worker.on('exit', (code: number | null, signal: string | null) => {
      if (slot.worker !== worker) return;
      // 'exit' can overtake the worker's last messages (its `fatal` reason): wait until the channel is drained.
      if (worker.isConnected()) worker.once('disconnect', () => onExit(slot, code, signal));
      else onExit(slot, code, signal);
    });
  };

  const onMessage = (slot: Slot, message: WorkerMessage): void => {
    if (message.type === 'fatal') {
      slot.fatal = message.message;
    } else if (message.type === 'counts') {
      counts.set(slot.id, message.counts);
      broadcastCounts(slot.id);
    } else if (message.type === 'ask') {
      questions.ask(slot.id, message, slots.filter((s) => s.ready).map((s) => s.id));
    } else if (message.type === 'answer') {
      questions.answer(slot.id, message);
    } else {
      slot.ready = true;
      slot.everReady = true;
      slot.startFailures = 0;
      send(slot, { type: 'remote-counts', counts: counts.othersOf(slot.id) });
      if (!startupDone && slots.every((s) => s.everReady)) {
        startupDone = true;
        logger.info({ workers: n, addr: message.addr }, `all ${n} workers ready`);
      } else if (startupDone) logger.info({ restarted: slot.id, pid: slot.worker?.process.pid }, `worker ${slot.id} is serving again`);
    }
  };

  const onExit = (slot: Slot, code: number | null, signal: string | null): void => {
    const lived = Date.now() - slot.startedAt;
    const wasReady = slot.ready;
    slot.worker = null;
    slot.ready = false;
    if (counts.delete(slot.id)) broadcastCounts();
    questions.workerGone(slot.id);
    if (stopping) {
      if (code !== 0 && !unreadyAtStop.has(slot.id)) exitCode = 1;
      if (alive().length === 0) finish();
      return;
    }
    const reason = slot.fatal ?? `worker ${slot.id} exited with ${describeExit(code, signal)}`;
    // Start-up: a worker that cannot start (port in use, broken plugin) fails the whole proxy, like a single process.
    if (!startupDone) return abort(slot.fatal ?? `${reason} during start-up`);
    if (!wasReady && ++slot.startFailures >= MAX_START_FAILURES) {
      return abort(`worker ${slot.id} failed to start ${slot.startFailures} times in a row: ${reason}`);
    }
    slot.quickCrashes = lived < STABLE_AFTER_MS ? slot.quickCrashes + 1 : 0;
    const delay = Math.min(MAX_RESTART_DELAY_MS, RESTART_DELAY_MS * 2 ** Math.max(0, slot.quickCrashes - 1));
    logger.error({ exited: slot.id, code, signal, livedMs: lived, restartInMs: delay }, `worker ${slot.id} exited unexpectedly (${slot.fatal ?? describeExit(code, signal)}); restarting in ${delay} ms`);
    slot.restartTimer = setTimeout(() => fork(slot), delay);
  };

  /** Workers cannot start: one line on stderr, every worker killed, exit 1. */
  const abort = (message: string): void => {
    stopping = true;
    exitCode = 1;
    for (const slot of slots) if (slot.restartTimer) clearTimeout(slot.restartTimer);
    process.stderr.write(`tiproxy: ${message}\n`);
    for (const slot of alive()) slot.worker!.process.kill('SIGKILL');
    if (alive().length === 0) finish();
  };

  const finish = (): void => {
    logger.info({ exitCode }, 'all workers stopped');
    process.exit(exitCode);
  };

  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: stopping the workers now');
      for (const slot of alive()) slot.worker!.process.kill('SIGKILL');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, workers: alive().length }, 'graceful shutdown requested');
    for (const slot of slots) if (slot.restartTimer) clearTimeout(slot.restartTimer);
    if (alive().length === 0) return finish();
    for (const slot of alive()) {
      // A worker still starting has not installed its message handler yet: SIGTERM ends it.
      if (slot.ready) send(slot, { type: 'shutdown' });
      else {
        unreadyAtStop.add(slot.id);
        slot.worker!.process.kill('SIGTERM');
      }
    }
    // Workers give busy sessions graceful-close-conn-timeout; one that hangs beyond that is killed.
    const graceMs = (config.proxy['graceful-wait-before-shutdown'] + config.proxy['graceful-close-conn-timeout'] + 10) * 1000;
    setTimeout(() => {
      for (const slot of alive()) {
        logger.error({ stuck: slot.id }, `worker ${slot.id} did not stop in time: killing it`);
        slot.worker!.process.kill('SIGKILL');
      }
    }, graceMs).unref();
  };

  /** Validated once here, so a bad edit is reported once; every worker then reads the file itself. */
  const reload = (why: string): void => {
    const next = configForReload(() => resolveConfig(args), logger, why);
    if (!next) return;
    logger.level = next.log.level;
    if (next.proxy.workers !== n) logger.warn({ workers: n, configured: next.proxy.workers }, 'proxy.workers changed: it takes effect at the next start');
    for (const slot of alive()) send(slot, { type: 'reload', why });
  };

  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => reload('SIGHUP'));
  // Whatever ends the primary must not leave workers behind (they also leave when their IPC channel closes).
  process.on('exit', () => {
    for (const slot of alive()) {
      try {
        slot.worker!.process.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  if (args.configPath) watchConfigFile(args.configPath, logger, () => reload('config file changed'), configBaseline);

  logger.info({ workers: n, listen: reusePort ? 'reuseport' : 'cluster', scheduling: cluster.schedulingPolicy === cluster.SCHED_RR ? 'round-robin' : 'os' },
    `starting ${n} workers`);
  for (const slot of slots) fork(slot);
}
