import { ConfigError, ROOT_KEY_PATH } from './config-error.js';

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A partial configuration merged into a full one (the admin API's PUT): objects merge key by key,
 * `plugins` entries merge by name (an unknown name is appended; `enabled: false` turns one off), any
 * other array or value replaces the old one. The result still has to be validated.
 */
export function mergeConfigPatch(base: unknown, patch: unknown): Json {
  if (!isObject(patch)) throw new ConfigError(ROOT_KEY_PATH, 'the change must be a mapping of config keys');
  const out = structuredClone(base) as Json;
  mergeInto(out, patch, '');
  return out;
}

function mergeInto(target: Json, patch: Json, path: string): void {
  for (const [key, value] of Object.entries(patch)) {
    const at = path ? `${path}.${key}` : key;
    if (at === 'plugins' && Array.isArray(value)) {
      target[key] = mergePlugins(Array.isArray(target[key]) ? (target[key] as unknown[]) : [], value);
    } else if (isObject(value) && isObject(target[key])) {
      mergeInto(target[key] as Json, value, at);
    } else {
      target[key] = structuredClone(value);
    }
  }
}

function mergePlugins(current: unknown[], patch: unknown[]): unknown[] {
  const out = structuredClone(current);
  patch.forEach((entry, i) => {
    if (!isObject(entry) || typeof entry['name'] !== 'string') throw new ConfigError(`plugins[${i}].name`, 'is required (plugin entries merge by name)');
    const existing = out.find((p) => isObject(p) && p['name'] === entry['name']);
    if (isObject(existing)) mergeInto(existing, entry, `plugins[${i}]`);
    else out.push(structuredClone(entry));
  });
  return out;
}
