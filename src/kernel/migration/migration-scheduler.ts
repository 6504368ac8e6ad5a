import type { Logger } from 'pino';
import type { BackendRecord, BackendRegistry } from '../backend/backend-registry.js';
import type { MigrationOutcome } from '../hooks/hook-types.js';
import type { MigrationPacingSnapshot, MigrationRequest } from '../plugins/plugin-definition.js';
import type { Session } from '../session/session.js';
import { MigrationPacing } from './migration-pacing.js';
import { failoverSession, migrateSession, type MoveOutcome, type TargetResolver } from './session-migration.js';

/** A session whose migration was vetoed (try again later) is left alone this long. */
const VETO_RETRY_DELAY_MS = 3000;
/** A target that could not be dialled gets no migrations for this long (health checks catch up meanwhile). */
const UNREACHABLE_TARGET_MS = 10_000;

export interface SchedulerHost {
  readonly logger: Logger;
  readonly backends: BackendRegistry;
  session(id: number): Session | undefined;
}

/** Why a request was refused or dropped without a migration (counted, see `dropped`). */
export type DropReason = 'target-is-source' | 'target-unavailable' | 'no-other-backend' | 'failed' | 'session-closed';

/**
 * Carries out migration requests (from the balancer, drains, the admin API) at each session's next safe
 * point, and failovers when a backend dies. Requests that cannot succeed end: a target that is the
 * session's own backend, unknown, unhealthy or draining is refused; a failed move drops its request with
 * one log line (the requester picks again from the current view); a target that could not be dialled is
 * avoided for a while. Only a veto that says "later" keeps its request, paused. How many run at once
 * follows what foreground traffic feels (MigrationPacing).
 */
export class MigrationScheduler {
  readonly requests = new Map<number, MigrationRequest>();
  /** Requests accepted, by reason. */
  readonly requestCounts = new Map<string, number>();
  /** Finished migrations by "<reason>/<result>" (succeeded, failed, vetoed). */
  readonly results = new Map<string, number>();
  /** Requests refused or dropped without moving, by DropReason. */
  readonly dropped = new Map<DropReason, number>();
  readonly running = new Set<number>();
  private readonly retryAt = new Map<number, number>();
  /**
   * Sessions a veto said cannot move until something changes (no credentials): further requests are
   * refused, so the balancer picks other sessions instead of asking again. Cleared on COM_CHANGE_USER.
   */
  private readonly unmovable = new Map<number, string>();
  private readonly unreachableUntil = new Map<string, number>();
  /** Commands sessions completed (each safe point reached): the foreground's progress, for pacing. */
  private completedCommands = 0;
  private readonly pacing = new MigrationPacing(() => this.schedule(), {
    completedCommands: () => this.completedCommands,
    running: () => this.running.size,
  });
  private timer: NodeJS.Timeout | null = null;
  private scheduled = false;
  /** A schedule() due when the pacing's spacing between starts has passed. */
  private spaced: NodeJS.Timeout | null = null;

  constructor(private readonly host: SchedulerHost) {}

  /** Sessions that stay idle never reach sessionIdle again: their requests are retried every second. */
  start(): void {
    this.timer ??= setInterval(() => {
      this.pacing.quietTick();
      this.schedule();
    }, 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.spaced) clearTimeout(this.spaced);
    this.spaced = null;
    this.pacing.stop();
  }

  request(sessionId: number, reason: string, to?: string): boolean {
    const session = this.host.session(sessionId);
    if (!session || this.requests.has(sessionId) || this.unmovable.has(sessionId)) return false;
    if (to !== undefined) {
      const refused = this.targetProblem(session, to);
      if (refused) {
        this.count(this.dropped, refused);
        this.host.logger.debug({ conn: sessionId, reason, to, refused }, 'migration request refused');
        return false;
      }
    }
    this.requests.set(sessionId, { sessionId, reason, requestedAt: Date.now(), ...(to ? { to } : {}) });
    this.count(this.requestCounts, reason);
    this.host.logger.debug({ conn: sessionId, reason, to }, 'migration requested');
    this.soon();
    return true;
  }

  pacingSnapshot(): MigrationPacingSnapshot {
    return { concurrency: this.pacing.concurrency, running: this.running.size, undisturbedRate: this.pacing.undisturbedRate, gapMs: this.pacing.gapMs };
  }

  cancel(sessionId: number): boolean {
    if (this.running.has(sessionId)) return false;
    return this.requests.delete(sessionId);
  }

  unmovableReason(sessionId: number): string | null {
    return this.unmovable.get(sessionId) ?? null;
  }

  /** Whether a move was asked for this session and may be tried now (the session may then commit-and-move on BEGIN). */
  pending(sessionId: number): boolean {
    return this.requests.has(sessionId) && (this.retryAt.get(sessionId) ?? 0) <= Date.now();
  }

  userChanged(sessionId: number): void {
    this.unmovable.delete(sessionId);
  }

  sessionClosed(sessionId: number): void {
    this.requests.delete(sessionId);
    this.retryAt.delete(sessionId);
    this.unmovable.delete(sessionId);
  }

  /** A session reached a safe point: its pending move may start now. */
  sessionIdle(session: Session): void {
    this.completedCommands++;
    if (this.requests.size > 0) void this.tryMigrate(session);
  }

  /** Runs the session's pending move now if it is at a safe point; resolves when it is over. */
  migrateNow(session: Session): Promise<void> {
    return this.tryMigrate(session) ?? Promise.resolve();
  }

  /**
   * The session's backend died between commands: re-establish it elsewhere (failover). Resolves with the
   * outcome; on anything but success the session cannot continue and the caller closes it.
   */
  async failover(session: Session, dead: BackendRecord): Promise<MigrationOutcome> {
    this.requests.delete(session.id);
    this.running.add(session.id);
    try {
      const outcome = await failoverSession(session, dead, this.resolveTarget);
      this.finished(session, 'failover', outcome);
      return outcome;
    } finally {
      this.running.delete(session.id);
      this.soon();
    }
  }

  private soon(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.schedule();
    });
  }

  /** Starts pending migrations of sessions at a safe point, up to the current concurrency. */
  schedule(): void {
    // Pacing first: a drain that starts without a recent measure of the foreground probes before any move.
    this.pacing.demand(this.requests.size > 0, this.waiting());
    for (const id of this.requests.keys()) {
      if (!this.startAllowed()) break;
      const session = this.host.session(id);
      if (!session) this.requests.delete(id);
      else void this.tryMigrate(session);
    }
    this.pacing.demand(this.requests.size > 0, this.waiting());
  }

  /** Moves wait for the pacing: every slot is taken, or starts are being spaced out. */
  private waiting(): boolean {
    return this.requests.size > this.running.size && this.pacing.mayStart(this.running.size) !== true;
  }

  /** Whether the pacing lets one more move start now; when only the spacing forbids it, comes back after the gap. */
  private startAllowed(): boolean {
    const may = this.pacing.mayStart(this.running.size);
    if (may === true) return true;
    if (may !== false && !this.spaced) {
      this.spaced = setTimeout(() => {
        this.spaced = null;
        this.schedule();
      }, Math.ceil(may));
      this.spaced.unref();
    }
    return false;
  }

  private tryMigrate(session: Session): Promise<void> | undefined {
    const request = this.requests.get(session.id);
    if (!request || this.running.has(session.id)) return undefined;
    if ((this.retryAt.get(session.id) ?? 0) > Date.now() || session.unsafeReason() !== null) return undefined;
    if (!this.startAllowed()) return undefined;
    this.pacing.started();
    this.running.add(session.id);
    return migrateSession(session, request, this.resolveTarget)
      .then((outcome) => this.finished(session, request.reason, outcome))
      .catch((err: unknown) => {
        session.logger.error({ err }, 'migration crashed');
        this.requests.delete(session.id);
        this.count(this.dropped, 'failed');
      })
      .finally(() => {
        this.running.delete(session.id);
        this.schedule();
      });
  }

  private readonly resolveTarget: TargetResolver = async (session, leaving, to) => {
    if (to !== undefined) {
      // The view may have changed since the request: a target gone bad since is not dialled.
      return this.targetProblem(session, to) ? null : this.host.backends.get(to) ?? null;
    }
    const now = Date.now();
    const exclude = new Set([leaving]);
    for (const [addr, until] of this.unreachableUntil) if (until > now) exclude.add(addr);
    return session.link.selectMigrationTarget(exclude);
  };

  /** Why `to` cannot take this session now, or null. */
  private targetProblem(session: Session, to: string): DropReason | null {
    if (session.backend?.addr === to) return 'target-is-source';
    const target = this.host.backends.get(to);
    if (!target || !target.healthy || target.draining || (this.unreachableUntil.get(to) ?? 0) > Date.now()) return 'target-unavailable';
    return null;
  }

  private finished(session: Session, reason: string, outcome: MoveOutcome): void {
    this.count(this.results, `${reason}/${outcome.result}`);
    const fields = { from: outcome.from.addr, to: outcome.to.addr, reason, durationMs: outcome.durationMs, error: outcome.error };
    if (outcome.targetUnreachable) this.unreachableUntil.set(outcome.to.addr, Date.now() + UNREACHABLE_TARGET_MS);
    if (outcome.result === 'succeeded') {
      session.logger.info(fields, reason === 'failover' ? 'session failed over' : 'session migrated');
      this.requests.delete(session.id);
      this.retryAt.delete(session.id);
    } else if (outcome.result === 'failed') {
      // Dropped, not retried: whoever asked sees the session still here and decides again from the current view.
      session.logger.warn(fields, `${reason === 'failover' ? 'failover' : 'migration'} failed: ${outcome.error ?? ''}`);
      this.requests.delete(session.id);
      this.count(this.dropped, outcome.error === 'no other backend available' ? 'no-other-backend' : 'failed');
    } else {
      session.logger.info(fields, `migration vetoed: ${outcome.error ?? ''}`);
      this.retryAt.set(session.id, Date.now() + VETO_RETRY_DELAY_MS);
      // A veto that says "not until something changes" (no credentials) ends the request, and later
      // requests for this session are refused: the balancer then picks other sessions.
      if (outcome.retry === false) {
        this.requests.delete(session.id);
        this.unmovable.set(session.id, outcome.error ?? 'vetoed');
      }
    }
    session.generation.hooks.afterMigrate.call(outcome);
  }

  private count<K>(map: Map<K, number>, key: K): void {
    map.set(key, (map.get(key) ?? 0) + 1);
  }
}
