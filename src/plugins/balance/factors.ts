import type { BackendInfo } from '../../plugin.js';

/**
 * A backend as the balancer scores it. `load` is its effective session count: live sessions, plus
 * sessions being connected to it right now, plus migrations requested towards it, minus migrations
 * requested away from it — so decisions made a moment ago count before they are carried out.
 */
export interface Candidate {
  readonly backend: BackendInfo;
  load: number;
  /** Gone from discovery; only sessions still on it make it a candidate (as a source). */
  readonly removed: boolean;
  /** Has every label the proxy requires. */
  readonly labelsMatch: boolean;
  /** In the proxy's zone (or either has no zone). */
  readonly local: boolean;
  /** Average command latency in ms, when known. */
  readonly latencyMs: number | undefined;
}

export interface FactorSettings {
  /** Connection-count imbalance threshold: busiest > (idlest + 1) × ratio. */
  connRatio: number;
  latency: { enabled: boolean; ratio: number; minDifferenceMs: number };
  location: boolean;
}

/**
 * One balancing criterion, in priority order. Lower scores are better. `kind` says how urgent moving
 * off a worse backend is: "evacuate" (it must not keep sessions: removed, wrong labels, unhealthy,
 * draining) or "balance" (it is merely worse: slower, remote, busier), which the migrations-per-second
 * limit paces.
 */
export interface Factor {
  readonly name: string;
  /** Migration reason when this factor decides a move. */
  readonly reason: string;
  readonly kind: 'evacuate' | 'balance';
  score(c: Candidate, view: ScoringView): number;
  /** `from` scores worse than `to` here: should sessions move from it to `to`? */
  needsBalance(from: Candidate, to: Candidate, view: ScoringView): boolean;
}

/** Facts shared by all candidates of one decision. */
export interface ScoringView {
  /** Lowest known latency among routable candidates. */
  readonly bestLatencyMs: number | undefined;
  readonly settings: FactorSettings;
}

const always = (): boolean => true;

/** TiProxy's order (label, status, health, load, location, connections), our backends' signals. */
export const FACTORS: readonly Factor[] = [
  { name: 'removed', reason: 'removed', kind: 'evacuate', score: (c) => (c.removed ? 1 : 0), needsBalance: always },
  { name: 'label', reason: 'label', kind: 'evacuate', score: (c) => (c.labelsMatch ? 0 : 1), needsBalance: always },
  { name: 'health', reason: 'unhealthy', kind: 'evacuate', score: (c) => (c.backend.healthy ? 0 : 1), needsBalance: always },
  { name: 'status', reason: 'drain', kind: 'evacuate', score: (c) => (c.backend.draining ? 1 : 0), needsBalance: always },
  {
    name: 'latency', reason: 'latency', kind: 'balance',
    score: (c, view) => (slow(c, view) ? 1 : 0),
    // Sessions are shared in inverse proportion to latency: a backend twice as slow keeps a third.
    needsBalance: (from, to, view) => {
      const fromMs = from.latencyMs;
      const toMs = to.latencyMs ?? view.bestLatencyMs;
      if (fromMs === undefined || toMs === undefined || fromMs <= 0) return false;
      const share = (from.load + to.load) * (toMs / (fromMs + toMs));
      return from.load - share >= 1;
    },
  },
  {
    name: 'location', reason: 'location', kind: 'balance',
    score: (c, view) => (view.settings.location && !c.local ? 1 : 0),
    needsBalance: always,
  },
  {
    name: 'conn', reason: 'rebalance', kind: 'balance',
    score: (c) => Math.max(0, c.load),
    needsBalance: (from, to, view) => from.load > (to.load + 1) * view.settings.connRatio,
  },
];

function slow(c: Candidate, view: ScoringView): boolean {
  const { latency } = view.settings;
  if (!latency.enabled || c.latencyMs === undefined || view.bestLatencyMs === undefined) return false;
  return c.latencyMs > view.bestLatencyMs * latency.ratio && c.latencyMs - view.bestLatencyMs > latency.minDifferenceMs;
}

/** A candidate that may receive sessions. */
export function routable(c: Candidate): boolean {
  return !c.removed && c.labelsMatch && c.backend.healthy && !c.backend.draining;
}

export function scoresOf(c: Candidate, view: ScoringView): number[] {
  return FACTORS.map((f) => f.score(c, view));
}

/** Lexicographic comparison of score vectors: negative when `a` is better. */
export function compareScores(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

export function viewOf(candidates: readonly Candidate[], settings: FactorSettings): ScoringView {
  let best: number | undefined;
  for (const c of candidates) {
    if (!routable(c) || c.latencyMs === undefined) continue;
    if (best === undefined || c.latencyMs < best) best = c.latencyMs;
  }
  return { bestLatencyMs: best, settings };
}

/**
 * The factor that decides moving sessions from `from` to `to`, walking factors in priority order: the
 * first factor where `from` is worse and the difference needs balancing decides; a factor where `from`
 * is better stops the walk (so a later factor never moves sessions back where an earlier one put them).
 */
export function decidingFactor(from: Candidate, to: Candidate, view: ScoringView): Factor | undefined {
  for (const factor of FACTORS) {
    const a = factor.score(from, view);
    const b = factor.score(to, view);
    if (a > b) {
      if (factor.needsBalance(from, to, view)) return factor;
    } else if (a < b) return undefined;
  }
  return undefined;
}

/**
 * Would `c`, given one more session, be left alone by the rebalancer compared with `best`? Used by
 * prefer-idle routing: sampled signals (latency) are compared with their tolerance, while the
 * connection count — exact and live — must be no higher than the best's, so long-lived sessions end up
 * evenly spread (within one) however fast they arrive.
 */
export function acceptableForRouting(c: Candidate, best: Candidate, view: ScoringView): boolean {
  if (c === best) return true;
  const after: Candidate = { ...c, load: c.load + 1 };
  for (const factor of FACTORS) {
    if (factor.name === 'conn') return c.load <= best.load;
    const a = factor.score(c, view);
    const b = factor.score(best, view);
    if (a > b && factor.needsBalance(after, best, view)) return false;
    if (a < b) return true;
  }
  return true;
}
