import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

/** Fewest migrations allowed at once, so a drain always makes progress. */
const MIN_CONCURRENCY = 2;
/** Most migrations at once. */
const MAX_CONCURRENCY = 64;
/** How often the limit is adjusted. */
const SAMPLE_MS = 100;
/**
 * Event-loop delay (p99 over one sample) above which migrations back off. Foreground commands wait in
 * the same loop: its delay is what every client of this proxy feels while sessions move.
 */
const DELAY_LIMIT_MS = 20;

/**
 * How many migrations may run at once, adapted to what foreground traffic feels (additive increase,
 * multiplicative decrease on the event loop's delay): a drain goes as fast as the proxy can move
 * sessions without making its other clients wait. The delay histogram runs only while there is work,
 * so an idle proxy pays nothing.
 */
export class MigrationPacing {
  private limit = 8;
  private histogram: IntervalHistogram | null = null;
  private timer: NodeJS.Timeout | null = null;
  private wanted = false;

  constructor(private readonly onChange: () => void) {}

  /** Migrations that may run at once now. */
  get concurrency(): number {
    return this.limit;
  }

  /** There are pending migrations (true) or none (false): sampling runs only while there are. */
  demand(active: boolean, saturated: boolean): void {
    this.wanted = saturated;
    if (active && !this.timer) {
      this.histogram = monitorEventLoopDelay({ resolution: 5 });
      this.histogram.enable();
      this.timer = setInterval(() => this.sample(), SAMPLE_MS);
      this.timer.unref();
    } else if (!active && this.timer) {
      this.stop();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.histogram?.disable();
    this.histogram = null;
  }

  private sample(): void {
    const h = this.histogram;
    if (!h) return;
    const p99Ms = h.count > 0 ? h.percentile(99) / 1e6 : 0;
    h.reset();
    const before = this.limit;
    if (p99Ms > DELAY_LIMIT_MS) {
      this.limit = Math.max(MIN_CONCURRENCY, Math.floor(this.limit / 2));
    } else if (this.wanted) {
      this.limit = Math.min(MAX_CONCURRENCY, this.limit + 2);
    }
    if (this.limit > before) this.onChange();
  }
}
