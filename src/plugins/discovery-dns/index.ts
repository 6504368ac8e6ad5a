import { definePlugin, type BackendAnnouncement } from '../../plugin.js';
import { resolveName, type DnsName } from './resolve.js';
import schema from '../../../schemas/plugins/discovery-dns.schema.json' with { type: 'json' };

export interface DnsDiscoveryConfig {
  names: DnsName[];
  port: number;
  interval: number;
  timeout: number;
  'warn-interval': number;
  servers: string[];
}

/**
 * Backends from DNS: every interval each name is resolved again and the union of the answers replaces
 * what this plugin reported before (the registry withdraws what is gone; sessions on a withdrawn backend
 * are moved away by the balancer). A failed lookup keeps that name's previous answer.
 */
export default definePlugin<DnsDiscoveryConfig>({
  name: 'discovery-dns',
  version: '1.0.0',
  configSchema: schema,
  async apply({ config, backends, logger, onDispose, superseded }) {
    const last = new Map<number, BackendAnnouncement[]>();
    const lastWarnAt = new Map<number, number>();
    let published = '';
    let timer: NodeJS.Timeout | null = null;
    let stopped = false;

    const round = async (): Promise<void> => {
      if (superseded()) return;
      const answers = await Promise.all(config.names.map((entry) => resolveName(entry, { defaultPort: config.port, timeoutMs: config.timeout * 1000, servers: config.servers })));
      if (stopped || superseded()) return;
      answers.forEach((answer, i) => {
        const entry = config.names[i]!;
        if (answer.ok) {
          last.set(i, answer.backends);
          lastWarnAt.delete(i);
          return;
        }
        const now = Date.now();
        const fields = { name: entry.name, type: entry.type, err: answer.error, kept: (last.get(i) ?? []).map((b) => b.addr) };
        if (now - (lastWarnAt.get(i) ?? 0) >= config['warn-interval'] * 1000) {
          logger.warn(fields, 'DNS lookup failed: keeping the previous answer');
          lastWarnAt.set(i, now);
        } else logger.debug(fields, 'DNS lookup failed again');
      });
      // One backend per address: a later name's labels win when two names yield the same address.
      const merged = new Map<string, BackendAnnouncement>();
      for (let i = 0; i < config.names.length; i++) for (const b of last.get(i) ?? []) merged.set(b.addr, b);
      const list = [...merged.values()].sort((a, b) => (a.addr < b.addr ? -1 : 1));
      const key = JSON.stringify(list);
      if (key === published) return;
      published = key;
      backends.replace(list);
      logger.info({ backends: list.map((b) => b.addr) }, 'DNS answers changed');
    };

    const loop = (): void => {
      timer = setTimeout(() => {
        round().catch((err: unknown) => logger.error({ err }, 'DNS discovery round failed')).finally(() => {
          if (!stopped) loop();
        });
      }, config.interval * 1000);
      timer.unref();
    };

    onDispose(() => {
      stopped = true;
      if (timer) clearTimeout(timer);
    });
    // The first answers before the proxy listens (bounded by the lookup timeout).
    await round();
    loop();
  },
});
