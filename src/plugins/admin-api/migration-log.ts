import type { MigrationOutcome } from '../../plugin.js';

/** One finished migration as GET /api/migrations shows it. */
export interface MigrationRecord {
  session: number;
  from: string;
  to: string;
  reason: string;
  result: 'succeeded' | 'failed' | 'vetoed';
  duration_ms: number;
  error: string | null;
  /** For a veto: whether the request stays and is tried again. */
  retry: boolean | null;
  /** Epoch milliseconds when it finished. */
  at: number;
}

/** A bounded ring of recent afterMigrate outcomes (oldest dropped), with waiters for one session's next outcome. */
export class MigrationLog {
  private readonly records: MigrationRecord[] = [];
  private readonly waiters = new Map<number, Array<(r: MigrationRecord) => void>>();

  constructor(private capacity: number) {}

  resize(capacity: number): void {
    this.capacity = capacity;
    if (this.records.length > capacity) this.records.splice(0, this.records.length - capacity);
  }

  add(outcome: MigrationOutcome): void {
    const record: MigrationRecord = {
      session: outcome.session.id, from: outcome.from.addr, to: outcome.to.addr, reason: outcome.reason, result: outcome.result,
      duration_ms: Math.round(outcome.durationMs * 1000) / 1000, error: outcome.error ?? null, retry: outcome.retry ?? null, at: Date.now(),
    };
    this.records.push(record);
    if (this.records.length > this.capacity) this.records.shift();
    const waiting = this.waiters.get(record.session);
    if (waiting) {
      this.waiters.delete(record.session);
      for (const w of waiting) w(record);
    }
  }

  /** Newest first. */
  recent(): MigrationRecord[] {
    return [...this.records].reverse();
  }

  /** The session's next outcome, or null after `timeoutMs`. */
  next(sessionId: number, timeoutMs: number): Promise<MigrationRecord | null> {
    return new Promise((resolve) => {
      const list = this.waiters.get(sessionId) ?? [];
      this.waiters.set(sessionId, list);
      const done = (r: MigrationRecord | null): void => {
        clearTimeout(timer);
        resolve(r);
      };
      const timer = setTimeout(() => {
        const i = list.indexOf(done);
        if (i >= 0) list.splice(i, 1);
        if (list.length === 0 && this.waiters.get(sessionId) === list) this.waiters.delete(sessionId);
        done(null);
      }, timeoutMs);
      timer.unref();
      list.push(done);
    });
  }
}
