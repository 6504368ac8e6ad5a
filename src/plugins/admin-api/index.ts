import { definePlugin } from '../../plugin.js';
import schema from '../../../schemas/plugins/admin-api.schema.json' with { type: 'json' };
import { adminStateOf, type AdminApiConfig } from './admin-state.js';
import { API_VERSION, createAdminApp } from './api-app.js';

/** How long a retired generation's app waits for its requests in flight before closing. */
const DISPOSE_WAIT_MS = 30_000;

/**
 * The admin HTTP API (docs/api.md): one fastify app per generation, answering the port the kernel
 * keeps open across reloads. State that must outlive a reload (the health override, recent migrations,
 * per-backend load) lives in ctx.keep.
 */
export default definePlugin<AdminApiConfig>({
  name: 'admin-api',
  version: API_VERSION,
  configSchema: schema,
  async apply(ctx) {
    const { hooks, config, proxy, onDispose } = ctx;
    const state = adminStateOf(ctx);

    hooks.backendEvent.tap('admin-api', (event) => {
      if (event.type === 'health') state.healthReasons.set(event.backend.addr, event.reason);
      else if (event.type === 'removed') {
        state.healthReasons.delete(event.backend.addr);
        state.load.forget(event.backend.addr);
      }
    });
    hooks.afterMigrate.tap('admin-api', (outcome) => state.migrations.add(outcome));
    if (config['backend-stats']) {
      hooks.onResult.tap('admin-api', (r) => state.load.record(r.backend.addr, r.durationMs));
    }

    const { app, handler } = await createAdminApp(ctx, state);
    let inFlight = 0;
    proxy.serveHttp((req, res) => {
      inFlight++;
      res.once('close', () => inFlight--);
      handler(req, res);
    });
    onDispose(async () => {
      // A request answered by this generation (a config change that just replaced it) finishes here.
      const deadline = Date.now() + DISPOSE_WAIT_MS;
      while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await app.close();
    });
  },
});
