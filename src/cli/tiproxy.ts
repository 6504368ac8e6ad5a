import cluster from 'node:cluster';
import type { Logger } from 'pino';
import { ConfigError } from '../kernel/config/config-error.js';
import { applyOverrides, defaultConfig, freezeConfig, loadConfigFile } from '../kernel/config/config-loader.js';
import type { FrozenConfig, ProxyConfig } from '../kernel/config/proxy-config.js';
import { Kernel, parseListenAddr, type WorkerSlot } from '../kernel/kernel.js';
import { createLogger } from '../kernel/logger.js';
import { ApiListenError } from '../kernel/net/http-listener.js';
import { BUILTIN_PLUGINS, withDefaultPlugins } from '../plugins/builtin-plugins.js';
import { CONTRIB_PLUGINS } from '../../plugins-contrib/index.js';
import { ExitAfterOutput, parseArguments, UsageError, type ParsedArguments } from './arguments.js';
import { configFileBaseline, configForReload, watchConfigFile } from './config-watch.js';
import { cannotListen, preflightListen } from './listen-error.js';
import { runPrimary } from './workers/primary.js';
import { failWorker, runWorker, workerSlotFromEnv } from './workers/worker.js';

/** Reads the config file (if any), applies command-line overrides and the default plugins. */
function resolveConfig(args: ParsedArguments): FrozenConfig {
  const base: ProxyConfig = args.configPath ? loadConfigFile(args.configPath) : defaultConfig();
  return freezeConfig(withDefaultPlugins(applyOverrides(base, args.overrides)));
}

function die(message: string): never {
  process.stderr.write(`tiproxy: ${message}\n`);
  process.exit(1);
}

/**
 * Three roles, one program: a single process (proxy.workers: 1, the default — no cluster code runs),
 * the primary of N workers (src/cli/workers/primary.ts, serves nothing), or one of those workers (a
 * node:cluster worker re-running this file with the same arguments; src/cli/workers/worker.ts).
 */
async function main(): Promise<void> {
  let args: ParsedArguments;
  try {
    args = parseArguments(process.argv.slice(2));
  } catch (err) {
    if (err instanceof ExitAfterOutput) process.exit(err.exitCode);
    if (err instanceof UsageError) die(err.message);
    throw err;
  }
  // Workers never watch the file (the primary does).
  const configBaseline = args.configPath && !cluster.isWorker ? configFileBaseline(args.configPath) : undefined;
  let config: FrozenConfig;
  try {
    config = resolveConfig(args);
  } catch (err) {
    if (err instanceof ConfigError) die(err.message);
    die(`cannot read config: ${(err as Error).message}`);
  }
  if (cluster.isPrimary) {
    // A port in use is the one line printed, before plugins start logging.
    for (const [key, addr] of [['proxy.addr', config.proxy.addr], ['api.addr', config.api.addr]] as const) {
      const { host, port } = parseListenAddr(addr);
      const problem = await preflightListen(addr, host, port, key);
      if (problem) die(problem);
    }
  }
  if (cluster.isPrimary && config.proxy.workers > 1) return runPrimary({ args, config, resolveConfig, configBaseline });
  const slot: WorkerSlot | undefined = cluster.isWorker ? workerSlotFromEnv(parseListenAddr(config.proxy.addr).port) : undefined;
  // A worker does not print: the primary prints the first worker's reason once and exits non-zero.
  const fail = (message: string): Promise<never> => (slot ? failWorker(message) : die(message));
  const root = createLogger(config.log);
  const logger = slot ? root.child({ worker: slot.id }) : root;
  // A plugin's background work (timers, watchers, promises nobody awaits) must not take the proxy down:
  // log it with what we know and keep serving.
  process.on('unhandledRejection', (reason) => {
    logger.error({ err: reason }, `unhandled rejection (kept running): ${reason instanceof Error ? reason.message : String(reason)}`);
  });
  process.on('uncaughtException', (err) => {
    logger.error({ err }, `uncaught exception (kept running): ${err.message}`);
  });
  const kernel = new Kernel({
    config, logger, resolvePlugin: (name) => BUILTIN_PLUGINS.get(name) ?? CONTRIB_PLUGINS.get(name), ...(slot ? { worker: slot } : {}),
  });
  try {
    await kernel.init();
  } catch (err) {
    await fail((err as Error).message);
  }
  let bound: { host: string; port: number };
  try {
    bound = await kernel.listen();
  } catch (err) {
    if (err instanceof ApiListenError) return fail(err.message);
    return fail(cannotListen(config.proxy.addr, err as NodeJS.ErrnoException));
  }
  const reload = reloader(kernel, args, logger);
  if (slot) runWorker(kernel, `${bound.host}:${bound.port}`, logger, reload);
  else installSignals(kernel, args, logger, reload, configBaseline);
}

/** Re-reads the config and applies it; a bad one is logged and the running config stays. */
function reloader(kernel: Kernel, args: ParsedArguments, logger: Logger): (why: string) => void {
  return (why) => {
    const next = configForReload(() => resolveConfig(args), logger, why);
    if (!next) return;
    kernel.reload(next).then(
      () => {
        logger.level = next.log.level;
      },
      (err) => logger.error({ why }, `config reload rejected, keeping the running config: ${(err as Error).message}`),
    );
  };
}

function installSignals(kernel: Kernel, args: ParsedArguments, logger: Logger, reload: (why: string) => void, configBaseline?: { digest: string }): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'graceful shutdown requested');
    kernel.shutdown().then(() => process.exit(0), (err) => {
      logger.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => reload('SIGHUP'));
  if (args.configPath) watchConfigFile(args.configPath, logger, () => reload('config file changed'), configBaseline);
}

main().catch((err) => die((err as Error).stack ?? String(err)));
