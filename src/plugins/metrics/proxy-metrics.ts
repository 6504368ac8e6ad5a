import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import type { BackendDirectory, MigrationDirectory, PluginHostInfo, SessionDirectory } from '../../plugin.js';
import { BoundedLabels } from './bounded-labels.js';
import { DISCONNECTION_TYPES } from './disconnection-type.js';
import { QueryRecorder } from './query-recorder.js';
import { registerSnapshotMetric, type SnapshotValue } from './snapshot-metric.js';

export interface MetricsConfig {
  'query-duration-buckets': number[];
  'migration-duration-buckets': number[];
  'health-check-buckets': number[];
  'per-backend': boolean;
  'process-metrics': boolean;
  'default-labels': Record<string, string>;
  'worker-timeout': number;
}

/** What the scrape-time metrics read; the newest generation's plugin context. */
export interface MetricsSource {
  backends: BackendDirectory;
  sessions: SessionDirectory;
  migrations: MigrationDirectory;
  plugins: PluginHostInfo;
  maxConnections: number;
}

/** Distinct free-text reasons per metric before the rest count as "other". */
const MAX_REASONS = 50;

/**
 * One proxy process's metrics: a prom-client registry with the event counters the plugin's taps feed
 * and the scrape-time metrics read from `source`. Kept across plugin generations (ctx.keep), so a
 * reload does not reset the counters.
 */
export class ProxyMetrics {
  readonly registry = new Registry();
  source: MetricsSource | null = null;
  readonly queries: QueryRecorder;
  readonly createdConnections: Counter;
  readonly disconnections: Counter<'type'>;
  readonly closeReasons: Counter<'side' | 'reason'>;
  readonly getBackendFailures: Counter;
  readonly migrations: Counter<'from' | 'to' | 'reason' | 'migrate_res'>;
  readonly migrationDuration: Histogram<'from' | 'to' | 'migrate_res'>;
  readonly migrationVetoes: Counter<'reason'>;
  readonly healthChecks: Histogram<'backend' | 'result'>;
  readonly backendEvents: Counter<'backend' | 'event'>;
  readonly vetoReasons = new BoundedLabels(MAX_REASONS);
  private readonly unmovableReasons = new BoundedLabels(MAX_REASONS);

  constructor(readonly config: MetricsConfig) {
    const registers = [this.registry];
    if (Object.keys(config['default-labels']).length > 0) this.registry.setDefaultLabels(config['default-labels']);
    if (config['process-metrics']) collectDefaultMetrics({ register: this.registry });
    this.queries = new QueryRecorder(config['query-duration-buckets'], config['per-backend']);

    this.createdConnections = new Counter({ name: 'tiproxy_server_create_connection_total', help: 'Client connections accepted.', registers });
    this.disconnections = new Counter({
      name: 'tiproxy_server_disconnection_total', help: 'Client sessions ended, by TiProxy\'s disconnection type.', labelNames: ['type'], registers,
    });
    for (const type of DISCONNECTION_TYPES) this.disconnections.inc({ type }, 0);
    this.closeReasons = new Counter({
      name: 'tiproxy_server_close_reason_total', help: 'Client sessions ended, by the side that caused it and the proxy\'s own close reason.',
      labelNames: ['side', 'reason'], registers,
    });
    this.getBackendFailures = new Counter({
      name: 'tiproxy_backend_get_backend_fail_total', help: 'Sessions that could not get any backend (none healthy, or every dial failed).', registers,
    });
    this.migrations = new Counter({
      name: 'tiproxy_balance_migrate_total', help: 'Session migrations by source, target, reason and result (succeed, fail, veto).',
      labelNames: ['from', 'to', 'reason', 'migrate_res'], registers,
    });
    this.migrationDuration = new Histogram({
      name: 'tiproxy_balance_migrate_duration_seconds', help: 'Time a migration took, from the request being started to the swap or the failure.',
      labelNames: ['from', 'to', 'migrate_res'], buckets: config['migration-duration-buckets'], registers,
    });
    this.migrationVetoes = new Counter({
      name: 'tiproxy_balance_migrate_veto_total', help: 'Migrations vetoed, by the veto\'s reason.', labelNames: ['reason'], registers,
    });
    this.healthChecks = new Histogram({
      name: 'tiproxy_backend_health_check_seconds', help: 'Time of one health check of a backend, by result (ok, fail).',
      labelNames: ['backend', 'result'], buckets: config['health-check-buckets'], registers,
    });
    this.backendEvents = new Counter({
      name: 'tiproxy_backend_event_total', help: 'Backend list changes: added, removed, health, draining, labels.', labelNames: ['backend', 'event'], registers,
    });
    this.registerSnapshots();
  }

  private registerSnapshots(): void {
    const reg = this.registry;
    const src = (): MetricsSource | null => this.source;
    registerSnapshotMetric(reg, {
      name: 'tiproxy_server_connections', help: 'Client sessions open now.', type: 'gauge', aggregator: 'sum',
      values: () => [{ labels: {}, value: src()?.sessions.count() ?? 0 }],
    });
    registerSnapshotMetric(reg, {
      name: 'tiproxy_server_max_connections', help: 'proxy.max-connections of each worker, summed (0: unlimited).', type: 'gauge', aggregator: 'sum',
      values: () => [{ labels: {}, value: src()?.maxConnections ?? 0 }],
    });
    registerSnapshotMetric(reg, {
      name: 'tiproxy_session_query_total', help: 'Commands that got a response, by backend and command type.', type: 'counter', aggregator: 'sum',
      values: () => this.queries.totals(),
    });
    registerSnapshotMetric(reg, {
      name: 'tiproxy_session_query_error_total', help: 'Commands whose response was an error (ERR packet), by backend and command type. Not logged per command.',
      type: 'counter', aggregator: 'sum', values: () => this.queries.errorTotals(),
    });
    registerSnapshotMetric(reg, {
      name: 'tiproxy_session_query_duration_seconds', help: 'Time from forwarding a command to the end of its response, by backend and command type.',
      type: 'histogram', aggregator: 'sum', values: () => this.queries.histogram('tiproxy_session_query_duration_seconds'),
    });
    registerSnapshotMetric(reg, {
      name: 'tiproxy_balance_b_conn', help: 'Client sessions on each backend.', type: 'gauge', aggregator: 'sum',
      values: () => this.sessionsPerBackend(),
    });
    const backendFlag = (pick: (b: { healthy: boolean; draining: boolean }) => boolean) => (): SnapshotValue[] =>
      (src()?.backends.list() ?? []).map((b) => ({ labels: { backend: b.addr }, value: pick(b) ? 1 : 0 }));
    registerSnapshotMetric(reg, {
      name: 'tiproxy_backend_healthy', help: '1 while the backend passes its health checks, else 0.', type: 'gauge', aggregator: 'max',
      values: backendFlag((b) => b.healthy),
    });
    registerSnapshotMetric(reg, {
      name: 'tiproxy_backend_draining', help: '1 while the backend is drained (no new sessions, sessions moved away), else 0.', type: 'gauge', aggregator: 'max',
      values: backendFlag((b) => b.draining),
    });
    const traffic = (pick: 'received' | 'sent') => (): SnapshotValue[] => {
      const s = src();
      if (!s) return [];
      const out: SnapshotValue[] = [];
      for (const b of s.backends.list()) {
        const t = s.backends.traffic(b.addr);
        if (t) out.push({ labels: { backend: b.addr }, value: t[pick] });
      }
      return out;
    };
    registerSnapshotMetric(reg, {
      name: 'tiproxy_traffic_inbound_bytes', help: 'Bytes received from each backend (on the wire, TLS included).', type: 'counter', aggregator: 'sum',
      values: traffic('received'),
    });
    registerSnapshotMetric(reg, {
      name: 'tiproxy_traffic_outbound_bytes', help: 'Bytes sent to each backend (on the wire, TLS included).', type: 'counter', aggregator: 'sum',
      values: traffic('sent'),
    });
    registerSnapshotMetric(reg, {
      name: 'tiproxy_balance_migrate_dropped_total',
      help: 'Migration requests that ended without a move, by why: refused when made (target-is-source, target-unavailable) or dropped after failing (no-other-backend, failed).',
      type: 'counter', aggregator: 'sum',
      values: () => [...(src()?.migrations.dropped() ?? new Map<string, number>())].map(([reason, value]) => ({ labels: { reason }, value })),
    });
    registerSnapshotMetric(reg, {
      name: 'tiproxy_balance_migrate_concurrency',
      help: 'Migrations the kernel allows at once now: it halves them when foreground traffic drops below 80 % of its undisturbed rate or the event loop lags, and grows them otherwise (0 during a probe).',
      type: 'gauge', aggregator: 'sum', values: () => [{ labels: {}, value: src()?.migrations.pacing().concurrency ?? 0 }],
    });
    registerSnapshotMetric(reg, {
      name: 'tiproxy_balance_migrate_running', help: 'Migrations running now.', type: 'gauge', aggregator: 'sum',
      values: () => [{ labels: {}, value: src()?.migrations.pacing().running ?? 0 }],
    });
    registerSnapshotMetric(reg, {
      name: 'tiproxy_balance_migrate_pending', help: 'Migration requests not carried out yet.', type: 'gauge', aggregator: 'sum',
      values: () => [{ labels: {}, value: src()?.migrations.pending().length ?? 0 }],
    });
    registerSnapshotMetric(reg, {
      name: 'tiproxy_session_unmovable', help: 'Sessions that cannot migrate now, by why (a veto\'s reason, in transaction, temporary tables, table locks).',
      type: 'gauge', aggregator: 'sum', values: () => this.unmovableSessions(),
    });
    const hookStat = (pick: 'calls' | 'errors' | 'seconds') => (): SnapshotValue[] =>
      (src()?.plugins.hookStats() ?? []).map((s) => ({ labels: { plugin: s.plugin, hook: s.hook }, value: s[pick] }));
    registerSnapshotMetric(reg, {
      name: 'tiproxy_plugin_hook_calls_total', help: 'Calls of each plugin\'s taps, by plugin and hook.', type: 'counter', aggregator: 'sum',
      values: hookStat('calls'),
    });
    registerSnapshotMetric(reg, {
      name: 'tiproxy_plugin_hook_errors_total', help: 'Taps that threw or rejected, by plugin and hook.', type: 'counter', aggregator: 'sum',
      values: hookStat('errors'),
    });
    registerSnapshotMetric(reg, {
      name: 'tiproxy_plugin_hook_seconds_total', help: 'Time spent in each plugin\'s taps, by plugin and hook (divide by calls for the mean); per-query hooks are timed one call in 16 and scaled.',
      type: 'counter', aggregator: 'sum', values: hookStat('seconds'),
    });
    registerSnapshotMetric(reg, {
      name: 'tiproxy_plugin_generation', help: 'Id of the plugin generation new sessions get (highest over workers).', type: 'gauge', aggregator: 'max',
      values: () => [{ labels: {}, value: src()?.plugins.generation() ?? 0 }],
    });
    registerSnapshotMetric(reg, {
      name: 'tiproxy_plugin_reload_total', help: 'Generation rebuilds (config reloads, plugin-dir changes) by result.', type: 'counter', aggregator: 'sum',
      values: () => {
        const r = src()?.plugins.reloads() ?? { succeeded: 0, failed: 0 };
        return [{ labels: { result: 'succeeded' }, value: r.succeeded }, { labels: { result: 'failed' }, value: r.failed }];
      },
    });
  }

  /** This process's own sessions per backend (BackendInfo.connections counts every worker's). */
  private sessionsPerBackend(): SnapshotValue[] {
    const s = this.source;
    if (!s) return [];
    const counts = new Map<string, number>(s.backends.list().map((b) => [b.addr, 0]));
    for (const session of s.sessions.list()) {
      const addr = session.backend?.addr;
      if (addr !== undefined) counts.set(addr, (counts.get(addr) ?? 0) + 1);
    }
    return [...counts].map(([backend, value]) => ({ labels: { backend }, value }));
  }

  private unmovableSessions(): SnapshotValue[] {
    const s = this.source;
    if (!s) return [];
    const counts = new Map<string, number>();
    for (const session of s.sessions.list()) {
      const vetoed = s.migrations.unmovableReason(session.id);
      const reason = vetoed !== null ? this.unmovableReasons.value(vetoed)
        : session.inTransaction ? 'in transaction'
          : session.tracked.temporaryTables ? 'temporary tables'
            : session.tracked.lockTables ? 'table locks' : null;
      if (reason !== null) counts.set(reason, (counts.get(reason) ?? 0) + 1);
    }
    return [...counts].map(([reason, value]) => ({ labels: { reason }, value }));
  }
}
