import type { Etcd3, Watcher } from 'etcd3';
import type { PluginContext } from '../../plugin.js';
import { deadline, etcdErrorMessage } from './etcd-client.js';

/** One key prefix kept in memory: told its full key → value map after every read or watch event. */
export interface MirroredPrefix {
  readonly prefix: string;
  changed(kvs: ReadonlyMap<string, string>): void;
}

export interface EtcdMirrorOptions {
  client: Etcd3;
  prefixes: readonly MirroredPrefix[];
  /** Full re-read of every prefix, even while the watches are healthy (covers anything a watch could miss). */
  resyncMs: number;
  /** Deadline of one etcd request, and of opening a watch. */
  requestTimeoutMs: number;
  /** Longest wait between retries while etcd is unreachable (the backoff starts at 250 ms and doubles). */
  maxRetryMs: number;
  /** Warn about an unreachable etcd at most this often; other failures are logged at debug level. */
  warnEveryMs: number;
  logger: PluginContext<unknown>['logger'];
  /** While true (a newer generation took over) nothing is read or reported. */
  paused(): boolean;
  /** Fields added to the "etcd unreachable" lines (what is kept meanwhile). */
  unreachableFields?(): Record<string, unknown>;
}

const FIRST_RETRY_MS = 250;

/**
 * Keeps key prefixes of etcd in memory: a full read of each, then a watch from the revision of that
 * read (so no change falls between the two), plus a full resync every `resyncMs`. When etcd cannot be
 * reached — at start or later — what was read stays, reads are retried with exponential backoff, and
 * the failure is logged at most every `warnEveryMs`. One loop for every prefix, so an outage is
 * reported once.
 */
export class EtcdMirror {
  private readonly values: Array<Map<string, string>>;
  private watchers: Watcher[] = [];
  private timer: NodeJS.Timeout | null = null;
  private syncing = false;
  private stopped = false;
  private failures = 0;
  private retryMs = FIRST_RETRY_MS;
  private unreachableSince = 0;
  private lastWarnAt = 0;
  private suppressedWarnings = 0;

  constructor(private readonly opts: EtcdMirrorOptions) {
    this.values = opts.prefixes.map(() => new Map());
  }

  /** Runs the first read; resolves true if etcd answered (the loop continues either way). */
  start(): Promise<boolean> {
    return this.sync();
  }

  /** Stops reading and watching (the client stays open: it belongs to the caller). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.closeWatches();
  }

  /** Whether the last read or watch of etcd succeeded. */
  get reachable(): boolean {
    return this.failures === 0;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.sync(), ms);
    this.timer.unref();
  }

  private async sync(): Promise<boolean> {
    if (this.stopped || this.syncing) return false;
    if (this.opts.paused()) {
      this.closeWatches();
      this.schedule(this.opts.resyncMs);
      return false;
    }
    this.syncing = true;
    try {
      const revisions: bigint[] = [];
      for (const [i, view] of this.opts.prefixes.entries()) {
        const response = await this.opts.client.getAll().prefix(view.prefix).options(deadline(this.opts.requestTimeoutMs)).exec();
        if (this.stopped) return false;
        const kvs = new Map<string, string>();
        for (const kv of response.kvs) kvs.set(kv.key.toString(), kv.value.toString());
        this.values[i] = kvs;
        revisions.push(BigInt(response.header.revision) + 1n);
        this.report(i);
      }
      if (this.watchers.length === 0) {
        for (const [i, revision] of revisions.entries()) await this.openWatch(i, revision);
      }
      this.recovered();
      this.schedule(this.opts.resyncMs);
      return true;
    } catch (err) {
      this.failed(err);
      this.closeWatches();
      this.schedule(this.retryMs);
      this.retryMs = Math.min(this.opts.maxRetryMs, this.retryMs * 2);
      return false;
    } finally {
      this.syncing = false;
    }
  }

  private report(i: number): void {
    if (this.opts.paused() || this.stopped) return;
    this.opts.prefixes[i]!.changed(this.values[i]!);
  }

  private async openWatch(i: number, fromRevision: bigint): Promise<void> {
    const view = this.opts.prefixes[i]!;
    const watcher = this.opts.client.watch().prefix(view.prefix).startRevision(fromRevision.toString()).watcher();
    this.watchers.push(watcher);
    const current = () => this.watchers.includes(watcher);
    watcher.on('put', (kv) => {
      if (!current()) return;
      this.values[i]!.set(kv.key.toString(), kv.value.toString());
      this.report(i);
    });
    watcher.on('delete', (kv) => {
      if (!current()) return;
      this.values[i]!.delete(kv.key.toString());
      this.report(i);
    });
    // etcd3 would reconnect the stream on its own schedule; we close it and resync with our backoff
    // instead, so one loop decides when etcd is retried and what is logged.
    let established = false;
    const lost = (err: unknown) => {
      // Before 'connected', openWatch's own rejection reports the failure.
      if (!established || !current() || this.stopped) return;
      this.failed(err);
      this.closeWatches();
      this.schedule(this.retryMs);
      this.retryMs = Math.min(this.opts.maxRetryMs, this.retryMs * 2);
    };
    watcher.on('disconnected', lost);
    watcher.on('error', lost);
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`watch not established within ${this.opts.requestTimeoutMs} ms`)), this.opts.requestTimeoutMs);
        watcher.once('connected', () => {
          established = true;
          resolve();
        });
        watcher.once('disconnected', (err) => reject(err));
        watcher.once('error', (err) => reject(err));
      });
    } finally {
      clearTimeout(timer);
    }
  }

  private closeWatches(): void {
    const watchers = this.watchers;
    this.watchers = [];
    for (const watcher of watchers) watcher.cancel().catch(() => {});
  }

  private failed(err: unknown): void {
    const now = Date.now();
    this.failures++;
    if (this.unreachableSince === 0) this.unreachableSince = now;
    const fields = {
      err: etcdErrorMessage(err), failures: this.failures, unreachableForMs: now - this.unreachableSince,
      retryInMs: this.retryMs, ...(this.opts.unreachableFields?.() ?? {}),
    };
    if (now - this.lastWarnAt >= this.opts.warnEveryMs) {
      this.opts.logger.warn({ ...fields, suppressed: this.suppressedWarnings }, 'etcd unreachable: serving the backends already known, retrying');
      this.lastWarnAt = now;
      this.suppressedWarnings = 0;
    } else {
      this.suppressedWarnings++;
      this.opts.logger.debug(fields, 'etcd still unreachable');
    }
  }

  private recovered(): void {
    if (this.failures > 0) {
      this.opts.logger.info({ unreachableForMs: Date.now() - this.unreachableSince, failures: this.failures }, 'etcd reachable again');
    }
    this.failures = 0;
    this.unreachableSince = 0;
    this.retryMs = FIRST_RETRY_MS;
    this.lastWarnAt = 0;
    this.suppressedWarnings = 0;
  }
}
