// Statistics of a toggled A/B run (bench/traffic-capture-cost.ts --toggle): one load run during which a
// feature is switched off and on in windows, compared window by window with its neighbour.

export type ToggleMode = 'off' | 'on';

/** Modes by window: off, on, on, off, … (pairs alternate their order, so a steady drift cancels). */
export const TOGGLE_PATTERN: readonly ToggleMode[] = ['off', 'on', 'on', 'off'];

export function toggleMode(window: number): ToggleMode {
  return TOGGLE_PATTERN[window % TOGGLE_PATTERN.length]!;
}

export interface ToggleWindow {
  mode: ToggleMode;
  /** QPS of each measured second (the window's first second, when the switch happens, is dropped). */
  qps: number[];
  /** CPU seconds over the measured seconds: proxy main thread, proxy process, whole machine. */
  cpu: { main: number; all: number; machine: number };
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Per neighbouring pair (windows 0–1, 2–3, …), the QPS cost of "on" in percent (negative: on was faster), sorted. */
export function pairCosts(windows: readonly ToggleWindow[]): number[] {
  const costs: number[] = [];
  for (let k = 0; k + 1 < windows.length; k += 2) {
    const [a, b] = [windows[k]!, windows[k + 1]!];
    if (a.mode === b.mode) throw new Error(`windows ${k} and ${k + 1} are both ${a.mode}: not a pair`);
    const [off, on] = a.mode === 'off' ? [a, b] : [b, a];
    costs.push((1 - mean(on.qps) / mean(off.qps)) * 100);
  }
  return costs.sort((x, y) => x - y);
}

/**
 * The median of sorted values and a distribution-free 95 % interval for it: the order statistics
 * n/2 ∓ 0.98·√n (the normal approximation of the binomial, clamped to the ends).
 */
export function medianInterval(sorted: readonly number[]): { median: number; low: number; high: number } {
  if (sorted.length === 0) throw new Error('no values');
  const mid = Math.floor(sorted.length / 2);
  const half = Math.ceil(0.98 * Math.sqrt(sorted.length));
  return { median: sorted[mid]!, low: sorted[Math.max(0, mid - half)]!, high: sorted[Math.min(sorted.length - 1, mid + half)]! };
}

/** Mean QPS over every measured second of one mode's windows. */
export function modeQps(windows: readonly ToggleWindow[], mode: ToggleMode): number {
  return mean(windows.filter((w) => w.mode === mode).flatMap((w) => w.qps));
}

/** CPU microseconds per query in one mode's windows (queries: the sum of the measured seconds' QPS). */
export function cpuPerQuery(windows: readonly ToggleWindow[], mode: ToggleMode, key: keyof ToggleWindow['cpu']): number {
  const ws = windows.filter((w) => w.mode === mode);
  const queries = ws.reduce((a, w) => a + w.qps.reduce((x, y) => x + y, 0), 0);
  return (ws.reduce((a, w) => a + w.cpu[key], 0) / queries) * 1e6;
}
