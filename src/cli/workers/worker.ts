/**
 * The worker side of proxy.workers > 1: a normal kernel in a node:cluster worker, steered by the
 * primary over IPC (shutdown, reload, the other workers' session counts) and reporting its own counts.
 */
import type { Logger } from 'pino';
import type { Kernel, WorkerSlot } from '../../kernel/kernel.js';
import { startCountReporter } from './cluster-counts.js';
import { isPrimaryMessage, type WorkerMessage } from './messages.js';
import { WorkerQuestions } from './worker-questions.js';

/**
 * SO_REUSEPORT listeners (`reusePort`) exist from Node 22.12 / 23.1; each worker then binds its own
 * socket and the OS spreads connections. Older Node: the cluster's shared handle (see primary.ts).
 */
export function supportsReusePort(version = process.versions.node, platform = process.platform): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  const supported = major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
  return supported && platform === 'linux';
}

/**
 * Whether workers listening on `listenPort` bind their own SO_REUSEPORT sockets. Not on port 0: each
 * worker would get a different random port; they share the primary's handle instead.
 */
export function listensWithReusePort(listenPort: number): boolean {
  return listenPort !== 0 && supportsReusePort();
}

/** This worker's slot, from the environment the primary forked it with. */
export function workerSlotFromEnv(listenPort: number): WorkerSlot {
  const id = Number(process.env['TIPROXY_WORKER_ID']);
  const count = Number(process.env['TIPROXY_WORKERS']);
  if (!Number.isInteger(id) || id < 1 || !Number.isInteger(count) || id > count) {
    throw new Error(`worker started without a valid TIPROXY_WORKER_ID/TIPROXY_WORKERS (${String(process.env['TIPROXY_WORKER_ID'])}/${String(process.env['TIPROXY_WORKERS'])})`);
  }
  return { id, count, reusePort: listensWithReusePort(listenPort) };
}

function send(message: WorkerMessage, then?: () => void): void {
  if (!process.connected || !process.send) {
    then?.();
    return;
  }
  process.send(message, undefined, {}, () => then?.());
}

/** The worker cannot start: the primary prints `message` (once, for all workers) and exits non-zero. */
export function failWorker(message: string): Promise<never> {
  send({ type: 'fatal', message }, () => process.exit(1));
  return new Promise<never>(() => {});
}

/** After the kernel listens: tell the primary, follow its orders, report session counts. */
export function runWorker(kernel: Kernel, addr: string, logger: Logger, reload: (why: string) => void): void {
  let stopping = false;
  const stop = (why: string, bySignal: boolean) => {
    if (stopping) {
      // A second signal exits at once; the primary's order after a signal (Ctrl-C reaches both) is no second signal.
      if (!bySignal) return;
      logger.warn({ signal: why }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    reporter.stop();
    logger.info({ why }, 'graceful shutdown requested');
    kernel.shutdown().then(() => process.exit(0), (err: unknown) => {
      logger.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  };
  const reporter = startCountReporter(kernel, (counts) => send({ type: 'counts', counts }));
  const questions = new WorkerQuestions(kernel.workerGroup, (message) => send(message));
  process.on('message', (message: unknown) => {
    if (!isPrimaryMessage(message)) return;
    if (message.type === 'shutdown') stop('primary', false);
    else if (message.type === 'reload') reload(message.why);
    else if (message.type === 'question') questions.onQuestion(message);
    else if (message.type === 'answers') questions.onAnswers(message);
    else kernel.backends.setRemoteConnections(new Map(Object.entries(message.counts)));
  });
  // The primary is gone (killed): nobody will restart or stop us; leave like a shutdown, not as an orphan.
  process.on('disconnect', () => stop('primary process gone', false));
  process.on('SIGTERM', () => stop('SIGTERM', true));
  process.on('SIGINT', () => stop('SIGINT', true));
  process.on('SIGHUP', () => reload('SIGHUP'));
  send({ type: 'ready', addr });
}
