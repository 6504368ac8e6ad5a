/**
 * What the primary and its workers say to each other over the cluster's IPC channel
 * (proxy.workers > 1). Node delivers its own cluster messages separately, so only these arrive.
 */

/** Sessions per backend address. */
export type BackendCounts = Record<string, number>;

export type WorkerMessage =
  /** The worker listens and serves. */
  | { type: 'ready'; addr: string }
  /** The worker cannot start (config, plugins, listen); `message` is the one line the primary prints. */
  | { type: 'fatal'; message: string }
  /** The worker's own sessions per backend changed (see cluster-counts.ts). */
  | { type: 'counts'; counts: BackendCounts };

export type PrimaryMessage =
  /** Graceful shutdown, as SIGTERM in a single process. */
  | { type: 'shutdown' }
  /** Re-read the config file (SIGHUP or file change seen by the primary, already validated there). */
  | { type: 'reload'; why: string }
  /** The other workers' sessions per backend (everything but the receiver's own). */
  | { type: 'remote-counts'; counts: BackendCounts };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

export function isWorkerMessage(value: unknown): value is WorkerMessage {
  return isRecord(value) && (value['type'] === 'ready' || value['type'] === 'fatal' || value['type'] === 'counts');
}

export function isPrimaryMessage(value: unknown): value is PrimaryMessage {
  return isRecord(value) && (value['type'] === 'shutdown' || value['type'] === 'reload' || value['type'] === 'remote-counts');
}
