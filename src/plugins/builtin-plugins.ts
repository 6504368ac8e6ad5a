import type { TiproxyPlugin } from '../plugin.js';
import adminApi from './admin-api/index.js';
import balance from './balance/index.js';
import credentialsCleartext from './credentials-cleartext/index.js';
import credentialsNative from './credentials-native/index.js';
import discoveryDns from './discovery-dns/index.js';
import discoveryEtcd from './discovery-etcd/index.js';
import discoveryStatic from './discovery-static/index.js';
import health from './health/index.js';
import metrics from './metrics/index.js';
import migrateReplay from './migrate-replay/index.js';
import migrateTidbToken from './migrate-tidb-token/index.js';
import tlsPolicy from './tls-policy/index.js';
import trafficCapture from './traffic-capture/index.js';

/** Default plugins by name, as `plugins[].name` refers to them. */
export const BUILTIN_PLUGINS: ReadonlyMap<string, TiproxyPlugin<never>> = new Map<string, TiproxyPlugin<never>>([
  [discoveryStatic.name, discoveryStatic as TiproxyPlugin<never>],
  [discoveryEtcd.name, discoveryEtcd as TiproxyPlugin<never>],
  [discoveryDns.name, discoveryDns as TiproxyPlugin<never>],
  [health.name, health as TiproxyPlugin<never>],
  [metrics.name, metrics as TiproxyPlugin<never>],
  [balance.name, balance as TiproxyPlugin<never>],
  [tlsPolicy.name, tlsPolicy as TiproxyPlugin<never>],
  [credentialsNative.name, credentialsNative as TiproxyPlugin<never>],
  [credentialsCleartext.name, credentialsCleartext as TiproxyPlugin<never>],
  [migrateReplay.name, migrateReplay as TiproxyPlugin<never>],
  [migrateTidbToken.name, migrateTidbToken as TiproxyPlugin<never>],
  [adminApi.name, adminApi as TiproxyPlugin<never>],
  [trafficCapture.name, trafficCapture as TiproxyPlugin<never>],
]);

/** Plugins every proxy runs unless the config lists them (listing one with enabled: false turns it off). */
const DEFAULT_PLUGINS = ['health', 'balance', 'tls-policy', 'metrics', 'admin-api', 'traffic-capture'] as const;

export function withDefaultPlugins<C extends { plugins: Array<{ name: string; enabled: boolean; required: boolean; config: Record<string, unknown> }> }>(config: C): C {
  for (const name of DEFAULT_PLUGINS) {
    if (!config.plugins.some((p) => p.name === name)) config.plugins.push({ name, enabled: true, required: false, config: {} });
  }
  return config;
}
