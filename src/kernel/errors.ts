import { SQLSTATE_GENERAL } from './protocol/constants.js';

/** Which side of a session caused something: used in errors, close reasons, logs and metrics. */
export type Side = 'client' | 'backend' | 'proxy' | 'plugin';

/**
 * An error that knows who caused it and how to tell the client (a MySQL error code and SQLSTATE).
 * Anything thrown inside a session that is not a ProxyError is wrapped as a proxy-side error.
 */
export class ProxyError extends Error {
  constructor(
    readonly side: Side,
    readonly code: number,
    message: string,
    readonly sqlState: string = SQLSTATE_GENERAL,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ProxyError';
  }
}

export class ClientError extends ProxyError {
  constructor(code: number, message: string, sqlState?: string, options?: { cause?: unknown }) {
    super('client', code, message, sqlState, options);
    this.name = 'ClientError';
  }
}

export class BackendError extends ProxyError {
  constructor(code: number, message: string, sqlState?: string, options?: { cause?: unknown }) {
    super('backend', code, message, sqlState, options);
    this.name = 'BackendError';
  }
}

export class PluginError extends ProxyError {
  constructor(readonly plugin: string, readonly hook: string, code: number, message: string, options?: { cause?: unknown }) {
    super('plugin', code, message, SQLSTATE_GENERAL, options);
    this.name = 'PluginError';
  }
}

/** Why a session ended, for logs and metrics. */
export interface CloseReason {
  side: Side;
  /** Short machine-friendly reason, e.g. "client-quit", "backend-lost", "handshake-timeout". */
  reason: string;
  detail?: string;
}

/** Thrown by captureState/restoreState taps that find state they cannot move: the migration is vetoed. */
export class MigrationVetoError extends Error {
  /** false: the session cannot move until something changes (e.g. it has no credentials): drop the request. */
  readonly retry: boolean;

  constructor(reason: string, retry = true) {
    super(reason);
    this.retry = retry;
    this.name = 'MigrationVetoError';
  }
}
