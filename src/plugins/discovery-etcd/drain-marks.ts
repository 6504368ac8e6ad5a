import type { BackendDirectory, FleetDrainMark, PluginContext } from '../../plugin.js';
import type { MirroredPrefix } from './etcd-mirror.js';

/**
 * Cluster-wide drain marks: `<prefix><backend host:port>` → JSON {backend, by, at, reason}. A proxy
 * drains every backend with a mark and undrains it when the mark goes; `tiproxyctl backends drain`
 * and the admin API's drain write them, so one action drains a backend on every proxy of the etcd.
 */
export const DEFAULT_DRAIN_PREFIX = '/tiproxy/drain/';

export function drainKey(prefix: string, backend: string): string {
  return `${prefix}${backend}`;
}

/** A mark's value; a malformed one still drains its backend (the key names it), with what is known. */
export function parseDrainMark(prefix: string, key: string, value: string): FleetDrainMark | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const backend = key.slice(prefix.length);
  if (!/^(\[[0-9A-Fa-f:.]+\]|[^/:\s]+):\d{1,5}$/.test(backend)) return undefined;
  let raw: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(value);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) raw = parsed as Record<string, unknown>;
  } catch {
    // kept as an unexplained mark
  }
  const text = (k: string) => (typeof raw[k] === 'string' ? (raw[k] as string) : '');
  return { backend, by: text('by'), at: text('at'), reason: text('reason') };
}

/** Backends this proxy drained because of a mark (kept across generations, so a later undrain finds them). */
export type MarkDrained = Set<string>;

/** Applies the marks read from etcd to this proxy's backends. */
export class DrainMarks implements MirroredPrefix {
  private current = new Map<string, FleetDrainMark>();

  constructor(
    readonly prefix: string,
    private readonly backends: BackendDirectory,
    private readonly drainedByMark: MarkDrained,
    private readonly logger: PluginContext<unknown>['logger'],
  ) {}

  get marks(): ReadonlyMap<string, FleetDrainMark> {
    return this.current;
  }

  changed(kvs: ReadonlyMap<string, string>): void {
    const marks = new Map<string, FleetDrainMark>();
    for (const [key, value] of kvs) {
      const mark = parseDrainMark(this.prefix, key, value);
      if (mark) marks.set(mark.backend, mark);
    }
    this.current = marks;
    for (const mark of marks.values()) this.apply(mark.backend);
    for (const addr of [...this.drainedByMark]) {
      if (marks.has(addr)) continue;
      this.drainedByMark.delete(addr);
      const backend = this.backends.get(addr);
      if (backend?.draining) {
        this.backends.setDraining(addr, false);
        this.logger.info({ backend: addr }, 'backend undrained: its fleet drain mark was removed');
      }
    }
  }

  /** A backend appeared (discovery): drained at once if a mark names it. */
  backendAdded(addr: string): void {
    if (this.current.has(addr)) this.apply(addr);
  }

  private apply(addr: string): void {
    this.drainedByMark.add(addr);
    const backend = this.backends.get(addr);
    if (!backend || backend.draining) return;
    const mark = this.current.get(addr)!;
    this.backends.setDraining(addr, true);
    this.logger.info({ backend: addr, by: mark.by, at: mark.at, reason: mark.reason }, 'backend drained by its fleet drain mark');
  }
}
