/**
 * The traffic-capture plugin's service (`ctx.services.get('trafficCapture')`), what the admin API's
 * /api/traffic endpoints drive. Part of the public API so its consumers need not import the plugin.
 */
/** How capture files are compressed; zstd only where the runtime has it (Node 22.15+). */
export type TrafficCompression = 'gzip' | 'zstd' | 'none';

export interface TrafficCaptureRequest {
  /** Directory the files go to (created; must not hold a capture already). */
  output: string;
  /** Seconds until the capture stops by itself. */
  durationSeconds: number;
  compress?: TrafficCompression;
  /** A file holding the AES-256 key (32 bytes or 64 hex characters): the files are encrypted. */
  encryptionKeyFile?: string;
  /** Record a digest of each response's result rows, so a replay can tell a different result (default off: costs a hash over every row). */
  resultDigest?: boolean;
}

export interface TrafficCaptureJob {
  readonly id: string;
  readonly status: 'running' | 'done' | 'canceled' | 'failed';
  readonly output: string;
  /** ISO 8601. */
  readonly startedAt: string;
  readonly endedAt: string | null;
  readonly durationSeconds: number;
  readonly elapsedSeconds: number;
  /** Elapsed over duration, 0..1. */
  readonly progress: number;
  readonly commands: number;
  /** Commands dropped because the writer fell behind. */
  readonly dropped: number;
  /** Commands whose payload was recorded only in part. */
  readonly truncated: number;
  readonly sessions: number;
  readonly files: readonly string[];
  readonly compress: TrafficCompression;
  readonly encrypted: boolean;
  readonly resultDigest: boolean;
  readonly error: string | null;
  /** Each worker's part of the capture (proxy.workers > 1; one entry in a single process). The fields above total them. */
  readonly workers: readonly TrafficCaptureWorkerPart[];
}

/** One worker process's part of a capture: it writes its own files (traffic-w<worker>-*) into the same directory. */
export interface TrafficCaptureWorkerPart {
  /** The worker's id (0 in a single process). */
  readonly worker: number;
  readonly status: TrafficCaptureJob['status'];
  readonly commands: number;
  readonly dropped: number;
  readonly sessions: number;
  readonly files: readonly string[];
  readonly error: string | null;
}

/** Captures are started, cancelled and listed on every worker of the proxy (one capture id across them). */
export interface TrafficCaptureService {
  /** Starts a capture on every worker; rejects (with a reason for the operator) when one runs or the request is invalid. */
  start(request: TrafficCaptureRequest): Promise<TrafficCaptureJob>;
  /** Cancels the running capture on every worker (their files so far are kept and readable); null when none runs. */
  cancel(): Promise<TrafficCaptureJob | null>;
  /** The running capture first, then earlier ones (most recent first), totalled over the workers. */
  jobs(): Promise<readonly TrafficCaptureJob[]>;
}
