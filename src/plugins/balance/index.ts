import { definePlugin, protocol, type BackendInfo } from '../../plugin.js';
import { acceptableForRouting, compareScores, routable, scoresOf, viewOf, type FactorSettings } from './factors.js';
import { LatencyTracker } from './latency.js';
import { candidatesOf, LoadBook, type CandidateSettings } from './load.js';
import { Rebalancer } from './rebalancer.js';
import schema from '../../../schemas/plugins/balance.schema.json' with { type: 'json' };

export interface BalanceConfig {
  policy: 'prefer-idle' | 'random';
  labels: Record<string, string>;
  location: boolean;
  latency: { enabled: boolean; weight: number; ratio: number; 'min-difference-ms': number; 'stale-after': number };
  rebalance: { enabled: boolean; interval: number; 'migrations-per-second': number; 'conn-ratio': number; 'evacuate-seconds': number };
}

/** Stage of the default selector: routing plugins tap selectBackend with a lower stage to go first. */
export const BALANCE_STAGE = 100;

function pick<T>(list: readonly T[]): T | undefined {
  return list[Math.floor(Math.random() * list.length)];
}

export default definePlugin<BalanceConfig>({
  name: 'balance',
  version: '2.0.0',
  configSchema: schema,
  apply({ hooks, config, backends, sessions, migrations, logger, onDispose, superseded }) {
    const candidateSettings: CandidateSettings = {
      required: Object.entries(config.labels).filter(([k]) => k !== 'zone'),
      zone: config.labels['zone'] ?? '',
    };
    const factorSettings: FactorSettings = {
      connRatio: config.rebalance['conn-ratio'],
      location: config.location,
      latency: { enabled: config.latency.enabled, ratio: config.latency.ratio, minDifferenceMs: config.latency['min-difference-ms'] },
    };
    const latency = config.latency.enabled ? new LatencyTracker(config.latency.weight, config.latency['stale-after'] * 1000) : null;
    const load = new LoadBook(sessions, migrations);
    const canonical = (b: BackendInfo): object => backends.get(b.addr) ?? b;
    const requiredText = candidateSettings.required.map(([k, v]) => `${k}=${v}`).join(',');

    hooks.selectBackend.tapPromise({ name: 'balance', stage: BALANCE_STAGE }, async (ctx) => {
      if (candidateSettings.required.length > 0) {
        const matching = ctx.backends.filter((b) => candidateSettings.required.every(([k, v]) => b.labels[k] === v));
        // Later taps and the kernel's fallback see only backends with the required labels.
        ctx.restrict(matching);
        if (matching.length === 0 && ctx.reason !== 'retry') {
          return { refuse: { code: protocol.ER_PROXY_NO_BACKEND, message: `no backend with labels ${requiredText} (the proxy requires them)`, sqlState: protocol.SQLSTATE_COMMUNICATION } };
        }
      }
      const usable = ctx.backends.filter((b) => !ctx.exclude.has(b.addr));
      const candidates = candidatesOf(usable, load.adjustments(), candidateSettings, latency, canonical).filter(routable);
      if (candidates.length === 0) return undefined;
      let chosen: BackendInfo | undefined;
      // One routable backend: both policies choose it; scoring would only cost every login time.
      if (candidates.length === 1) chosen = candidates[0]!.backend;
      else if (config.policy === 'random') chosen = pick(candidates)?.backend;
      else {
        const view = viewOf(candidates, factorSettings);
        const scored = candidates.map((c) => ({ c, s: scoresOf(c, view) }));
        scored.sort((a, b) => compareScores(a.s, b.s));
        const best = scored[0]!.c;
        chosen = pick(scored.filter((x) => acceptableForRouting(x.c, best, view)))?.c.backend;
      }
      if (chosen) load.routed(ctx.session.id, chosen.addr);
      return chosen;
    });

    if (latency) {
      hooks.onResult.tap('balance', (ctx) => latency.record(ctx.backend, ctx.durationMs));
    }

    if (config.rebalance.enabled) {
      const rebalancer = new Rebalancer({
        backends, sessions, migrations, load, latency, factorSettings, candidateSettings, logger,
        settings: { migrationsPerSecond: config.rebalance['migrations-per-second'], evacuateSeconds: config.rebalance['evacuate-seconds'] },
      });
      const round = (): void => {
        if (superseded()) return;
        try {
          rebalancer.tick();
        } catch (err) {
          logger.error({ err }, 'rebalance round failed');
        }
      };
      const timer = setInterval(round, config.rebalance.interval * 1000);
      timer.unref();
      // A backend to leave (removed, draining, unhealthy) starts its evacuation now, not at the next round.
      let soon: NodeJS.Immediate | null = null;
      hooks.backendEvent.tap('balance', (event) => {
        const leave = event.type === 'removed' || (event.type === 'draining' && event.draining) || (event.type === 'health' && !event.healthy);
        if (leave && !soon) soon = setImmediate(() => {
          soon = null;
          round();
        });
      });
      onDispose(() => {
        clearInterval(timer);
        if (soon) clearImmediate(soon);
      });
    }
  },
});
