import type { BackendInfo, MigrationDirectory, SessionDirectory } from '../../plugin.js';
import type { Candidate } from './factors.js';
import type { LatencyTracker } from './latency.js';

/** A routing decision not yet visible in `connections` (the session is still dialing/logging in). */
interface Route {
  addr: string;
  at: number;
}

/** Routes older than this are forgotten even if the session never attached (it failed, or hangs). */
const ROUTE_TTL_MS = 15_000;

/**
 * Effective load per backend. A backend's `connections` only counts a session once it is attached,
 * which takes a dial and a login; sessions that arrive together would all see the same counts and pile
 * onto one backend. So the balancer remembers where it just routed sessions, and counts requested
 * migrations at their destination (and not at their source) until the kernel carries them out.
 */
export class LoadBook {
  private readonly routes = new Map<number, Route>();

  constructor(
    private readonly sessions: SessionDirectory,
    private readonly migrations: MigrationDirectory,
  ) {}

  routed(sessionId: number, addr: string): void {
    this.routes.set(sessionId, { addr, at: Date.now() });
  }

  /** Pending effect per address: +1 for a route or migration towards it, -1 for a migration away. */
  adjustments(): Map<string, number> {
    const out = new Map<string, number>();
    const add = (addr: string, n: number) => out.set(addr, (out.get(addr) ?? 0) + n);
    const now = Date.now();
    for (const [id, route] of this.routes) {
      const session = this.sessions.get(id);
      if (!session || session.backend?.addr === route.addr || now - route.at > ROUTE_TTL_MS) {
        this.routes.delete(id);
        continue;
      }
      add(route.addr, 1);
      // A session being migrated by route (the kernel asked selectBackend) leaves its old backend.
      if (session.backend) add(session.backend.addr, -1);
    }
    for (const request of this.migrations.pending()) {
      if (this.routes.has(request.sessionId)) continue; // counted above
      const from = this.sessions.get(request.sessionId)?.backend;
      if (!from) continue;
      if (request.to !== undefined && request.to !== from.addr) {
        add(from.addr, -1);
        add(request.to, 1);
      }
    }
    return out;
  }
}

export interface CandidateSettings {
  /** Labels a backend must carry (the proxy's labels other than zone). */
  required: ReadonlyArray<readonly [string, string]>;
  /** The proxy's zone ("" = none). */
  zone: string;
}

export function labelsMatch(backend: BackendInfo, required: CandidateSettings['required']): boolean {
  for (const [k, v] of required) if (backend.labels[k] !== v) return false;
  return true;
}

export function isLocal(backend: BackendInfo, zone: string): boolean {
  if (!zone) return true;
  return backend.labels['zone'] === zone;
}

/** Candidates for `backends` with their effective loads. */
export function candidatesOf(
  backends: readonly BackendInfo[], adjustments: ReadonlyMap<string, number>, settings: CandidateSettings,
  latency: LatencyTracker | null, canonical: (b: BackendInfo) => object, removed = false,
): Candidate[] {
  return backends.map((backend) => ({
    backend,
    load: backend.connections + (adjustments.get(backend.addr) ?? 0),
    removed,
    labelsMatch: labelsMatch(backend, settings.required),
    local: isLocal(backend, settings.zone),
    latencyMs: latency?.get(canonical(backend)),
  }));
}
