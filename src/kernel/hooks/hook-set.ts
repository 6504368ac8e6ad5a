import {
  AsyncParallelHook, AsyncSeriesBailHook, AsyncSeriesHook, AsyncSeriesWaterfallHook, HookMap, SyncBailHook, SyncHook,
  SyncWaterfallHook,
} from 'tapable';
import type {
  AuthChallengeContext, BackendCredentials, BackendEvent, BackendInfo, CloseContext, CommandContext, CommandReply, ConnectContext,
  CredentialsContext, DialContext, DialOptions, GreetingOptions, HandshakeContext, HealthCheckContext, LifecycleContext, MigrationContext,
  MigrationOutcome, MigrationVeto, ObservedCommand, ObservedResult, Refusal, ResultContext, SelectBackendContext, SelectionRefusal, StateTransferContext,
} from './hook-types.js';

/**
 * Every hook the kernel calls, in the order a session meets them. Taps run by `stage` (lower first,
 * default 0), and within one stage in plugin order (the order of the `plugins:` list).
 *
 * Failure policy — what happens when a tap throws or rejects (see plugin-isolation.ts):
 *   fail-closed: the operation is refused with ER_PROXY_PLUGIN_FAILED naming the plugin;
 *   fail-open:   the failing tap is skipped, as if it had returned undefined.
 */
export function createHookSet() {
  return Object.freeze({
    /** A client socket was accepted. Return a Refusal to reject it. fail-closed. */
    connect: new AsyncSeriesBailHook<[ConnectContext], Refusal | undefined>(['ctx']),
    /** Shape the greeting the proxy sends (server version, capabilities, auth plugin, TLS offer). fail-open. */
    greeting: new SyncWaterfallHook<[GreetingOptions]>(['options']),
    /** The client said who it is (user, db, attributes, TLS). Return a Refusal to deny; may tag session.labels. fail-closed. */
    onHandshake: new AsyncSeriesBailHook<[HandshakeContext], Refusal | undefined>(['ctx']),
    /**
     * During a relayed login, the backend asked the client for auth plugin `ctx.plugin`. Return
     * 'cleartext' to have the proxy ask the client for its password instead and answer the backend
     * itself (so the session can later log in elsewhere). The kernel honours it only over client TLS and
     * for plugins it can answer. Synchronous. fail-open (the exchange is relayed as usual).
     */
    authChallenge: new SyncBailHook<[AuthChallengeContext], 'cleartext' | undefined>(['ctx']),
    /** How to log in to a backend for this session. First non-undefined wins; default is relay. fail-open. */
    backendCredentials: new AsyncSeriesBailHook<[CredentialsContext], BackendCredentials | undefined>(['ctx']),
    /** Backend TLS, PROXY header and timeouts for one dial. fail-open. */
    dialOptions: new SyncWaterfallHook<[DialOptions, DialContext]>(['options', 'ctx']),
    /**
     * Pick a backend for a new session, a retry or a migration. Taps with lower `stage` run first
     * (routing/isolation plugins before the default balancer at stage 100). Returning undefined passes to
     * the next tap; returning { refuse } ends the search and the client gets that error (e.g. "tenant X
     * has no healthy backend"). A routing plugin that narrows the candidates for later taps replaces
     * `ctx.backends` via `ctx.restrict()`. fail-open.
     */
    selectBackend: new AsyncSeriesBailHook<[SelectBackendContext], BackendInfo | SelectionRefusal | undefined>(['ctx']),
    /**
     * Hot path, keyed by command byte. Called only for command bytes somebody tapped. Return a
     * CommandReply to answer the client instead of the backend, or undefined to let it through.
     * Synchronous. fail-open (a throwing tap lets the command through).
     */
    onCommand: new HookMap<SyncBailHook<[CommandContext], CommandReply | undefined>>(() => new SyncBailHook(['ctx'])),
    /** A command's response ended. Called only when tapped. Synchronous. fail-open. */
    onResult: new SyncHook<[ResultContext]>(['ctx']),
    /**
     * Traffic observation (capture): every command on its way to the backend, called only while
     * ctx.traffic observation is on and somebody tapped it — when off, the pump pays one boolean check.
     * Synchronous; copy the bytes you keep. fail-open.
     */
    observeCommand: new SyncHook<[ObservedCommand]>(['ctx']),
    /** Traffic observation: a response ended (outcome, rows, duration). Same conditions as observeCommand. fail-open. */
    observeResult: new SyncHook<[ObservedResult]>(['ctx']),
    /** A session is about to move. Return a veto to refuse or postpone. fail-closed (a throwing tap vetoes). */
    beforeMigrate: new AsyncSeriesBailHook<[MigrationContext], MigrationVeto | undefined>(['ctx']),
    /** Export session state from the old backend (ctx.source) into the state object. fail-closed. */
    captureState: new AsyncSeriesWaterfallHook<[Record<string, unknown>, StateTransferContext]>(['state', 'ctx']),
    /** Apply the captured state on the new backend (ctx.target). fail-closed: any error fails the migration. */
    restoreState: new AsyncSeriesHook<[Record<string, unknown>, StateTransferContext]>(['state', 'ctx']),
    /** A migration ended (succeeded, failed or vetoed). fail-open. */
    afterMigrate: new SyncHook<[MigrationOutcome]>(['outcome']),
    /** A backend was added, removed, changed health, drain state or labels. fail-open. */
    backendEvent: new SyncHook<[BackendEvent]>(['event']),
    /**
     * A health check of a backend finished, whatever its outcome (health changes themselves are
     * backendEvents). Called by the health plugin, tapped by observers (metrics). fail-open.
     */
    healthChecked: new SyncHook<[HealthCheckContext]>(['ctx']),
    /** A session ended, with who caused it and why. fail-open. */
    close: new AsyncParallelHook<[CloseContext]>(['ctx']),
    lifecycle: Object.freeze({
      /** After all plugins applied, before listening. fail-closed for required plugins. */
      init: new AsyncSeriesHook<[LifecycleContext]>(['ctx']),
      /** Listening. fail-open. */
      ready: new AsyncSeriesHook<[LifecycleContext]>(['ctx']),
      /** The configuration was reloaded. fail-open. */
      reload: new AsyncSeriesHook<[LifecycleContext]>(['ctx']),
      /** Shutting down: stop timers, close clients. fail-open. */
      shutdown: new AsyncSeriesHook<[LifecycleContext]>(['ctx']),
    }),
  });
}

export type HookSet = ReturnType<typeof createHookSet>;

/** Failure policy per hook name, read by the isolation interceptor. */
export const HOOK_FAILURE_POLICY: Readonly<Record<string, 'fail-open' | 'fail-closed'>> = Object.freeze({
  connect: 'fail-closed',
  greeting: 'fail-open',
  onHandshake: 'fail-closed',
  authChallenge: 'fail-open',
  backendCredentials: 'fail-open',
  dialOptions: 'fail-open',
  selectBackend: 'fail-open',
  onCommand: 'fail-open',
  onResult: 'fail-open',
  observeCommand: 'fail-open',
  observeResult: 'fail-open',
  beforeMigrate: 'fail-closed',
  captureState: 'fail-closed',
  restoreState: 'fail-closed',
  afterMigrate: 'fail-open',
  backendEvent: 'fail-open',
  healthChecked: 'fail-open',
  close: 'fail-open',
  'lifecycle.init': 'fail-closed',
  'lifecycle.ready': 'fail-open',
  'lifecycle.reload': 'fail-open',
  'lifecycle.shutdown': 'fail-open',
});
