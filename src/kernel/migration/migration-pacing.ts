import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';

/** Fewest migrations allowed at once, so a drain always makes progress. */
const MIN_CONCURRENCY = 1;
/** Most migrations at once. */
const MAX_CONCURRENCY = 64;
/** Where a burst of requests starts before the first measurement. */
const START_CONCURRENCY = 8;
/** How often the limit is adjusted while migrations are wanted. */
const SAMPLE_MS = 100;
/**
 * Event-loop delay (p99 over one sample) above which migrations back off. Foreground commands wait in
 * the same loop: its delay is what every client of this proxy feels while sessions move.
 */
const DELAY_LIMIT_MS = 20;
/**
 * Share of its undisturbed rate foreground traffic keeps while sessions move: below it, migrations
 * back off. The rate falls for whatever reason the migrations cost — the proxy's loop, the old or
 * the new backend's CPU, the network — so this measures all of them at once.
 */
const FOREGROUND_KEEP = 0.8;
/** Foreground rates below this (commands/s) are too thin to steer by: the delay rule alone applies. */
const MIN_STEERING_RATE = 200;
/**
 * Below one move at a time, moves are spaced: the gap between two starts doubles from this while the
 * foreground still suffers, up to MAX_GAP_MS (so a drain still moves at least a few sessions a second).
 */
const MIN_GAP_MS = 5;
const MAX_GAP_MS = 200;
/** While migrations keep running, the undisturbed rate is measured again this often (demand changes). */
const PROBE_EVERY_MS = 5000;
/**
 * Samples in a probe: the first lets moves in flight finish and is not counted, the others are
 * averaged (one 100 ms sample of a bursty foreground is too noisy to steer by for seconds).
 */
const PROBE_SAMPLES = 3;
/** A quiet-time rate older than this is not trusted as the undisturbed one: probe before moving. */
const BASELINE_STALE_MS = 5000;

/** What pacing reads from the proxy: the foreground's progress and the migrations in flight. */
export interface PacingSignals {
  /** Commands sessions have completed so far (a counter that only grows). */
  completedCommands(): number;
  /** Migrations running now. */
  running(): number;
  /**
   * The event loop's delay over the last sample (p99, ms), when something other than the pacing's own
   * histogram should say it (a test); the histogram runs only when this is absent.
   */
  loopDelayP99Ms?(): number;
}

/**
 * How many migrations may run at once, adapted to what foreground traffic feels (additive increase,
 * multiplicative decrease): a drain goes as fast as it can while the proxy's other clients keep
 * FOREGROUND_KEEP of the command rate they had with no migration running and the event loop stays
 * prompt. The undisturbed rate is taken while the proxy is quiet of migrations (`quietTick`, from the
 * scheduler's periodic timer) and re-measured during long drains by a short pause of new moves (a
 * probe), so it follows changes in demand instead of being guessed. Sampling runs only while there is
 * work, so an idle proxy pays nothing.
 */
export class MigrationPacing {
  private limit = START_CONCURRENCY;
  private histogram: IntervalHistogram | null = null;
  private timer: NodeJS.Timeout | null = null;
  private wanted = false;
  /** Foreground commands/s with no migration running; null until measured. */
  private undisturbed: number | null = null;
  private undisturbedAt = -Infinity;
  private lastCount = 0;
  private lastAt = 0;
  private lastMigrationAt = -Infinity;
  /** Samples left in the current probe (no new migrations start meanwhile); 0 = not probing. */
  private probing = 0;
  private probeDueAt = 0;
  private probeSum = 0;
  private probeCount = 0;
  /** The foreground's rate while moves run, smoothed over samples (null until the first). */
  private smoothed: number | null = null;
  /** Milliseconds between two move starts when one at a time is still too many (0: no spacing). */
  private gap = 0;
  private lastStartAt = -Infinity;

  constructor(private readonly onChange: () => void, private readonly signals: PacingSignals) {}

  /** Migrations that may run at once now (0 while a probe measures the undisturbed rate). */
  get concurrency(): number {
    return this.probing > 0 ? 0 : this.limit;
  }

  /** Spacing between move starts in ms (0 unless one move at a time still hurts the foreground). */
  get gapMs(): number {
    return this.gap;
  }

  /**
   * Whether one more move may start now, given `running` moves: under the concurrency and, when moves
   * are spaced, at least gapMs after the last start. Returns the ms to wait when it is only the gap.
   */
  mayStart(running: number): true | number | false {
    if (running >= this.concurrency) return false;
    const wait = this.lastStartAt + this.gap - performance.now();
    return wait > 0 ? wait : true;
  }

  /** A move started (for the spacing). */
  started(): void {
    this.lastStartAt = performance.now();
  }

  /** The foreground's undisturbed command rate as last measured (commands/s), for observers. */
  get undisturbedRate(): number | null {
    return this.undisturbed;
  }

  /**
   * Called about once a second by the scheduler whatever happens: while no migration has run for the
   * whole interval, the foreground's rate over it is its undisturbed rate.
   */
  quietTick(): void {
    if (this.timer) return;
    const now = performance.now();
    const count = this.signals.completedCommands();
    if (this.lastAt > 0 && this.lastAt > this.lastMigrationAt && now - this.lastAt >= 500) {
      this.undisturbed = ((count - this.lastCount) * 1000) / (now - this.lastAt);
      this.undisturbedAt = now;
    }
    this.lastCount = count;
    this.lastAt = now;
  }

  /** There are pending migrations (active) and they wait for a slot (saturated): sampling runs only while active. */
  demand(active: boolean, saturated: boolean): void {
    this.wanted = saturated;
    if (active && !this.timer) {
      if (!this.signals.loopDelayP99Ms) {
        this.histogram = monitorEventLoopDelay({ resolution: 5 });
        this.histogram.enable();
      }
      this.timer = setInterval(() => this.sample(), SAMPLE_MS);
      this.timer.unref();
      const now = performance.now();
      this.lastCount = this.signals.completedCommands();
      this.lastAt = now;
      this.probeDueAt = now + PROBE_EVERY_MS;
      this.smoothed = null;
      if (now - this.undisturbedAt > BASELINE_STALE_MS) this.startProbe();
    } else if (!active && this.timer) {
      this.stop();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.histogram?.disable();
    this.histogram = null;
    this.probing = 0;
    this.gap = 0;
    this.lastMigrationAt = performance.now();
  }

  private startProbe(): void {
    this.probing = PROBE_SAMPLES;
    this.probeSum = 0;
    this.probeCount = 0;
  }

  private loopDelay(): number {
    if (this.signals.loopDelayP99Ms) return this.signals.loopDelayP99Ms();
    const h = this.histogram;
    if (!h) return 0;
    const p99Ms = h.count > 0 ? h.percentile(99) / 1e6 : 0;
    h.reset();
    return p99Ms;
  }

  private sample(): void {
    if (!this.timer) return;
    const p99Ms = this.loopDelay();
    const now = performance.now();
    const count = this.signals.completedCommands();
    const rate = ((count - this.lastCount) * 1000) / Math.max(1, now - this.lastAt);
    this.lastCount = count;
    this.lastAt = now;
    const running = this.signals.running();
    if (running > 0) this.lastMigrationAt = now;

    if (this.probing > 0) {
      if (running > 0) {
        // Moves still in flight: the probe starts over once they are done.
        this.startProbe();
        return;
      }
      if (this.probing < PROBE_SAMPLES) {
        this.probeSum += rate;
        this.probeCount++;
      }
      if (--this.probing === 0) {
        this.undisturbed = this.probeSum / this.probeCount;
        this.undisturbedAt = now;
        this.smoothed = null;
        this.probeDueAt = now + PROBE_EVERY_MS;
        this.onChange();
      }
      return;
    }
    if (now >= this.probeDueAt && this.wanted) {
      this.startProbe();
      return;
    }

    const before = this.limit;
    const gapBefore = this.gap;
    // Smoothed over samples: one short burst or lull of a bursty foreground must not steer alone.
    const seen = this.smoothed === null ? rate : (this.smoothed + rate) / 2;
    this.smoothed = seen;
    const base = this.undisturbed;
    // Demand grew while sessions moved: the higher (smoothed) rate is clearly achievable.
    if (base !== null && seen > base) this.undisturbed = seen;
    const foregroundHurt = base !== null && base >= MIN_STEERING_RATE && seen < base * FOREGROUND_KEEP;
    if (p99Ms > DELAY_LIMIT_MS || foregroundHurt) {
      // One at a time still too many: space the starts out instead (the foreground keeps priority).
      if (this.limit === MIN_CONCURRENCY) this.gap = this.gap === 0 ? MIN_GAP_MS : Math.min(MAX_GAP_MS, this.gap * 2);
      this.limit = Math.max(MIN_CONCURRENCY, Math.floor(this.limit / 2));
    } else if (this.wanted) {
      if (this.gap > 0) this.gap = this.gap / 2 < MIN_GAP_MS ? 0 : this.gap / 2;
      else this.limit = Math.min(MAX_CONCURRENCY, this.limit + 2);
    }
    if (this.limit > before || this.gap < gapBefore) this.onChange();
  }
}
