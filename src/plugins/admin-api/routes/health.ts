import { createHash } from 'node:crypto';
import type { FrozenConfig } from '../../../plugin.js';
import { errors, type RouteDeps } from '../admin-state.js';

const HEALTH_SCHEMA = {
  type: 'object',
  properties: {
    config_checksum: { type: 'integer', description: 'A 32-bit checksum of the running configuration: equal on proxies that run the same config.' },
    unhealthy_reason: { type: 'string', description: 'Present when unhealthy (502): shutting down, no healthy backend, or the manual override\'s reason.' },
  },
  required: ['config_checksum'],
} as const;

/** TiProxy reports a CRC32; any stable 32-bit digest of the config serves the same purpose (compare proxies). */
export function configChecksum(config: FrozenConfig): number {
  return createHash('sha256').update(JSON.stringify(config)).digest().readUInt32BE(0);
}

/** GET/PUT/DELETE /api/debug/health (TiProxy's). */
export function healthRoutes({ app, ctx, state }: RouteDeps): void {
  const unhealthyReason = (): string | null => {
    if (ctx.proxy.phase() !== 'running') return 'shutting down';
    if (state.healthOverride) return state.healthOverride.reason;
    const backends = ctx.backends.list();
    if (backends.some((b) => b.healthy && !b.draining)) return null;
    if (backends.length === 0) return 'no healthy backend: no backend is known';
    const why = backends.map((b) => `${b.addr} ${b.draining ? 'draining' : `unhealthy (${state.healthReasons.get(b.addr) ?? 'failed checks'})`}`);
    return `no healthy backend: ${why.join('; ')}`;
  };
  const answer = (reply: { code(n: number): unknown }) => {
    const reason = unhealthyReason();
    const body = { config_checksum: configChecksum(ctx.proxy.config()), ...(reason === null ? {} : { unhealthy_reason: reason }) };
    reply.code(reason === null ? 200 : 502);
    return body;
  };

  app.get('/api/debug/health', {
    schema: {
      tags: ['health'], summary: 'Whether load balancers should send clients to this proxy',
      description: '200 when serving; 502 while shutting down (from SIGTERM on, for proxy.graceful-wait-before-shutdown seconds before the SQL port closes), when no backend is healthy and undrained, or while the manual override is set.',
      response: { 200: HEALTH_SCHEMA, 502: HEALTH_SCHEMA },
    },
  }, async (_req, reply) => answer(reply));

  app.put<{ Body: { healthy: boolean; reason?: string } }>('/api/debug/health', {
    schema: {
      tags: ['health'], summary: 'Set or clear the manual override',
      description: '{"healthy": false, "reason": "…"} makes the endpoint answer 502 with that reason (to take the proxy out of a load balancer) until cleared; {"healthy": true} clears it. SQL is served as before. Kept across reloads, not across restarts.',
      body: {
        type: 'object', additionalProperties: false, required: ['healthy'],
        properties: { healthy: { type: 'boolean' }, reason: { type: 'string', maxLength: 500 } },
      },
      response: { 200: HEALTH_SCHEMA, 502: HEALTH_SCHEMA, ...errors(400, 401) },
    },
  }, async (req, reply) => {
    state.healthOverride = req.body.healthy ? null : { reason: req.body.reason || 'marked unhealthy by the operator', since: Date.now() };
    ctx.logger.warn({ healthy: req.body.healthy, reason: state.healthOverride?.reason }, req.body.healthy ? 'health override cleared' : 'health override set');
    return answer(reply);
  });

  app.delete('/api/debug/health', {
    schema: { tags: ['health'], summary: 'Clear the manual override', response: { 200: HEALTH_SCHEMA, 502: HEALTH_SCHEMA, ...errors(401) } },
  }, async (_req, reply) => {
    if (state.healthOverride) ctx.logger.warn('health override cleared');
    state.healthOverride = null;
    return answer(reply);
  });
}
