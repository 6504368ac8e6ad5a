import type { Registry } from 'prom-client';

export interface SnapshotValue {
  labels: Record<string, string | number>;
  value: number;
  /** For histogram series: "<name>_bucket", "_sum", "_count". */
  metricName?: string;
}

export interface SnapshotMetricSpec {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  /** How workers' values combine in one scrape (prom-client's aggregators): totals sum, states take the max. */
  aggregator: 'sum' | 'max';
  /** Read when scraped: the values as they are now. */
  values(): SnapshotValue[];
}

/**
 * Registers a metric whose values are read from the proxy when scraped instead of being pushed on each
 * event (counts the kernel already keeps, the hot path's own tallies). It has the shape prom-client's
 * registry renders and aggregates (its AggregatorRegistry registers merged metrics the same way).
 */
export function registerSnapshotMetric(registry: Registry, spec: SnapshotMetricSpec): void {
  const metric = {
    name: spec.name,
    help: spec.help,
    type: spec.type,
    aggregator: spec.aggregator,
    get: () => Promise.resolve({ name: spec.name, help: spec.help, type: spec.type, aggregator: spec.aggregator, values: spec.values() }),
  };
  registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
}
