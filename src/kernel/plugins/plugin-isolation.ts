import type { Logger } from 'pino';
import { ER_PROXY_PLUGIN_FAILED } from '../protocol/constants.js';
import { HOOK_FAILURE_POLICY, type HookSet } from '../hooks/hook-set.js';
import type { Refusal } from '../hooks/hook-types.js';
import { MigrationVetoError } from '../errors.js';

/** Per plugin and hook: how many times a tap threw. */
export type PluginErrorCounts = Map<string, number>;

/** Calls, failures and time of one plugin's taps on one hook; kept by the kernel across generations. */
export interface TapStats {
  readonly plugin: string;
  readonly hook: string;
  calls: number;
  errors: number;
  seconds: number;
}

/** TapStats by "<plugin>/<hook>". */
export type PluginHookStatsTable = Map<string, TapStats>;

interface TapInfo {
  type: 'sync' | 'async' | 'promise';
  name: string;
  fn: (...args: unknown[]) => unknown;
}

interface Interceptable {
  /** The argument names the hook was declared with (tapable keeps them here). */
  readonly _args?: readonly string[];
  intercept(i: { register?: (tap: TapInfo) => TapInfo }): void;
}

/** One-argument sync taps (the per-query hooks) are timed once every this many calls. */
const TIMED_EVERY = 16;
const TIMED_MASK = TIMED_EVERY - 1;

const WATERFALL_HOOKS = new Set(['greeting', 'dialOptions', 'captureState']);
const RETHROW_HOOKS = new Set(['captureState', 'restoreState', 'lifecycle.init']);
/**
 * Hooks that run inside a migration, where a MigrationVetoError is an answer, not a failure: it goes
 * to the kernel as a veto with the plugin's reason (TiDB refusing SHOW SESSION_STATES while the
 * credentials are fetched), instead of being logged as a crash and swallowed.
 */
const VETO_HOOKS = new Set(['backendCredentials', 'captureState', 'restoreState']);

/**
 * Wraps every tap so a plugin that throws or rejects never takes the proxy down: the error is logged
 * and counted per plugin and hook, then the hook's failure policy (HOOK_FAILURE_POLICY) decides what
 * the tap "returned". Installed once per hook set, before any plugin taps.
 */
export function isolateHooks(hooks: HookSet, logger: Logger, counts: PluginErrorCounts, stats: PluginHookStatsTable = new Map()): void {
  const statsOf = (plugin: string, hook: string): TapStats => {
    const key = `${plugin}/${hook}`;
    let s = stats.get(key);
    if (!s) stats.set(key, (s = { plugin, hook, calls: 0, errors: 0, seconds: 0 }));
    return s;
  };
  const wrap = (hookName: string, hook: Interceptable): void => {
    const policy = HOOK_FAILURE_POLICY[hookName] ?? 'fail-open';
    const failure = (tap: string, err: unknown, args: unknown[]): unknown => {
      if (err instanceof MigrationVetoError && VETO_HOOKS.has(hookName)) throw err;
      const key = `${tap}/${hookName}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      statsOf(tap, hookName).errors++;
      const message = err instanceof Error ? err.message : String(err);
      logger.error({ plugin: tap, hook: hookName, err }, `plugin ${tap} failed in ${hookName}: ${message}`);
      if (RETHROW_HOOKS.has(hookName)) throw err instanceof Error ? err : new Error(message);
      if (WATERFALL_HOOKS.has(hookName)) return args[0];
      if (policy === 'fail-open') return undefined;
      if (hookName === 'beforeMigrate') return { reason: `plugin ${tap} failed: ${message}`, retry: true };
      const refusal: Refusal = { code: ER_PROXY_PLUGIN_FAILED, message: `plugin ${tap} failed in ${hookName}: ${message}` };
      return refusal;
    };
    // tapable calls a tap with exactly the hook's declared arguments.
    const oneArgument = hook._args?.length === 1;
    hook.intercept({
      register(tap: TapInfo): TapInfo {
        const fn = tap.fn;
        // Looked up once per tap, so a call only adds to numbers (onResult is on the hot path).
        const stat = statsOf(tap.name, hookName);
        if (tap.type === 'sync' && oneArgument) {
          // onResult and onCommand run per query: no rest array per call.
          // Timed one call in TIMED_EVERY (two clock reads cost more than a small tap): seconds is an estimate.
          tap.fn = (ctx: unknown) => {
            const started = (stat.calls++ & TIMED_MASK) === 0 ? performance.now() : -1;
            try {
              return fn(ctx);
            } catch (err) {
              return failure(tap.name, err, [ctx]);
            } finally {
              if (started >= 0) stat.seconds += (TIMED_EVERY * (performance.now() - started)) / 1000;
            }
          };
        } else if (tap.type === 'sync') {
          tap.fn = (...args: unknown[]) => {
            const started = performance.now();
            try {
              return fn(...args);
            } catch (err) {
              return failure(tap.name, err, args);
            } finally {
              stat.calls++;
              stat.seconds += (performance.now() - started) / 1000;
            }
          };
        } else if (tap.type === 'promise') {
          tap.fn = (...args: unknown[]) => {
            const started = performance.now();
            const settled = (): void => {
              stat.calls++;
              stat.seconds += (performance.now() - started) / 1000;
            };
            try {
              return Promise.resolve(fn(...args)).then((result) => {
                settled();
                return result;
              }, (err: unknown) => {
                settled();
                return failure(tap.name, err, args);
              });
            } catch (err) {
              settled();
              return Promise.resolve().then(() => failure(tap.name, err, args));
            }
          };
        } else {
          tap.fn = (...args: unknown[]) => {
            const callback = args[args.length - 1] as (err: unknown, result?: unknown) => void;
            const rest = args.slice(0, -1);
            const started = performance.now();
            stat.calls++;
            try {
              fn(...rest, (err: unknown, result?: unknown) => {
                stat.seconds += (performance.now() - started) / 1000;
                if (err) {
                  try {
                    callback(null, failure(tap.name, err, rest));
                  } catch (rethrown) {
                    callback(rethrown);
                  }
                } else callback(null, result);
              });
            } catch (err) {
              try {
                callback(null, failure(tap.name, err, rest));
              } catch (rethrown) {
                callback(rethrown);
              }
            }
          };
        }
        return tap;
      },
    });
  };
  for (const [name, hook] of Object.entries(hooks)) {
    if (name === 'lifecycle') {
      for (const [sub, h] of Object.entries(hooks.lifecycle)) wrap(`lifecycle.${sub}`, h as unknown as Interceptable);
    } else if (name === 'onCommand') {
      hooks.onCommand.intercept({
        factory: (_key, hook) => {
          wrap('onCommand', hook as unknown as Interceptable);
          return hook;
        },
      });
    } else wrap(name, hook as unknown as Interceptable);
  }
}
