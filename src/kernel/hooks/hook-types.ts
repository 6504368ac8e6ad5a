import type { FrozenConfig } from '../config/proxy-config.js';
import type { Side } from '../errors.js';

/** What plugins see of a backend. */
export interface BackendInfo {
  /** "host:port" of the SQL port; the backend's identity. */
  readonly addr: string;
  readonly host: string;
  readonly port: number;
  readonly labels: Readonly<Record<string, string>>;
  /** false once a health check failed (backends start healthy until checked). */
  readonly healthy: boolean;
  /** Why the backend is unhealthy (the failed check's reason); empty while healthy. */
  readonly healthReason?: string;
  /** No new sessions; existing ones should move away. */
  readonly draining: boolean;
  /** Live sessions currently on this backend (with proxy.workers > 1: of every worker process). */
  readonly connections: number;
  /** TiDB status port, when discovery knows it. */
  readonly statusPort?: number;
  /** Server version from the backend's last greeting. */
  readonly serverVersion?: string;
}

/** Session state the kernel follows from the traffic because the server cannot report it. */
export interface TrackedSessionState {
  /** CREATE TEMPORARY TABLE succeeded at some point (MariaDB 10.11 cannot list temporary tables). */
  readonly temporaryTables: boolean;
  /** LOCK TABLES is in effect. */
  readonly lockTables: boolean;
  /** A `SET TRANSACTION …` waiting for the next transaction, as the client wrote it. */
  readonly pendingTransaction: string | null;
  /**
   * SQL-level prepared statements (PREPARE name FROM …) that succeeded and were not deallocated:
   * lower-cased name -> the PREPARE statement as the client sent it. Only single-statement queries are seen.
   */
  readonly sqlStatements: ReadonlyMap<string, string>;
  /**
   * SET statements that succeeded (system and user variables, NAMES, CHARACTER SET, ROLE …), as the
   * client wrote them, oldest first; a text repeated verbatim appears once, at its last position.
   * Complete only while unseenChanges is null. Cleared by COM_RESET_CONNECTION / COM_CHANGE_USER.
   */
  readonly setStatements: ReadonlySet<string>;
  /**
   * Why the session's state may have changed in ways the proxy could not follow (`SELECT @x := 1`,
   * `… INTO @x`, CALL, a multi-statement query, an executable comment, a statement whose text was not
   * seen whole, too many SET statements); null while everything that changed state was seen.
   */
  readonly unseenChanges: string | null;
  /** GET_LOCK or HANDLER ran in this session: it may hold locks only the server can report. */
  readonly mayHoldLocks: boolean;
}

/** What plugins see of a session. `labels` is the one mutable part: plugins tag sessions (tenant, group). */
export interface SessionInfo {
  readonly id: number;
  readonly user: string;
  /** Database given at login, by the last COM_INIT_DB or by the last successful `USE db` statement. */
  readonly database: string;
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly tls: boolean;
  readonly attributes: ReadonlyMap<string, string>;
  readonly labels: Map<string, string>;
  readonly backend: BackendInfo | null;
  /** Backend connection (thread) id of the current backend session. */
  readonly backendConnectionId: number;
  readonly createdAt: number;
  readonly inTransaction: boolean;
  readonly tracked: TrackedSessionState;
}

/** A refusal a plugin hands back: becomes an ERR packet to the client. */
export interface Refusal {
  code: number;
  message: string;
  sqlState?: string;
}

export interface ConnectContext {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localPort: number;
  /** Sessions open before this one. */
  readonly activeSessions: number;
}

export interface GreetingOptions {
  serverVersion: string;
  capabilities: number;
  /** MariaDB extended capabilities (MARIADB_CLIENT_*) offered when CLIENT_MYSQL (bit 0) is clear; mirrors the backends'. */
  extendedCapabilities?: number;
  authPlugin: string;
  offerTls: boolean;
}

export interface HandshakeContext {
  readonly session: SessionInfo;
  readonly user: string;
  readonly database: string;
  readonly authPlugin: string;
  readonly capabilities: number;
}

export interface SelectBackendContext {
  readonly session: SessionInfo;
  readonly reason: 'new-session' | 'retry' | 'migration';
  /** Backends already tried for this session (dial failed), or the one being left. */
  readonly exclude: ReadonlySet<string>;
  /** Known backends, healthy or not, as narrowed by earlier taps; selectors filter. */
  readonly backends: readonly BackendInfo[];
  /** Narrows the candidates later taps (e.g. the balancer) see — how routing plugins isolate groups. */
  restrict(backends: readonly BackendInfo[]): void;
}

export interface DialOptions {
  /** "off": plaintext; "prefer": TLS if the backend offers it; "required": fail without TLS. */
  tls: 'off' | 'prefer' | 'required';
  /** Send a PROXY v2 header with the client's address. */
  proxyProtocol: boolean;
  connectTimeoutMs: number;
}

export interface DialContext {
  readonly session: SessionInfo;
  readonly backend: BackendInfo;
}

/** The backend challenged a client logging in (or changing user) with an auth plugin. */
export interface AuthChallengeContext {
  readonly session: SessionInfo;
  /** The user logging in (for COM_CHANGE_USER, the new user). */
  readonly user: string;
  /** The auth plugin the backend asked for (e.g. client_ed25519). */
  readonly plugin: string;
  /** The client's connection to the proxy is TLS (the only case in which a password may be asked for). */
  readonly clientTls: boolean;
}

/** Credentials the proxy uses to log in to a backend on the session's behalf (migration, side connections). */
export type BackendCredentials =
  | { kind: 'relay' } // password-blind: relay the client's own auth exchange
  | { kind: 'native-hash'; user: string; stage1: Buffer } // SHA1(password)
  | { kind: 'cleartext'; user: string; password: string }
  | { kind: 'token'; user: string; plugin: string; data: Buffer };

/** The last authentication exchange the proxy relayed for a session (salt from the backend, client's answer). */
export interface AuthExchange {
  readonly plugin: string;
  readonly salt: Buffer;
  readonly reply: Buffer;
  /** The client used TLS for it. */
  readonly tls: boolean;
}

export interface CredentialsContext {
  readonly session: SessionInfo;
  readonly backend: BackendInfo;
  readonly authExchange: AuthExchange | null;
  /**
   * The backend the session is leaving, held for this migration: strategies that get a login from it
   * (TiDB's session token) query it here. Null for a failover: the old backend is gone.
   */
  readonly source: BackendSql | null;
}

export interface CommandContext {
  readonly session: SessionInfo;
  /** Command byte (COM_QUERY, …). */
  readonly command: number;
  /** The whole payload, command byte first. Valid only during the call. */
  readonly payload: Buffer;
  /** The statement text for COM_QUERY / COM_STMT_PREPARE (decoded on first use). */
  readonly sql: string;
}

/**
 * What an onCommand tap may return instead of letting the command through: an error or OK sent to
 * the client, or a hold — the session stops reading from the client until the promise settles, then
 * applies what it resolves to (undefined: forward the command). Holds are for queueing (rate limits);
 * keep them short.
 */
export type CommandReply =
  | { error: Refusal }
  | { ok: { affectedRows?: number; info?: string } }
  | { hold: Promise<CommandReply | undefined> };

/** A selectBackend answer that ends the search with a specific error for the client. */
export interface SelectionRefusal {
  refuse: Refusal;
}

/** One object per session, refilled for every response (the hot path allocates nothing): valid only during the call. */
export interface ResultContext {
  readonly session: SessionInfo;
  readonly command: number;
  readonly isError: boolean;
  /** Server status flags of the last OK/EOF, or -1. */
  readonly status: number;
  /** Time from forwarding the command to the end of its response, in milliseconds (fractional). */
  readonly durationMs: number;
  readonly backend: BackendInfo;
}

/**
 * A command on its way to the backend, shown to hooks.observeCommand while traffic observation is on
 * (ctx.traffic.setObserving). One object per session, refilled for every command: valid only during
 * the call, and so are the bytes — an observer copies what it keeps, synchronously.
 */
export interface ObservedCommand {
  readonly session: SessionInfo;
  readonly command: number;
  /** The payload bytes the proxy holds: buf[offset, offset + available), command byte first. */
  readonly buf: Buffer;
  readonly offset: number;
  readonly available: number;
  /**
   * The payload's whole length. available < length when the command spans socket chunks and is longer
   * than the observation's wholePayloadUpTo (the rest is forwarded without being seen: a truncated view).
   */
  readonly length: number;
  /**
   * Number of this command's response in the session (1, 2, …): ObservedResult.response matches it.
   * 0 for commands the server does not answer (COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA, COM_QUIT).
   */
  readonly response: number;
  /** When the command went to the backend: performance.now() milliseconds (the clock ObservedResult.durationMs counts on). */
  readonly at: number;
}

/** A response ended, shown to hooks.observeResult while observation is on. Refilled per response: valid only during the call. */
export interface ObservedResult {
  readonly session: SessionInfo;
  readonly command: number;
  /** Which response of the session this is (see ObservedCommand.response). */
  readonly response: number;
  readonly isError: boolean;
  /** The ERR packet's error code, or 0. */
  readonly errorCode: number;
  /** Server status flags of the last OK/EOF, or -1. */
  readonly status: number;
  /** Rows affected, summed over the OK packets of the response (multi-statements). */
  readonly affectedRows: number;
  /** Result-set rows sent, summed over the result sets of the response. */
  readonly rows: number;
  /** For a COM_STMT_PREPARE answered OK: the statement id the client got (what its executes will name); else 0. */
  readonly statementId: number;
  /**
   * SHA-1 (20 bytes) of the payload bytes of every result row of the response (all result sets; column
   * definitions and terminators excluded) when observation was switched on with `resultDigest`; else null.
   */
  readonly rowsDigest: Buffer | null;
  /** Time from forwarding the command to the end of its response, in milliseconds (fractional). */
  readonly durationMs: number;
  readonly backend: BackendInfo;
}

export interface MigrationContext {
  readonly session: SessionInfo;
  readonly from: BackendInfo;
  readonly to: BackendInfo;
  readonly reason: string;
  /**
   * "planned": the session leaves a backend that still holds its state (rebalance, drain, admin).
   * "failover": its backend died (killed, reset, unreachable) between commands; the session is being
   * re-established elsewhere from what the proxy saw, without the old backend (source is null).
   */
  readonly kind: 'planned' | 'failover';
}

/** Rows of a query the proxy ran itself; values are UTF-8 text or null. */
export interface SqlResult {
  columns: string[];
  rows: Array<Array<string | null>>;
  affectedRows: number;
  status: number;
}

/** A statement prepared on a backend (COM_STMT_PREPARE's answer). */
export interface PreparedOnBackend {
  statementId: number;
  params: number;
  columns: number;
}

/** One command of BackendSql.pipeline: a text query, a COM_STMT_PREPARE or a COM_STMT_CLOSE (no answer). */
export type PipelineStep = { query: string } | { prepare: Buffer | string } | { close: number };

/** What one pipelined step got: rows, a statement, or the backend's error for that step alone ({} for a close). */
export type PipelineOutcome = { result: SqlResult } | { prepared: PreparedOnBackend } | { error: Error & { code?: number } } | { closed: true };

/** The proxy's own SQL on a backend connection during a migration. Throws BackendError on ERR. */
export interface BackendSql {
  readonly addr: string;
  query(sql: string): Promise<SqlResult>;
  prepare(sql: Buffer | string): Promise<PreparedOnBackend>;
  /**
   * Sends all steps, then reads all answers: one round trip. Each step's ERR is its outcome (the server
   * runs the next command anyway). Optional: connections that do not offer it are driven step by step.
   */
  pipeline?(steps: readonly PipelineStep[]): Promise<PipelineOutcome[]>;
}

/** A prepared statement the client holds, as the kernel tracked it. */
export interface PreparedStatementInfo {
  readonly clientId: number;
  readonly sql: Buffer;
  readonly params: number;
}

/** What captureState / restoreState taps get: both backends and the session's statements. */
export interface StateTransferContext extends MigrationContext {
  /**
   * The backend the session is leaving (still holding the session's state); null for a failover
   * (kind "failover"): taps restore what the proxy saw (session.tracked) or veto with a reason.
   */
  readonly source: BackendSql | null;
  /** The new backend, logged in as the session's user, not yet serving the client. */
  readonly target: BackendSql;
  readonly statements: readonly PreparedStatementInfo[];
  /** After re-preparing on the target: the client keeps `clientId`, the kernel rewrites it to `backendId`. */
  remapStatement(clientId: number, backendId: number): void;
}

export interface MigrationVeto {
  /** Why the session cannot move now (logged). */
  reason: string;
  /** Try again later (true) or give up on this request (false). */
  retry: boolean;
}

export interface MigrationOutcome extends MigrationContext {
  readonly result: 'succeeded' | 'failed' | 'vetoed';
  readonly durationMs: number;
  readonly error?: string;
  /** For a veto: whether the request stays (tried again after a pause) or is dropped. */
  readonly retry?: boolean;
}

export type BackendEvent =
  | { type: 'added'; backend: BackendInfo }
  | { type: 'removed'; backend: BackendInfo }
  | { type: 'health'; backend: BackendInfo; healthy: boolean; reason: string }
  | { type: 'draining'; backend: BackendInfo; draining: boolean }
  | { type: 'labels'; backend: BackendInfo };

export interface CloseContext {
  readonly session: SessionInfo;
  readonly side: Side;
  readonly reason: string;
  readonly detail?: string;
  /**
   * The client had completed its login (the session reached the command phase) before it closed; a
   * failure before that is a handshake failure. Absent when the kernel does not say.
   */
  readonly loggedIn?: boolean;
}

/** One health check of a backend finished (published by the health plugin through hooks.healthChecked). */
export interface HealthCheckContext {
  readonly backend: BackendInfo;
  /** The check passed. */
  readonly ok: boolean;
  /** How long the check took, in milliseconds (fractional). */
  readonly durationMs: number;
  /** What the check saw (an error message when it failed). */
  readonly detail: string;
}

export interface LifecycleContext {
  readonly config: FrozenConfig;
}
