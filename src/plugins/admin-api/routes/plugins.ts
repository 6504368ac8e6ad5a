import type { GenerationSummary } from '../../../plugin.js';
import { errors, type RouteDeps } from '../admin-state.js';

const GENERATION_SCHEMA = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    created_at: { type: 'string', format: 'date-time' },
    sessions_on_older: { type: 'integer', description: 'Sessions not yet on this generation (they adopt it at their next safe point).' },
  },
  required: ['id'],
} as const;

/** GET /api/plugins, POST /api/plugins/reload, GET /api/migrations. */
export function pluginRoutes({ app, ctx, state }: RouteDeps): void {
  const generation = (g: GenerationSummary) => ({ id: g.id, created_at: new Date(g.createdAt).toISOString(), sessions_on_older: g.sessionsOnOlder });

  app.get('/api/plugins', {
    schema: {
      tags: ['plugins'], summary: 'The plugin generation, its plugins and their errors',
      response: {
        200: {
          type: 'object',
          properties: {
            generation: GENERATION_SCHEMA,
            plugins: {
              type: 'array',
              items: { type: 'object', properties: { name: { type: 'string' }, version: { type: 'string' }, errors: { type: 'integer', description: 'Hook failures since start.' } } },
            },
            errors: { type: 'object', additionalProperties: { type: 'integer' }, description: 'Hook failures by "plugin/hook".' },
            plugin_dir: { type: 'string' },
            last_compile_error: {
              type: ['object', 'null'],
              description: 'The last failure to compile plugin-dir (null once it compiles).',
              properties: { message: { type: 'string' }, file: { type: 'string' }, line: { type: 'integer' }, column: { type: 'integer' }, at: { type: 'string', format: 'date-time' } },
            },
            reloads: {
              type: 'object',
              description: 'Generation rebuilds since start (config reloads, plugin-dir changes, POST /api/plugins/reload).',
              properties: {
                succeeded: { type: 'integer' }, failed: { type: 'integer' },
                last_error: { type: ['string', 'null'], description: 'Why the last failed rebuild failed (config error, a plugin failing to apply, a compile error).' },
              },
            },
          },
        },
      },
    },
  }, async () => {
    const g = ctx.proxy.generation();
    const errorCounts = ctx.proxy.pluginErrors();
    const perPlugin = new Map<string, number>();
    for (const [key, n] of errorCounts) {
      const plugin = key.split('/')[0]!;
      perPlugin.set(plugin, (perPlugin.get(plugin) ?? 0) + n);
    }
    const failure = ctx.proxy.pluginCompileFailure();
    const reloads = ctx.plugins.reloads();
    return {
      generation: generation(g),
      plugins: g.plugins.map((p) => ({ name: p.name, version: p.version, errors: perPlugin.get(p.name) ?? 0 })),
      errors: Object.fromEntries(errorCounts),
      plugin_dir: ctx.proxy.config()['plugin-dir'],
      last_compile_error: failure ? { ...failure, at: new Date(failure.at).toISOString() } : null,
      reloads: { succeeded: reloads.succeeded, failed: reloads.failed, last_error: reloads.lastError },
    };
  });

  app.post<{ Reply: unknown }>('/api/plugins/reload', {
    schema: {
      tags: ['plugins'], summary: 'Recompile plugin-dir and rebuild the plugin generation',
      description: 'Like an edit in plugin-dir: on any error (compile, config, a required plugin failing) the running generation stays and the answer says why.',
      response: { 200: { type: 'object', properties: { generation: GENERATION_SCHEMA } }, ...errors(400, 401) },
    },
  }, async (_req, reply) => {
    try {
      return { generation: generation(await ctx.proxy.reloadPlugins()) };
    } catch (err) {
      return reply.code(400).send({ error: `reload rejected, keeping generation ${ctx.proxy.generation().id}: ${(err as Error).message}` });
    }
  });

  app.get('/api/migrations', {
    schema: {
      tags: ['migrations'], summary: 'Pending, running and recent session migrations',
      response: {
        200: {
          type: 'object',
          properties: {
            pending: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  session: { type: 'integer' }, from: { type: ['string', 'null'] }, to: { type: ['string', 'null'] }, reason: { type: 'string' },
                  requested_at: { type: 'string', format: 'date-time' }, waiting_for: { type: ['string', 'null'], description: 'What keeps it from running now.' },
                },
              },
            },
            running: { type: 'array', items: { type: 'object', properties: { session: { type: 'integer' }, from: { type: ['string', 'null'] }, to: { type: ['string', 'null'] }, reason: { type: 'string' } } } },
            recent: {
              type: 'array',
              description: 'Finished migrations, newest first (bounded: the plugin\'s recent-migrations).',
              items: {
                type: 'object',
                properties: {
                  session: { type: 'integer' }, from: { type: 'string' }, to: { type: 'string' }, reason: { type: 'string' },
                  result: { enum: ['succeeded', 'failed', 'vetoed'] }, duration_ms: { type: 'number' }, error: { type: ['string', 'null'] },
                  retry: { type: ['boolean', 'null'] }, at: { type: 'string', format: 'date-time' },
                },
              },
            },
          },
        },
      },
    },
  }, async () => {
    const running = new Set(ctx.proxy.runningMigrations());
    const requests = ctx.migrations.pending();
    const row = (r: (typeof requests)[number]) => ({ session: r.sessionId, from: ctx.sessions.get(r.sessionId)?.backend?.addr ?? null, to: r.to ?? null, reason: r.reason });
    return {
      pending: requests.filter((r) => !running.has(r.sessionId)).map((r) => ({
        ...row(r), requested_at: new Date(r.requestedAt).toISOString(), waiting_for: ctx.proxy.sessionFacts(r.sessionId)?.notMovable ?? null,
      })),
      running: requests.filter((r) => running.has(r.sessionId)).map(row),
      recent: state.migrations.recent().map((m) => ({ ...m, at: new Date(m.at).toISOString() })),
    };
  });
}
