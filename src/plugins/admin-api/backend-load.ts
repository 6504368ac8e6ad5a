/**
 * Queries per second and p99 latency per backend over the last seconds, for GET /api/backends. Fed from
 * onResult: a few array writes per query, nothing allocated after a backend's first query.
 */

/** Seconds kept (ring slots); QPS is over the last WINDOW_S complete seconds. */
const WINDOW_S = 10;
/** Latency buckets: 4 per doubling from 1 µs, up to 2^24 µs (~16.8 s); the last one takes the rest. */
const BUCKETS_PER_DOUBLING = 4;
const BUCKETS = 24 * BUCKETS_PER_DOUBLING + 1;
const SLOTS = WINDOW_S + 1;

function bucketOf(ms: number): number {
  const us = ms * 1000;
  if (!(us > 1)) return 0;
  const b = Math.ceil(Math.log2(us) * BUCKETS_PER_DOUBLING);
  return b < BUCKETS ? b : BUCKETS - 1;
}

/** Upper bound of a bucket, in milliseconds. */
function bucketLimitMs(b: number): number {
  return 2 ** (b / BUCKETS_PER_DOUBLING) / 1000;
}

class BackendLoad {
  private readonly second = new Float64Array(SLOTS).fill(-1);
  private readonly counts = new Uint32Array(SLOTS);
  private readonly buckets = new Uint32Array(SLOTS * BUCKETS);

  record(nowS: number, ms: number): void {
    const slot = nowS % SLOTS;
    if (this.second[slot] !== nowS) {
      this.second[slot] = nowS;
      this.counts[slot] = 0;
      this.buckets.fill(0, slot * BUCKETS, slot * BUCKETS + BUCKETS);
    }
    this.counts[slot]!++;
    this.buckets[slot * BUCKETS + bucketOf(ms)]!++;
  }

  summary(nowS: number): { qps: number; p99Ms: number | null; queries: number } {
    let complete = 0;
    let queries = 0;
    const merged = new Float64Array(BUCKETS);
    for (let slot = 0; slot < SLOTS; slot++) {
      const s = this.second[slot]!;
      if (s < nowS - WINDOW_S || s > nowS) continue;
      if (s < nowS) complete += this.counts[slot]!;
      queries += this.counts[slot]!;
      for (let b = 0; b < BUCKETS; b++) merged[b]! += this.buckets[slot * BUCKETS + b]!;
    }
    let p99Ms: number | null = null;
    if (queries > 0) {
      const target = Math.ceil(queries * 0.99);
      let seen = 0;
      for (let b = 0; b < BUCKETS; b++) {
        seen += merged[b]!;
        if (seen >= target) {
          p99Ms = bucketLimitMs(b);
          break;
        }
      }
    }
    return { qps: complete / WINDOW_S, p99Ms, queries };
  }
}

/** Per-backend load of one proxy, shared by every generation of the plugin. */
export class BackendLoadTable {
  private readonly byAddr = new Map<string, BackendLoad>();

  record(addr: string, durationMs: number): void {
    let load = this.byAddr.get(addr);
    if (!load) this.byAddr.set(addr, (load = new BackendLoad()));
    load.record(Math.floor(performance.now() / 1000), durationMs);
  }

  /** QPS over the last 10 complete seconds, p99 (bucket upper bound, ≤19 % high) over them and the current one. */
  summary(addr: string): { qps: number; p99Ms: number | null; queries: number } {
    return this.byAddr.get(addr)?.summary(Math.floor(performance.now() / 1000)) ?? { qps: 0, p99Ms: null, queries: 0 };
  }

  forget(addr: string): void {
    this.byAddr.delete(addr);
  }
}
