import { definePlugin, MigrationVetoError, protocol, type SessionInfo } from '../../plugin.js';
import schema from '../../../schemas/plugins/migrate-tidb-token.schema.json' with { type: 'json' };
import { exportSession, restoreSession, type ExportedSession } from './session-states.js';
import { SigningCertWatch } from './signing-cert-watch.js';
import { isKnownNonTidb, isTidb, type TidbDetection } from './tidb-backend.js';

export interface TidbTokenConfig {
  backends: TidbDetection;
  'signing-cert-check': { enabled: boolean; interval: number; timeout: number };
}

/**
 * The key a strategy that moves a whole session sets in the captureState state, so other state
 * plugins (migrate-replay) leave that session alone.
 */
export const MOVED_BY = 'moved-by';
const NAME = 'migrate-tidb-token';

/**
 * TiDB session migration (DESIGN §5): SHOW SESSION_STATES on the old TiDB gives the session's state
 * and a signed token; the proxy logs in to the new TiDB with auth plugin tidb_session_token (the token
 * is the password) and runs SET SESSION_STATES there. Sessions on other backends are left to the
 * other plugins (credentials-native, migrate-replay).
 */
export default definePlugin<TidbTokenConfig>({
  name: NAME,
  version: '1.0.0',
  configSchema: schema,
  apply({ hooks, config, backends, logger, onDispose, superseded }) {
    const detection = config.backends;
    /** Between backendCredentials (which exports) and captureState (which hands it on) of one migration. */
    const exported = new WeakMap<SessionInfo, ExportedSession>();

    const check = config['signing-cert-check'];
    const certs = check.enabled ? new SigningCertWatch({
      backends,
      intervalMs: check.interval * 1000,
      timeoutMs: check.timeout * 1000,
      candidate: (b) => !isKnownNonTidb(b, detection),
      paused: superseded,
      changed: (missing) => {
        if (missing.size > 0) {
          logger.warn({ backends: Object.fromEntries(missing) },
            `TiDB session migration disabled for the whole cluster: ${describeMissing(missing)}`);
        } else logger.info('TiDB session migration enabled again: every TiDB has a session-token signing cert');
      },
    }) : null;
    if (certs) {
      certs.start();
      onDispose(() => certs.stop());
      hooks.backendEvent.tap(NAME, (event) => {
        if (event.type === 'added' && !superseded()) void certs.check(event.backend);
      });
    }

    hooks.beforeMigrate.tapPromise(NAME, async ({ from, to }) => {
      if (!isTidb(from, detection)) return undefined;
      const missing = certs?.missingCerts();
      if (missing && missing.size > 0) {
        return { reason: `TiDB session migration is disabled for the whole cluster: ${describeMissing(missing)}`, retry: true };
      }
      if (isKnownNonTidb(to, detection)) {
        return { reason: `${to.addr} is not TiDB (${to.serverVersion}); a TiDB session can only move to another TiDB`, retry: true };
      }
      return undefined;
    });

    // Before other credential plugins: for a TiDB session the token is the way in, and SHOW
    // SESSION_STATES must run on the old backend anyway.
    hooks.backendCredentials.tapPromise({ name: NAME, stage: -10 }, async ({ session, source }) => {
      if (!isTidb(session.backend, detection)) return undefined;
      // A TiDB session's token and states come from the server holding it: a dead one cannot give them.
      if (!source) throw new MigrationVetoError(`TiDB session ${session.id} cannot be re-established: its backend is gone and only it can export the session`, false);
      const states = await exportSession(source);
      exported.set(session, states);
      return { kind: 'token', user: session.user, plugin: protocol.TIDB_SESSION_TOKEN, data: Buffer.from(states.token, 'utf8') };
    });

    hooks.captureState.tapPromise({ name: NAME, stage: -10 }, async (state, ctx) => {
      const states = exported.get(ctx.session);
      if (!states) return state;
      exported.delete(ctx.session);
      return { ...state, [MOVED_BY]: NAME, tidbSessionStates: states.states };
    });

    hooks.restoreState.tapPromise({ name: NAME, stage: -10 }, async (state, ctx) => {
      if (state[MOVED_BY] !== NAME || typeof state.tidbSessionStates !== 'string') return;
      await restoreSession(state.tidbSessionStates, ctx);
    });

    // A migration that failed between export and capture must not leave the states behind.
    hooks.afterMigrate.tap(NAME, ({ session }) => void exported.delete(session));
  },
});

function describeMissing(missing: ReadonlyMap<string, string>): string {
  return [...missing].map(([addr, detail]) => `TiDB ${addr}: ${detail}`).join('; ')
    + ' — session tokens cannot be signed or checked (set security.session-token-signing-cert and -key on every TiDB)';
}
