import type { SessionInfo } from '../../../plugin.js';
import { errors, type RouteDeps } from '../admin-state.js';
import { publicAttributes } from '../secret-redaction.js';

const SESSION_SCHEMA = {
  type: 'object',
  properties: {
    id: { type: 'integer', description: 'The proxy\'s connection id (what the client sees as CONNECTION_ID()).' },
    user: { type: 'string' },
    client: { type: 'string', description: 'Client address:port.' },
    database: { type: 'string' },
    backend: { type: ['string', 'null'] },
    backend_connection_id: { type: 'integer' },
    age_seconds: { type: 'number' },
    tls: { type: 'boolean' },
    in_transaction: { type: 'boolean' },
    migratable: { type: 'boolean', description: 'Could move at this moment.' },
    not_migratable_reason: { type: ['string', 'null'], description: 'Why not: in-transaction, command-in-flight, temporary tables, LOCK TABLES, a veto (e.g. no credentials for the user), …' },
    migration: { type: ['string', 'null'], enum: ['pending', 'running', null] },
    generation: { type: 'integer', description: 'Plugin generation serving it.' },
    labels: { type: 'object', additionalProperties: { type: 'string' } },
    attributes: { type: 'object', additionalProperties: { type: 'string' }, description: 'Connection attributes the client sent (secret-looking ones redacted).' },
  },
  required: ['id', 'user', 'client', 'database', 'backend', 'age_seconds', 'in_transaction', 'migratable', 'generation'],
} as const;

const ID_PARAMS = { type: 'object', properties: { id: { type: 'integer', minimum: 1 } }, required: ['id'] } as const;

/** GET /api/sessions, POST /api/sessions/{id}/migrate, DELETE /api/sessions/{id}. */
export function sessionRoutes({ app, ctx, state }: RouteDeps): void {
  const describe = (s: SessionInfo) => {
    const facts = ctx.proxy.sessionFacts(s.id);
    const reason = facts?.notMovable ?? (s.tracked.temporaryTables ? 'temporary tables' : s.tracked.lockTables ? 'LOCK TABLES' : null);
    return {
      id: s.id, user: s.user, client: `${s.clientAddress}:${s.clientPort}`, database: s.database, backend: s.backend?.addr ?? null,
      backend_connection_id: s.backendConnectionId, age_seconds: Math.round((Date.now() - s.createdAt) / 100) / 10, tls: s.tls,
      in_transaction: s.inTransaction, migratable: reason === null && s.backend !== null, not_migratable_reason: reason,
      migration: facts?.migration ?? null, generation: facts?.generation ?? 0,
      labels: Object.fromEntries(s.labels), attributes: publicAttributes(s.attributes),
    };
  };

  app.get<{ Querystring: { backend?: string; user?: string } }>('/api/sessions', {
    schema: {
      tags: ['sessions'], summary: 'Sessions of this proxy process',
      querystring: { type: 'object', properties: { backend: { type: 'string', description: 'Only sessions on this backend (host:port).' }, user: { type: 'string', description: 'Only sessions of this user.' } } },
      response: { 200: { type: 'array', items: SESSION_SCHEMA } },
    },
  }, async (req) => ctx.sessions.list()
    .filter((s) => (req.query.backend === undefined || s.backend?.addr === req.query.backend) && (req.query.user === undefined || s.user === req.query.user))
    .map(describe));

  app.post<{ Params: { id: number }; Body: { to?: string } | undefined; Querystring: { wait?: number } }>('/api/sessions/:id/migrate', {
    schema: {
      tags: ['sessions'], summary: 'Move a session to another backend',
      description: 'Asks for a move at the session\'s next safe point (between commands, outside a transaction); the balancer picks the target unless `to` names one. Answers 202 at once, or with ?wait=S waits up to S seconds for the outcome (200 succeeded; 409 vetoed or failed, with the reason; 202 still pending).',
      params: ID_PARAMS,
      querystring: { type: 'object', properties: { wait: { type: 'number', minimum: 0, maximum: 300 } } },
      body: { type: 'object', additionalProperties: false, properties: { to: { type: 'string', description: 'Target backend host:port.' } } },
      response: {
        200: { type: 'object', properties: { session: { type: 'integer' }, status: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' } } },
        202: { type: 'object', properties: { session: { type: 'integer' }, status: { type: 'string' } } },
        ...errors(400, 401, 404, 409),
      },
    },
  }, async (req, reply) => {
    const session = ctx.sessions.get(req.params.id);
    if (!session) return reply.code(404).send({ error: `no session ${req.params.id}` });
    const to = req.body?.to;
    if (to !== undefined) {
      const target = ctx.backends.get(to);
      if (!target) return reply.code(404).send({ error: `no backend ${to} (GET /api/backends lists them)` });
      if (session.backend?.addr === to) return reply.code(409).send({ error: `session ${session.id} is already on ${to}` });
      if (!target.healthy || target.draining) return reply.code(409).send({ error: `backend ${to} is ${target.draining ? 'draining' : 'unhealthy'}` });
    }
    const outcome = req.query.wait ? state.migrations.next(session.id, req.query.wait * 1000) : null;
    if (!ctx.migrations.request(session.id, 'admin', to)) {
      const facts = ctx.proxy.sessionFacts(session.id);
      const why = facts?.migration ? `a migration is already ${facts.migration}` : facts?.notMovable ?? 'the session cannot move';
      return reply.code(409).send({ error: `session ${session.id} not moved: ${why}` });
    }
    ctx.logger.info({ conn: session.id, to }, 'migration requested through the API');
    const done = outcome ? await outcome : null;
    if (!done) return reply.code(202).send({ session: session.id, status: 'pending' });
    if (done.result === 'succeeded') return { session: session.id, status: 'succeeded', from: done.from, to: done.to };
    return reply.code(409).send({ error: `migration of session ${session.id} ${done.result}: ${done.error ?? 'no reason given'}` });
  });

  app.delete<{ Params: { id: number } }>('/api/sessions/:id', {
    schema: {
      tags: ['sessions'], summary: 'Close a session', description: 'The client\'s connection is closed by the proxy.',
      params: ID_PARAMS,
      response: { 200: { type: 'object', properties: { closed: { type: 'integer' } } }, ...errors(401, 404) },
    },
  }, async (req, reply) => {
    if (!ctx.proxy.closeSession(req.params.id, 'closed through the admin API')) return reply.code(404).send({ error: `no session ${req.params.id}` });
    ctx.logger.info({ conn: req.params.id }, 'session closed through the API');
    return { closed: req.params.id };
  });
}
