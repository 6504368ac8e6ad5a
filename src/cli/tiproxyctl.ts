import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { createLogger } from '../kernel/logger.js';
import { splitAddrList } from '../plugins/discovery-etcd/etcd-client.js';
import { DEFAULT_TOPOLOGY_PREFIX } from '../plugins/discovery-etcd/topology.js';
import { Registrar } from '../registrar/registrar.js';
import { versionLine } from './arguments.js';

/** tiproxyctl: the operator's control tool. `register` announces a SQL server in etcd like TiDB does in PD. */

const ADDR = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/;

function addrList(value: string): string[] {
  const list = splitAddrList(value);
  if (list.length === 0) throw new InvalidArgumentError('needs at least one host:port');
  for (const addr of list) if (!validAddr(addr)) throw new InvalidArgumentError(`must be a comma-separated list of host:port, got ${JSON.stringify(addr)}`);
  return list;
}

function validAddr(addr: string): boolean {
  const m = ADDR.exec(addr);
  return m !== null && Number(m[2]) > 0 && Number(m[2]) <= 65535;
}

function sqlAddr(value: string): string {
  if (!validAddr(value)) throw new InvalidArgumentError(`must be host:port, got ${JSON.stringify(value)}`);
  return value;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0 || n > 65535) throw new InvalidArgumentError(`must be a port number, got ${JSON.stringify(value)}`);
  return n;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`must be a positive number of seconds, got ${JSON.stringify(value)}`);
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

interface RegisterFlags {
  pdAddrs: string[];
  addr: string;
  statusPort?: number;
  labels?: Record<string, string>;
  ttl: number;
  refresh?: number;
  prefix: string;
  serverVersion?: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdUser?: string;
  etcdPassword?: string;
  logLevel: string;
  logFormat: string;
}

function die(message: string, code = 1): never {
  process.stderr.write(`tiproxyctl: ${message}\n`);
  process.exit(code);
}

async function register(flags: RegisterFlags): Promise<void> {
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(flags.logLevel)) die(`--log-level: unknown level ${JSON.stringify(flags.logLevel)}`);
  if (flags.logFormat !== 'console' && flags.logFormat !== 'json') die('--log-format: must be console or json');
  if (Boolean(flags.etcdCert) !== Boolean(flags.etcdKey)) die('--etcd-cert and --etcd-key go together');
  if ((flags.etcdUser === undefined) !== (flags.etcdPassword === undefined)) die('--etcd-user and --etcd-password go together');
  const logger = createLogger({ level: flags.logLevel as 'info', format: flags.logFormat as 'console' });
  const tls = flags.etcdCa || flags.etcdCert ? {
    ...(flags.etcdCa ? { ca: flags.etcdCa } : {}),
    ...(flags.etcdCert && flags.etcdKey ? { cert: flags.etcdCert, key: flags.etcdKey } : {}),
  } : undefined;
  let registrar: Registrar;
  try {
    registrar = new Registrar({
      endpoints: {
        addrs: flags.pdAddrs,
        ...(tls ? { tls } : {}),
        ...(flags.etcdUser !== undefined && flags.etcdPassword !== undefined ? { auth: { username: flags.etcdUser, password: flags.etcdPassword } } : {}),
      },
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

  program.command('register')
    .description('Announce a MySQL-protocol server in etcd under TiDB\'s topology keys (info + leased ttl) until stopped. '
      + 'SIGTERM/SIGINT revoke the lease and delete the keys; if the process dies, the ttl key expires after --ttl seconds.')
    .requiredOption('--pd-addrs <list>', 'comma-separated etcd (PD) addresses host:port', addrList)
    .requiredOption('--addr <host:port>', 'SQL address of the server to announce (as the proxy should dial it)', sqlAddr)
    .option('--status-port <port>', 'HTTP status port (TiDB-style /status health checks)', port)
    .option('--labels <k=v,...>', 'labels, e.g. zone=a,group=x (used by the balancer and routing plugins)', labels)
    .option('--ttl <seconds>', 'lease TTL: how long after a crash the server is considered down', leaseSeconds, 45)
    .option('--refresh <seconds>', 're-put the ttl value this often (default: two thirds of --ttl)', seconds)
    .option('--prefix <prefix>', 'key prefix', DEFAULT_TOPOLOGY_PREFIX)
    .option('--server-version <text>', 'text written as "version" in the info key')
    .option('--etcd-ca <file>', 'PEM CA that signed etcd\'s certificate (enables TLS)')
    .option('--etcd-cert <file>', 'PEM client certificate for etcd (with --etcd-key; enables TLS)')
    .option('--etcd-key <file>', 'PEM private key of the client certificate')
    .option('--etcd-user <name>', 'etcd user (with --etcd-password)')
    .option('--etcd-password <password>', 'password of the etcd user')
    .option('--log-level <level>', 'trace, debug, info, warn, error, fatal or silent', 'info')
    .option('--log-format <json|console>', 'log line format', 'console')
    .exitOverride()
    .configureOutput({ writeOut: (text) => void process.stdout.write(text), writeErr: () => {}, outputError: () => {} })
    .action(async (flags: RegisterFlags) => register(flags));
  return program;
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
    die(`${err.message.replace(/^error:\s*/, '').replace(/\s*\n\s*/g, ' ')}. Run "tiproxyctl --help" for usage.`, 2);
  }
}

main().catch((err: unknown) => die((err as Error).stack ?? String(err)));
