import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { BackendAnnouncement, PluginContext } from '../../plugin.js';
import { deadline, etcdErrorMessage } from './etcd-client.js';
import { announcementsOf, parseTopologyInfo, parseTopologyKey, type TopologyEntry } from './topology.js';

export interface TopologySyncOptions {
  client: Etcd3;
  prefix: string;
  /** Full re-read of the prefix, even while the watch is healthy (covers anything a watch could miss). */
  resyncMs: number;
  /** Deadline of one etcd request, and of opening the watch. */
  requestTimeoutMs: number;
  /** Longest wait between retries while etcd is unreachable (the backoff starts at 250 ms and doubles). */
  maxRetryMs: number;
  /** Warn about an unreachable etcd at most this often; other failures are logged at debug level. */
  warnEveryMs: number;
  logger: PluginContext<unknown>['logger'];
  /** Hands the backends that are up to the registry (replacing what this source reported before). */
  publish(backends: BackendAnnouncement[]): void;
  /** While true (a newer generation took over) nothing is read or published. */
  paused(): boolean;
}

const FIRST_RETRY_MS = 250;

/**
 * Keeps the registry in step with the topology keys in etcd: a full read of the prefix, then a watch
 * from the revision of that read (so no change falls between the two), plus a full resync every
 * `resyncMs`. When etcd cannot be reached — at start or later — the backends already known stay as
 * they are, reads are retried with exponential backoff, and the failure is logged at most every
 * `warnEveryMs`.
 */
export class TopologySync {
  private entries = new Map<string, TopologyEntry>();
  private watcher: Watcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private syncing = false;
  private stopped = false;
  private failures = 0;
  private retryMs = FIRST_RETRY_MS;
  private unreachableSince = 0;
  private lastWarnAt = 0;
  private suppressedWarnings = 0;
  private lastPublished: string | null = null;

  constructor(private readonly opts: TopologySyncOptions) {}

  /** Runs the first read; resolves true if etcd answered (the loop continues either way). */
  start(): Promise<boolean> {
    return this.sync();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.closeWatch();
    this.opts.client.close();
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
      this.closeWatch();
      this.schedule(this.opts.resyncMs);
      return false;
    }
    this.syncing = true;
    try {
      const response = await this.opts.client.getAll().prefix(this.opts.prefix).options(deadline(this.opts.requestTimeoutMs)).exec();
      if (this.stopped) return false;
      const entries = new Map<string, TopologyEntry>();
      for (const kv of response.kvs) applyPut(entries, this.opts.prefix, kv);
      this.entries = entries;
      this.publish();
      if (!this.watcher) await this.openWatch(BigInt(response.header.revision) + 1n);
      this.recovered();
      this.schedule(this.opts.resyncMs);
      return true;
    } catch (err) {
      this.failed(err);
      this.closeWatch();
      this.schedule(this.retryMs);
      this.retryMs = Math.min(this.opts.maxRetryMs, this.retryMs * 2);
      return false;
    } finally {
      this.syncing = false;
    }
  }

  private async openWatch(fromRevision: bigint): Promise<void> {
    const watcher = this.opts.client.watch().prefix(this.opts.prefix).startRevision(fromRevision.toString()).watcher();
    this.watcher = watcher;
    watcher.on('put', (kv) => {
      if (this.watcher !== watcher) return;
      applyPut(this.entries, this.opts.prefix, kv);
      this.publish();
    });
    watcher.on('delete', (kv) => {
      if (this.watcher !== watcher) return;
      applyDelete(this.entries, this.opts.prefix, kv);
      this.publish();
    });
    // etcd3 would reconnect the stream on its own schedule; we close it and resync with our backoff
    // instead, so one loop decides when etcd is retried and what is logged.
    let established = false;
    const lost = (err: unknown) => {
      // Before 'connected', openWatch's own rejection reports the failure.
      if (!established || this.watcher !== watcher || this.stopped) return;
      this.failed(err);
      this.closeWatch();
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

  private closeWatch(): void {
    const watcher = this.watcher;
    this.watcher = null;
    if (watcher) watcher.cancel().catch(() => {});
  }

  private publish(): void {
    if (this.opts.paused() || this.stopped) return;
    const list = announcementsOf(this.entries);
    const key = JSON.stringify(list);
    if (key === this.lastPublished) return;
    const before = this.lastPublished === null ? [] : (JSON.parse(this.lastPublished) as BackendAnnouncement[]).map((b) => b.addr);
    this.lastPublished = key;
    this.opts.publish(list);
    const now = list.map((b) => b.addr);
    const added = now.filter((a) => !before.includes(a));
    const removed = before.filter((a) => !now.includes(a));
    if (added.length > 0 || removed.length > 0) this.opts.logger.info({ backends: now, added, removed }, 'etcd topology changed');
  }

  private failed(err: unknown): void {
    const now = Date.now();
    this.failures++;
    if (this.unreachableSince === 0) this.unreachableSince = now;
    const fields = {
      err: etcdErrorMessage(err), failures: this.failures, unreachableForMs: now - this.unreachableSince,
      retryInMs: this.retryMs, keptBackends: announcementsOf(this.entries).length,
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

function applyPut(entries: Map<string, TopologyEntry>, prefix: string, kv: IKeyValue): void {
  const key = parseTopologyKey(prefix, kv.key.toString());
  if (!key) return;
  const entry = entries.get(key.addr) ?? { alive: false };
  if (key.kind === 'ttl') entry.alive = true;
  else {
    const info = parseTopologyInfo(kv.value.toString());
    if (info) entry.info = info;
    else delete entry.info;
  }
  entries.set(key.addr, entry);
}

function applyDelete(entries: Map<string, TopologyEntry>, prefix: string, kv: IKeyValue): void {
  const key = parseTopologyKey(prefix, kv.key.toString());
  if (!key) return;
  const entry = entries.get(key.addr);
  if (!entry) return;
  if (key.kind === 'ttl') entry.alive = false;
  else delete entry.info;
  if (!entry.alive && !entry.info) entries.delete(key.addr);
}
