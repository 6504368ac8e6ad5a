import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { createLogger } from '../kernel/logger.js';
import { DEFAULT_TOPOLOGY_PREFIX } from '../plugins/discovery-etcd/topology.js';
import { Registrar } from '../registrar/registrar.js';
import { versionLine } from './arguments.js';
import { addTrafficCommands } from './traffic/traffic-commands.js';
import { listBackends, setDraining, type DrainFlags } from './ctl/commands/backends.js';
import { getConfig, setConfig } from './ctl/commands/config.js';
import { health } from './ctl/commands/health.js';
import { listPlugins, reloadPlugins } from './ctl/commands/plugins.js';
import { killSession, listSessions, migrateSession, type SessionFilter } from './ctl/commands/sessions.js';
import { CtlError, EXIT, type ExitCode } from './ctl/exit-codes.js';
import {
  addrList, etcdEndpoints, positiveSeconds, resolveTargets, validAddr, withEtcdOptions, withTargetOptions, type EtcdFlags, type TargetFlags,
} from './ctl/target-options.js';

/**
 * tiproxyctl: the operator's control tool. `register` announces a SQL server in etcd like TiDB does in
 * PD; the other commands steer running proxies through their admin API (one with --api, every proxy
 * registered in etcd with --pd-addrs). Exit codes: src/cli/ctl/exit-codes.ts.
 */

function sqlAddr(value: string): string {
  if (!validAddr(value)) throw new InvalidArgumentError(`must be host:port, got ${JSON.stringify(value)}`);
  return value;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0 || n > 65535) throw new InvalidArgumentError(`must be a port number, got ${JSON.stringify(value)}`);
  return n;
}

function leaseSeconds(value: string): number {
  const n = Number(value);
  // etcd leases are whole seconds.
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`must be a whole number of seconds ≥ 1, got ${JSON.stringify(value)}`);
  return n;
}

/** "zone=a, group=x" → { zone: 'a', group: 'x' }; repeated flags accumulate. */
function labels(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const out = { ...previous };
  for (const item of value.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`must be a comma-separated list of key=value, got ${JSON.stringify(item)}`);
    out[item.slice(0, eq).trim()] = item.slice(eq + 1).trim();
  }
  return out;
}

interface RegisterFlags extends EtcdFlags {
  pdAddrs: string[];
  addr: string;
  statusPort?: number;
  labels?: Record<string, string>;
  ttl: number;
  refresh?: number;
  prefix: string;
  serverVersion?: string;
  logLevel: string;
  logFormat: string;
}

function die(message: string, code: ExitCode = EXIT.usage): never {
  process.stderr.write(`tiproxyctl: ${message}\n`);
  process.exit(code);
}

async function register(flags: RegisterFlags): Promise<void> {
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(flags.logLevel)) die(`--log-level: unknown level ${JSON.stringify(flags.logLevel)}`);
  if (flags.logFormat !== 'console' && flags.logFormat !== 'json') die('--log-format: must be console or json');
  const logger = createLogger({ level: flags.logLevel as 'info', format: flags.logFormat as 'console' });
  let endpoints;
  try {
    endpoints = etcdEndpoints(flags.pdAddrs, flags);
  } catch (err) {
    die((err as Error).message);
  }
  let registrar: Registrar;
  try {
    registrar = new Registrar({
      endpoints,
      addr: flags.addr,
      ...(flags.statusPort !== undefined ? { statusPort: flags.statusPort } : {}),
      labels: flags.labels ?? {},
      ttlSeconds: flags.ttl,
      ...(flags.refresh !== undefined ? { refreshSeconds: flags.refresh } : {}),
      prefix: flags.prefix,
      ...(flags.serverVersion !== undefined ? { version: flags.serverVersion } : {}),
      logger,
    });
  } catch (err) {
    die((err as Error).message);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting without deregistering');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'deregistering');
    registrar.stop().then(() => process.exit(0), (err: unknown) => {
      logger.error({ err }, 'deregistration failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await registrar.start();
}

function createProgram(): Command {
  const program = new Command('tiproxyctl')
    .description('Control tool for tiproxy.')
    .version(versionLine().replace(/^tiproxy/, 'tiproxyctl'), '-v, --version', 'print version and exit')
    .helpOption('-h, --help', 'print this help and exit')
    .exitOverride()
    .configureOutput({ writeOut: (text) => void process.stdout.write(text), writeErr: () => {}, outputError: () => {} });

  withEtcdOptions(program.command('register'))
    .description('Announce a MySQL-protocol server in etcd under TiDB\'s topology keys (info + leased ttl) until stopped. '
      + 'SIGTERM/SIGINT revoke the lease and delete the keys; if the process dies, the ttl key expires after --ttl seconds.')
    .requiredOption('--pd-addrs <list>', 'comma-separated etcd (PD) addresses host:port', addrList)
    .requiredOption('--addr <host:port>', 'SQL address of the server to announce (as the proxy should dial it)', sqlAddr)
    .option('--status-port <port>', 'HTTP status port (TiDB-style /status health checks)', port)
    .option('--labels <k=v,...>', 'labels, e.g. zone=a,group=x (used by the balancer and routing plugins)', labels)
    .option('--ttl <seconds>', 'lease TTL: how long after a crash the server is considered down', leaseSeconds, 45)
    .option('--refresh <seconds>', 're-put the ttl value this often (default: two thirds of --ttl)', positiveSeconds)
    .option('--prefix <prefix>', 'key prefix', DEFAULT_TOPOLOGY_PREFIX)
    .option('--server-version <text>', 'text written as "version" in the info key')
    .option('--log-level <level>', 'trace, debug, info, warn, error, fatal or silent', 'info')
    .option('--log-format <json|console>', 'log line format', 'console')
    .exitOverride()
    .configureOutput({ writeOut: (text) => void process.stdout.write(text), writeErr: () => {}, outputError: () => {} })
    .action(async (flags: RegisterFlags) => register(flags));

  const health_ = group(program, 'health', 'What the proxies\' /api/debug/health answers load balancers (200 healthy, 502 with a reason).')
    .action(steer((t) => health(t, null)));
  health_.command('set').description('Take the proxies out of their load balancers: health answers 502 with REASON until cleared (SQL is served as before).')
    .requiredOption('--unhealthy <reason>', 'why (shown in the 502 answer)')
    .action(steer((t, flags: { unhealthy: string }) => health(t, { unhealthy: flags.unhealthy })));
  health_.command('clear').description('Clear the manual override.').action(steer((t) => health(t, 'clear')));

  const config = group(program, 'config', 'The running configuration.');
  config.command('get').description('Print it (YAML; --json for JSON), secrets redacted.').action(steer((t) => getConfig(t)));
  config.command('set').description('Merge a partial config FILE (YAML, or JSON for .json) into the running one and apply it as a new generation (in memory only: a restart goes back to the file).')
    .argument('<file>').action(steer((t, _flags, file: string) => setConfig(t, file)));

  const backends = group(program, 'backends', 'List the backends (health, drain state, sessions, QPS, p99, labels).')
    .action(steer((t) => listBackends(t)));
  backends.command('drain').description('Drain a backend: no new sessions, existing ones move away. With etcd every proxy of the fleet drains it. '
    + '--wait shows progress and exits 0 once no proxy has a session on it, 4 on timeout listing each session left and why.')
    .argument('<addr>', 'backend host:port', sqlAddr)
    .option('--wait', 'wait until no addressed proxy has a session on the backend')
    .option('--timeout <seconds>', 'with --wait: give up after this long', positiveSeconds, 300)
    .action(steer((t, flags: DrainFlags, addr: string) => setDraining(t, addr, true, flags)));
  backends.command('undrain').description('Undrain a backend (with etcd: on every proxy of the fleet).')
    .argument('<addr>', 'backend host:port', sqlAddr)
    .action(steer((t, _flags, addr: string) => setDraining(t, addr, false, null)));

  const sessions = group(program, 'sessions', 'List client sessions: user, client, database, backend, age, transaction, whether it can migrate and why not.')
    .option('--backend <host:port>', 'only sessions on this backend', sqlAddr)
    .option('--user <name>', 'only sessions of this user')
    .action(steer((t, flags: SessionFilter) => listSessions(t, flags)));
  sessions.command('migrate').description('Move a session to another backend at its next safe point and wait for the outcome (exit 4 if still pending).')
    .argument('<id>', 'session id (tiproxyctl sessions)', sessionId)
    .option('--to <host:port>', 'target backend (default: the balancer picks)', sqlAddr)
    .option('--wait <seconds>', 'how long to wait for the outcome', positiveSeconds, 10)
    .action(steer((t, flags: { to?: string; wait: number }, id: number) => migrateSession(t, id, flags.to, flags.wait)));
  sessions.command('kill').description('Close a session (the client\'s connection is closed).')
    .argument('<id>', 'session id', sessionId)
    .action(steer((t, _flags, id: number) => killSession(t, id)));

  const plugins = group(program, 'plugins', 'The plugin generation, plugins with versions and hook errors, the last plugin-dir compile error.')
    .action(steer((t) => listPlugins(t)));
  plugins.command('reload').description('Recompile plugin-dir and rebuild the plugin generation (the running one stays on any error).')
    .action(steer((t) => reloadPlugins(t)));
  addTrafficCommands(program, steer);
  return program;
}

function sessionId(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`must be a session id (a positive integer), got ${JSON.stringify(value)}`);
  return n;
}

/** A command addressing proxies: the target options live here, its subcommands read them with optsWithGlobals(). */
function group(program: Command, name: string, description: string): Command {
  return withTargetOptions(program.command(name).description(description));
}

/**
 * A command action that talks to proxies: resolves the targets from the command's (and its group's)
 * options, runs, and exits with the code the command returned.
 */
function steer<F extends object, A extends unknown[]>(run: (targets: Awaited<ReturnType<typeof resolveTargets>>, flags: F, ...args: A) => Promise<ExitCode>) {
  return async (...args: unknown[]): Promise<void> => {
    const command = args[args.length - 1] as Command;
    const flags = command.optsWithGlobals() as F & TargetFlags;
    const targets = await resolveTargets(flags);
    const code = await run(targets, flags, ...(args.slice(0, -2) as A));
    process.exit(code);
  };
}

async function main(): Promise<void> {
  const program = createProgram();
  const argv = process.argv.slice(2);
  if (argv.length === 0) {
    process.stdout.write(program.helpInformation());
    return;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') process.exit(err.exitCode);
    die(`${err.message.replace(/^error:\s*/, '').replace(/\s*\n\s*/g, ' ')}. Run "tiproxyctl --help" for usage.`, EXIT.usage);
  }
}

main().catch((err: unknown) => (err instanceof CtlError ? die(err.message, err.exitCode) : die((err as Error).stack ?? String(err), EXIT.failed)));
