// Turning benchmark samples into what a reader compares: medians over repeats (one slow run on a
// shared 2-core machine must not decide a row), ratios to HAProxy, markdown tables, pass/fail checks
// against the targets, and the JSON file kept under bench/results/ (git-ignored).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** Targets from the performance issue; each check below names the one it applies. */
export const TARGETS = {
  /** oltp_point_select at 64 threads: tiproxy QPS at least this × HAProxy's. */
  pointSelectQpsVsHaproxy: 0.95,
  /** Proxy CPU per query at most this × HAProxy's (every sysbench row). */
  cpuPerQueryVsHaproxy: 1.25,
  /** RSS per idle client connection at the largest idle count (each also holding its backend connection), KiB. */
  idleRssKiB: 16,
  /** Connection churn: tiproxy's connections per second at least this × HAProxy's. */
  churnVsHaproxy: 0.8,
  /**
   * 10,000-row results (the biggest range of the sizes suite): tiproxy's QPS at least this × HAProxy's.
   * Repeated runs of the same target differ by about 5% here even in quiet conditions.
   */
  largeResultQpsVsHaproxy: 1.0,
} as const;

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Number → table cell: '–' for missing, otherwise `digits` decimals. */
export function cell(x: number | null | undefined, digits = 0): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits);
}

export function passFail(ok: boolean | undefined): string {
  return ok === undefined ? '–' : ok ? 'pass' : 'FAIL';
}

export function markdownTable(header: string[], rows: string[][]): string {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/**
 * Samples grouped by `key` (one group per case × target, in first-seen order), each metric replaced by
 * its median over the group's repeats.
 */
export function medians<S extends { target: string }, M extends keyof S & string>(
  samples: S[], key: (s: S) => string, metrics: readonly M[],
): Array<{ key: string; target: string; first: S; runs: number } & Record<M, number>> {
  const groups = new Map<string, S[]>();
  for (const s of samples) {
    const k = `${key(s)}\u0000${s.target}`;
    groups.set(k, [...(groups.get(k) ?? []), s]);
  }
  return [...groups.entries()].map(([k, group]) => {
    const out: Record<string, unknown> = { key: k.split('\u0000')[0], target: group[0]!.target, first: group[0], runs: group.length };
    for (const m of metrics) out[m] = median(group.map((s) => Number(s[m])).filter((x) => Number.isFinite(x)));
    return out as { key: string; target: string; first: S; runs: number } & Record<M, number>;
  });
}

/** x / HAProxy's x for the same case, or NaN when either is missing. */
export function vsHaproxy<R extends { key: string; target: string }>(rows: R[], row: R, metric: (r: R) => number): number {
  const ha = rows.find((r) => r.key === row.key && r.target === 'haproxy');
  return ha ? metric(row) / metric(ha) : NaN;
}

export function writeJson(file: string, data: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
}

/** One of the targets as measured in this run. */
export interface Check {
  goal: string;
  measured: string;
  pass: boolean | undefined;
}

/** What each suite hands back to bench/run.ts: raw samples for the JSON, a table and its checks. */
export interface SuiteResult {
  name: string;
  samples: unknown[];
  markdown: string;
  checks: Check[];
}
