import type { PluginContext } from '../../plugin.js';
import { Registrar } from '../../registrar/registrar.js';
import type { EtcdEndpoints } from './etcd-client.js';
import { advertisedHost, hostPort, type ProxyTopologyInfo } from './fleet-topology.js';
import packageJson from '../../../package.json' with { type: 'json' };

export interface ProxyRegistrationOptions {
  endpoints: EtcdEndpoints;
  prefix: string;
  ttlSeconds: number;
  /** Host announced instead of the bound one ("" = the bound host, or this machine's address for 0.0.0.0). */
  advertiseHost: string;
  requestTimeoutSeconds: number;
}

/** The one registration of this proxy, shared by its generations (ctx.keep). */
interface RegistrationSlot {
  registrar: Registrar | null;
  /** What the registrar announces; a generation with the same one keeps it. */
  identity: string;
  /** The generation responsible for it (the newest that runs this plugin). */
  owner: object | null;
  addr: string | null;
}

/**
 * Registers this proxy in etcd like TiProxy registers in PD, once its SQL and API ports are bound
 * (start-up: at lifecycle.ready; a reload: at once). The registration outlives reloads that keep the
 * same address and endpoints; it is withdrawn (lease revoked, keys deleted) at shutdown, or when a newer
 * generation no longer runs the plugin.
 */
export class ProxyRegistration {
  private readonly slot: RegistrationSlot;
  private readonly token = {};
  private readonly startedAt: number;

  constructor(private readonly ctx: PluginContext<unknown>, private readonly opts: ProxyRegistrationOptions) {
    this.slot = ctx.keep<RegistrationSlot>('proxy-registration', () => ({ registrar: null, identity: '', owner: null, addr: null }));
    this.slot.owner = this.token;
    this.startedAt = ctx.keep('proxy-start', () => Math.floor(Date.now() / 1000));
  }

  /** The address registered under, or null before registering. */
  addr(): string | null {
    return this.slot.addr;
  }

  /** Registers now when the ports are bound, else at lifecycle.ready. */
  start(): void {
    if (this.ctx.proxy.sqlAddress()) this.register();
    else this.ctx.hooks.lifecycle.ready.tap('discovery-etcd', () => this.register());
    this.ctx.hooks.lifecycle.shutdown.tapPromise('discovery-etcd', () => this.withdraw());
    // Retired by a reload whose generation does not run this plugin (one that does claims the slot).
    // A generation that failed to build is never superseded, and leaves the registration alone.
    this.ctx.onDispose(() => (this.ctx.superseded() && this.slot.owner === this.token ? this.withdraw() : undefined));
  }

  private register(): void {
    if (this.slot.owner !== this.token) return;
    const sql = this.ctx.proxy.sqlAddress();
    if (!sql) return;
    const host = advertisedHost(sql.host, this.opts.advertiseHost);
    const addr = hostPort(host, sql.port);
    const api = this.ctx.proxy.httpAddress();
    const apiAddr = api ? hostPort(advertisedHost(api.host, this.opts.advertiseHost), api.port) : null;
    const info: ProxyTopologyInfo = {
      version: packageJson.version, git_hash: '', ip: host, port: String(sql.port), status_port: api ? String(api.port) : '',
      api_addr: apiAddr, api_tls: api?.tls ?? false, deploy_path: process.cwd(), start_timestamp: this.startedAt, pid: process.pid,
    };
    const identity = JSON.stringify({ endpoints: this.opts.endpoints, prefix: this.opts.prefix, ttl: this.opts.ttlSeconds, info });
    if (this.slot.registrar && this.slot.identity === identity) return;
    const previous = this.slot.registrar;
    const registrar = new Registrar({
      endpoints: this.opts.endpoints, addr, labels: {}, ttlSeconds: this.opts.ttlSeconds, prefix: this.opts.prefix,
      requestTimeoutSeconds: this.opts.requestTimeoutSeconds, logger: this.ctx.logger, info: () => info,
    });
    this.slot.registrar = registrar;
    this.slot.identity = identity;
    this.slot.addr = addr;
    void (async () => {
      // A changed address or etcd: the old keys go first, so the fleet never lists this proxy twice.
      if (previous) await previous.stop();
      await registrar.start();
    })();
  }

  /** Revokes the lease and deletes the keys. */
  private async withdraw(): Promise<void> {
    if (!this.slot.registrar) return;
    const registrar = this.slot.registrar;
    this.slot.registrar = null;
    this.slot.identity = '';
    this.slot.addr = null;
    await registrar.stop();
  }
}
