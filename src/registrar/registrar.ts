import type { Etcd3, Lease } from 'etcd3';
import type { Logger } from 'pino';
import { createEtcdClient, deadline, etcdErrorMessage, type EtcdEndpoints } from '../plugins/discovery-etcd/etcd-client.js';
import { DEFAULT_TOPOLOGY_PREFIX, infoKey, ttlKey, unixNanoNow, type TopologyInfo } from '../plugins/discovery-etcd/topology.js';

export interface RegistrarOptions {
  endpoints: EtcdEndpoints;
  /** SQL address announced, "host:port" (what clients of the proxy will be routed to). */
  addr: string;
  /** TiDB-style HTTP status port, if the server has one. */
  statusPort?: number;
  labels: Record<string, string>;
  /** Lease TTL in seconds (TiDB: 45). The ttl key disappears this long after the registrar dies. */
  ttlSeconds: number;
  /** Seconds between re-puts of the ttl value (TiDB: 30); default two thirds of the TTL. */
  refreshSeconds?: number;
  prefix?: string;
  /** Free text written as `version` in the info key. */
  version?: string;
  /** The info key's JSON in place of TiDB's fields (a proxy registering itself under TiProxy's keys). */
  info?: () => object;
  /** Seconds one etcd request may take. */
  requestTimeoutSeconds?: number;
  logger: Logger;
}

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5000;

/**
 * Announces one SQL server in etcd the way TiDB announces itself in PD:
 *   <prefix><addr>/info  JSON, no lease (stays after the server is gone; "down" is the ttl's absence)
 *   <prefix><addr>/ttl   UnixNano string under a lease, kept alive and re-put every refresh interval
 * When etcd is unreachable the registrar keeps retrying; a lease that expired meanwhile is replaced by a
 * new one. stop() (SIGTERM) revokes the lease and deletes both keys, so proxies stop routing at once.
 */
export class Registrar {
  private readonly client: Etcd3;
  private readonly prefix: string;
  private readonly requestTimeoutMs: number;
  private lease: Lease | null = null;
  private refreshTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryMs = FIRST_RETRY_MS;
  private stopped = false;
  private registered = false;
  private readonly startedAt = Math.floor(Date.now() / 1000);

  constructor(private readonly opts: RegistrarOptions) {
    this.prefix = opts.prefix ?? DEFAULT_TOPOLOGY_PREFIX;
    this.requestTimeoutMs = (opts.requestTimeoutSeconds ?? 3) * 1000;
    this.client = createEtcdClient(opts.endpoints, this.requestTimeoutMs);
  }

  get infoKey(): string {
    return infoKey(this.prefix, this.opts.addr);
  }

  get ttlKey(): string {
    return ttlKey(this.prefix, this.opts.addr);
  }

  /** The JSON written to the info key. */
  info(): TopologyInfo {
    return {
      version: this.opts.version ?? '',
      git_hash: '',
      ...(this.opts.statusPort !== undefined ? { status_port: this.opts.statusPort } : {}),
      deploy_path: process.cwd(),
      start_timestamp: this.startedAt,
      labels: { ...this.opts.labels },
    };
  }

  /**
   * Registers, retrying until etcd answers; resolves once both keys are written (or stop() was called).
   * Then keeps the registration alive in the background.
   */
  async start(): Promise<void> {
    await this.registerUntilDone();
    this.scheduleRefresh();
  }

  private registering: Promise<void> | null = null;

  /** One registration loop at a time (start, a lost lease and refreshes may all ask for one). */
  private registerUntilDone(): Promise<void> {
    this.registering ??= this.retryRegister().finally(() => {
      this.registering = null;
    });
    return this.registering;
  }

  private async retryRegister(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      try {
        await this.register();
        return;
      } catch (err) {
        this.opts.logger.warn({ err: etcdErrorMessage(err), retryInMs: this.retryMs }, 'cannot register in etcd, retrying');
        await sleep(this.retryMs);
        this.retryMs = Math.min(MAX_RETRY_MS, this.retryMs * 2);
      }
    }
  }

  /** Writes info, grants a fresh lease if there is none, writes ttl under it. */
  private async register(): Promise<void> {
    await this.client.put(this.infoKey).value(JSON.stringify(this.opts.info ? this.opts.info() : this.info())).options(deadline(this.requestTimeoutMs)).exec();
    if (!this.lease) {
      const lease = this.client.lease(this.opts.ttlSeconds, { autoKeepAlive: true });
      lease.on('lost', (err) => this.leaseLost(lease, err));
      this.lease = lease;
      try {
        await lease.grant();
      } catch (err) {
        if (this.lease === lease) this.lease = null;
        lease.release();
        throw err;
      }
    }
    await this.lease.put(this.ttlKey).value(unixNanoNow()).options(deadline(this.requestTimeoutMs)).exec();
    this.retryMs = FIRST_RETRY_MS;
    if (!this.registered) {
      this.registered = true;
      this.opts.logger.info({ addr: this.opts.addr, info: this.infoKey, ttl: this.ttlKey, ttlSeconds: this.opts.ttlSeconds }, 'registered in etcd');
    }
  }

  private leaseLost(lease: Lease, err: unknown): void {
    if (this.stopped || this.lease !== lease) return;
    this.lease = null;
    this.registered = false;
    this.opts.logger.warn({ err: etcdErrorMessage(err) }, 'etcd lease lost (etcd unreachable past the TTL?): registering again');
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.registerUntilDone(), 0);
  }

  /** Re-puts the ttl value every refresh interval, like TiDB (the lease itself is kept alive by etcd3). */
  private scheduleRefresh(): void {
    if (this.stopped) return;
    const everyMs = (this.opts.refreshSeconds ?? (this.opts.ttlSeconds * 2) / 3) * 1000;
    this.refreshTimer = setTimeout(() => {
      void (async () => {
        try {
          if (this.lease && !this.registering) await this.register();
        } catch (err) {
          this.opts.logger.warn({ err: etcdErrorMessage(err) }, 'cannot refresh the etcd registration; will retry');
        }
        this.scheduleRefresh();
      })();
    }, everyMs);
  }

  /** Revokes the lease (the ttl key goes with it) and deletes both keys; then closes the client. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const lease = this.lease;
    this.lease = null;
    try {
      if (lease) await lease.revoke(deadline(this.requestTimeoutMs));
    } catch (err) {
      this.opts.logger.warn({ err: etcdErrorMessage(err) }, 'cannot revoke the etcd lease; the ttl key expires with it');
    }
    try {
      await this.client.delete().key(this.ttlKey).options(deadline(this.requestTimeoutMs)).exec();
      await this.client.delete().key(this.infoKey).options(deadline(this.requestTimeoutMs)).exec();
      this.opts.logger.info({ addr: this.opts.addr }, 'deregistered from etcd');
    } catch (err) {
      this.opts.logger.warn({ err: etcdErrorMessage(err) }, 'cannot delete the registration keys');
    } finally {
      this.client.close();
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
