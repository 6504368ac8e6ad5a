import type { BackendInfo } from '../../plugin.js';

/** Which backends the plugin treats as TiDB: by the server version in their greeting, or every one. */
export type TidbDetection = 'server-version' | 'all';

/** TiDB's greeting says so: "8.0.11-TiDB-v7.5.0". */
export function isTidbVersion(serverVersion: string | undefined): boolean {
  return serverVersion !== undefined && /-TiDB-/i.test(`-${serverVersion}-`);
}

/** A backend known to be TiDB (its greeting said so, or the config says every backend is). */
export function isTidb(backend: BackendInfo | null | undefined, detection: TidbDetection): boolean {
  if (!backend) return false;
  return detection === 'all' || isTidbVersion(backend.serverVersion);
}

/** A backend known NOT to be TiDB: the proxy has seen its greeting and it named something else. */
export function isKnownNonTidb(backend: BackendInfo, detection: TidbDetection): boolean {
  return detection !== 'all' && backend.serverVersion !== undefined && !isTidbVersion(backend.serverVersion);
}
