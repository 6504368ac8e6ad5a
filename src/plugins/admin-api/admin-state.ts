import type { FastifyInstance } from 'fastify';
import type { PluginContext } from '../../plugin.js';
import { BackendLoadTable } from './backend-load.js';
import { MigrationLog } from './migration-log.js';

export interface AdminApiConfig {
  'backend-stats': boolean;
  'recent-migrations': number;
}

/** What the API keeps across generations of one proxy (ctx.keep). */
export interface AdminState {
  /** PUT /api/debug/health {"healthy":false}: the operator took the proxy out of its load balancer. */
  healthOverride: { reason: string; since: number } | null;
  /** Last health reason per backend, from backend events. */
  readonly healthReasons: Map<string, string>;
  readonly load: BackendLoadTable;
  readonly migrations: MigrationLog;
}

export function adminStateOf(ctx: PluginContext<AdminApiConfig>): AdminState {
  const state = ctx.keep<AdminState>('state', () => ({
    healthOverride: null, healthReasons: new Map(), load: new BackendLoadTable(), migrations: new MigrationLog(ctx.config['recent-migrations']),
  }));
  state.migrations.resize(ctx.config['recent-migrations']);
  return state;
}

/** What every route module gets. */
export interface RouteDeps {
  readonly app: FastifyInstance;
  readonly ctx: PluginContext<AdminApiConfig>;
  readonly state: AdminState;
}

/** The error body every endpoint answers with. */
export const ERROR_SCHEMA = {
  type: 'object',
  description: 'What went wrong.',
  properties: {
    error: { type: 'string' },
    key_path: { type: 'string', description: 'For config errors: the key path of the first problem.' },
    issues: { type: 'array', items: { type: 'object', properties: { key_path: { type: 'string' }, reason: { type: 'string' } } } },
  },
  required: ['error'],
} as const;

/** Error answers by status code, for route schemas. */
export function errors(...codes: number[]): Record<number, typeof ERROR_SCHEMA> {
  return Object.fromEntries(codes.map((c) => [c, ERROR_SCHEMA]));
}
