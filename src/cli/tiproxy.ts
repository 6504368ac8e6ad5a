import { watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../kernel/config/config-error.js';
import { applyOverrides, defaultConfig, freezeConfig, loadConfigFile } from '../kernel/config/config-loader.js';
import type { FrozenConfig, ProxyConfig } from '../kernel/config/proxy-config.js';
import { Kernel } from '../kernel/kernel.js';
import { createLogger } from '../kernel/logger.js';
import { BUILTIN_PLUGINS, withDefaultPlugins } from '../plugins/builtin-plugins.js';
import { CONTRIB_PLUGINS } from '../../plugins-contrib/index.js';
import { ExitAfterOutput, parseArguments, UsageError, type ParsedArguments } from './arguments.js';

/** Reads the config file (if any), applies command-line overrides and the default plugins. */
function resolveConfig(args: ParsedArguments): FrozenConfig {
  const base: ProxyConfig = args.configPath ? loadConfigFile(args.configPath) : defaultConfig();
  return freezeConfig(withDefaultPlugins(applyOverrides(base, args.overrides)));
}

function die(message: string): never {
  process.stderr.write(`tiproxy: ${message}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  let args: ParsedArguments;
  try {
    args = parseArguments(process.argv.slice(2));
  } catch (err) {
    if (err instanceof ExitAfterOutput) process.exit(err.exitCode);
    if (err instanceof UsageError) die(err.message);
    throw err;
  }
  let config: FrozenConfig;
  try {
    config = resolveConfig(args);
  } catch (err) {
    if (err instanceof ConfigError) die(err.message);
    die(`cannot read config: ${(err as Error).message}`);
  }
  const logger = createLogger(config.log);
  // A plugin's background work (timers, watchers, promises nobody awaits) must not take the proxy down:
  // log it with what we know and keep serving.
  process.on('unhandledRejection', (reason) => {
    logger.error({ err: reason }, `unhandled rejection (kept running): ${reason instanceof Error ? reason.message : String(reason)}`);
  });
  process.on('uncaughtException', (err) => {
    logger.error({ err }, `uncaught exception (kept running): ${err.message}`);
  });
  const kernel = new Kernel({ config, logger, resolvePlugin: (name) => BUILTIN_PLUGINS.get(name) ?? CONTRIB_PLUGINS.get(name) });
  try {
    await kernel.init();
  } catch (err) {
    die((err as Error).message);
  }
  try {
    await kernel.listen();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    die(`cannot listen on ${config.proxy.addr}: ${e.code === 'EADDRINUSE' ? 'address already in use' : e.message}`);
  }
  installSignals(kernel, args, logger);
}

function installSignals(kernel: Kernel, args: ParsedArguments, logger: Logger): void {
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
  const reload = (why: string) => {
    let next: FrozenConfig;
    try {
      next = resolveConfig(args);
    } catch (err) {
      logger.error({ why }, `config reload rejected, keeping the running config: ${(err as Error).message}`);
      return;
    }
    kernel.reload(next).then(
      () => {
        logger.level = next.log.level;
      },
      (err) => logger.error({ why }, `config reload rejected, keeping the running config: ${(err as Error).message}`),
    );
  };
  process.on('SIGHUP', () => reload('SIGHUP'));
  if (args.configPath) {
    let timer: NodeJS.Timeout | null = null;
    // Editors replace files (rename), which ends a watch on the old inode: watch the directory entry.
    try {
      const name = basename(args.configPath);
      watch(dirname(args.configPath), { persistent: false }, (_event, changed) => {
        if (changed !== null && changed !== name) return;
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => reload('config file changed'), 300);
      });
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'cannot watch the config file; reload with SIGHUP');
    }
  }
}

main().catch((err) => die((err as Error).stack ?? String(err)));
