import { errors, type RouteDeps } from '../admin-state.js';

/** GET /metrics and /api/metrics/ (TiProxy's): the metrics plugin's Prometheus scrape. */
export function metricsRoutes({ app, ctx }: RouteDeps): void {
  for (const url of ['/metrics', '/api/metrics']) {
    app.get(url, {
      schema: {
        tags: ['metrics'], summary: 'Prometheus metrics',
        description: 'Text exposition format from the metrics plugin; 404 when that plugin is disabled.',
        response: errors(404),
      },
    }, async (_req, reply) => {
      // Looked up per request: the provider may come later in the plugin list, or be turned off by a reload.
      const metrics = ctx.services.get('metrics');
      if (!metrics) return reply.code(404).send({ error: 'metrics are off: the metrics plugin is disabled (plugins: - name: metrics)' });
      const text = await metrics.render();
      return reply.type(metrics.contentType).send(text);
    });
  }
}
