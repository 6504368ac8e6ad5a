import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type AnySchemaObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { loadAll, YAMLException } from 'js-yaml';
import { ConfigError, ROOT_KEY_PATH, configErrorFromAjv } from './config-error.js';
import type { FrozenConfig, PluginEntry, ProxyConfig } from './proxy-config.js';

/** Settings given on the command line; they win over the config file. */
export interface CliOverrides {
  addr?: string;
  apiAddr?: string;
  logLevel?: string;
  logFormat?: string;
  /** host:port list; feeds the discovery-static plugin. */
  backends?: string[];
  pluginDir?: string;
  /** PD/etcd endpoints (host:port list); sets proxy.pd-addrs. */
  pdAddrs?: string[];
  /** Worker processes, as typed on the command line; sets proxy.workers (the schema checks it). */
  workers?: string;
}

/** Plugin that `--backend` configures. */
export const STATIC_DISCOVERY_PLUGIN = 'discovery-static';
/** Plugin that `proxy.pd-addrs` / `--pd-addrs` enables. */
export const ETCD_DISCOVERY_PLUGIN = 'discovery-etcd';

/** Where each override lands in the config, so validation errors can name the flag instead. */
const OVERRIDE_FLAGS: Readonly<Record<string, string>> = {
  'proxy.addr': '--addr',
  'api.addr': '--api-addr',
  'log.level': '--log-level',
  'log.format': '--log-format',
  'plugin-dir': '--plugin-dir',
  'proxy.pd-addrs': '--pd-addrs',
  'proxy.workers': '--workers',
};

/** Schema annotations that ajv must accept in strict mode (used by docs and error messages). */
const ANNOTATION_KEYWORDS = ['x-reloadable', 'x-expected'];

let cachedPackageRoot: string | undefined;

/**
 * Directory holding package.json. Found by walking up from this module because the same code runs
 * from src/kernel/config/ (tsx) and from a bundle in dist/ (esbuild), at different depths.
 */
export function packageRoot(): string {
  if (cachedPackageRoot !== undefined) return cachedPackageRoot;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return (cachedPackageRoot = dir);
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** Absolute path of schemas/proxy.schema.json. */
export function proxySchemaPath(): string {
  return join(packageRoot(), 'schemas', 'proxy.schema.json');
}

interface Validators {
  config: ValidateFunction<ProxyConfig>;
  addr: ValidateFunction<string>;
}

let cachedValidators: Validators | undefined;

function validators(): Validators {
  if (cachedValidators !== undefined) return cachedValidators;
  const schema = JSON.parse(readFileSync(proxySchemaPath(), 'utf8')) as AnySchemaObject;
  // verbose: errors carry the offending value and its schema, for messages like `must be host:port, got "x"`.
  const ajv = new Ajv2020({ useDefaults: true, allErrors: true, verbose: true, keywords: ANNOTATION_KEYWORDS });
  // ajv-formats is CommonJS: depending on the loader its default import is the plugin or its module object.
  const addFormats = addFormatsModule.default ?? addFormatsModule;
  addFormats(ajv);
  const config = ajv.compile<ProxyConfig>(schema);
  const addr = ajv.getSchema<string>(`${String(schema.$id)}#/$defs/addr`);
  if (addr === undefined) throw new Error(`${proxySchemaPath()}: $defs/addr is missing`);
  cachedValidators = { config, addr };
  return cachedValidators;
}

/** Validates a parsed config object and fills in defaults. `raw` is not modified. */
export function buildConfig(raw: unknown, source?: string): ProxyConfig {
  const candidate: unknown = structuredClone(raw);
  const validate = validators().config;
  if (!validate(candidate)) throw configErrorFromAjv(validate.errors ?? [], source);
  return candidate;
}

/** A config made only of schema defaults. */
export function defaultConfig(): ProxyConfig {
  return buildConfig({});
}

/** Reads, validates and defaults a YAML config file. An empty file means "all defaults". */
export function loadConfigFile(path: string): ProxyConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(ROOT_KEY_PATH, `cannot read file: ${readFailureReason(error)}`, path);
  }
  return buildConfig(parseYamlDocument(text, path), path);
}

/** Node's messages repeat the path, which the ConfigError already shows. */
function readFailureReason(error: unknown): string {
  const code = error instanceof Error ? Reflect.get(error, 'code') : undefined;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return error instanceof Error ? error.message : String(error);
}

function parseYamlDocument(text: string, path: string): unknown {
  let documents: unknown[];
  try {
    documents = loadAll(text, { filename: path });
  } catch (error) {
    if (!(error instanceof YAMLException)) throw error;
    // mark is 0-based; editors count from 1.
    const where = error.mark ? `line ${error.mark.line + 1}:${error.mark.column + 1}` : ROOT_KEY_PATH;
    throw new ConfigError(where, `YAML syntax error: ${error.reason}`, path);
  }
  if (documents.length > 1) throw new ConfigError(ROOT_KEY_PATH, `expected one YAML document, found ${documents.length}`, path);
  return documents[0] ?? {};
}

/** Deep-freezes a copy of the config, so neither the kernel nor plugins can change it behind each other's back. */
export function freezeConfig(config: ProxyConfig): FrozenConfig {
  return deepFreeze(structuredClone(config)) as FrozenConfig;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/**
 * Returns a new config with command-line overrides applied, validated again so a bad flag value is
 * reported against the flag (`--addr: must be host:port, got "x"`), not against a config key.
 */
export function applyOverrides(config: ProxyConfig | FrozenConfig, overrides: CliOverrides): ProxyConfig {
  const next: ProxyConfig = buildConfig(config);
  if (overrides.addr !== undefined) next.proxy.addr = overrides.addr;
  if (overrides.apiAddr !== undefined) next.api.addr = overrides.apiAddr;
  if (overrides.pluginDir !== undefined) next['plugin-dir'] = overrides.pluginDir;
  // Unchecked writes: the enum is enforced by the validation below, which names the flag.
  if (overrides.logLevel !== undefined) Object.assign(next.log, { level: overrides.logLevel });
  if (overrides.logFormat !== undefined) Object.assign(next.log, { format: overrides.logFormat });
  if (overrides.backends !== undefined) setStaticBackends(next, overrides.backends);
  if (overrides.pdAddrs !== undefined) next.proxy['pd-addrs'] = overrides.pdAddrs.join(',');
  // A non-numeric value is kept as a string so the validation below reports `--workers: must be integer`.
  if (overrides.workers !== undefined) Object.assign(next.proxy, { workers: /^\s*-?\d+\s*$/.test(overrides.workers) ? Number(overrides.workers) : overrides.workers });
  enableEtcdDiscovery(next);
  try {
    return buildConfig(next);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new ConfigError(
      error.issues.map((issue) => ({ keyPath: OVERRIDE_FLAGS[issue.keyPath] ?? issue.keyPath, reason: issue.reason })),
    );
  }
}

/** Points discovery-static at `backends`, adding the plugin entry when the config has none. */
function setStaticBackends(config: ProxyConfig, backends: readonly string[]): void {
  // discovery-static's own schema validates its config later; check the addresses here so the error names the flag.
  if (backends.length === 0) throw new ConfigError('--backend', 'needs at least one host:port');
  const addrValidator = validators().addr;
  for (const backend of backends) {
    if (!addrValidator(backend)) throw new ConfigError('--backend', `must be a comma-separated list of host:port, got ${JSON.stringify(backend)}`);
  }
  const backendList = backends.map((addr) => ({ addr }));
  const existing = config.plugins.find((plugin) => plugin.name === STATIC_DISCOVERY_PLUGIN);
  if (existing !== undefined) {
    existing.config = { ...existing.config, backends: backendList };
    // Asking for backends on the command line means static discovery should actually run.
    existing.enabled = true;
    return;
  }
  const entry: PluginEntry = { name: STATIC_DISCOVERY_PLUGIN, enabled: true, required: false, config: { backends: backendList } };
  config.plugins.push(entry);
}

/**
 * `proxy.pd-addrs` (from the file or `--pd-addrs`) means etcd discovery should run: add a
 * discovery-etcd entry when the config lists none. A listed entry is left as written (enabled: false
 * keeps it off; its own `pd-addrs` wins over the proxy's).
 */
function enableEtcdDiscovery(config: ProxyConfig): void {
  if (config.proxy['pd-addrs'].trim() === '') return;
  if (config.plugins.some((plugin) => plugin.name === ETCD_DISCOVERY_PLUGIN)) return;
  config.plugins.push({ name: ETCD_DISCOVERY_PLUGIN, enabled: true, required: false, config: {} });
}
