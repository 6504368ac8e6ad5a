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
  | { type: 'counts'; counts: BackendCounts }
  /** A plugin asks every worker `topic` (WorkerGroup.askAll) with a JSON `payload`; the primary relays it (see worker-questions.ts). */
  | { type: 'ask'; id: number; topic: string; timeoutMs: number; payload?: unknown }
  /** This worker's answer to the primary's question `id` (`error` when it has none). */
  | { type: 'answer'; id: number; value?: unknown; error?: string };

export type PrimaryMessage =
  /** Graceful shutdown, as SIGTERM in a single process. */
  | { type: 'shutdown' }
  /** Re-read the config file (SIGHUP or file change seen by the primary, already validated there). */
  | { type: 'reload'; why: string }
  /** The other workers' sessions per backend (everything but the receiver's own). */
  | { type: 'remote-counts'; counts: BackendCounts }
  /** Another worker (or this one) asks `topic`: answer with an `answer` message carrying `id`. */
  | { type: 'question'; id: number; topic: string; payload?: unknown }
  /** The answers to this worker's `ask` `id`, from every worker that answered in time. */
  | { type: 'answers'; id: number; values: unknown[] };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

export function isWorkerMessage(value: unknown): value is WorkerMessage {
  return isRecord(value) && ['ready', 'fatal', 'counts', 'ask', 'answer'].includes(String(value['type']));
}

export function isPrimaryMessage(value: unknown): value is PrimaryMessage {
  return isRecord(value) && ['shutdown', 'reload', 'remote-counts', 'question', 'answers'].includes(String(value['type']));
}
