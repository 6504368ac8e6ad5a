import { createHash, type Hash } from 'node:crypto';
import { COM_STMT_PREPARE } from '../protocol/constants.js';
import type { ObservedCommand, ObservedResult, SessionInfo } from '../hooks/hook-types.js';
import type { Generation } from '../plugins/generation.js';
import type { ResponseTracker, RowSink } from '../protocol/response-tracker.js';
import type { BackendConnection } from './backend-connection.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The digest of a response without rows (OK, ERR, an empty result set). */
const NO_ROWS_DIGEST = createHash('sha1').digest();

/**
 * A session's side of traffic observation (hooks.observeCommand / observeResult, used by capture): numbers
 * responses so commands and results pair up, and refills one context object per kind so observing
 * allocates nothing per command. The pump calls it only while `observing()` is true.
 */
export class ObservedTraffic implements RowSink {
  /** Responses expected and responses ended so far. */
  private expected = 0;
  private ended = 0;
  private command: Mutable<ObservedCommand> | null = null;
  private result: Mutable<ObservedResult> | null = null;
  /** The result digest's hash of the response being read (rows hashed as they pass), and whether the tracker feeds it. */
  private hash: Hash | null = null;
  private digesting = false;

  constructor(private readonly session: SessionInfo & { readonly generation: Generation }, private readonly tracker: ResponseTracker) {}

  /** Observation is on and somebody listens (one property read when off). */
  observing(): boolean {
    const g = this.session.generation;
    return g.observation.active && g.observeTapped;
  }

  /** Whether a command of `length` payload bytes, of which `inChunk` sit in this chunk, should be captured whole first. */
  wantsWhole(length: number, inChunk: number): boolean {
    const o = this.session.generation.observation;
    return o.active && length > inChunk && length <= o.wholePayloadUpTo && this.session.generation.observeTapped;
  }

  /** Counts every command that expects a response, observed or not (so numbering survives switching on). */
  expect(): void {
    this.expected++;
  }

  responseEnded(): void {
    this.ended++;
    // Observation (or its digest) ended: the tracker stops handing over rows.
    if (this.digesting && !(this.session.generation.observation.active && this.session.generation.observation.resultDigest)) {
      this.digesting = false;
      this.tracker.rowSink = null;
      this.hash = null;
    }
  }

  rowBytes(buf: Buffer, start: number, end: number): void {
    (this.hash ??= createHash('sha1')).update(buf.subarray(start, end));
  }

  /** The backend connection was replaced: responses lost with the old one are never observed. */
  restart(): void {
    this.ended = this.expected;
    this.hash = null;
  }

  /** A command went out at `at` (performance.now(), read once by the pump for this and for onResult). */
  sent(commandByte: number, buf: Buffer, off: number, length: number, expectsResponse: boolean, at: number): void {
    const ctx = (this.command ??= { session: this.session, command: 0, buf, offset: 0, available: 0, length: 0, response: 0, at: 0 });
    ctx.command = commandByte;
    ctx.buf = buf;
    ctx.offset = off;
    ctx.available = Math.min(length, buf.length - off);
    ctx.length = length;
    ctx.response = expectsResponse ? this.expected : 0;
    ctx.at = at;
    if (!this.digesting && this.session.generation.observation.resultDigest) {
      // From the next response on (one already under way would be hashed in part).
      this.digesting = true;
      this.tracker.rowSink = this;
    }
    this.session.generation.hooks.observeCommand.call(ctx);
  }

  /**
   * A command the proxy sent and read the answer of itself (a PREPARE under an id of its own, see
   * translated-prepare.ts): observed like a forwarded one, with the outcome the proxy read.
   */
  answeredByProxy(payload: Buffer, outcome: { isError: boolean; errorCode: number; statementId: number }, conn: BackendConnection): void {
    this.expect();
    if (!this.observing()) {
      // Not observed: only the numbering of commands and responses stays in step.
      this.responseEnded();
      return;
    }
    // Sent and answered before the client's next byte: its duration is not measured (reported as 0).
    this.sent(payload[0]!, payload, 0, payload.length, true, performance.now());
    this.ended++;
    this.report(payload[0]!, this.ended, outcome.isError, outcome.errorCode, -1, 0, 0, outcome.statementId, conn, 0);
  }

  /** A response ended, `durationMs` after its command went out (the pump's one clock read, shared with onResult). */
  resultSeen(commandByte: number, status: number, isError: boolean, tracker: ResponseTracker, conn: BackendConnection, durationMs: number): void {
    const statementId = commandByte === COM_STMT_PREPARE && !isError ? tracker.preparedId : 0;
    this.report(commandByte, this.ended, isError, tracker.completedErrorCode, status, tracker.completedAffectedRows, tracker.completedRows, statementId, conn, durationMs);
  }

  private report(
    commandByte: number, response: number, isError: boolean, errorCode: number, status: number, affectedRows: number, rows: number,
    statementId: number, conn: BackendConnection, durationMs: number,
  ): void {
    const ctx = (this.result ??= {
      session: this.session, command: 0, response: 0, isError, errorCode: 0, status, affectedRows: 0, rows: 0, statementId: 0, rowsDigest: null,
      durationMs: 0, backend: conn.backend,
    });
    ctx.command = commandByte;
    ctx.response = response;
    ctx.isError = isError;
    ctx.errorCode = errorCode;
    ctx.status = status;
    ctx.affectedRows = affectedRows;
    ctx.rows = rows;
    ctx.statementId = statementId;
    ctx.rowsDigest = this.digesting ? (this.hash?.digest() ?? NO_ROWS_DIGEST) : null;
    this.hash = null;
    ctx.durationMs = durationMs;
    ctx.backend = conn.backend;
    this.session.generation.hooks.observeResult.call(ctx);
  }
}
