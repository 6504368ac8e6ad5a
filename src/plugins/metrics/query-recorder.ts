import { protocol, type BackendInfo, type ResultContext } from '../../plugin.js';
import type { SnapshotValue } from './snapshot-metric.js';

/** Tallies of one backend and command: a histogram kept as plain numbers. */
class QuerySlot {
  count = 0;
  /** Responses that were an ERR (counted here instead of logged per command). */
  errors = 0;
  sum = 0;
  /** Per bucket (not cumulative); the last one is +Inf. */
  readonly buckets: Float64Array;

  constructor(readonly backend: string, readonly command: string, bucketCount: number) {
    this.buckets = new Float64Array(bucketCount + 1);
  }
}

const ALL_BACKENDS = 'all';

/**
 * Queries per backend and command with their durations: the onResult hot path only adds to numbers
 * in a slot found by two lookups (backend record, command byte), so nothing is allocated per query;
 * label values and exposition are built when scraped.
 */
export class QueryRecorder {
  private readonly byBackend = new Map<BackendInfo | string, Array<QuerySlot | undefined>>();
  private readonly slots: QuerySlot[] = [];

  /** @param bounds bucket upper bounds in seconds, ascending. */
  constructor(private readonly bounds: readonly number[], private readonly perBackend: boolean) {}

  readonly record = (ctx: ResultContext): void => {
    const key = this.perBackend ? ctx.backend : ALL_BACKENDS;
    let row = this.byBackend.get(key);
    if (row === undefined) {
      row = new Array<QuerySlot | undefined>(256);
      this.byBackend.set(key, row);
    }
    let slot = row[ctx.command];
    if (slot === undefined) {
      slot = new QuerySlot(this.perBackend ? ctx.backend.addr : ALL_BACKENDS, commandName(ctx.command), this.bounds.length);
      row[ctx.command] = slot;
      this.slots.push(slot);
    }
    const seconds = ctx.durationMs / 1000;
    slot.count++;
    if (ctx.isError) slot.errors++;
    slot.sum += seconds;
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]!) i++;
    slot.buckets[i]!++;
  };

  totals(): SnapshotValue[] {
    return this.slots.map((s) => ({ labels: { backend: s.backend, cmd_type: s.command }, value: s.count }));
  }

  errorTotals(): SnapshotValue[] {
    return this.slots.map((s) => ({ labels: { backend: s.backend, cmd_type: s.command }, value: s.errors }));
  }

  histogram(name: string): SnapshotValue[] {
    const out: SnapshotValue[] = [];
    for (const s of this.slots) {
      let cumulative = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += s.buckets[i]!;
        out.push({ metricName: `${name}_bucket`, labels: { backend: s.backend, cmd_type: s.command, le: i < this.bounds.length ? this.bounds[i]! : '+Inf' }, value: cumulative });
      }
      out.push({ metricName: `${name}_sum`, labels: { backend: s.backend, cmd_type: s.command }, value: s.sum });
      out.push({ metricName: `${name}_count`, labels: { backend: s.backend, cmd_type: s.command }, value: s.count });
    }
    return out;
  }
}

/** The command's protocol name ("COM_QUERY"); unknown bytes by number. */
function commandName(command: number): string {
  return protocol.COMMAND_NAMES[command] ?? `0x${command.toString(16).padStart(2, '0')}`;
}
