import type { TrafficCaptureJob, TrafficCaptureRequest, TrafficCaptureService, TrafficCaptureWorkerPart, WorkerGroup } from '../../plugin.js';

/** What each worker is asked (WorkerGroup.askAll topics, payloads are JSON). */
export const TOPIC_START = 'traffic-capture:start';
export const TOPIC_CANCEL = 'traffic-capture:cancel';
export const TOPIC_JOBS = 'traffic-capture:jobs';

/** Start order every worker gets: the request and the capture's id and start, the same on all of them. */
export interface StartOrder {
  request: TrafficCaptureRequest;
  id: string;
  startedAt: number;
}

/** A worker's answer to a start order. */
export type StartAnswer = { job: TrafficCaptureJob } | { error: string };

/** What one worker does; the service puts it to every worker. */
export interface LocalCaptures {
  /** Checks a request before any worker starts (throws the reason). */
  validate(request: TrafficCaptureRequest): void;
  start(order: StartOrder): StartAnswer;
  /** Cancels this worker's running capture (only `id` when given): its job, or null. */
  cancel(id: string | null): Promise<TrafficCaptureJob | null>;
  jobs(): TrafficCaptureJob[];
}

/** Starting takes a worker a moment (a directory, a writer thread); cancelling waits for its files to close. */
const START_TIMEOUT_MS = 10_000;
const CANCEL_TIMEOUT_MS = 30_000;
const JOBS_TIMEOUT_MS = 5_000;

const STATUS_ORDER: ReadonlyArray<TrafficCaptureJob['status']> = ['running', 'failed', 'canceled', 'done'];

/** One capture's parts on several workers as one job: counts totalled, the workers' parts listed. */
export function mergeJobs(parts: readonly TrafficCaptureJob[]): TrafficCaptureJob {
  const first = parts[0]!;
  if (parts.length === 1) return first;
  const sum = (key: 'commands' | 'dropped' | 'truncated' | 'sessions') => parts.reduce((n, p) => n + p[key], 0);
  const ended = parts.map((p) => p.endedAt);
  const errors = parts.flatMap((p) => p.workers.filter((w) => w.error !== null).map((w) => `worker ${w.worker}: ${w.error}`));
  return {
    ...first,
    status: STATUS_ORDER.find((s) => parts.some((p) => p.status === s)) ?? first.status,
    endedAt: ended.includes(null) ? null : ended.sort().at(-1)!,
    elapsedSeconds: Math.max(...parts.map((p) => p.elapsedSeconds)),
    progress: Math.min(...parts.map((p) => p.progress)),
    commands: sum('commands'), dropped: sum('dropped'), truncated: sum('truncated'), sessions: sum('sessions'),
    files: parts.flatMap((p) => p.files).sort(),
    error: errors.length > 0 ? errors.join('; ') : null,
    workers: parts.flatMap((p) => p.workers).sort((a: TrafficCaptureWorkerPart, b: TrafficCaptureWorkerPart) => a.worker - b.worker),
  };
}

/** Jobs of every worker grouped by capture id: running first, then the most recent. */
function byCapture(jobs: readonly TrafficCaptureJob[]): TrafficCaptureJob[] {
  const groups = new Map<string, TrafficCaptureJob[]>();
  for (const job of jobs) groups.set(job.id, [...(groups.get(job.id) ?? []), job]);
  return [...groups.values()].map(mergeJobs)
    .sort((a, b) => Number(b.status === 'running') - Number(a.status === 'running') || b.startedAt.localeCompare(a.startedAt));
}

/**
 * The capture service the admin API drives: with proxy.workers > 1 every worker runs its own plugins
 * and sees only its own sessions, so each order goes to all of them (in a single process, to this one).
 */
export function workerCaptureService(workers: WorkerGroup, local: LocalCaptures): TrafficCaptureService {
  const cancelAll = async (id: string | null) => (await workers.askAll(TOPIC_CANCEL, CANCEL_TIMEOUT_MS, id)) as Array<TrafficCaptureJob | null>;
  return {
    async start(request) {
      local.validate(request);
      const startedAt = Date.now();
      const order: StartOrder = { request, id: `capture-${new Date(startedAt).toISOString().replace(/[:.]/g, '-')}`, startedAt };
      const answers = (await workers.askAll(TOPIC_START, START_TIMEOUT_MS, order)) as StartAnswer[];
      const started = answers.flatMap((a) => ('job' in a ? [a.job] : []));
      const refusals = answers.filter((a): a is Extract<StartAnswer, { error: string }> => 'error' in a);
      if (refusals.length > 0 || started.length === 0) {
        // All or nothing: a capture missing some workers' sessions would replay as a different workload.
        if (started.length > 0) await cancelAll(order.id);
        const reason = refusals.length > 0 ? [...new Set(refusals.map((r) => r.error))].join('; ') : 'no worker answered';
        throw new Error(reason);
      }
      return mergeJobs(started);
    },
    async cancel() {
      const jobs = (await cancelAll(null)).filter((j): j is TrafficCaptureJob => j !== null);
      return jobs.length > 0 ? byCapture(jobs)[0]! : null;
    },
    async jobs() {
      return byCapture(((await workers.askAll(TOPIC_JOBS, JOBS_TIMEOUT_MS)) as TrafficCaptureJob[][]).flat());
    },
  };
}
