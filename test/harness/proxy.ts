// Starts tiproxy for tests: in-process (a Kernel with the built-in plugins, logs captured as JSON
// lines so tests can assert on them) or as the real CLI in a child process (signals, exit codes).
import { once } from 'node:events';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import type { ChildProcess } from 'node:child_process';
import { pino } from 'pino';
import { applyOverrides, buildConfig, freezeConfig } from '../../src/kernel/config/config-loader.js';
import type { FrozenConfig, ProxyConfig } from '../../src/kernel/config/proxy-config.js';
import { Kernel, parseListenAddr } from '../../src/kernel/kernel.js';
import type { TiproxyPlugin } from '../../src/plugin.js';
import { BUILTIN_PLUGINS, withDefaultPlugins } from '../../src/plugins/builtin-plugins.js';
import { CONTRIB_PLUGINS } from '../../plugins-contrib/index.js';
import { repoRoot } from '../../local-cluster/paths.js';
import { freePort } from '../../local-cluster/ports.js';
import { spawnTracked, stopProcess } from '../../local-cluster/processes.js';

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface TestProxy {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** Port of the HTTP API (admin-api plugin), on 127.0.0.1 unless the test's config says otherwise. */
  readonly apiPort: number;
  readonly kernel: Kernel;
  /** Every log line so far, parsed. */
  readonly logs: LogLine[];
  stop(): Promise<void>;
}

export interface TestProxyOptions {
  /**
   * "host:port" of each backend, as `--backend` gives them (discovery-static, no labels). Omit it to
   * configure discovery-static yourself in `config.plugins` (e.g. backends with labels).
   */
  backends?: string[];
  /** Deep-merged into the config before validation (e.g. { proxy: { 'max-connections': 2 } }). */
  config?: Record<string, unknown>;
  /** Extra plugins (resolved by name) to add to the built-ins, e.g. a test plugin. */
  plugins?: TiproxyPlugin<never>[];
  logLevel?: 'debug' | 'info' | 'warn';
}

function merge(target: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  for (const [k, v] of Object.entries(patch)) {
    const t = target[k];
    if (v && typeof v === 'object' && !Array.isArray(v) && t && typeof t === 'object' && !Array.isArray(t)) {
      merge(t as Record<string, unknown>, v as Record<string, unknown>);
    } else target[k] = v;
  }
  return target;
}

/** The running config with plugin `name`'s config replaced (the plugin added when absent), validated. */
export function configWithPlugin(kernel: Kernel, name: string, config: Record<string, unknown>): FrozenConfig {
  const next = structuredClone(kernel.config()) as ProxyConfig;
  const entry = next.plugins.find((p) => p.name === name);
  if (entry) entry.config = config;
  else next.plugins.push({ name, enabled: true, required: false, config });
  return freezeConfig(buildConfig(next));
}

/** Applies `config` to plugin `name` through a generation rebuild, like a SIGHUP after editing the file. */
export function reloadPlugin(proxy: TestProxy, name: string, config: Record<string, unknown>): Promise<void> {
  return proxy.kernel.reload(configWithPlugin(proxy.kernel, name, config));
}

/** In-process proxy on a free 127.0.0.1 port. */
export async function startProxy(opts: TestProxyOptions): Promise<TestProxy> {
  const port = await freePort();
  const apiPort = await freePort();
  const raw = merge({ proxy: { addr: `127.0.0.1:${port}` }, api: { addr: `127.0.0.1:${apiPort}` }, log: { level: opts.logLevel ?? 'debug', format: 'json' } }, opts.config ?? {});
  const config = freezeConfig(withDefaultPlugins(applyOverrides(buildConfig(raw) as ProxyConfig, opts.backends ? { backends: opts.backends } : {})));
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
      cb();
    },
  });
  const logger = pino({ level: config.log.level }, sink);
  const extra = new Map((opts.plugins ?? []).map((p) => [p.name, p]));
  const kernel = new Kernel({ config, logger, resolvePlugin: (name) => extra.get(name) ?? BUILTIN_PLUGINS.get(name) ?? CONTRIB_PLUGINS.get(name) });
  await kernel.init();
  await kernel.listen();
  const api = parseListenAddr(config.api.addr);
  return { host: '127.0.0.1', port, apiPort: api.port, kernel, logs, stop: () => kernel.shutdown() };
}

export interface ProxyProcess {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** Port of the HTTP API (`--api-addr 127.0.0.1:<free>` unless `opts.apiPort` or the args say otherwise). */
  readonly apiPort: number;
  readonly child: ChildProcess;
  /** stdout+stderr so far. */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** The real CLI (`bin/tiproxy`, needs `npm run build`) as a child process; resolves once it listens. */
export async function startProxyProcess(
  args: string[],
  opts: { port?: number; apiPort?: number; expectListening?: boolean; startTimeoutMs?: number; /** Options for Node itself, before the script. */ nodeArgs?: string[] } = {},
): Promise<ProxyProcess> {
  const port = opts.port ?? (await freePort());
  // Every proxy gets its own API port: the default 0.0.0.0:3080 would collide between tests.
  const apiPort = opts.apiPort ?? (await freePort());
  const apiArgs = args.includes('--api-addr') ? [] : ['--api-addr', `127.0.0.1:${apiPort}`];
  const child = spawnTracked(process.execPath, [...(opts.nodeArgs ?? []), `${repoRoot}/bin/tiproxy`, '--addr', `127.0.0.1:${port}`, ...apiArgs, '--log-format', 'json', ...args], {
    cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  if (opts.expectListening !== false) {
    const deadline = Date.now() + (opts.startTimeoutMs ?? 10_000);
    // Wait for the port to accept connections (works at any log level).
    while (!(await accepts(port))) {
      if (child.exitCode !== null) throw new Error(`tiproxy exited (${child.exitCode}): ${out}`);
      if (Date.now() > deadline) {
        // Not left running behind the failed start (it may still come up later and hold the port).
        await stopProcess(child, { signal: 'SIGKILL' });
        throw new Error(`tiproxy did not start listening: ${out}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    host: '127.0.0.1', port, apiPort, child, output: () => out,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null) await stopProcess(child, { signal, timeoutMs: 20_000 });
    },
  };
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Waits for the child to exit; returns its exit code. */
export async function exitCode(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const [code] = (await once(child, 'exit')) as [number | null];
  return code;
}
