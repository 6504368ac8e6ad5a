/**
 * Per-backend command latency: an exponentially weighted moving average of onResult durations.
 * Kept per registry record (a WeakMap, so it survives plugin generations and dies with the backend),
 * and forgotten when no sample arrived for a while — a backend nobody uses must not stay "slow" forever.
 */
interface Sample {
  ewmaMs: number;
  at: number;
}

const samples = new WeakMap<object, Sample>();

export class LatencyTracker {
  constructor(
    /** Weight of a new sample (0..1]. */
    private readonly weight: number,
    /** Samples older than this are ignored (ms). */
    private readonly staleAfterMs: number,
  ) {}

  /** The sample of the backend recorded last: a session runs its commands on one backend, so this usually saves the WeakMap lookup. */
  private lastBackend: object | null = null;
  private lastSample: Sample | null = null;

  /** Hot path: one command finished on `backend` (the registry record) after `ms` milliseconds. */
  record(backend: object, ms: number): void {
    const now = Date.now();
    let s = backend === this.lastBackend ? this.lastSample : samples.get(backend);
    if (!s) samples.set(backend, (s = { ewmaMs: ms, at: now }));
    // A sample object stays the backend's for good (a stale one restarts in place), so the one remembered above is never outdated.
    else if (now - s.at > this.staleAfterMs) s.ewmaMs = ms;
    else s.ewmaMs += this.weight * (ms - s.ewmaMs);
    s.at = now;
    this.lastBackend = backend;
    this.lastSample = s;
  }

  /** The backend's average latency in ms, or undefined when unknown or stale. */
  get(backend: object): number | undefined {
    const s = samples.get(backend);
    if (!s || Date.now() - s.at > this.staleAfterMs) return undefined;
    return s.ewmaMs;
  }
}
