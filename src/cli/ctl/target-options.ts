import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { splitAddrList, type EtcdEndpoints } from '../../plugins/discovery-etcd/etcd-client.js';
import { DEFAULT_FLEET_PREFIX } from '../../plugins/discovery-etcd/fleet-topology.js';
import { ApiClient } from './api-client.js';
import { CtlError, EXIT } from './exit-codes.js';
import { apiTargets, DEFAULT_API, fleetTargets } from './proxy-targets.js';

const ADDR = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/;

export function validAddr(addr: string): boolean {
  const m = ADDR.exec(addr);
  return m !== null && Number(m[2]) > 0 && Number(m[2]) <= 65535;
}

/** A comma-separated host:port list (commander argument parser). */
export function addrList(value: string): string[] {
  const list = splitAddrList(value);
  if (list.length === 0) throw new InvalidArgumentError('needs at least one host:port');
  for (const addr of list) if (!validAddr(addr)) throw new InvalidArgumentError(`must be a comma-separated list of host:port, got ${JSON.stringify(addr)}`);
  return list;
}

export function positiveSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`must be a positive number of seconds, got ${JSON.stringify(value)}`);
  return n;
}

export interface EtcdFlags {
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdUser?: string;
  etcdPassword?: string;
}

/** --etcd-ca/-cert/-key/-user/-password: how to reach a TLS or password-protected etcd. */
export function withEtcdOptions(command: Command): Command {
  return command
    .option('--etcd-ca <file>', 'PEM CA that signed etcd\'s certificate (enables TLS)')
    .option('--etcd-cert <file>', 'PEM client certificate for etcd (with --etcd-key; enables TLS)')
    .option('--etcd-key <file>', 'PEM private key of the client certificate')
    .option('--etcd-user <name>', 'etcd user (with --etcd-password)')
    .option('--etcd-password <password>', 'password of the etcd user');
}

/** The etcd endpoints the flags describe; throws CtlError (usage) on flags that do not go together. */
export function etcdEndpoints(addrs: string[], flags: EtcdFlags): EtcdEndpoints {
  if (Boolean(flags.etcdCert) !== Boolean(flags.etcdKey)) throw new CtlError('--etcd-cert and --etcd-key go together', EXIT.usage);
  if ((flags.etcdUser === undefined) !== (flags.etcdPassword === undefined)) throw new CtlError('--etcd-user and --etcd-password go together', EXIT.usage);
  const tls = flags.etcdCa || flags.etcdCert ? {
    ...(flags.etcdCa ? { ca: flags.etcdCa } : {}),
    ...(flags.etcdCert && flags.etcdKey ? { cert: flags.etcdCert, key: flags.etcdKey } : {}),
  } : undefined;
  return {
    addrs,
    ...(tls ? { tls } : {}),
    ...(flags.etcdUser !== undefined && flags.etcdPassword !== undefined ? { auth: { username: flags.etcdUser, password: flags.etcdPassword } } : {}),
  };
}

export interface TargetFlags extends EtcdFlags {
  api?: string[];
  apiTls?: boolean;
  pdAddrs?: string[];
  fleetPrefix: string;
  token?: string;
  tokenFile?: string;
  json?: boolean;
  requestTimeout: number;
}

/** Which proxies a command talks to, how, and in what format it answers. */
export function withTargetOptions(command: Command): Command {
  return withEtcdOptions(command
    .option('--api <host:port,...>', `admin API of the proxy (or proxies) to address (default ${DEFAULT_API})`, addrList)
    .option('--api-tls', 'the API serves HTTPS (api.tls); with --pd-addrs each proxy says so itself')
    .option('--pd-addrs <host:port,...>', 'etcd (PD) endpoints: address every proxy registered there, answers merged with a proxy column', addrList)
    .option('--fleet-prefix <prefix>', 'where proxies register in etcd', DEFAULT_FLEET_PREFIX)
    .option('--token <token>', 'bearer token (api.token) for changes; also read from $TIPROXY_API_TOKEN')
    .option('--token-file <file>', 'file holding the bearer token')
    .option('--json', 'JSON for scripts instead of a table')
    .option('--request-timeout <seconds>', 'how long one API request may take', positiveSeconds, 10));
}

export interface Targets {
  readonly clients: ApiClient[];
  readonly json: boolean;
  /** The proxies were found in etcd (--pd-addrs). */
  readonly fleet: boolean;
}

export async function resolveTargets(flags: TargetFlags): Promise<Targets> {
  if (flags.api && flags.pdAddrs) throw new CtlError('--api and --pd-addrs address proxies in two different ways: give one', EXIT.usage);
  let token = flags.token ?? process.env['TIPROXY_API_TOKEN'] ?? '';
  if (!flags.token && flags.tokenFile) {
    try {
      token = readFileSync(flags.tokenFile, 'utf8').trim();
    } catch (err) {
      throw new CtlError(`--token-file: cannot read ${flags.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, EXIT.usage);
    }
  }
  const timeoutMs = flags.requestTimeout * 1000;
  const targets = flags.pdAddrs
    ? await fleetTargets(etcdEndpoints(flags.pdAddrs, flags), flags.fleetPrefix, timeoutMs)
    : apiTargets(flags.api ?? [DEFAULT_API], flags.apiTls === true);
  return { clients: targets.map((t) => new ApiClient(t, token, timeoutMs)), json: flags.json === true, fleet: flags.pdAddrs !== undefined };
}
