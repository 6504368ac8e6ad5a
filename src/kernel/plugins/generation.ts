import { Ajv, type ErrorObject } from 'ajv';
import type { Logger } from 'pino';
import { ConfigError, configErrorFromAjv } from '../config/config-error.js';
import type { FrozenConfig } from '../config/proxy-config.js';
import { createHookSet, type HookSet } from '../hooks/hook-set.js';
import type { PreparedStatementInfo } from '../hooks/hook-types.js';
import type {
  BackendDirectory, MigrationDirectory, PluginContext, PluginHostInfo, ServiceRegistry, SessionDirectory, TiproxyPlugin,
} from './plugin-definition.js';
import type { HttpHandler, ProxyControl } from './proxy-control.js';
import { isolateHooks, type PluginErrorCounts, type PluginHookStatsTable } from './plugin-isolation.js';
import { ObservationSwitch, trafficObservation } from './traffic-observation.js';
import { WorkerGroupHost } from './worker-group.js';

/** What the kernel lends each generation's plugins. */
export interface GenerationServices {
  logger: Logger;
  backendsFor(pluginName: string): BackendDirectory;
  sessions: SessionDirectory;
  migrations: MigrationDirectory;
  openBackendSql: PluginContext<never>['openBackendSql'];
  errorCounts: PluginErrorCounts;
  /** Calls, errors and time per plugin and hook (kept across generations). */
  hookStats?: PluginHookStatsTable;
  /** What plugins see of the plugin host (generation, statistics, reloads). */
  pluginHost?: PluginHostInfo;
  /** The worker processes; a lone process by default. */
  workers?: WorkerGroupHost;
  /** Values plugins keep across generations (ctx.keep), by "<plugin>/<key>". */
  kept?: Map<string, unknown>;
  /** ctx.proxy for this generation's plugins; absent outside a kernel (unit tests), where using it throws. */
  proxyFor?(generation: Generation): ProxyControl;
  /** The kernel-wide traffic observation switch (ctx.traffic); a private one outside a kernel. */
  observation?: ObservationSwitch;
  /** A session's protocol-level prepared statements (ctx.traffic.preparedStatements). */
  preparedStatements?(sessionId: number): readonly PreparedStatementInfo[];
}

const NO_PLUGIN_HOST: PluginHostInfo = { generation: () => 0, hookStats: () => [], reloads: () => ({ succeeded: 0, failed: 0, lastError: null }) };

/** Resolves a plugin name from config to its definition (built-in, contrib, or hot-loaded). */
export type PluginResolver = (name: string) => TiproxyPlugin<never> | undefined;

/**
 * One complete, applied set of plugins and their hooks. tapable cannot untap, so every change of
 * plugins or their config builds a new generation; sessions pin the one they started with and adopt
 * the newest at a safe point.
 */
export class Generation {
  /** 1 where somebody tapped onCommand for that command byte: the hot path checks only this. */
  readonly commandTapped = new Uint8Array(256);
  resultTapped = false;
  /** Somebody tapped observeCommand or observeResult: the pump calls them while `observation.active`. */
  observeTapped = false;
  private readonly disposers: Array<() => void | Promise<void>> = [];
  readonly applied: string[] = [];
  /** Versions of the applied plugins, by name. */
  readonly versions = new Map<string, string>();
  readonly createdAt = Date.now();
  /** Answers the HTTP API port while this generation is current (ctx.proxy.serveHttp). */
  httpHandler: HttpHandler | null = null;
  /** Sessions using this generation. */
  users = 0;
  /** A newer generation took over; this one only serves sessions that have not adopted it yet. */
  superseded = false;
  private readonly serviceMap = new Map<string, { provider: string; service: unknown }>();

  constructor(readonly id: number, readonly hooks: HookSet, readonly config: FrozenConfig, readonly observation = new ObservationSwitch()) {}

  seal(): void {
    // Count taps, not isUsed(): that is also true for the isolation interceptor every hook carries.
    for (let c = 0; c < 256; c++) this.commandTapped[c] = (this.hooks.onCommand.get(c)?.taps.length ?? 0) > 0 ? 1 : 0;
    this.resultTapped = this.hooks.onResult.taps.length > 0;
    this.observeTapped = this.hooks.observeCommand.taps.length > 0 || this.hooks.observeResult.taps.length > 0;
  }

  /** The service registry as one plugin sees it (providers are remembered for error messages). */
  servicesFor(pluginName: string): ServiceRegistry {
    const map = this.serviceMap;
    return {
      provide(name, service) {
        const existing = map.get(name);
        if (existing) throw new Error(`service "${name}" is already provided by plugin ${existing.provider}`);
        map.set(name, { provider: pluginName, service });
      },
      get(name) {
        return map.get(name)?.service as never;
      },
    };
  }

  addDisposer(fn: () => void | Promise<void>): void {
    this.disposers.push(fn);
  }

  async dispose(logger: Logger): Promise<void> {
    for (const fn of this.disposers.reverse()) {
      try {
        await fn();
      } catch (err) {
        logger.warn({ err }, 'plugin dispose failed');
      }
    }
    this.disposers.length = 0;
  }
}

const ajv = new Ajv({ useDefaults: true, allErrors: true, strict: false });

function validatePluginConfig(plugin: TiproxyPlugin<never>, index: number, config: unknown): unknown {
  const copy = structuredClone(config ?? {});
  if (!plugin.configSchema) return copy;
  // A hot-reloaded plugin brings a new schema object under the same $id, which ajv would refuse as a duplicate.
  const id = plugin.configSchema['$id'];
  if (typeof id === 'string' && ajv.getSchema(id)?.schema !== plugin.configSchema) ajv.removeSchema(id);
  const validate = ajv.compile(plugin.configSchema);
  if (validate(copy)) return copy;
  // Re-root the plugin's errors so they name plugins[i].config.<path> like the proxy schema's do.
  const errors = (validate.errors ?? []).map((e: ErrorObject) => ({ ...e, instancePath: `/plugins/${index}/config${e.instancePath}` }));
  // The index alone makes the operator count list entries: name the plugin too.
  const issues = configErrorFromAjv(errors).issues.map((issue) => ({ ...issue, reason: `${issue.reason} (config of plugin ${plugin.name})` }));
  throw new ConfigError(issues);
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const child of Object.values(v as object)) deepFreeze(child);
  }
  return v;
}

/**
 * Builds a generation: fresh hooks with isolation installed, every enabled plugin's config validated,
 * then applied in list order. Config errors throw ConfigError (nothing is applied). A plugin whose
 * apply() fails is logged and left out, unless it is `required`, which fails the whole build.
 */
export async function buildGeneration(
  id: number, config: FrozenConfig, resolve: PluginResolver, services: GenerationServices,
): Promise<Generation> {
  const entries = config.plugins.map((entry, index) => ({ entry, index })).filter(({ entry }) => entry.enabled);
  const resolved = entries.map(({ entry, index }) => {
    const plugin = resolve(entry.name);
    if (!plugin) throw new ConfigError(`plugins[${index}].name`, `unknown plugin "${entry.name}"`);
    return { entry, index, plugin, config: deepFreeze(validatePluginConfig(plugin, index, entry.config)) };
  });
  const hooks = createHookSet();
  isolateHooks(hooks, services.logger, services.errorCounts, services.hookStats);
  const workers = services.workers ?? new WorkerGroupHost(0, 1);
  const kept = services.kept ?? new Map<string, unknown>();
  const generation = new Generation(id, hooks, config, services.observation);
  const traffic = trafficObservation(generation.observation, services.preparedStatements ?? (() => []));
  for (const { entry, plugin, config: pluginConfig } of resolved) {
    const logger = services.logger.child({ plugin: plugin.name });
    const ctx: PluginContext<never> = {
      hooks, config: pluginConfig as never, proxyConfig: config, backends: services.backendsFor(plugin.name),
      sessions: services.sessions, migrations: services.migrations, services: generation.servicesFor(plugin.name), openBackendSql: services.openBackendSql, logger, onDispose: (fn) => generation.addDisposer(fn),
      superseded: () => generation.superseded,
      plugins: services.pluginHost ?? NO_PLUGIN_HOST,
      workers: workers.forPlugin((fn) => generation.addDisposer(fn)),
      keep<T>(key: string, create: () => T): T {
        const k = `${plugin.name}/${key}`;
        if (!kept.has(k)) kept.set(k, create());
        return kept.get(k) as T;
      },
      proxy: services.proxyFor?.(generation) ?? unavailableProxyControl,
      traffic,
    };
    const tapsBefore = snapshotTaps(hooks);
    try {
      await plugin.apply(ctx);
      if (plugin.dispose) generation.addDisposer(() => plugin.dispose!());
      generation.applied.push(plugin.name);
      generation.versions.set(plugin.name, plugin.version);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (entry.required) {
        await generation.dispose(services.logger);
        throw new Error(`required plugin ${plugin.name} failed to apply: ${message}`, { cause: err });
      }
      // Left out means none of its taps run: undo those it made before failing.
      restoreTaps(hooks, tapsBefore);
      logger.error({ err }, `plugin ${plugin.name} failed to apply and is left out: ${message}`);
    }
  }
  generation.seal();
  return generation;
}

/** ctx.proxy where no kernel runs (generations built by unit tests): every use says so. */
const unavailableProxyControl: ProxyControl = new Proxy({} as ProxyControl, {
  get(_target, key) {
    return () => {
      throw new Error(`ctx.proxy.${String(key)} is not available outside a running proxy`);
    };
  },
});

interface TapList {
  taps: unknown[];
  _resetCompilation?(): void;
}

function everyHook(hooks: HookSet): TapList[] {
  const out: TapList[] = [];
  for (const [name, hook] of Object.entries(hooks)) {
    if (name === 'lifecycle') out.push(...(Object.values(hooks.lifecycle) as unknown as TapList[]));
    else if (name === 'onCommand') {
      for (let c = 0; c < 256; c++) {
        const h = hooks.onCommand.get(c);
        if (h) out.push(h as unknown as TapList);
      }
    } else out.push(hook as unknown as TapList);
  }
  return out;
}

function snapshotTaps(hooks: HookSet): Map<TapList, Set<unknown>> {
  return new Map(everyHook(hooks).map((h) => [h, new Set(h.taps)]));
}

/** Removes the taps made since `snapshot` (tapable has no untap; nothing has called these hooks yet). */
function restoreTaps(hooks: HookSet, snapshot: Map<TapList, Set<unknown>>): void {
  for (const h of everyHook(hooks)) {
    const kept = snapshot.get(h);
    if (kept && kept.size === h.taps.length) continue;
    h.taps = h.taps.filter((t) => kept?.has(t) ?? false);
    h._resetCompilation?.();
  }
}
