import type { BackendInfo, MigrationDirectory, PluginContext, SessionDirectory, SessionInfo } from '../../plugin.js';
import {
  compareScores, decidingFactor, routable, scoresOf, viewOf, type Candidate, type FactorSettings,
} from './factors.js';
import type { LatencyTracker } from './latency.js';
import { candidatesOf, type CandidateSettings, type LoadBook } from './load.js';

export interface RebalanceSettings {
  /** Cap on moves per second made to balance load (latency, location, connection count). */
  migrationsPerSecond: number;
  /** Sessions on a backend that must be left (removed, wrong labels, unhealthy, draining) are asked to move within about this many seconds. */
  evacuateSeconds: number;
}

export interface RebalancerDeps {
  backends: { list(): readonly BackendInfo[]; get(addr: string): BackendInfo | undefined };
  sessions: SessionDirectory;
  migrations: MigrationDirectory;
  load: LoadBook;
  latency: LatencyTracker | null;
  factorSettings: FactorSettings;
  candidateSettings: CandidateSettings;
  settings: RebalanceSettings;
  logger: PluginContext<unknown>['logger'];
}

export interface PlannedMove {
  sessionId: number;
  from: string;
  to: string;
  reason: string;
}

/**
 * Decides which sessions should move where, TiProxy's way: candidates are ordered by their factor
 * scores; each backend, busiest/worst first, is compared with the best routable one, and the first
 * factor that tells them apart decides — a move if the source is worse there and the difference needs
 * balancing, nothing if the source is better (so no factor undoes another's moves). The oldest sessions
 * move first. Evacuations (removed, label, unhealthy, draining) proceed at connections/evacuateSeconds
 * per second from each such backend; load balancing moves share the migrations-per-second budget.
 * Moves are requested through ctx.migrations; the kernel carries them out at each session's next safe
 * point.
 *
 * Several worker processes (proxy.workers > 1): `BackendInfo.connections` is the cluster-wide count
 * (every worker's sessions), but each worker can only move its own sessions, and every worker's
 * rebalancer sees the same totals. If each carried out the whole plan, N workers would move N times
 * too many sessions (40/0 would become 4/36, then swing back). So every worker plans on the cluster
 * totals, as one proxy would, but requests only its proportional share of the moves off each source
 * backend: its own sessions there / all sessions there (`share`). A per-source credit accumulates the
 * share of each planned move and a move is requested when it reaches 1; planned moves this worker
 * leaves to the others still update the simulated loads and spend the rate budget, so the workers'
 * requests add up to about one plan, and migrations-per-second stays a cluster-wide rate. Stale totals
 * do not cause a second round of moves: workers report their counts with requested moves already
 * applied (src/cli/workers/cluster-counts.ts), within about 100 ms, well inside the 1 s interval.
 * With a single process the share is always 1 and this is exactly the plain algorithm.
 */
export class Rebalancer {
  private balanceTokens = 0;
  private readonly evacuation = new Map<string, { rate: number; tokens: number }>();
  private lastTick = Date.now();
  /** Per source backend: planned moves owed by this worker (share of each planned move, see above). */
  private readonly shareCredit = new Map<string, number>();

  constructor(private readonly deps: RebalancerDeps) {}

  /** One round; returns the moves requested. */
  tick(now = Date.now()): PlannedMove[] {
    const { deps } = this;
    const elapsed = Math.max(0, (now - this.lastTick) / 1000);
    this.lastTick = now;
    const mps = deps.settings.migrationsPerSecond;
    this.balanceTokens = Math.min(Math.max(mps, 1), this.balanceTokens + mps * elapsed);

    const sessionsByBackend = new Map<string, SessionInfo[]>();
    /** This process's sessions per backend, pending moves included (what `connections` counts of ours). */
    const ownByBackend = new Map<string, number>();
    const pending = new Set(deps.migrations.pending().map((r) => r.sessionId));
    for (const s of deps.sessions.list()) {
      if (!s.backend) continue;
      ownByBackend.set(s.backend.addr, (ownByBackend.get(s.backend.addr) ?? 0) + 1);
      if (pending.has(s.id)) continue;
      const list = sessionsByBackend.get(s.backend.addr) ?? [];
      list.push(s);
      sessionsByBackend.set(s.backend.addr, list);
    }
    for (const list of sessionsByBackend.values()) list.sort((a, b) => a.createdAt - b.createdAt || a.id - b.id);

    const adjustments = deps.load.adjustments();
    const known = deps.backends.list();
    const knownAddrs = new Set(known.map((b) => b.addr));
    // Backends discovery dropped while sessions were still on them: sources only.
    const orphans: BackendInfo[] = [];
    for (const [addr, list] of sessionsByBackend) if (!knownAddrs.has(addr)) orphans.push(list[0]!.backend!);
    const canonical = (b: BackendInfo) => deps.backends.get(b.addr) ?? b;
    const candidates = [
      ...candidatesOf(known, adjustments, deps.candidateSettings, deps.latency, canonical),
      ...candidatesOf(orphans, adjustments, deps.candidateSettings, deps.latency, canonical, true),
    ];
    const view = viewOf(candidates, deps.factorSettings);

    // Evacuation budgets: a snapshot of each source's load when it became one, like TiProxy's status factor.
    const evacuating = new Set<string>();
    for (const c of candidates) {
      if (routable(c) || c.load <= 0) continue;
      evacuating.add(c.backend.addr);
      let budget = this.evacuation.get(c.backend.addr);
      if (!budget) {
        budget = { rate: Math.max(1, c.load / deps.settings.evacuateSeconds), tokens: 0 };
        this.evacuation.set(c.backend.addr, budget);
      }
      budget.tokens = Math.min(Math.max(budget.rate, 1), budget.tokens + budget.rate * Math.max(elapsed, 0.001));
    }
    for (const addr of this.evacuation.keys()) if (!evacuating.has(addr)) this.evacuation.delete(addr);
    for (const addr of this.shareCredit.keys()) if (!candidates.some((c) => c.backend.addr === addr)) this.shareCredit.delete(addr);
    // This worker's part of the sessions on each backend; 1 when no other worker holds any there.
    const shareOf = (b: BackendInfo): number => {
      const all = canonical(b).connections;
      const own = ownByBackend.get(b.addr) ?? 0;
      return all <= own ? 1 : own / all;
    };

    const moves: PlannedMove[] = [];
    const exhausted = new Set<string>();
    for (let guard = 0; guard < 100_000; guard++) {
      const pair = this.nextPair(candidates, view, exhausted);
      if (!pair) break;
      const { from, to, factor } = pair;
      const addr = from.backend.addr;
      const budget = factor.kind === 'evacuate' ? this.evacuation.get(addr) : undefined;
      const tokens = factor.kind === 'evacuate' ? budget?.tokens ?? 0 : this.balanceTokens;
      const queue = sessionsByBackend.get(addr);
      if (tokens < 1) {
        exhausted.add(addr);
        continue;
      }
      const credit = (this.shareCredit.get(addr) ?? 0) + shareOf(from.backend);
      if (credit >= 1 - 1e-9) {
        // Our turn for this planned move: one of our own sessions goes.
        if (!queue || queue.length === 0) {
          exhausted.add(addr);
          continue;
        }
        const session = queue.shift()!;
        if (!deps.migrations.request(session.id, factor.reason, to.backend.addr)) continue;
        this.shareCredit.set(addr, credit - 1);
        moves.push({ sessionId: session.id, from: addr, to: to.backend.addr, reason: factor.reason });
      } else {
        // Another worker's turn: count the move as planned, request nothing.
        this.shareCredit.set(addr, credit);
      }
      if (budget) budget.tokens -= 1;
      else this.balanceTokens -= 1;
      from.load -= 1;
      to.load += 1;
    }
    if (moves.length > 0) {
      const summary = new Map<string, number>();
      for (const m of moves) summary.set(`${m.from} -> ${m.to} (${m.reason})`, (summary.get(`${m.from} -> ${m.to} (${m.reason})`) ?? 0) + 1);
      deps.logger.info({ moves: Object.fromEntries(summary) }, `rebalance: requested ${moves.length} migration${moves.length > 1 ? 's' : ''}`);
    }
    return moves;
  }

  /** The worst backend that should give a session to the best routable one, with the deciding factor. */
  private nextPair(candidates: Candidate[], view: ReturnType<typeof viewOf>, exhausted: ReadonlySet<string>) {
    const scored = candidates.map((c) => ({ c, s: scoresOf(c, view) }));
    let best: { c: Candidate; s: number[] } | undefined;
    for (const x of scored) if (routable(x.c) && (!best || compareScores(x.s, best.s) < 0)) best = x;
    if (!best) return undefined;
    const sources = scored.filter((x) => x.c !== best!.c && x.c.load > 0 && !exhausted.has(x.c.backend.addr));
    sources.sort((a, b) => compareScores(b.s, a.s));
    for (const { c } of sources) {
      const factor = decidingFactor(c, best.c, view);
      if (factor) return { from: c, to: best.c, factor };
    }
    return undefined;
  }
}
