import type { Logger } from 'pino';
import type { ConnectionOptions, SecureContext } from 'node:tls';
import type { BackendRecord, BackendRegistry } from '../backend/backend-registry.js';
import type { FrozenConfig } from '../config/proxy-config.js';
import type { CloseReason } from '../errors.js';
import type { Generation } from '../plugins/generation.js';
import type { Session } from './session.js';

/** What a session needs from the kernel that owns it. */
export interface SessionHost {
  readonly logger: Logger;
  readonly backends: BackendRegistry;
  readonly sessions: ReadonlyMap<number, Session>;
  readonly shuttingDown: boolean;
  config(): FrozenConfig;
  /** The newest generation; sessions pin it at start and adopt newer ones at safe points. */
  currentGeneration(): Generation;
  pinGeneration(g: Generation): void;
  releaseGeneration(g: Generation): void;
  /** Server version and capabilities announced to clients (mirrors the backends). */
  announcedServer(): Promise<{ version: string; capabilities: number }>;
  /** A backend greeting was seen: keep the announced version/capabilities in step. */
  learnBackend(backend: BackendRecord, version: string, capabilities: number): void;
  /** With proxy.workers > 1: the other worker whose range holds this connection id, else null. */
  otherWorkerOf(connectionId: number): number | null;
  /** This process's worker number (1..N) with proxy.workers > 1, else null. */
  workerId(): number | null;
  serverTlsContext(): SecureContext | null;
  serverTlsRequestsCert(): boolean;
  backendTlsOptions(): ConnectionOptions;
  sessionClosed(session: Session, reason: CloseReason): void;
  /** Called when a session reaches a safe point (no command in flight, not in a transaction). */
  sessionIdle(session: Session): void;
  /** COM_CHANGE_USER succeeded: what was known about moving the session no longer holds. */
  sessionUserChanged(session: Session): void;
  /** A move was requested for this session and may be tried now. */
  migrationPending(session: Session): boolean;
  /** Runs the session's pending move now if the session is at a safe point. */
  migrateNow(session: Session): Promise<void>;
}
