import { definePlugin, type BackendAnnouncement } from '../../plugin.js';
import schema from '../../../schemas/plugins/discovery-static.schema.json' with { type: 'json' };

export interface StaticDiscoveryConfig {
  backends: Array<{ addr: string; labels?: Record<string, string>; 'status-port'?: number }>;
}

/**
 * A fixed list of backends from the config (or `--backend`). Reloading the config replaces the list:
 * the new generation announces the new set and the registry withdraws what is gone.
 */
export default definePlugin<StaticDiscoveryConfig>({
  name: 'discovery-static',
  version: '1.0.0',
  configSchema: schema,
  apply({ config, backends, logger }) {
    const list: BackendAnnouncement[] = config.backends.map((b) => ({
      addr: b.addr, labels: { ...(b.labels ?? {}) }, ...(b['status-port'] !== undefined ? { statusPort: b['status-port'] } : {}),
    }));
    backends.replace(list);
    logger.info({ backends: list.map((b) => b.addr) }, 'static backends');
  },
});
