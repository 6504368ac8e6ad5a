import { AggregatorRegistry, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { definePlugin, type MetricsService } from '../../plugin.js';
import schema from '../../../schemas/plugins/metrics.schema.json' with { type: 'json' };
import { disconnectionType } from './disconnection-type.js';
import { ProxyMetrics, type MetricsConfig } from './proxy-metrics.js';

declare module '../../plugin.js' {
  interface TiproxyServices {
    metrics: MetricsService;
  }
}

/** The question every worker answers with its registry's metrics (JSON) when one of them is scraped. */
const METRICS_TOPIC = 'metrics:registry';

const MIGRATE_RESULT = { succeeded: 'succeed', failed: 'fail', vetoed: 'veto' } as const;

type RegistryJson = Array<MetricObjectWithValues<MetricValue<string>>>;

export default definePlugin<MetricsConfig>({
  name: 'metrics',
  version: '1.0.0',
  configSchema: schema,
  apply({ hooks, config, proxyConfig, backends, sessions, migrations, plugins, workers, services, keep }) {
    // One registry per proxy and metrics config: counters survive reloads that leave this config alone.
    const metrics = keep(`metrics:${JSON.stringify(config)}`, () => new ProxyMetrics(config));
    metrics.source = { backends, sessions, migrations, plugins, maxConnections: proxyConfig.proxy['max-connections'] };

    hooks.onResult.tap('metrics', metrics.queries.record);
    hooks.connect.tap('metrics', () => {
      metrics.createdConnections.inc();
      return undefined;
    });
    hooks.close.tap('metrics', (ctx) => {
      metrics.disconnections.inc({ type: disconnectionType(ctx) });
      metrics.closeReasons.inc({ side: ctx.side, reason: ctx.reason });
      if (ctx.reason === 'no-backend') metrics.getBackendFailures.inc();
    });
    hooks.afterMigrate.tap('metrics', (outcome) => {
      const res = MIGRATE_RESULT[outcome.result];
      metrics.migrations.inc({ from: outcome.from.addr, to: outcome.to.addr, reason: outcome.reason, migrate_res: res });
      metrics.migrationDuration.observe({ from: outcome.from.addr, to: outcome.to.addr, migrate_res: res }, outcome.durationMs / 1000);
      if (outcome.result === 'vetoed') metrics.migrationVetoes.inc({ reason: metrics.vetoReasons.value(outcome.error ?? 'unknown') });
    });
    hooks.healthChecked.tap('metrics', (check) => {
      metrics.healthChecks.observe({ backend: check.backend.addr, result: check.ok ? 'ok' : 'fail' }, check.durationMs / 1000);
    });
    hooks.backendEvent.tap('metrics', (event) => {
      metrics.backendEvents.inc({ backend: event.backend.addr, event: event.type });
    });

    workers.answer(METRICS_TOPIC, () => metrics.registry.getMetricsAsJSON());
    const timeoutMs = config['worker-timeout'] * 1000;
    services.provide('metrics', {
      contentType: Registry.PROMETHEUS_CONTENT_TYPE,
      async render() {
        if (workers.count <= 1) return metrics.registry.metrics();
        // Every worker's registry (this one's included), summed per series by prom-client's aggregators.
        const answers = (await workers.askAll(METRICS_TOPIC, timeoutMs)) as RegistryJson[];
        return AggregatorRegistry.aggregate(answers).metrics();
      },
    });
  },
});
