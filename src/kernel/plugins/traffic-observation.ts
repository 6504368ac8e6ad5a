import type { PreparedStatementInfo } from '../hooks/hook-types.js';

/**
 * The one switch the packet pump reads before calling hooks.observeCommand / observeResult. It is
 * kernel-wide (shared by every generation), so sessions still pinned to an older generation are
 * observed too once a capture starts; while it is off a command costs one property read.
 */
export class ObservationSwitch {
  active = false;
  /**
   * Commands longer than what the proxy holds in one socket chunk are captured whole (one copy) up to
   * this many payload bytes while observing; longer ones are shown truncated (available < length).
   */
  wholePayloadUpTo = 0;
  /** ObservedResult.rowsDigest is computed (a SHA-1 over the result rows' bytes, per response). */
  resultDigest = false;
}

export interface ObservationOptions {
  /** See ObservationSwitch.wholePayloadUpTo (default 1 MiB). */
  wholePayloadUpTo?: number;
  /** Compute ObservedResult.rowsDigest (costs a hash over every result row while observing; default off). */
  resultDigest?: boolean;
}

/** ctx.traffic: what a capture plugin needs beyond the hooks. */
export interface TrafficObservation {
  /** Turns hooks.observeCommand / observeResult on or off for every session of this process. */
  setObserving(on: boolean, options?: ObservationOptions): void;
  readonly observing: boolean;
  /** The protocol-level prepared statements a session holds (client ids, SQL), for a capture's bootstrap record. */
  preparedStatements(sessionId: number): readonly PreparedStatementInfo[];
}

export const DEFAULT_WHOLE_PAYLOAD_UP_TO = 1 << 20;

/** ctx.traffic over a switch; `statementsOf` looks up a session's prepared statements. */
export function trafficObservation(sw: ObservationSwitch, statementsOf: (sessionId: number) => readonly PreparedStatementInfo[]): TrafficObservation {
  return {
    setObserving(on, options) {
      sw.wholePayloadUpTo = options?.wholePayloadUpTo ?? DEFAULT_WHOLE_PAYLOAD_UP_TO;
      sw.resultDigest = on && options?.resultDigest === true;
      sw.active = on;
    },
    get observing() {
      return sw.active;
    },
    preparedStatements: statementsOf,
  };
}
