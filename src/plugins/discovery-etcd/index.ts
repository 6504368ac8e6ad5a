import { definePlugin } from '../../plugin.js';
import { createEtcdClient, splitAddrList } from './etcd-client.js';
import schema from '../../../schemas/plugins/discovery-etcd.schema.json' with { type: 'json' };
import { TopologySync } from './topology-sync.js';

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
}

/**
 * Backends from etcd: TiDB's own registrations in PD, or servers announced by `tiproxyctl register`.
 * Every backend this plugin reports belongs to its source ("discovery-etcd"): a resync replaces the
 * whole set, and a backend whose ttl key disappears is withdrawn (sessions on it are then moved away by
 * the balancer).
 */
export default definePlugin<EtcdDiscoveryConfig>({
  name: 'discovery-etcd',
  version: '1.0.0',
  configSchema: schema,
  async apply({ config, proxyConfig, backends, logger, onDispose, superseded }) {
    const addrs = splitAddrList(config['pd-addrs'] || proxyConfig.proxy['pd-addrs']);
    if (addrs.length === 0) throw new Error('no etcd endpoints: set proxy.pd-addrs (or --pd-addrs), or pd-addrs in this plugin\'s config');
    const client = createEtcdClient({
      addrs,
      ...(config.tls ? { tls: config.tls } : {}),
      ...(config.username !== undefined && config.password !== undefined ? { auth: { username: config.username, password: config.password } } : {}),
    }, config['request-timeout'] * 1000);
    const sync = new TopologySync({
      client,
      prefix: config.prefix,
      resyncMs: config['resync-interval'] * 1000,
      requestTimeoutMs: config['request-timeout'] * 1000,
      maxRetryMs: config['max-retry-interval'] * 1000,
      warnEveryMs: config['warn-interval'] * 1000,
      logger,
      publish: (list) => backends.replace(list),
      paused: superseded,
    });
    onDispose(() => sync.stop());
    logger.info({ endpoints: addrs, prefix: config.prefix }, 'discovering backends in etcd');
    // Wait a little for the first answer so the proxy listens with the registered backends known; an
    // unreachable etcd must not keep the proxy from starting (static backends keep working meanwhile).
    let timer: NodeJS.Timeout | undefined;
    const answered = await Promise.race([
      sync.start(),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), config['initial-wait'] * 1000);
      }),
    ]);
    clearTimeout(timer);
    if (!answered) logger.warn({ endpoints: addrs }, 'etcd did not answer at start-up: starting without its backends, retrying in the background');
  },
});
