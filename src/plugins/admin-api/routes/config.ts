import { dump, load } from 'js-yaml';
import { ConfigError } from '../../../plugin.js';
import { errors, type RouteDeps } from '../admin-state.js';
import { dropRedacted, redactSecrets } from '../secret-redaction.js';
import { configChecksum } from './health.js';

const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml'];

/** GET/PUT /api/admin/config/ (TiProxy's). */
export function configRoutes({ app, ctx }: RouteDeps): void {
  app.addContentTypeParser(YAML_TYPES, { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, load(body as string) ?? {});
    } catch (err) {
      const e = Object.assign(new Error(`YAML syntax error: ${(err as Error).message.split('\n')[0]}`), { statusCode: 400 });
      done(e, undefined);
    }
  });

  app.get<{ Querystring: { format?: 'yaml' | 'json' } }>('/api/admin/config', {
    schema: {
      tags: ['config'], summary: 'The running configuration',
      description: 'YAML by default, JSON with ?format=json; defaults filled in, secrets (tokens, passwords, hashes) replaced by "<redacted>".',
      querystring: { type: 'object', properties: { format: { enum: ['yaml', 'json'], default: 'yaml' } } },
    },
  }, async (req, reply) => {
    const shown = redactSecrets(ctx.proxy.config());
    if (req.query.format === 'json') return reply.type('application/json; charset=utf-8').send(JSON.stringify(shown, null, 2));
    return reply.type('application/yaml; charset=utf-8').send(dump(shown, { lineWidth: 120, noRefs: true }));
  });

  app.put<{ Body: Record<string, unknown> }>('/api/admin/config', {
    schema: {
      tags: ['config'], summary: 'Change the running configuration',
      description: 'A partial document (JSON, or YAML with Content-Type: application/yaml) deep-merged into the running config: mappings merge key by key, `plugins` entries merge by name (a new name is appended; `enabled: false` turns a plugin off), other lists are replaced; "<redacted>" values keep the running value. Validated by the same schemas as the file (400 naming the key path) and applied as a new plugin generation. The change lives in memory only: it is not written to the config file, so a restart, SIGHUP or an edit of the file goes back to what the file says.',
      body: { type: 'object' },
      response: {
        200: {
          type: 'object',
          properties: { generation: { type: 'integer' }, config_checksum: { type: 'integer' } },
          required: ['generation', 'config_checksum'],
        },
        ...errors(400, 401, 500),
      },
    },
  }, async (req, reply) => {
    try {
      const generation = await ctx.proxy.applyConfig(dropRedacted(req.body));
      ctx.logger.info({ generation: generation.id, keys: Object.keys(req.body) }, 'configuration changed through the API');
      return { generation: generation.id, config_checksum: configChecksum(ctx.proxy.config()) };
    } catch (err) {
      if (err instanceof ConfigError) {
        return reply.code(400).send({
          error: err.message, key_path: err.keyPath, issues: err.issues.map((i) => ({ key_path: i.keyPath, reason: i.reason })),
        });
      }
      ctx.logger.error({ err }, 'configuration change through the API failed');
      return reply.code(500).send({ error: `not applied, the running configuration stays: ${(err as Error).message}` });
    }
  });
}
