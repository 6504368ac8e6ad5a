import { performance } from 'node:perf_hooks';
import {
  definePlugin, errorReply, protocol, type CommandContext, type CommandReply, type SessionInfo, namePattern, type NamePattern,
} from '../../src/plugin.js';
import schema from './schema.json' with { type: 'json' };

export interface RateLimitRule {
  users?: string[];
  tenants?: string[];
  per?: 'user' | 'tenant';
  'max-connections'?: number;
  qps?: number;
  burst?: number;
  'over-limit': 'refuse' | 'queue';
  'max-queue-ms': number;
}

export interface RateLimitConfig {
  limits: RateLimitRule[];
}

/** MySQL's "User %s already has more than 'max_user_connections' active connections". */
export const ER_TOO_MANY_USER_CONNECTIONS = 1203;
/** MySQL's "User '%s' has exceeded the '%s' resource (current value: %ld)". */
export const ER_USER_LIMIT_REACHED = 1226;
const SQLSTATE_SYNTAX_OR_ACCESS = '42000';

/** The session label tenant-router sets. */
const TENANT_LABEL = 'tenant';
/** onHandshake stage: after plugins that tag sessions (tenant-router taps at the default stage 0). */
export const RATE_LIMIT_HANDSHAKE_STAGE = 100;
/** How often full, idle buckets are forgotten. */
const SWEEP_INTERVAL_MS = 60_000;

interface Limit {
  readonly index: number;
  readonly users: readonly NamePattern[] | null;
  readonly tenants: ReadonlySet<string> | null;
  readonly per: 'user' | 'tenant';
  readonly maxConnections: number | undefined;
  readonly qps: number | undefined;
  readonly burst: number;
  readonly queue: boolean;
  readonly maxQueueMs: number;
}

/**
 * A token bucket: `burst` tokens, refilled at `rate` per second. In queue mode tokens are reserved
 * ahead (the balance goes negative), which serves waiting commands first come, first served.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(readonly rate: number, readonly burst: number, now: number) {
    this.tokens = burst;
    this.last = now;
  }

  private refill(now: number): void {
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
      this.last = now;
    }
  }

  /** Takes a token if one is there. */
  tryTake(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Takes a token, borrowing ahead if needed; returns how many ms until it is really there (0: now). */
  reserve(now: number): number {
    this.refill(now);
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.rate;
  }

  /** Gives back a reserved token (the command was refused instead). */
  refund(): void {
    this.tokens += 1;
  }

  /** Full again: forgetting the bucket changes nothing. */
  isFull(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.burst;
  }
}

function compileLimits(config: RateLimitConfig): Limit[] {
  return config.limits.map((l, index) => {
    const where = `limits[${index}]`;
    if (l['max-connections'] === undefined && l.qps === undefined) throw new Error(`${where}: sets neither max-connections nor qps`);
    if (l.burst !== undefined && l.qps === undefined) throw new Error(`${where}: burst needs qps`);
    return {
      index,
      users: l.users ? l.users.map(namePattern) : null,
      tenants: l.tenants ? new Set(l.tenants) : null,
      per: l.per ?? (l.tenants ? 'tenant' : 'user'),
      maxConnections: l['max-connections'],
      qps: l.qps,
      burst: l.burst ?? Math.max(1, l.qps ?? 1),
      queue: l['over-limit'] === 'queue',
      maxQueueMs: l['max-queue-ms'],
    };
  });
}

function applies(limit: Limit, user: string, tenant: string | undefined): boolean {
  if (limit.users && !limit.users.some((p) => p.test(user))) return false;
  if (limit.tenants && (tenant === undefined || !limit.tenants.has(tenant))) return false;
  return limit.per === 'user' || tenant !== undefined;
}

/** Who a limit is counted against, for messages: "User 'x'" or "Tenant 'y'". */
function subject(limit: Limit, key: string): string {
  return `${limit.per === 'user' ? 'User' : 'Tenant'} '${key}'`;
}

/**
 * Per-user or per-tenant caps: concurrent sessions (checked at login) and a statement rate (token
 * bucket on COM_QUERY and COM_STMT_EXECUTE), refusing or queueing what goes over.
 */
export default definePlugin<RateLimitConfig>({
  name: 'rate-limit',
  version: '1.0.0',
  configSchema: schema,
  apply({ hooks, config, sessions, logger, onDispose }) {
    const limits = compileLimits(config);
    const connectionLimits = limits.filter((l) => l.maxConnections !== undefined);
    const rateLimits = limits.filter((l) => l.qps !== undefined);

    const firstApplying = (list: readonly Limit[], user: string, tenant: string | undefined): Limit | undefined =>
      list.find((l) => applies(l, user, tenant));
    const keyFor = (limit: Limit, user: string, tenant: string | undefined): string =>
      limit.per === 'user' ? user : tenant!;

    if (connectionLimits.length > 0) {
      hooks.onHandshake.tap({ name: 'rate-limit', stage: RATE_LIMIT_HANDSHAKE_STAGE }, (ctx) => {
        const tenant = ctx.session.labels.get(TENANT_LABEL);
        const limit = firstApplying(connectionLimits, ctx.user, tenant);
        if (!limit) return undefined;
        const key = keyFor(limit, ctx.user, tenant);
        let count = 0;
        for (const s of sessions.list()) {
          // Sessions that have not sent their handshake yet have no user: they are nobody's.
          if (s.id === ctx.session.id || s.user === '') continue;
          const otherTenant = s.labels.get(TENANT_LABEL);
          if ((limit.per === 'user' ? s.user : otherTenant) !== key) continue;
          if (firstApplying(connectionLimits, s.user, otherTenant) === limit) count++;
        }
        if (count < limit.maxConnections!) return undefined;
        logger.info({ conn: ctx.session.id, user: ctx.user, tenant, count, max: limit.maxConnections, limit: limit.index + 1 },
          'login refused: max-connections reached');
        return {
          code: ER_TOO_MANY_USER_CONNECTIONS,
          sqlState: SQLSTATE_SYNTAX_OR_ACCESS,
          // MySQL's wording for max_user_connections, which clients and operators recognise.
          message: `${subject(limit, key)} already has more than ${limit.maxConnections} active connection${limit.maxConnections === 1 ? '' : 's'} (tiproxy rate-limit)`,
        };
      });
    }

    if (rateLimits.length === 0) {
      logger.info({ limits: limits.length }, 'rate limits');
      return;
    }

    const buckets = new Map<string, TokenBucket>();
    /** Held commands: their timers and how to release them early (dispose). */
    const holds = new Map<NodeJS.Timeout, (reply: CommandReply | undefined) => void>();
    /** Per session: the limit and bucket key last worked out, valid while user and tenant stay the same. */
    const assigned = new WeakMap<SessionInfo, { user: string; tenant: string | undefined; limit: Limit | undefined; key: string }>();

    const overLimit = (limit: Limit, key: string, detail = ''): CommandReply =>
      errorReply(`${subject(limit, key)} has exceeded the 'qps' resource (current value: ${limit.qps}; tiproxy rate-limit)${detail}`,
        ER_USER_LIMIT_REACHED, SQLSTATE_SYNTAX_OR_ACCESS);

    const gate = (ctx: CommandContext): CommandReply | undefined => {
      const { session } = ctx;
      const tenant = session.labels.get(TENANT_LABEL);
      let entry = assigned.get(session);
      if (!entry || entry.user !== session.user || entry.tenant !== tenant) {
        const limit = firstApplying(rateLimits, session.user, tenant);
        entry = { user: session.user, tenant, limit, key: limit ? `${limit.index}\u0000${keyFor(limit, session.user, tenant)}` : '' };
        assigned.set(session, entry);
      }
      const limit = entry.limit;
      if (!limit) return undefined;
      const now = performance.now();
      let bucket = buckets.get(entry.key);
      if (!bucket) buckets.set(entry.key, (bucket = new TokenBucket(limit.qps!, limit.burst, now)));
      const who = keyFor(limit, session.user, tenant);
      if (!limit.queue) {
        if (bucket.tryTake(now)) return undefined;
        logger.debug({ conn: session.id, user: session.user, tenant, limit: limit.index + 1 }, 'command refused: over qps');
        return overLimit(limit, who);
      }
      const wait = bucket.reserve(now);
      if (wait <= 0) return undefined;
      if (wait > limit.maxQueueMs) {
        bucket.refund();
        logger.debug({ conn: session.id, user: session.user, tenant, waitMs: Math.ceil(wait), limit: limit.index + 1 }, 'command refused: queue too long');
        return overLimit(limit, who, `: it would wait ${Math.ceil(wait)} ms, longer than max-queue-ms ${limit.maxQueueMs}`);
      }
      return {
        hold: new Promise<CommandReply | undefined>((resolve) => {
          const timer = setTimeout(() => {
            holds.delete(timer);
            resolve(undefined);
          }, Math.ceil(wait));
          holds.set(timer, resolve);
        }),
      };
    };

    hooks.onCommand.for(protocol.COM_QUERY).tap('rate-limit', gate);
    hooks.onCommand.for(protocol.COM_STMT_EXECUTE).tap('rate-limit', gate);

    const sweeper = setInterval(() => {
      const now = performance.now();
      for (const [key, bucket] of buckets) if (bucket.isFull(now)) buckets.delete(key);
    }, SWEEP_INTERVAL_MS);
    sweeper.unref();

    onDispose(() => {
      clearInterval(sweeper);
      // A retired generation has no sessions left, except at shutdown: let anything still held go.
      for (const [timer, release] of holds) {
        clearTimeout(timer);
        release(undefined);
      }
      holds.clear();
      buckets.clear();
    });
    logger.info({ limits: limits.length }, 'rate limits');
  },
});
