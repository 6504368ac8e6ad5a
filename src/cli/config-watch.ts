import type { Logger } from 'pino';
import type { FrozenConfig } from '../kernel/config/proxy-config.js';
import { ContentWatch, contentDigest } from '../kernel/content-watch.js';

/** What the config file holds before it is read at start-up: a change while starting is reported once watching starts. */
export function configFileBaseline(path: string): { digest: string } {
  return contentDigest(path, 'file');
}

/**
 * Calls `onChange` when the config file's content changed, within about a second whatever the way it
 * was written: in place, renamed over, deleted and recreated, or a Kubernetes ConfigMap's `..data`
 * symlink swapped (see ContentWatch). With proxy.workers > 1 only the primary watches and tells the
 * workers, so each worker reloads once per change.
 */
export function watchConfigFile(path: string, logger: Logger, onChange: () => void, baseline?: { digest: string }): ContentWatch {
  return new ContentWatch({
    path, kind: 'file', logger, ...(baseline ? { baseline } : {}),
    onChange: () => {
      logger.info({ path }, 'config file content changed');
      onChange();
    },
  }).start();
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
