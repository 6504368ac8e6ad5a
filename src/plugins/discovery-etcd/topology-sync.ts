import type { BackendAnnouncement, PluginContext } from '../../plugin.js';
import type { MirroredPrefix } from './etcd-mirror.js';
import { announcementsOf, parseTopologyInfo, parseTopologyKey, type TopologyEntry } from './topology.js';

/**
 * The backends registered under a topology prefix (TiDB's keys), as the etcd mirror reads them: hands
 * the ones that are up to the registry whenever the set changes, replacing what it reported before.
 */
export class TopologySync implements MirroredPrefix {
  private lastPublished: string | null = null;
  private known = 0;

  constructor(
    readonly prefix: string,
    private readonly publishTo: (backends: BackendAnnouncement[]) => void,
    private readonly logger: PluginContext<unknown>['logger'],
  ) {}

  /** Backends last handed to the registry. */
  get backendCount(): number {
    return this.known;
  }

  changed(kvs: ReadonlyMap<string, string>): void {
    const entries = new Map<string, TopologyEntry>();
    for (const [key, value] of kvs) {
      const parsed = parseTopologyKey(this.prefix, key);
      if (!parsed) continue;
      const entry = entries.get(parsed.addr) ?? { alive: false };
      if (parsed.kind === 'ttl') entry.alive = true;
      else {
        const info = parseTopologyInfo(value);
        if (info) entry.info = info;
      }
      entries.set(parsed.addr, entry);
    }
    const list = announcementsOf(entries);
    const key = JSON.stringify(list);
    if (key === this.lastPublished) return;
    const before = this.lastPublished === null ? [] : (JSON.parse(this.lastPublished) as BackendAnnouncement[]).map((b) => b.addr);
    this.lastPublished = key;
    this.known = list.length;
    this.publishTo(list);
    const now = list.map((b) => b.addr);
    const added = now.filter((a) => !before.includes(a));
    const removed = before.filter((a) => !now.includes(a));
    if (added.length > 0 || removed.length > 0) this.logger.info({ backends: now, added, removed }, 'etcd topology changed');
  }
}
