import { watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import type { FrozenConfig } from '../kernel/config/proxy-config.js';

/**
 * Calls `onChange` (debounced 300 ms) when the config file is saved. Editors replace files (rename),
 * which ends a watch on the old inode, so the directory entry is watched. With proxy.workers > 1 only
 * the primary watches and tells the workers, so each worker reloads once per change.
 */
export function watchConfigFile(path: string, logger: Logger, onChange: () => void): void {
  let timer: NodeJS.Timeout | null = null;
  try {
    const name = basename(path);
    watch(dirname(path), { persistent: false }, (_event, changed) => {
      if (changed !== null && changed !== name) return;
      if (timer) clearTimeout(timer);
      timer = setTimeout(onChange, 300);
    });
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'cannot watch the config file; reload with SIGHUP');
  }
}

/** The edited config, or null after logging why it is rejected (the running config stays). */
export function configForReload(read: () => FrozenConfig, logger: Logger, why: string): FrozenConfig | null {
  try {
    return read();
  } catch (err) {
    logger.error({ why }, `config reload rejected, keeping the running config: ${(err as Error).message}`);
    return null;
  }
}
