import type { Logger } from 'pino';
import type { ConnectionOptions, SecureContext } from 'node:tls';
import type { BackendRecord, BackendRegistry } from '../backend/backend-registry.js';
import type { FrozenConfig } from '../config/proxy-config.js';
import type { CloseReason, ProxyError } from '../errors.js';
import type { MigrationOutcome, SessionInfo } from '../hooks/hook-types.js';
import type { Generation } from '../plugins/generation.js';
import type { BackendConnection } from './backend-connection.js';
import type { Unsafe } from './session-state.js';

/** A session as its host and the other sessions (KILL) see it. */
export interface HostedSession extends SessionInfo {
  readonly logger: Logger;
  /** The generation the session uses; the host moves it to a newer one at a safe point. */
  generation: Generation;
  readonly link: { readonly conn: BackendConnection | null };
  /** Id of the session whose KILL CONNECTION for this one went to the shared backend (0 = none). */
  killedBy: number;
  readonly isClosed: boolean;
  /** Null when the backend could be swapped right now, else why not. */
  unsafeReason(): Unsafe;
  /** Closes both sides once; sends `error` to the client first when given. */
  close(reason: CloseReason, error?: ProxyError, seq?: number): void;
}

/** What a session needs from the kernel that owns it. */
export interface SessionHost {
  readonly logger: Logger;
  readonly backends: BackendRegistry;
  readonly sessions: ReadonlyMap<number, HostedSession>;
  readonly shuttingDown: boolean;
  config(): FrozenConfig;
  /** The newest generation; sessions pin it at start and adopt newer ones at safe points. */
  currentGeneration(): Generation;
  pinGeneration(g: Generation): void;
  releaseGeneration(g: Generation): void;
  /** Server version and capabilities (MariaDB's extended ones too) announced to clients (mirrors the backends). */
  announcedServer(): Promise<{ version: string; capabilities: number; extendedCapabilities: number }>;
  /** A backend greeting was seen: keep the announced version/capabilities in step. */
  learnBackend(backend: BackendRecord, version: string, capabilities: number, extendedCapabilities: number): void;
  /** With proxy.workers > 1: the other worker whose range holds this connection id, else null. */
  otherWorkerOf(connectionId: number): number | null;
  /** This process's worker number (1..N) with proxy.workers > 1, else null. */
  workerId(): number | null;
  serverTlsContext(): SecureContext | null;
  serverTlsRequestsCert(): boolean;
  backendTlsOptions(): ConnectionOptions;
  sessionClosed(session: HostedSession, reason: CloseReason): void;
  /** Called when a session reaches a safe point (no command in flight, not in a transaction). */
  sessionIdle(session: HostedSession): void;
  /** COM_CHANGE_USER succeeded: what was known about moving the session no longer holds. */
  sessionUserChanged(session: HostedSession): void;
  /** A move was requested for this session and may be tried now. */
  migrationPending(session: HostedSession): boolean;
  /** Runs the session's pending move now if the session is at a safe point. */
  migrateNow(session: HostedSession): Promise<void>;
  /** The session's backend died between commands: re-establish it on another backend (failover). */
  failover(session: HostedSession, dead: BackendRecord): Promise<MigrationOutcome>;
}
