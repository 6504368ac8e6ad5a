import { definePlugin, type BackendInfo } from '../../plugin.js';
import schema from './schema.json' with { type: 'json' };

export interface BalanceConfig {
  policy: 'least-connections' | 'random';
}

/** Stage of the default selector: routing plugins tap selectBackend with a lower stage to go first. */
export const BALANCE_STAGE = 100;

function eligible(b: BackendInfo, exclude: ReadonlySet<string>): boolean {
  return b.healthy && !b.draining && !exclude.has(b.addr);
}

export default definePlugin<BalanceConfig>({
  name: 'balance',
  version: '1.0.0',
  configSchema: schema,
  apply({ hooks, config }) {
    hooks.selectBackend.tapPromise({ name: 'balance', stage: BALANCE_STAGE }, async ({ backends, exclude }) => {
      const candidates = backends.filter((b) => eligible(b, exclude));
      if (candidates.length === 0) return undefined;
      if (config.policy === 'random') return candidates[Math.floor(Math.random() * candidates.length)];
      let fewest = Infinity;
      for (const b of candidates) fewest = Math.min(fewest, b.connections);
      const idlest = candidates.filter((b) => b.connections === fewest);
      return idlest[Math.floor(Math.random() * idlest.length)];
    });
  },
});
