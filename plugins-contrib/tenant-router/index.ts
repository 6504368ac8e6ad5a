import { BlockList, isIP } from 'node:net';
import { definePlugin, protocol, type BackendInfo, type Refusal, type SessionInfo, namePattern, type NamePattern } from '../../src/plugin.js';
import schema from './schema.json' with { type: 'json' };

export interface TenantConfig {
  name: string;
  users?: string[];
  cidrs?: string[];
  databases?: string[];
  route?: { labels?: Record<string, string> };
}

export interface TenantRouterConfig {
  tenants: TenantConfig[];
  'default-tenant'?: string;
  unmatched: 'allow' | 'refuse';
}

/** The session label this plugin sets; query-guard and rate-limit read it for their `tenants` filters. */
export const TENANT_LABEL = 'tenant';

/** selectBackend stage: before the default balancer (100), so it only sees the tenant's backends. */
export const TENANT_ROUTER_STAGE = 10;

/** A tenant with its criteria compiled. */
interface Tenant {
  readonly name: string;
  readonly users: readonly NamePattern[] | null;
  readonly networks: BlockList | null;
  readonly databases: ReadonlySet<string> | null;
  readonly labels: ReadonlyArray<readonly [string, string]>;
}

/** "::ffff:10.1.2.3" (an IPv4 client on a dual-stack listener) → "10.1.2.3". */
export function normalizeAddress(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1]! : address;
}

/** Parses "10.0.0.0/8", "fd00::/8" or a bare address into a BlockList; throws naming the bad entry. */
export function compileNetworks(cidrs: readonly string[], where: string): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [address = '', prefixText, extra] = cidr.trim().split('/');
    const family = isIP(address);
    const max = family === 4 ? 32 : 128;
    const prefix = prefixText === undefined ? max : Number(prefixText);
    if (family === 0 || extra !== undefined || !/^\d+$/.test(prefixText ?? String(max)) || prefix > max) {
      throw new Error(`${where}: "${cidr}" is not an IPv4 or IPv6 network like 10.0.0.0/8 or fd00::/8`);
    }
    list.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

export function inNetworks(list: BlockList, clientAddress: string): boolean {
  const address = normalizeAddress(clientAddress);
  const family = isIP(address);
  if (family === 0) return false; // e.g. a Unix socket
  return list.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

function compileTenants(config: TenantRouterConfig): Tenant[] {
  const seen = new Set<string>();
  return config.tenants.map((t, i) => {
    if (seen.has(t.name)) throw new Error(`tenants[${i}]: tenant name "${t.name}" is used twice`);
    seen.add(t.name);
    return {
      name: t.name,
      users: t.users ? t.users.map(namePattern) : null,
      networks: t.cidrs ? compileNetworks(t.cidrs, `tenants[${i}].cidrs`) : null,
      databases: t.databases ? new Set(t.databases) : null,
      labels: Object.entries(t.route?.labels ?? {}),
    };
  });
}

/** A tenant matches when every criterion it lists matches (within one list, any entry may match). */
function tenantMatches(t: Tenant, user: string, clientAddress: string, database: string): boolean {
  if (t.users && !t.users.some((p) => p.test(user))) return false;
  if (t.networks && !inNetworks(t.networks, clientAddress)) return false;
  if (t.databases && !t.databases.has(database)) return false;
  return true;
}

function hasLabels(b: BackendInfo, labels: Tenant['labels']): boolean {
  for (const [k, v] of labels) if (b.labels[k] !== v) return false;
  return true;
}

function describeLabels(labels: Tenant['labels']): string {
  return labels.map(([k, v]) => `${k}=${v}`).join(',');
}

/**
 * Multi-tenant isolation: each session is assigned a tenant at login (first tenant whose user globs,
 * client networks and databases all match) and may only run on backends carrying the tenant's route
 * labels — for new sessions, retries and migrations alike.
 */
export default definePlugin<TenantRouterConfig>({
  name: 'tenant-router',
  version: '1.0.0',
  configSchema: schema,
  apply({ hooks, config, logger }) {
    const tenants = compileTenants(config);
    const byName = new Map(tenants.map((t) => [t.name, t]));
    const fallbackName = config['default-tenant'];
    const fallback = fallbackName === undefined ? undefined : byName.get(fallbackName);
    if (fallbackName !== undefined && !fallback) {
      throw new Error(`default-tenant "${fallbackName}" is not one of the tenants (${tenants.map((t) => t.name).join(', ') || 'none configured'})`);
    }

    const unmatchedRefusal = (user: string, session: SessionInfo): Refusal => ({
      code: protocol.ER_ACCESS_DENIED_ERROR,
      sqlState: protocol.SQLSTATE_ACCESS_DENIED,
      message: `Access denied for user '${user}'@'${normalizeAddress(session.clientAddress)}': no tenant matches this login (tiproxy tenant-router)`,
    });

    hooks.onHandshake.tap('tenant-router', (ctx) => {
      const { session } = ctx;
      const address = session.clientAddress;
      const tenant = tenants.find((t) => tenantMatches(t, ctx.user, address, ctx.database)) ?? fallback;
      if (!tenant && config.unmatched === 'refuse') {
        logger.info({ conn: session.id, user: ctx.user, client: address, db: ctx.database }, 'login refused: no tenant matches');
        return unmatchedRefusal(ctx.user, session);
      }
      // A backend already attached means COM_CHANGE_USER: the session cannot change backends here, so a
      // switch to a tenant whose route excludes the current backend is refused (the session keeps its user).
      const current = session.backend;
      if (current && tenant && !hasLabels(current, tenant.labels)) {
        return {
          code: protocol.ER_ACCESS_DENIED_ERROR,
          sqlState: protocol.SQLSTATE_ACCESS_DENIED,
          message: `cannot change user to '${ctx.user}': that is tenant "${tenant.name}", which runs on backends labelled `
            + `${describeLabels(tenant.labels)}, not on this session's backend ${current.addr}; open a new connection instead (tiproxy tenant-router)`,
        };
      }
      if (tenant) session.labels.set(TENANT_LABEL, tenant.name);
      else session.labels.delete(TENANT_LABEL);
      logger.debug({ conn: session.id, user: ctx.user, tenant: tenant?.name ?? null }, 'tenant assigned');
      return undefined;
    });

    hooks.selectBackend.tapPromise({ name: 'tenant-router', stage: TENANT_ROUTER_STAGE }, async (ctx) => {
      const name = ctx.session.labels.get(TENANT_LABEL);
      if (name === undefined) return undefined;
      const tenant = byName.get(name);
      if (!tenant) {
        // Tagged by an older configuration or by another plugin with a tenant this config does not know.
        logger.debug({ conn: ctx.session.id, tenant: name }, 'session tenant is not configured here; not restricting');
        return undefined;
      }
      if (tenant.labels.length === 0) return undefined;
      const members = ctx.backends.filter((b) => hasLabels(b, tenant.labels));
      ctx.restrict(members);
      if (members.some((b) => b.healthy && !b.draining)) return undefined;
      const unhealthy = members.filter((b) => !b.healthy).length;
      const draining = members.filter((b) => b.healthy && b.draining).length;
      const detail = members.length === 0 ? 'no backend has them'
        : `${members.length} backend${members.length === 1 ? '' : 's'}: ${unhealthy} unhealthy, ${draining} draining`;
      return {
        refuse: {
          code: protocol.ER_PROXY_NO_BACKEND,
          sqlState: protocol.SQLSTATE_COMMUNICATION,
          message: `tenant "${tenant.name}" has no healthy backend (labels ${describeLabels(tenant.labels)}; ${detail})`,
        },
      };
    });

    logger.info({ tenants: tenants.map((t) => t.name), defaultTenant: fallback?.name ?? null, unmatched: config.unmatched }, 'tenant routing');
  },
});
