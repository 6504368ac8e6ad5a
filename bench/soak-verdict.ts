// The soak's verdict (issue 14 item 7), kept apart from the run so it can be checked on recorded samples:
// is the proxy's resource use flat, and did any client see an error that was not the database's own?
//
// "Flat" compares the mean of the first window after the warm-up with the mean of the last window
// (10 minutes each on a run of 40 minutes or more; a third of the measured span on shorter runs) and
// allows a small growth per metric; the least-squares slope per hour is reported beside it, not judged
// (a short run's slope is mostly GC and load noise).

export interface SoakSample {
  /** Seconds since the load started. */
  t: number;
  /** Proxy resident memory, bytes (/proc/<pid>/status VmRSS). */
  rssBytes: number;
  /** V8 heap in use, bytes (nodejs_heap_size_used_bytes from GET /metrics). */
  heapUsedBytes: number;
  /** Open file descriptors (entries of /proc/<pid>/fd). */
  fds: number;
  /** Client sessions open (tiproxy_server_connections). */
  sessions: number;
  /** Client-visible errors not caused by the database, so far (cumulative). */
  clientErrors: number;
  /** Errors the database itself raised and sysbench ignored (Galera deadlocks/certification failures), so far. */
  dbErrors: number;
  /** V8 heap committed, bytes (nodejs_heap_size_total_bytes); absent in runs before it was sampled. */
  heapTotalBytes?: number;
  /** V8 young generation committed, bytes (nodejs_heap_space_size_total_bytes{space="new"}). */
  newSpaceBytes?: number;
  /** Memory held by V8 outside its heap (Buffers), bytes (nodejs_external_memory_bytes). */
  externalBytes?: number;
}

export type SoakMetric = 'rssBytes' | 'heapUsedBytes' | 'fds' | 'sessions';

/** Allowed growth of the last window's mean over the first's: the larger of a fraction and an absolute amount. */
export const FLAT_TOLERANCE: Readonly<Record<SoakMetric, { fraction: number; absolute: number }>> = {
  // RSS settles in steps (V8 grows its old space, glibc keeps freed arenas): 10 % or 16 MiB is noise.
  rssBytes: { fraction: 0.10, absolute: 16 * 1024 * 1024 },
  heapUsedBytes: { fraction: 0.10, absolute: 8 * 1024 * 1024 },
  // Two per session (client + backend) plus a few per in-flight churn login.
  fds: { fraction: 0.10, absolute: 20 },
  sessions: { fraction: 0.10, absolute: 5 },
};

/** The longest comparison window: ten minutes, as the issue asks for a one-hour run. */
export const MAX_WINDOW_S = 600;

export interface MetricTrend {
  firstMean: number;
  lastMean: number;
  /** Least-squares slope over every measured sample, units per hour. */
  slopePerHour: number;
  allowedGrowth: number;
  flat: boolean;
}

export interface SoakVerdict {
  /** Samples before this time (seconds) were the warm-up and are not judged. */
  warmupS: number;
  windowS: number;
  firstWindow: [number, number];
  lastWindow: [number, number];
  trends: Record<SoakMetric, MetricTrend>;
  flat: boolean;
  clientErrors: number;
  dbErrors: number;
  /** Schedule operations (drain, restart, reload) that did not land as expected. */
  failedOperations: number;
  /** Sessions still open a while after all load stopped (a leak when > 0); null when not measured. */
  sessionsAfterLoad: number | null;
  pass: boolean;
  /** One line per failed check, empty on a pass. */
  reasons: string[];
}

const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

/** Least-squares slope of y over t (seconds), per hour. */
export function slopePerHour(points: Array<{ t: number; y: number }>): number {
  if (points.length < 2) return NaN;
  const mt = mean(points.map((p) => p.t));
  const my = mean(points.map((p) => p.y));
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.t - mt) * (p.y - my);
    den += (p.t - mt) ** 2;
  }
  return den === 0 ? NaN : (num / den) * 3600;
}

/** Comparison window for a measured span: 10 minutes, or a third of the span when that is shorter. */
export function windowFor(spanS: number): number {
  return Math.min(MAX_WINDOW_S, spanS / 3);
}

export interface VerdictInput {
  samples: readonly SoakSample[];
  warmupS: number;
  /** Totals for the whole run (the last sample may predate the last errors); default: the last sample's. */
  clientErrors?: number;
  dbErrors?: number;
  failedOperations: number;
  sessionsAfterLoad: number | null;
}

export function soakVerdict(input: VerdictInput): SoakVerdict {
  const { samples, warmupS, failedOperations, sessionsAfterLoad } = input;
  const measured = samples.filter((s) => s.t >= warmupS);
  const reasons: string[] = [];
  if (measured.length < 6) reasons.push(`only ${measured.length} samples after the ${warmupS} s warm-up: too few to judge`);
  const start = measured[0]?.t ?? warmupS;
  const end = measured.at(-1)?.t ?? warmupS;
  const windowS = windowFor(end - start);
  const firstWindow: [number, number] = [start, start + windowS];
  const lastWindow: [number, number] = [end - windowS, end];
  const inFirst = measured.filter((s) => s.t <= firstWindow[1]);
  const inLast = measured.filter((s) => s.t >= lastWindow[0]);

  const trend = (metric: SoakMetric): MetricTrend => {
    const firstMean = mean(inFirst.map((s) => s[metric]));
    const lastMean = mean(inLast.map((s) => s[metric]));
    const tol = FLAT_TOLERANCE[metric];
    const allowedGrowth = Math.max(tol.fraction * firstMean, tol.absolute);
    return {
      firstMean, lastMean, allowedGrowth,
      slopePerHour: slopePerHour(measured.map((s) => ({ t: s.t, y: s[metric] }))),
      flat: Number.isFinite(firstMean) && Number.isFinite(lastMean) && lastMean - firstMean <= allowedGrowth,
    };
  };
  const trends = { rssBytes: trend('rssBytes'), heapUsedBytes: trend('heapUsedBytes'), fds: trend('fds'), sessions: trend('sessions') };
  for (const [metric, tr] of Object.entries(trends)) {
    if (!tr.flat) reasons.push(`${metric} not flat: first-window mean ${tr.firstMean.toFixed(0)}, last ${tr.lastMean.toFixed(0)} (allowed growth ${tr.allowedGrowth.toFixed(0)})`);
  }
  const flat = Object.values(trends).every((tr) => tr.flat);
  const clientErrors = input.clientErrors ?? samples.at(-1)?.clientErrors ?? 0;
  const dbErrors = input.dbErrors ?? samples.at(-1)?.dbErrors ?? 0;
  if (clientErrors > 0) reasons.push(`${clientErrors} client-visible error(s) not caused by the database`);
  if (failedOperations > 0) reasons.push(`${failedOperations} scheduled operation(s) did not land (drain, restart or reload)`);
  if (sessionsAfterLoad !== null && sessionsAfterLoad > 0) reasons.push(`${sessionsAfterLoad} session(s) still open after all clients left`);
  return {
    warmupS, windowS, firstWindow, lastWindow, trends, flat, clientErrors, dbErrors, failedOperations, sessionsAfterLoad,
    pass: reasons.length === 0, reasons,
  };
}
