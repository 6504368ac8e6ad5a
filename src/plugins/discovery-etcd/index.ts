import { definePlugin, type FleetService } from '../../plugin.js';
import { createEtcdClient, splitAddrList, type EtcdEndpoints } from './etcd-client.js';
import schema from '../../../schemas/plugins/discovery-etcd.schema.json' with { type: 'json' };
import { DrainMarks, type MarkDrained } from './drain-marks.js';
import { EtcdMirror } from './etcd-mirror.js';
import { Fleet } from './fleet.js';
import { ProxyRegistration } from './proxy-registration.js';
import { TopologySync } from './topology-sync.js';

declare module '../../plugin.js' {
  interface TiproxyServices {
    fleet: FleetService;
  }
}

export interface EtcdDiscoveryConfig {
  'pd-addrs': string;
  prefix: string;
  'resync-interval': number;
  'request-timeout': number;
  'max-retry-interval': number;
  'warn-interval': number;
  'initial-wait': number;
  tls?: { ca?: string; cert?: string; key?: string };
  username?: string;
  password?: string;
  fleet: {
    enabled: boolean;
    prefix: string;
    'drain-prefix': string;
    ttl: number;
    'advertise-addr': string;
  };
}

/**
 * Backends from etcd: TiDB's own registrations in PD, or servers announced by `tiproxyctl register`.
 * Every backend this plugin reports belongs to its source ("discovery-etcd"): a resync replaces the
 * whole set, and a backend whose ttl key disappears is withdrawn (sessions on it are then moved away by
 * the balancer).
 * The fleet: the proxy registers itself in the same etcd (TiProxy's /topology/tiproxy/ keys) and
 * follows the cluster-wide drain marks, offered to other plugins as the 'fleet' service.
 */
export default definePlugin<EtcdDiscoveryConfig>({
  name: 'discovery-etcd',
  version: '1.1.0',
  configSchema: schema,
  async apply(ctx) {
    const { config, proxyConfig, backends, logger, onDispose, superseded, hooks, services, workers } = ctx;
    const addrs = splitAddrList(config['pd-addrs'] || proxyConfig.proxy['pd-addrs']);
    if (addrs.length === 0) throw new Error('no etcd endpoints: set proxy.pd-addrs (or --pd-addrs), or pd-addrs in this plugin\'s config');
    const endpoints: EtcdEndpoints = {
      addrs,
      ...(config.tls ? { tls: config.tls } : {}),
      ...(config.username !== undefined && config.password !== undefined ? { auth: { username: config.username, password: config.password } } : {}),
    };
    const client = createEtcdClient(endpoints, config['request-timeout'] * 1000);
    const topology = new TopologySync(config.prefix, (list) => backends.replace(list), logger);
    const prefixes: Array<TopologySync | DrainMarks> = [topology];

    const fleet = config.fleet;
    if (fleet.enabled) {
      const drained = ctx.keep<MarkDrained>('mark-drained', () => new Set());
      const marks = new DrainMarks(fleet['drain-prefix'], backends, drained, logger);
      prefixes.push(marks);
      hooks.backendEvent.tap('discovery-etcd', (event) => {
        if (event.type === 'added') marks.backendAdded(event.backend.addr);
      });
      // With proxy.workers > 1 every worker follows the marks; one registers the proxy.
      const registration = workers.id <= 1
        ? new ProxyRegistration(ctx, {
          endpoints, prefix: fleet.prefix, ttlSeconds: fleet.ttl, advertiseHost: fleet['advertise-addr'], requestTimeoutSeconds: config['request-timeout'],
        })
        : null;
      registration?.start();
      services.provide('fleet', new Fleet({
        client, drainPrefix: fleet['drain-prefix'], proxyPrefix: fleet.prefix, marks, self: () => registration?.addr() ?? null,
        requestTimeoutMs: config['request-timeout'] * 1000,
      }));
    }

    const mirror = new EtcdMirror({
      client,
      prefixes,
      resyncMs: config['resync-interval'] * 1000,
      requestTimeoutMs: config['request-timeout'] * 1000,
      maxRetryMs: config['max-retry-interval'] * 1000,
      warnEveryMs: config['warn-interval'] * 1000,
      logger,
      paused: superseded,
      unreachableFields: () => ({ keptBackends: topology.backendCount }),
    });
    onDispose(() => {
      mirror.stop();
      client.close();
    });
    logger.info({ endpoints: addrs, prefix: config.prefix, ...(fleet.enabled ? { fleet: fleet.prefix, drainMarks: fleet['drain-prefix'] } : {}) }, 'discovering backends in etcd');
    // Wait a little for the first answer so the proxy listens with the registered backends known; an
    // unreachable etcd must not keep the proxy from starting (static backends keep working meanwhile).
    let timer: NodeJS.Timeout | undefined;
    const answered = await Promise.race([
      mirror.start(),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), config['initial-wait'] * 1000);
      }),
    ]);
    clearTimeout(timer);
    if (!answered) logger.warn({ endpoints: addrs }, 'etcd did not answer at start-up: starting without its backends, retrying in the background');
  },
});
