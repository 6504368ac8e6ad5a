import { errors, type RouteDeps } from '../admin-state.js';

/** What the metrics plugin offers as service "metrics" (MetricsService in the public API). */
interface MetricsScrape {
  render(): Promise<string>;
  readonly contentType: string;
}

function isMetricsScrape(v: unknown): v is MetricsScrape {
  return typeof v === 'object' && v !== null && typeof (v as MetricsScrape).render === 'function' && typeof (v as MetricsScrape).contentType === 'string';
}

/** GET /metrics and /api/metrics/ (TiProxy's): the metrics plugin's Prometheus scrape. */
export function metricsRoutes({ app, ctx }: RouteDeps): void {
  // Looked up per request: the provider may come later in the plugin list. Through a plain lookup
  // until the metrics plugin declares its service type (TiproxyServices) in the public API.
  const lookup = ctx.services as unknown as { get(name: string): unknown };
  for (const url of ['/metrics', '/api/metrics']) {
    app.get(url, {
      schema: {
        tags: ['metrics'], summary: 'Prometheus metrics',
        description: 'Text exposition format from the metrics plugin; 404 when that plugin is disabled.',
        response: errors(404),
      },
    }, async (_req, reply) => {
      const metrics = lookup.get('metrics');
      if (!isMetricsScrape(metrics)) return reply.code(404).send({ error: 'metrics are off: the metrics plugin is disabled (plugins: - name: metrics)' });
      const text = await metrics.render();
      return reply.type(metrics.contentType).send(text);
    });
  }
}
