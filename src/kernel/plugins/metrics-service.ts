/**
 * The metrics plugin's service (`ctx.services.get('metrics')`), what the admin API serves on /metrics.
 * Part of the public API so a consumer needs neither the metrics plugin nor prom-client.
 */
export interface MetricsService {
  /** Prometheus text exposition of the whole proxy (with proxy.workers > 1: summed over all workers). */
  render(): Promise<string>;
  /** The Content-Type header for render()'s text. */
  readonly contentType: string;
}
