import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { fastify, LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { HttpHandler, PluginContext } from '../../plugin.js';
import type { AdminApiConfig, AdminState, RouteDeps } from './admin-state.js';
import { configuredToken, isLoopback, refusal } from './bearer-token.js';
import { collectRoute, openApiDocument, type ApiRoute } from './openapi.js';
import { backendRoutes } from './routes/backends.js';
import { configRoutes } from './routes/config.js';
import { consoleRoutes } from './routes/console.js';
import { healthRoutes } from './routes/health.js';
import { metricsRoutes } from './routes/metrics.js';
import { pluginRoutes } from './routes/plugins.js';
import { sessionRoutes } from './routes/sessions.js';
import { trafficRoutes } from './routes/traffic.js';

export const API_VERSION = '1.0.0';

const MUTATING = new Set(['PUT', 'POST', 'DELETE', 'PATCH']);

/**
 * The fastify application of one generation. It never listens itself: the kernel owns the port
 * (ctx.proxy.serveHttp), so fastify's request handler is captured from serverFactory and handed over.
 */
export async function createAdminApp(ctx: PluginContext<AdminApiConfig>, state: AdminState): Promise<{ app: FastifyInstance; handler: HttpHandler; routes: readonly ApiRoute[] }> {
  let handler: HttpHandler | null = null;
  const logger: FastifyBaseLogger = ctx.logger;
  const app = fastify({
    loggerInstance: logger,
    // One debug line per request (onResponse below) instead of fastify's two at info.
    logController: new LogController({ disableRequestLogging: true }),
    routerOptions: { ignoreTrailingSlash: true },
    serverFactory: (h) => {
      handler = h as (req: IncomingMessage, res: ServerResponse) => void;
      return createServer();
    },
  });
  const routes: ApiRoute[] = [];
  app.addHook('onRoute', (route) => collectRoute(route, routes));

  // Read once per generation: a reload picks up a new token (or token file content).
  const token = configuredToken(ctx.proxy.config());
  app.addHook('onRequest', async (req, reply) => {
    if (!MUTATING.has(req.method)) return;
    const bound = ctx.proxy.httpAddress();
    const why = refusal(req.headers.authorization, token, bound !== null && !isLoopback(bound.host));
    if (why === null) return;
    // The attempt is logged without the header's value.
    ctx.logger.warn({ method: req.method, url: req.url, client: req.ip, reason: why }, 'API change refused (401)');
    return reply.code(401).header('www-authenticate', 'Bearer').send({ error: why });
  });
  app.addHook('onResponse', async (req, reply) => {
    ctx.logger.debug({ method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'API request');
  });
  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) ctx.logger.error({ err, method: req.method, url: req.url }, 'API request failed');
    return reply.code(status).send({ error: err.message });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no endpoint ${req.method} ${req.url.split('?')[0]} (GET /api/openapi.json lists them)` }));

  const deps: RouteDeps = { app, ctx, state };
  healthRoutes(deps);
  metricsRoutes(deps);
  configRoutes(deps);
  backendRoutes(deps);
  sessionRoutes(deps);
  pluginRoutes(deps);
  consoleRoutes(deps);
  trafficRoutes(deps);
  app.get('/api/openapi.json', {
    schema: { tags: ['meta'], summary: 'This API as an OpenAPI 3.1 document' },
  }, async () => openApiDocument(routes, API_VERSION));

  await app.ready();
  if (!handler) throw new Error('fastify did not hand over its request handler');
  return { app, handler, routes };
}
