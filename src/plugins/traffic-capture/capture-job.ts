import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ObservedCommand, ObservedResult, SessionInfo, TrafficCaptureJob, TrafficCompression, TrafficObservation } from '../../plugin.js';
import { TrafficFileWriter } from './traffic-file-writer.js';
import { metaFileName, TRAFFIC_FORMAT_VERSION, type BootRecord, type CaptureMeta } from './traffic-record.js';

export interface CaptureSettings {
  output: string;
  /** Seconds; the capture stops by itself after it. */
  durationSeconds: number;
  compress: TrafficCompression;
  key: Buffer | null;
  /** Results carry a SHA-1 of their rows (ObservedResult.rowsDigest). */
  resultDigest: boolean;
  rotateBytes: number;
  rotateSeconds: number;
  maxBufferBytes: number;
  /** Payload bytes recorded per command at most (the rest is counted in `len`). */
  maxPayloadBytes: number;
  /** This process among the workers (file names). */
  worker: number;
  /** The capture's id and start (epoch ms): the same on every worker. */
  id: string;
  startedAt: number;
}

/**
 * One running capture: writes a bootstrap record the first time a session is seen, then each observed
 * command and each outcome as binary records (the reader pairs them up). Stops after its duration, on
 * cancel, or when writing fails; then writes meta.json.
 */
export class CaptureJob {
  readonly id: string;
  readonly startedAt: number;
  private readonly metaFile: string;
  private readonly t0 = performance.now();
  /** Sessions whose bootstrap record is written. */
  private readonly sessions = new Set<number>();
  private readonly writer: TrafficFileWriter;
  private readonly timer: NodeJS.Timeout;
  private commands = 0;
  private truncated = 0;
  private sessionsSeen = 0;
  private endedAt: number | null = null;
  private stopping = false;
  private status: CaptureMeta['status'] = 'running';
  private error: string | null = null;
  readonly finished: Promise<void>;
  private resolveFinished!: () => void;

  constructor(readonly settings: CaptureSettings, private readonly traffic: TrafficObservation, private readonly onEnd: (job: CaptureJob) => void) {
    mkdirSync(settings.output, { recursive: true });
    // Only this worker's names: the other workers write theirs into the same directory at the same time.
    this.metaFile = metaFileName(settings.worker);
    const prefix = `traffic-w${settings.worker}-`;
    const leftovers = readdirSync(settings.output).filter((f) => f.startsWith(prefix) || f === this.metaFile);
    if (leftovers.length > 0) throw new Error(`output directory ${settings.output} already holds a capture (${leftovers[0]}): use an empty directory`);
    this.id = settings.id;
    this.startedAt = settings.startedAt;
    this.writer = new TrafficFileWriter({
      dir: settings.output, prefix: `traffic-w${settings.worker}`, compress: settings.compress, key: settings.key,
      rotateBytes: settings.rotateBytes, rotateSeconds: settings.rotateSeconds, maxBufferBytes: settings.maxBufferBytes,
      onError: (err) => void this.stop('failed', `writing the capture failed: ${err.message}`),
    });
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
    this.timer = setTimeout(() => void this.stop('done'), settings.durationSeconds * 1000);
    this.timer.unref();
    this.writeMeta();
  }

  /** False from the moment it stops (its status changes once its files are closed). */
  get running(): boolean {
    return !this.stopping;
  }

  private now(): number {
    return performance.now() - this.t0;
  }

  private boot(session: SessionInfo): BootRecord {
    const t = session.tracked;
    return {
      t: 'boot', s: session.id, ts: this.now(), user: session.user, db: session.database,
      sets: [...t.setStatements], prepares: [...t.sqlStatements.values()],
      stmts: this.traffic.preparedStatements(session.id).map((p) => ({ id: p.clientId, sql: p.sql.toString('utf8'), params: p.params })),
      inTx: session.inTransaction, unseen: t.unseenChanges,
    };
  }

  command(c: ObservedCommand): void {
    if (!this.running) return;
    const id = c.session.id;
    if (!this.sessions.has(id)) {
      this.sessions.add(id);
      this.sessionsSeen++;
      this.writer.writeJson(this.boot(c.session));
    }
    const keep = Math.min(c.available, this.settings.maxPayloadBytes);
    if (keep < c.length) this.truncated++;
    // The kernel's send time (same clock as this.t0): no clock read of our own per command.
    if (this.writer.writeCommand(id, c.at - this.t0, c.response, c.buf, c.offset, keep, c.length)) this.commands++;
  }

  result(r: ObservedResult): void {
    // A result whose command went out before the capture started has no command record: the reader drops it.
    if (!this.running || !this.sessions.has(r.session.id)) return;
    this.writer.writeResult(r.session.id, r.response, r.isError ? r.errorCode || -1 : 0, r.affectedRows, r.rows, r.durationMs, r.statementId, r.rowsDigest);
  }

  sessionClosed(session: SessionInfo): void {
    if (!this.running || !this.sessions.delete(session.id)) return;
    this.writer.writeJson({ t: 'end', s: session.id, ts: this.now() });
  }

  /** Ends the capture: observation off (unless another job wants it), pending commands written, files closed, meta.json written. */
  async stop(status: 'done' | 'canceled' | 'failed', error?: string): Promise<void> {
    if (this.stopping) return this.finished;
    this.stopping = true;
    this.error = error ?? null;
    clearTimeout(this.timer);
    this.traffic.setObserving(false);
    this.sessions.clear();
    this.endedAt = Date.now();
    let final = status;
    try {
      await this.writer.close();
    } catch (err) {
      final = 'failed';
      this.error = (err as Error).message;
    }
    this.status = final;
    this.writeMeta();
    this.onEnd(this);
    this.resolveFinished();
  }

  private meta(): CaptureMeta {
    return {
      format: TRAFFIC_FORMAT_VERSION, status: this.status, startedAt: this.startedAt, endedAt: this.endedAt, compress: this.settings.compress,
      encrypted: this.settings.key !== null, resultDigest: this.settings.resultDigest, files: [...this.writer.files], commands: this.commands, dropped: this.writer.dropped,
      truncated: this.truncated, sessions: this.sessionsSeen, error: this.error,
    };
  }

  private writeMeta(): void {
    try {
      writeFileSync(join(this.settings.output, this.metaFile), JSON.stringify(this.meta(), null, 2) + '\n');
    } catch (err) {
      this.error ??= `cannot write ${this.metaFile}: ${(err as Error).message}`;
    }
  }

  describe(): TrafficCaptureJob {
    const m = this.meta();
    const end = this.endedAt ?? Date.now();
    return {
      id: this.id, status: m.status, output: this.settings.output, startedAt: new Date(this.startedAt).toISOString(),
      endedAt: this.endedAt === null ? null : new Date(this.endedAt).toISOString(), durationSeconds: this.settings.durationSeconds,
      elapsedSeconds: Math.round((end - this.startedAt) / 100) / 10,
      progress: Math.min(1, (end - this.startedAt) / (this.settings.durationSeconds * 1000)),
      commands: m.commands, dropped: m.dropped, truncated: m.truncated, sessions: m.sessions, files: m.files,
      compress: m.compress, encrypted: m.encrypted, resultDigest: this.settings.resultDigest, error: m.error,
      workers: [{ worker: this.settings.worker, status: m.status, commands: m.commands, dropped: m.dropped, sessions: m.sessions, files: m.files, error: m.error }],
    };
  }
}
