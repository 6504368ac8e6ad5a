import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ObservedCommand, ObservedResult, SessionInfo, TrafficCaptureJob, TrafficObservation } from '../../plugin.js';
import { TrafficFileWriter } from './traffic-file-writer.js';
import { META_FILE, TRAFFIC_FORMAT_VERSION, type BootRecord, type CaptureMeta, type CommandRecord, type EndRecord } from './traffic-record.js';

export interface CaptureSettings {
  output: string;
  /** Seconds; the capture stops by itself after it. */
  durationSeconds: number;
  compress: 'gzip' | 'none';
  key: Buffer | null;
  rotateBytes: number;
  rotateSeconds: number;
  maxBufferBytes: number;
  /** Payload bytes recorded per command at most (the rest is counted in `len`). */
  maxPayloadBytes: number;
  /** This process among the workers (file names). */
  worker: number;
}

/** Commands of one session waiting for their response. */
interface SessionCapture {
  next: number;
  waiting: CommandRecord[];
}

/** Beyond this many commands waiting for answers in one session (a pipelining client), the oldest are written without one. */
const MAX_WAITING = 64;

/**
 * One running capture: turns observed commands into records (a bootstrap the first time a session is
 * seen), pairs each with its outcome, and hands lines to the file writer. Stops after its duration, on
 * cancel, or when writing fails; then writes meta.json.
 */
export class CaptureJob {
  readonly id: string;
  readonly startedAt = Date.now();
  private readonly t0 = performance.now();
  private readonly sessions = new Map<number, SessionCapture>();
  private readonly writer: TrafficFileWriter;
  private readonly timer: NodeJS.Timeout;
  private commands = 0;
  private truncated = 0;
  private sessionsSeen = 0;
  private endedAt: number | null = null;
  private status: CaptureMeta['status'] = 'running';
  private error: string | null = null;
  readonly finished: Promise<void>;
  private resolveFinished!: () => void;

  constructor(readonly settings: CaptureSettings, private readonly traffic: TrafficObservation, private readonly onEnd: (job: CaptureJob) => void) {
    mkdirSync(settings.output, { recursive: true });
    const leftovers = readdirSync(settings.output).filter((f) => f.startsWith('traffic-') || f === META_FILE);
    if (leftovers.length > 0) throw new Error(`output directory ${settings.output} already holds a capture (${leftovers[0]}): use an empty directory`);
    this.id = `capture-${new Date(this.startedAt).toISOString().replace(/[:.]/g, '-')}`;
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

  get running(): boolean {
    return this.status === 'running';
  }

  private now(): number {
    return Math.round((performance.now() - this.t0) * 100) / 100;
  }

  private sessionOf(session: SessionInfo): SessionCapture {
    let s = this.sessions.get(session.id);
    if (!s) {
      s = { next: 0, waiting: [] };
      this.sessions.set(session.id, s);
      this.sessionsSeen++;
      this.writer.write(JSON.stringify(this.boot(session)));
    }
    return s;
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
    const s = this.sessionOf(c.session);
    const keep = Math.min(c.available, this.settings.maxPayloadBytes);
    if (keep < c.length) this.truncated++;
    const record: CommandRecord = {
      t: 'cmd', s: c.session.id, ts: this.now(), i: s.next++, c: c.command,
      p: c.buf.toString('base64', c.offset, c.offset + keep), len: c.length,
    };
    this.commands++;
    if (c.response === 0) {
      this.emit(record);
      return;
    }
    (record as CommandRecord & { n?: number }).n = c.response;
    s.waiting.push(record);
    if (s.waiting.length > MAX_WAITING) this.emit(s.waiting.shift()!);
  }

  result(r: ObservedResult): void {
    if (!this.running) return;
    const s = this.sessions.get(r.session.id);
    if (!s) return; // its command went out before the capture started
    while (s.waiting.length > 0) {
      const record = s.waiting[0]! as CommandRecord & { n?: number };
      if (record.n! > r.response) return;
      s.waiting.shift();
      if (record.n === r.response) {
        record.r = { err: r.isError ? r.errorCode || -1 : 0, aff: r.affectedRows, rows: r.rows, ms: Math.round(r.durationMs * 1000) / 1000 };
        if (r.statementId !== 0) record.r.stmt = r.statementId;
        this.emit(record);
        return;
      }
      this.emit(record);
    }
  }

  /** The record as one JSON line, built by hand: the hot path of a capture (same text JSON.stringify gives). */
  private emit(record: CommandRecord): void {
    const r = record.r;
    const result = r ? `,"r":{"err":${r.err},"aff":${r.aff},"rows":${r.rows},"ms":${r.ms}${r.stmt !== undefined ? `,"stmt":${r.stmt}` : ''}}` : '';
    this.writer.write(`{"t":"cmd","s":${record.s},"ts":${record.ts},"i":${record.i},"c":${record.c},"p":"${record.p}","len":${record.len}${result}}`);
  }

  sessionClosed(session: SessionInfo): void {
    const s = this.sessions.get(session.id);
    if (!s || !this.running) return;
    for (const record of s.waiting) this.emit(record);
    this.sessions.delete(session.id);
    const end: EndRecord = { t: 'end', s: session.id, ts: this.now() };
    this.writer.write(JSON.stringify(end));
  }

  /** Ends the capture: observation off (unless another job wants it), pending commands written, files closed, meta.json written. */
  async stop(status: 'done' | 'canceled' | 'failed', error?: string): Promise<void> {
    if (!this.running) return this.finished;
    this.status = status;
    this.error = error ?? null;
    clearTimeout(this.timer);
    this.traffic.setObserving(false);
    for (const s of this.sessions.values()) for (const record of s.waiting) this.emit(record);
    this.sessions.clear();
    this.endedAt = Date.now();
    try {
      await this.writer.close();
    } catch (err) {
      this.status = 'failed';
      this.error = (err as Error).message;
    }
    this.writeMeta();
    this.onEnd(this);
    this.resolveFinished();
  }

  private meta(): CaptureMeta {
    return {
      format: TRAFFIC_FORMAT_VERSION, status: this.status, startedAt: this.startedAt, endedAt: this.endedAt, compress: this.settings.compress,
      encrypted: this.settings.key !== null, files: [...this.writer.files], commands: this.commands, dropped: this.writer.dropped,
      truncated: this.truncated, sessions: this.sessionsSeen, error: this.error,
    };
  }

  private writeMeta(): void {
    try {
      writeFileSync(join(this.settings.output, META_FILE), JSON.stringify(this.meta(), null, 2) + '\n');
    } catch (err) {
      this.error ??= `cannot write ${META_FILE}: ${(err as Error).message}`;
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
      compress: m.compress, encrypted: m.encrypted, error: m.error,
    };
  }
}
