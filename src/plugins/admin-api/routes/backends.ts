import type { BackendInfo } from '../../../plugin.js';
import { errors, type RouteDeps } from '../admin-state.js';

const BACKEND_SCHEMA = {
  type: 'object',
  properties: {
    addr: { type: 'string' },
    labels: { type: 'object', additionalProperties: { type: 'string' } },
    healthy: { type: 'boolean' },
    health_reason: { type: ['string', 'null'], description: 'Why it is (un)healthy, from the last health change; null before any.' },
    draining: { type: 'boolean', description: 'No new sessions; existing ones move away (needs migration).' },
    drain_mark: {
      type: ['object', 'null'],
      description: 'The fleet drain mark in etcd that drains it on every proxy (pd-addrs), or null.',
      properties: { by: { type: 'string' }, at: { type: 'string' }, reason: { type: 'string' } },
    },
    sessions: { type: 'integer', description: 'Sessions on it (with proxy.workers > 1: of every worker).' },
    server_version: { type: ['string', 'null'] },
    qps: { type: 'number', description: 'Commands per second over the last 10 s (this proxy process).' },
    p99_ms: { type: ['number', 'null'], description: '99th percentile command latency over the last 10 s, ms (histogram bucket bound, up to 19 % high).' },
    balance: {
      type: 'object',
      description: 'The balancer\'s factors in its order (TiProxy\'s: health, drain status, labels, then load); a backend that fails an earlier one gets no new sessions.',
      properties: {
        routable: { type: 'boolean', description: 'May receive new sessions: healthy and not draining.' },
        healthy: { type: 'boolean' },
        draining: { type: 'boolean' },
        labels: { type: 'object', additionalProperties: { type: 'string' } },
        sessions: { type: 'integer' },
        p99_ms: { type: ['number', 'null'] },
      },
    },
  },
  required: ['addr', 'labels', 'healthy', 'draining', 'sessions', 'qps'],
} as const;

const DRAIN_SCHEMA = {
  type: 'object',
  properties: {
    addr: { type: 'string' },
    draining: { type: 'boolean' },
    sessions: { type: 'integer', description: 'Sessions still on the backend.' },
    fleet: { type: 'boolean', description: 'The change was written to etcd as a drain mark (deleted, for undrain): every proxy of the fleet follows it.' },
    marked_by: { type: ['string', 'null'], description: 'With a fleet drain: the proxy that wrote the mark first.' },
  },
  required: ['addr', 'draining', 'sessions', 'fleet'],
} as const;

const ADDR_PARAMS = { type: 'object', properties: { addr: { type: 'string', description: 'host:port of the backend (URL-encoded).' } }, required: ['addr'] } as const;

/** GET /api/backends, POST /api/backends/{addr}/drain and /undrain. */
export function backendRoutes({ app, ctx, state }: RouteDeps): void {
  const markOf = (addr: string) => {
    const mark = ctx.services.get('fleet')?.drainMarks().get(addr);
    return mark ? { by: mark.by, at: mark.at, reason: mark.reason } : null;
  };
  const describe = (b: BackendInfo) => {
    const load = state.load.summary(b.addr);
    const p99 = load.p99Ms === null ? null : Math.round(load.p99Ms * 1000) / 1000;
    return {
      addr: b.addr, labels: b.labels, healthy: b.healthy, health_reason: state.healthReasons.get(b.addr) ?? null, draining: b.draining,
      drain_mark: markOf(b.addr),
      sessions: b.connections, server_version: b.serverVersion ?? null, qps: Math.round(load.qps * 10) / 10, p99_ms: p99,
      balance: { routable: b.healthy && !b.draining, healthy: b.healthy, draining: b.draining, labels: b.labels, sessions: b.connections, p99_ms: p99 },
    };
  };

  app.get('/api/backends', {
    schema: { tags: ['backends'], summary: 'Every known backend', response: { 200: { type: 'array', items: BACKEND_SCHEMA } } },
  }, async () => ctx.backends.list().map(describe));

  const setDraining = (draining: boolean) => async (req: { params: { addr: string } }, reply: { code(n: number): { send(b: unknown): unknown } }) => {
    const backend = ctx.backends.get(req.params.addr);
    if (!backend) return reply.code(404).send({ error: `no backend ${req.params.addr} (GET /api/backends lists them)` });
    // With etcd (discovery-etcd's fleet) the mark is written first: nothing changes when etcd refuses.
    const fleet = ctx.services.get('fleet');
    let markedBy: string | null = null;
    if (fleet) {
      try {
        if (draining) markedBy = (await fleet.drain(backend.addr, 'drained through the admin API')).by;
        else await fleet.undrain(backend.addr);
      } catch (err) {
        ctx.logger.warn({ backend: backend.addr, err: (err as Error).message.split('\n')[0] }, 'cannot write the fleet drain mark');
        return reply.code(503).send({ error: `cannot ${draining ? 'write' : 'delete'} the fleet drain mark in etcd, nothing changed: ${(err as Error).message.split('\n')[0]}` });
      }
    }
    if (backend.draining !== draining) {
      ctx.backends.setDraining(backend.addr, draining);
      ctx.logger.info({ backend: backend.addr, fleet: fleet !== undefined }, draining ? 'backend drained through the API' : 'backend undrained through the API');
    }
    return { addr: backend.addr, draining, sessions: backend.connections, fleet: fleet !== undefined, marked_by: markedBy };
  };

  app.post<{ Params: { addr: string } }>('/api/backends/:addr/drain', {
    schema: {
      tags: ['backends'], summary: 'Drain a backend',
      description: 'No new sessions go to it and the balancer moves its sessions away at their next safe point (needs migration: credentials and a migrate-* plugin). Poll GET /api/backends until `sessions` is 0. With etcd (pd-addrs) a cluster-wide drain mark is written too, so every proxy of the fleet drains it (503 when etcd cannot be written; nothing changes then).',
      params: ADDR_PARAMS, response: { 200: DRAIN_SCHEMA, ...errors(401, 404, 503) },
    },
  }, setDraining(true));

  app.post<{ Params: { addr: string } }>('/api/backends/:addr/undrain', {
    schema: {
      tags: ['backends'], summary: 'Undrain a backend',
      description: 'With etcd (pd-addrs) the cluster-wide drain mark is deleted too, so every proxy of the fleet undrains it.',
      params: ADDR_PARAMS, response: { 200: DRAIN_SCHEMA, ...errors(401, 404, 503) },
    },
  }, setDraining(false));
}
