import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type Message, type Plugin as EsbuildPlugin } from 'esbuild';
import * as pluginApi from '../../plugin.js';
import type { TiproxyPlugin } from './plugin-definition.js';
import { assertNotWorldWritable } from '../config/private-file.js';

/** Where the running proxy publishes its plugin API for hot-loaded bundles. */
const API_KEY = Symbol.for('tiproxy.plugin-api');
(globalThis as Record<symbol, unknown>)[API_KEY] = pluginApi;

/** A plugin source in the plugin directory: a .ts/.js/.mts/.mjs file, or a folder with a package.json. */
export interface PluginSource {
  /** File or folder name in the plugin directory. */
  id: string;
  entry: string;
}

export class PluginCompileError extends Error {
  constructor(readonly file: string, readonly line: number, readonly column: number, readonly reason: string) {
    super(`${file}:${line}:${column}: ${reason}`);
    this.name = 'PluginCompileError';
  }
}

const SOURCE_FILE = /\.(ts|mts|js|mjs)$/;

/**
 * Lists the plugins in `dir` (ignoring dotfiles, tests and type declarations). Throws if the directory or a
 * plugin in it is writable by every user: code from there would run inside the proxy.
 */
export function listPluginSources(dir: string): PluginSource[] {
  if (!existsSync(dir)) return [];
  assertNotWorldWritable(dir, 'plugin-dir');
  const out: PluginSource[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith('.') || name.endsWith('.d.ts') || /\.test\.[mc]?[jt]s$/.test(name)) continue;
    const full = join(dir, name);
    const st = statSync(full);
    if (st.isFile() || st.isDirectory()) assertNotWorldWritable(full, 'plugin-dir');
    if (st.isFile() && SOURCE_FILE.test(name)) out.push({ id: name, entry: full });
    else if (st.isDirectory() && existsSync(join(full, 'package.json'))) {
      const manifest = JSON.parse(readFileSync(join(full, 'package.json'), 'utf8')) as { main?: string; tiproxy?: { entry?: string } };
      const entry = manifest.tiproxy?.entry ?? manifest.main ?? 'index.ts';
      out.push({ id: name, entry: resolve(full, entry) });
    }
  }
  return out;
}

/**
 * `tiproxy/plugin` inside a hot plugin resolves to the API object of the proxy that loads it (same
 * instances, same constants), never to a second copy.
 */
const apiShim: EsbuildPlugin = {
  name: 'tiproxy-plugin-api',
  setup(b) {
    b.onResolve({ filter: /^tiproxy\/plugin$/ }, () => ({ path: 'tiproxy-plugin-api', namespace: 'tiproxy' }));
    b.onLoad({ filter: /.*/, namespace: 'tiproxy' }, () => ({
      contents: [
        `const api = globalThis[Symbol.for('tiproxy.plugin-api')];`,
        ...Object.keys(pluginApi).map((k) => `export const ${k} = api.${k};`),
      ].join('\n'),
      loader: 'js',
    }));
  },
};

function firstError(errors: Message[], fallbackFile: string): PluginCompileError {
  const e = errors[0]!;
  return new PluginCompileError(e.location?.file ? resolve(e.location.file) : fallbackFile, e.location?.line ?? 0, (e.location?.column ?? 0) + 1, e.text);
}

/**
 * Bundles one plugin with esbuild into a single ESM file named by its content hash and imports it.
 * Node cannot evict ES modules, so a changed plugin is a new file and a new module; an unchanged one
 * is served from the cache.
 */
export class HotPluginCompiler {
  private readonly outDir = join(tmpdir(), `tiproxy-plugins-${process.pid}`);
  private readonly loaded = new Map<string, TiproxyPlugin<never>>();

  async load(source: PluginSource): Promise<TiproxyPlugin<never>> {
    let result;
    try {
      result = await build({
        entryPoints: [source.entry], bundle: true, write: false, platform: 'node', format: 'esm', target: 'node20',
        plugins: [apiShim], logLevel: 'silent', packages: 'external', sourcemap: 'inline',
      });
    } catch (err) {
      const errors = (err as { errors?: Message[] }).errors;
      if (errors && errors.length > 0) throw firstError(errors, source.entry);
      throw err;
    }
    const code = result.outputFiles[0]!.contents;
    const hash = createHash('sha256').update(code).digest('hex').slice(0, 16);
    const cached = this.loaded.get(hash);
    if (cached) return cached;
    mkdirSync(this.outDir, { recursive: true });
    const file = join(this.outDir, `${basename(source.id).replace(/\W+/g, '_')}.${hash}.mjs`);
    writeFileSync(file, code);
    const mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
    const plugin = mod.default as TiproxyPlugin<never> | undefined;
    if (!plugin || typeof plugin !== 'object' || typeof plugin.name !== 'string' || typeof plugin.apply !== 'function') {
      throw new PluginCompileError(source.entry, 1, 1, 'the default export is not a plugin (use `export default definePlugin({ name, version, apply })`)');
    }
    this.loaded.set(hash, plugin);
    return plugin;
  }
}
