/**
 * Time bounds for code that reads client- or backend-controlled text: each matcher is fed growing
 * worst-case inputs and must stay within a budget proportional to the input's length — an exponential
 * or quadratic matcher blows the budget at the first sizes, long before an input gets large.
 */
import assert from 'node:assert/strict';

/** The fastest of `runs` timings of `fn`, in ms: the least noisy figure on a busy machine. */
export function fastestMs(fn: () => unknown, runs = 3): number {
  let best = Infinity;
  for (let r = 0; r < runs; r++) {
    const start = process.hrtime.bigint();
    fn();
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e6);
  }
  return best;
}

/**
 * Small steps: an exponential matcher then overshoots the budget by a bounded factor at the first size
 * it fails (×1.5 of a 4-character repeated unit is ×2^(n/8)), instead of hanging at a big jump.
 */
const GENTLE_SIZES: readonly number[] = (() => {
  const sizes: number[] = [];
  for (let n = 32; n < 100_000; n = Math.ceil(n * 1.5)) sizes.push(n);
  return [...sizes, 100_000];
})();

export interface LinearBudget {
  /** Input lengths to try, ascending (the input builder may round them); by default 32 to 100,000 in steps of ×1.5. */
  sizes?: readonly number[];
  /** ms allowed for 100,000 characters; smaller inputs get their share plus `slackMs`. */
  msPer100k?: number;
  slackMs?: number;
}

/**
 * Asserts `run(make(size))` stays within `msPer100k × size / 100,000 + slackMs` at every size,
 * smallest first, so a super-linear matcher fails fast at a small size instead of hanging at a large one.
 */
export function assertLinearTime(what: string, make: (size: number) => string, run: (input: string) => unknown,
  { sizes = GENTLE_SIZES, msPer100k = 50, slackMs = 10 }: LinearBudget = {}): void {
  for (const size of sizes) {
    const input = make(size);
    const budget = (msPer100k * input.length) / 100_000 + slackMs;
    // One run first: an exponential matcher is caught here, far over budget, before retries multiply the
    // wait. A run a little over budget is retried: on a shared machine a GC pause or a busy core can
    // slow any one run, but not the fastest of several.
    let ms = fastestMs(() => run(input), 1);
    for (let retry = 0; retry < 6 && ms >= budget && ms < 20 * budget; retry++) ms = Math.min(ms, fastestMs(() => run(input), 1));
    assert.ok(ms < budget, `${what}: ${input.length} characters took ${ms.toFixed(1)} ms (budget ${budget.toFixed(1)} ms)`);
  }
}

/** `unit` repeated to about `size` characters, then `tail`. */
export const repeatTo = (unit: string, size: number, tail = ''): string =>
  unit.repeat(Math.max(1, Math.floor(size / unit.length))) + tail;
