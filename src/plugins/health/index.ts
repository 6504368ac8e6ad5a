import { definePlugin, type BackendInfo } from '../../plugin.js';
import schema from '../../../schemas/plugins/health.schema.json' with { type: 'json' };
import { probeSqlPort } from './sql-probe.js';
import { probeStatusPort } from './status-probe.js';

export interface HealthConfig {
  interval: number;
  timeout: number;
  retries: number;
  'status-port': boolean;
  drain: string[];
}

/** Why this plugin drains a backend: the operator's list, or TiDB's /status answering 500. */
type DrainCause = 'drain-list' | 'status-port';

/**
 * Drain causes per backend record, shared by every generation of this plugin (records outlive
 * generations, so a reload that removes an address from the drain list knows to undrain it). Keyed by
 * the registry's own record, so proxies in one process never see each other's.
 */
const drainCauses = new WeakMap<object, Set<DrainCause>>();

interface ProbeState {
  failures: number;
  inFlight: boolean;
}

export default definePlugin<HealthConfig>({
  name: 'health',
  version: '1.0.0',
  configSchema: schema,
  apply({ hooks, config, proxyConfig, backends, logger, onDispose, superseded }) {
    const drainList = new Set(config.drain);
    const states = new Map<string, ProbeState>();
    let timer: NodeJS.Timeout | null = null;
    let stopped = false;

    /** Turns one cause on or off; the backend's drain flag follows whether any of our causes remains. */
    const setCause = (backend: BackendInfo, cause: DrainCause, on: boolean): void => {
      const record = backends.get(backend.addr);
      if (!record) return;
      let causes = drainCauses.get(record);
      if (!causes) drainCauses.set(record, (causes = new Set()));
      const had = causes.size > 0;
      if (on) causes.add(cause);
      else causes.delete(cause);
      if (causes.size > 0 && !record.draining) {
        logger.info({ backend: record.addr, cause }, 'draining backend');
        backends.setDraining(record.addr, true);
      } else if (causes.size === 0 && had && record.draining) {
        logger.info({ backend: record.addr }, 'backend no longer drained');
        backends.setDraining(record.addr, false);
      }
    };

    const applyDrainList = (): void => {
      for (const b of backends.list()) setCause(b, 'drain-list', drainList.has(b.addr));
    };

    const check = async (backend: BackendInfo): Promise<void> => {
      const state = states.get(backend.addr) ?? { failures: 0, inFlight: false };
      states.set(backend.addr, state);
      if (state.inFlight) return;
      state.inFlight = true;
      try {
        const timeoutMs = config.timeout * 1000;
        const started = performance.now();
        const [sql, status] = await Promise.all([
          probeSqlPort(backend.host, backend.port, timeoutMs, proxyConfig.proxy['backend-proxy-protocol'] === 'v2'),
          config['status-port'] && backend.statusPort !== undefined ? probeStatusPort(backend.host, backend.statusPort, timeoutMs) : undefined,
        ]);
        if (stopped || superseded()) return;
        const current = backends.get(backend.addr);
        if (!current) return;
        if (status && status.state !== 'failed') setCause(current, 'status-port', status.state === 'draining');
        const failure = !sql.ok ? sql.detail : status?.state === 'failed' ? status.detail : undefined;
        hooks.healthChecked.call({ backend: current, ok: failure === undefined, durationMs: performance.now() - started, detail: failure ?? sql.detail });
        if (failure === undefined) {
          state.failures = 0;
          if (!current.healthy) backends.setHealth(current.addr, true, `check passed (${sql.detail})`);
          return;
        }
        state.failures++;
        logger.debug({ backend: current.addr, failures: state.failures, err: failure }, 'health check failed');
        if (state.failures >= config.retries && current.healthy) {
          backends.setHealth(current.addr, false, `${state.failures} consecutive failed checks: ${failure}`);
        }
      } finally {
        state.inFlight = false;
      }
    };

    const tick = (): void => {
      if (stopped) return;
      if (!superseded()) {
        applyDrainList();
        const list = backends.list();
        const known = new Set(list.map((b) => b.addr));
        for (const addr of states.keys()) if (!known.has(addr)) states.delete(addr);
        for (const b of list) void check(b).catch((err: unknown) => logger.error({ err, backend: b.addr }, 'health check crashed'));
      }
      timer = setTimeout(tick, config.interval * 1000);
      timer.unref();
    };

    // A backend that appears is checked (and drained, if listed) at once, not at the next tick.
    hooks.backendEvent.tap('health', (event) => {
      if (event.type !== 'added' || stopped || superseded()) return;
      if (drainList.has(event.backend.addr)) setCause(event.backend, 'drain-list', true);
      void check(event.backend).catch((err: unknown) => logger.error({ err, backend: event.backend.addr }, 'health check crashed'));
    });

    onDispose(() => {
      stopped = true;
      if (timer) clearTimeout(timer);
    });
    tick();
  },
});
