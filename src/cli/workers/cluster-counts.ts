/**
 * Cluster-wide session counts per backend (proxy.workers > 1).
 *
 * Balancing scores backends by `BackendInfo.connections`; with several workers each only holds its own
 * sessions. So every worker reports its own counts to the primary (CountReporter: checked every
 * 100 ms, sent only when they changed, so a burst of connects is one message), the primary keeps the
 * latest report of each worker (ClusterCounts) and sends every worker the sum of the *others'* counts,
 * which the worker's registry adds to its own live counts (BackendRegistry.setRemoteConnections). A
 * worker's own sessions are thus always exact and current; other workers' are at most ~100 ms plus an
 * IPC hop old.
 *
 * A worker reports its counts with the moves it has requested already applied (one less at the source,
 * one more at the target), the way the balancer's LoadBook counts them locally: other workers then
 * plan on the load the cluster is about to have and do not ask for the same moves again while
 * migrations wait for their sessions' next safe point.
 */
import type { Kernel } from '../../kernel/kernel.js';
import type { BackendCounts } from './messages.js';

/** How often a worker looks for changed counts. */
export const REPORT_INTERVAL_MS = 100;

/** This worker's sessions per backend, as other workers should count them (see above). */
export function ownBackendCounts(kernel: Kernel): BackendCounts {
  const counts = new Map<string, number>();
  const add = (addr: string, n: number) => counts.set(addr, (counts.get(addr) ?? 0) + n);
  for (const b of kernel.backends.list()) add(b.addr, b.connections - b.remoteConnections);
  for (const request of kernel.migrationRequests.values()) {
    const from = kernel.sessions.get(request.sessionId)?.backend?.addr;
    if (request.to === undefined || from === undefined || from === request.to) continue;
    add(from, -1);
    add(request.to, 1);
  }
  const out: BackendCounts = {};
  for (const addr of [...counts.keys()].sort()) {
    const n = counts.get(addr)!;
    if (n > 0) out[addr] = n;
  }
  return out;
}

/** Sends this worker's counts when they change; `stop()` ends it. */
export function startCountReporter(kernel: Kernel, send: (counts: BackendCounts) => void): { stop(): void } {
  let last = '{}';
  const timer = setInterval(() => {
    const counts = ownBackendCounts(kernel);
    const text = JSON.stringify(counts);
    if (text === last) return;
    last = text;
    send(counts);
  }, REPORT_INTERVAL_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/** The primary's view: each worker's latest report. */
export class ClusterCounts {
  private readonly byWorker = new Map<number, BackendCounts>();

  set(worker: number, counts: BackendCounts): void {
    this.byWorker.set(worker, counts);
  }

  /** The worker is gone: its sessions went with it. */
  delete(worker: number): boolean {
    return this.byWorker.delete(worker);
  }

  /** Sum of every other worker's counts: what `worker` adds to its own. */
  othersOf(worker: number): BackendCounts {
    const out: BackendCounts = {};
    for (const [id, counts] of this.byWorker) {
      if (id === worker) continue;
      for (const [addr, n] of Object.entries(counts)) out[addr] = (out[addr] ?? 0) + n;
    }
    return out;
  }

  /** Cluster-wide totals (every worker). */
  totals(): BackendCounts {
    return this.othersOf(0);
  }
}
