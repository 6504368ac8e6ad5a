import type { TiproxyPlugin } from '../src/plugin.js';
import queryGuard from './query-guard/index.js';
import rateLimit from './rate-limit/index.js';
import tenantRouter from './tenant-router/index.js';

/** Optional plugins shipped with tiproxy, by name; a config enables one by listing it in `plugins:`. */
export const CONTRIB_PLUGINS: ReadonlyMap<string, TiproxyPlugin<never>> = new Map<string, TiproxyPlugin<never>>([
  [tenantRouter.name, tenantRouter as TiproxyPlugin<never>],
  [queryGuard.name, queryGuard as TiproxyPlugin<never>],
  [rateLimit.name, rateLimit as TiproxyPlugin<never>],
]);
