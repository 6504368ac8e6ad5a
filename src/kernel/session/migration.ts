import { MigrationVetoError, ProxyError } from '../errors.js';
import type { BackendRecord } from '../backend/backend-registry.js';
import type { MigrationContext, MigrationOutcome, StateTransferContext } from '../hooks/hook-types.js';
import type { MigrationRequest } from '../plugins/plugin-definition.js';
import { ER_PROXY_BACKEND_HANDSHAKE, ER_PROXY_NO_BACKEND } from '../protocol/constants.js';
import { loginWithCredentials } from './backend-login.js';
import { BackendSqlRunner } from './backend-sql.js';
import type { BackendConnection } from './backend-connection.js';
import type { Session } from './session.js';

/** How long one migration may take, end to end, before it is abandoned (the session stays put). */
export const MIGRATION_TIMEOUT_MS = 10_000;

class MigrationAbandoned extends Error {}

/**
 * Moves a session to another backend (DESIGN §5). The kernel decides when (a request exists and the
 * session is at a safe point); plugins decide whether (beforeMigrate), how to log in
 * (backendCredentials) and how state travels (captureState on the old backend, restoreState on the
 * new one). Any failure leaves the session on its old backend exactly as it was.
 */
export async function migrateSession(session: Session, request: MigrationRequest, resolveTarget: (to: string) => BackendRecord | undefined): Promise<MigrationOutcome> {
  const started = Date.now();
  const oldConn = session.backendConn;
  if (!oldConn) throw new ProxyError('proxy', ER_PROXY_NO_BACKEND, 'session has no backend');
  const from = oldConn.backend;
  const hooks = session.generation.hooks;
  const outcome = (ctx: MigrationContext, result: MigrationOutcome['result'], error?: string): MigrationOutcome => ({
    ...ctx, result, durationMs: Date.now() - started, ...(error ? { error } : {}),
  });

  let target: BackendRecord | null | undefined;
  try {
    target = request.to ? resolveTarget(request.to) : await session.link.selectMigrationTarget(from.addr);
  } catch (err) {
    // A selectBackend tap refused ({ refuse }): no acceptable target, the session stays.
    return outcome({ session, from, to: from, reason: request.reason, kind: 'planned' }, 'failed', err instanceof Error ? err.message : String(err));
  }
  if (!target || target.addr === from.addr) {
    return outcome({ session, from, to: from, reason: request.reason, kind: 'planned' }, 'failed', 'no other backend available');
  }
  const ctx: MigrationContext = { session, from, to: target, reason: request.reason, kind: 'planned' };
  const veto = await hooks.beforeMigrate.promise(ctx);
  if (veto) return { ...outcome(ctx, 'vetoed', veto.reason), retry: veto.retry };

  let timer: NodeJS.Timeout | undefined;
  let abandoned = false;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      abandoned = true;
      reject(new MigrationAbandoned(`timed out after ${MIGRATION_TIMEOUT_MS} ms`));
    }, MIGRATION_TIMEOUT_MS);
  });
  let newConn: BackendConnection | null = null;
  try {
    // The whole move runs holding the old backend (client commands wait): credentials may come from it
    // (TiDB's session token), and the state captured must be the state that is restored.
    await Promise.race([session.exclusive(oldConn, async (oldChannel) => {
      const source = new BackendSqlRunner(from.addr, oldChannel, session.link.capabilities, MIGRATION_TIMEOUT_MS);
      const creds = await hooks.backendCredentials.promise({ session, backend: target, authExchange: session.authExchange, source });
      if (!creds || creds.kind === 'relay') {
        throw new MigrationVetoError(`no credentials for user ${session.user} (the proxy relayed the login password-blind)`, false);
      }
      const conn = await session.link.dial(target);
      newConn = conn;
      if (abandoned) throw new MigrationAbandoned('abandoned');
      const capabilities = session.link.capabilitiesFor(conn);
      await loginWithCredentials(conn, creds, {
        capabilities, charset: session.charset, database: session.database, timeoutMs: MIGRATION_TIMEOUT_MS,
      });
      const remapped = new Map<number, number>();
      const statements = [...session.state.statements.values()].map((s) => ({ clientId: s.clientId, sql: s.sql, params: s.params }));
      const transfer: StateTransferContext = {
        ...ctx,
        source,
        target: new BackendSqlRunner(target.addr, conn.channel, capabilities, MIGRATION_TIMEOUT_MS),
        statements,
        remapStatement: (clientId, backendId) => void remapped.set(clientId, backendId),
      };
      const state = await hooks.captureState.promise({}, transfer);
      await hooks.restoreState.promise(state, transfer);
      const missing = statements.filter((s) => !remapped.has(s.clientId));
      if (missing.length > 0) {
        throw new ProxyError('proxy', ER_PROXY_BACKEND_HANDSHAKE,
          `prepared statement${missing.length > 1 ? 's' : ''} ${missing.map((s) => s.clientId).join(', ')} not restored on ${target.addr}`);
      }
      // Too late: the caller has already reported a failure and the session must stay where it is.
      if (abandoned) throw new MigrationAbandoned('abandoned');
      // Point of no return: from here on the session is on the new backend.
      session.link.adopt(conn, remapped);
    }), deadline]);
  } catch (err) {
    (newConn as BackendConnection | null)?.destroy();
    const message = err instanceof Error ? err.message : String(err);
    // A state plugin that finds something it cannot move (a lock, a temporary table) vetoes from inside.
    if (err instanceof MigrationVetoError) return { ...outcome(ctx, 'vetoed', message), retry: err.retry };
    return outcome(ctx, 'failed', message);
  } finally {
    clearTimeout(timer);
  }
  oldConn.quit();
  return outcome(ctx, 'succeeded');
}
