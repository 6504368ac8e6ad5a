import { MigrationVetoError, ProxyError } from '../errors.js';
import type { BackendRecord } from '../backend/backend-registry.js';
import type { BackendSql, MigrationContext, MigrationOutcome, StateTransferContext } from '../hooks/hook-types.js';
import type { MigrationRequest } from '../plugins/plugin-definition.js';
import { ER_PROXY_BACKEND_HANDSHAKE, ER_PROXY_NO_BACKEND } from '../protocol/constants.js';
import type { BackendConnection } from '../session/backend-connection.js';
import { loginWithCredentials } from '../session/backend-login.js';
import { BackendSqlRunner } from '../session/backend-sql.js';
import type { Session } from '../session/session.js';

/** How long one migration may take, end to end, before it is abandoned (the session stays put). */
export const MIGRATION_TIMEOUT_MS = 10_000;

class MigrationAbandoned extends Error {}

/** The target could not be dialled (refused, timed out, unreachable): the scheduler avoids it for a while. */
class TargetUnreachable extends Error {}

/** A migration's outcome as the scheduler sees it. */
export type MoveOutcome = MigrationOutcome & { readonly targetUnreachable?: boolean };

/** Where a move goes: a backend the requester named, or one chosen by the selectBackend taps. */
export type TargetResolver = (session: Session, leaving: string, to: string | undefined) => Promise<BackendRecord | null>;

/**
 * Moves a session to another backend (DESIGN §5). The kernel decides when (a request exists and the
 * session is at a safe point); plugins decide whether (beforeMigrate), how to log in
 * (backendCredentials) and how state travels (captureState on the old backend, restoreState on the
 * new one). Any failure leaves the session on its old backend exactly as it was.
 */
export async function migrateSession(session: Session, request: MigrationRequest, resolveTarget: TargetResolver): Promise<MoveOutcome> {
  const oldConn = session.link.conn;
  if (!oldConn) throw new ProxyError('proxy', ER_PROXY_NO_BACKEND, 'session has no backend');
  // The whole move runs holding the old backend (client commands wait): credentials may come from it
  // (TiDB's session token), and the state captured must be the state that is restored.
  const outcome = await moveSession(session, 'planned', oldConn.backend, request.reason, request.to, resolveTarget,
    (work) => session.exclusive(oldConn, (channel) => work(new BackendSqlRunner(oldConn.backend.addr, channel, session.link.capabilities, MIGRATION_TIMEOUT_MS))));
  if (outcome.result === 'succeeded') oldConn.quit();
  return outcome;
}

/**
 * Re-establishes a session whose backend died between commands (kill -9, reset, unreachable) on another
 * backend, with the state the proxy knows (the taps see kind "failover" and no source). The session's
 * pump must already be holding client commands (they wait in its queue until this is over).
 */
export function failoverSession(session: Session, dead: BackendRecord, resolveTarget: TargetResolver): Promise<MoveOutcome> {
  return moveSession(session, 'failover', dead, 'failover', undefined, resolveTarget, (work) => work(null));
}

async function moveSession(
  session: Session, kind: MigrationContext['kind'], from: BackendRecord, reason: string, to: string | undefined,
  resolveTarget: TargetResolver, holdingSource: (work: (source: BackendSql | null) => Promise<void>) => Promise<void>,
): Promise<MoveOutcome> {
  const started = Date.now();
  const hooks = session.generation.hooks;
  const outcome = (ctx: MigrationContext, result: MigrationOutcome['result'], error?: string): MigrationOutcome => ({
    ...ctx, result, durationMs: Date.now() - started, ...(error ? { error } : {}),
  });

  let target: BackendRecord | null;
  try {
    target = await resolveTarget(session, from.addr, to);
  } catch (err) {
    // A selectBackend tap refused ({ refuse }): no acceptable target, the session stays.
    return outcome({ session, from, to: from, reason, kind }, 'failed', err instanceof Error ? err.message : String(err));
  }
  if (!target || target.addr === from.addr) {
    return outcome({ session, from, to: from, reason, kind }, 'failed', 'no other backend available');
  }
  const ctx: MigrationContext = { session, from, to: target, reason, kind };
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
  const chosen = target;
  try {
    await Promise.race([holdingSource(async (source) => {
      const creds = await hooks.backendCredentials.promise({ session, backend: chosen, authExchange: session.authExchange, source });
      if (!creds || creds.kind === 'relay') {
        throw new MigrationVetoError(`no credentials for user ${session.user} (the proxy relayed the login password-blind)`, false);
      }
      let conn: BackendConnection;
      try {
        conn = await session.link.dial(chosen);
      } catch (err) {
        throw new TargetUnreachable(`target ${chosen.addr} unreachable: ${(err as Error).message}`, { cause: err });
      }
      newConn = conn;
      if (abandoned) throw new MigrationAbandoned('abandoned');
      const capabilities = session.link.capabilitiesFor(conn);
      await loginWithCredentials(conn, creds, {
        capabilities, extendedCapabilities: session.link.extendedCapabilitiesFor(conn), charset: session.charset,
        database: session.database, timeoutMs: MIGRATION_TIMEOUT_MS,
      });
      const remapped = new Map<number, number>();
      const statements = [...session.state.statements.values()].map((s) => ({ clientId: s.clientId, sql: s.sql, params: s.params }));
      const transfer: StateTransferContext = {
        ...ctx,
        source,
        target: new BackendSqlRunner(chosen.addr, conn.channel, capabilities, MIGRATION_TIMEOUT_MS),
        statements,
        remapStatement: (clientId, backendId) => void remapped.set(clientId, backendId),
      };
      const state = await hooks.captureState.promise({}, transfer);
      await hooks.restoreState.promise(state, transfer);
      const missing = statements.filter((s) => !remapped.has(s.clientId));
      if (missing.length > 0) {
        throw new ProxyError('proxy', ER_PROXY_BACKEND_HANDSHAKE,
          `prepared statement${missing.length > 1 ? 's' : ''} ${missing.map((s) => s.clientId).join(', ')} not restored on ${chosen.addr}`);
      }
      // Too late: the caller has already reported a failure and the session must stay where it is.
      if (abandoned || session.isClosed) throw new MigrationAbandoned('abandoned');
      // Point of no return: from here on the session is on the new backend.
      const previous = session.link.adopt(conn, remapped);
      // A dead backend's connection is only closed here; a planned move's old one is quit by the caller.
      if (kind === 'failover') previous.destroy();
    }), deadline]);
  } catch (err) {
    (newConn as BackendConnection | null)?.destroy();
    const message = err instanceof Error ? err.message : String(err);
    // A state plugin that finds something it cannot move (a lock, a temporary table) vetoes from inside.
    if (err instanceof MigrationVetoError) return { ...outcome(ctx, 'vetoed', message), retry: err.retry };
    if (err instanceof TargetUnreachable) return { ...outcome(ctx, 'failed', message), targetUnreachable: true };
    return outcome(ctx, 'failed', message);
  } finally {
    clearTimeout(timer);
  }
  return outcome(ctx, 'succeeded');
}
