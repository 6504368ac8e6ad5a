// No real components: the balancer's factor walk and rebalance rounds against in-memory backends,
// sessions and a migration directory (the decisions are pure; the real-component tests are in
// balance.test.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BackendInfo, MigrationDirectory, MigrationRequest, SessionDirectory, SessionInfo } from '../../../src/plugin.js';
import { acceptableForRouting, decidingFactor, viewOf, type Candidate, type FactorSettings } from '../../../src/plugins/balance/factors.js';
import { LoadBook } from '../../../src/plugins/balance/load.js';
import { Rebalancer } from '../../../src/plugins/balance/rebalancer.js';

const SETTINGS: FactorSettings = { connRatio: 1.2, location: true, latency: { enabled: true, ratio: 2, minDifferenceMs: 5 } };

function backend(addr: string, patch: Partial<BackendInfo> = {}): BackendInfo {
  const [host, port] = addr.split(':') as [string, string];
  return { addr, host, port: Number(port), labels: {}, healthy: true, draining: false, connections: 0, ...patch };
}

function candidate(b: BackendInfo, patch: Partial<Candidate> = {}): Candidate {
  return { backend: b, load: b.connections, removed: false, labelsMatch: true, local: true, latencyMs: undefined, ...patch };
}

/** A little world: backends with sessions on them, and a migration directory that records requests. */
function world(spec: Record<string, { sessions: number; patch?: Partial<BackendInfo> }>) {
  const backends = new Map<string, BackendInfo & { connections: number }>();
  const sessions = new Map<number, SessionInfo>();
  let id = 1;
  for (const [addr, { sessions: n, patch }] of Object.entries(spec)) {
    const b = { ...backend(addr, patch), connections: n };
    backends.set(addr, b);
    for (let i = 0; i < n; i++) {
      const s = { id, createdAt: 1000 + id, backend: b } as unknown as SessionInfo;
      sessions.set(id++, s);
    }
  }
  const requests = new Map<number, MigrationRequest>();
  const sessionDir: SessionDirectory = { list: () => [...sessions.values()], get: (i) => sessions.get(i), count: () => sessions.size };
  const migrations: MigrationDirectory = {
    request: (sessionId, reason, to) => {
      if (requests.has(sessionId) || !sessions.has(sessionId)) return false;
      requests.set(sessionId, { sessionId, reason, requestedAt: Date.now(), ...(to ? { to } : {}) });
      return true;
    },
    pending: () => [...requests.values()],
    cancel: (sessionId) => requests.delete(sessionId),
    unmovableReason: () => null,
    dropped: () => new Map(),
    pacing: () => ({ concurrency: 8, running: 0, undisturbedRate: null, gapMs: 0 }),
  };
  const logs: unknown[] = [];
  const logger = { info: (...a: unknown[]) => logs.push(a), debug: () => {}, warn: () => {}, error: () => {} } as never;
  const make = (mps = 10, evacuateSeconds = 5) => new Rebalancer({
    backends: { list: () => [...backends.values()], get: (a) => backends.get(a) },
    sessions: sessionDir, migrations, load: new LoadBook(sessionDir, migrations), latency: null,
    factorSettings: SETTINGS, candidateSettings: { required: [], zone: '' }, settings: { migrationsPerSecond: mps, evacuateSeconds }, logger,
  });
  return { backends, sessions, requests, make };
}

describe('balance factors', () => {
  it('connection count: busiest > (idlest + 1) × 1.2 needs balancing', () => {
    const view = viewOf([], SETTINGS);
    const to = candidate(backend('b:1'), { load: 4 });
    assert.equal(decidingFactor(candidate(backend('a:1'), { load: 6 }), to, view), undefined, '6 ≤ 5 × 1.2');
    assert.equal(decidingFactor(candidate(backend('a:1'), { load: 7 }), to, view)?.reason, 'rebalance');
  });

  it('never back and forth: a factor where the source is better stops the walk', () => {
    const view = viewOf([], SETTINGS);
    const local = candidate(backend('l:1'), { load: 20, local: true });
    const remote = candidate(backend('r:1'), { load: 0, local: false });
    assert.equal(decidingFactor(remote, local, view)?.reason, 'location', 'remote sessions go local');
    assert.equal(decidingFactor(local, remote, view), undefined, 'the idle remote backend does not pull them back');
  });

  it('health and drain evacuate before anything else; latency shares are inverse to latency', () => {
    const view = viewOf([candidate(backend('f:1'), { latencyMs: 10 })], SETTINGS);
    const fast = candidate(backend('f:1'), { load: 10, latencyMs: 10 });
    assert.equal(decidingFactor(candidate(backend('u:1', { healthy: false }), { load: 1 }), fast, view)?.reason, 'unhealthy');
    assert.equal(decidingFactor(candidate(backend('d:1', { draining: true }), { load: 1, latencyMs: 1 }), fast, view)?.reason, 'drain');
    // 30 ms vs 10 ms: the slow one should hold a quarter of the pair's sessions.
    assert.equal(decidingFactor(candidate(backend('s:1'), { load: 4, latencyMs: 30 }), fast, view), undefined, '4 of 14 is fine');
    assert.equal(decidingFactor(candidate(backend('s:1'), { load: 6, latencyMs: 30 }), fast, view)?.reason, 'latency');
    // Sub-threshold differences are noise.
    assert.equal(decidingFactor(candidate(backend('s:1'), { load: 12, latencyMs: 12 }), fast, view)?.reason, undefined);
  });

  it('prefer-idle routing: connection counts are exact; a slightly slower backend still qualifies', () => {
    const view = viewOf([candidate(backend('a:1'), { latencyMs: 1 })], SETTINGS);
    const best = candidate(backend('a:1'), { load: 3, latencyMs: 1 });
    assert.equal(acceptableForRouting(candidate(backend('b:1'), { load: 3, latencyMs: 3 }), best, view), true);
    assert.equal(acceptableForRouting(candidate(backend('b:1'), { load: 4, latencyMs: 1 }), best, view), false, 'one more session is not idle');
    assert.equal(acceptableForRouting(candidate(backend('b:1'), { load: 0, latencyMs: 50 }), best, view), true, 'slow but nearly empty');
    assert.equal(acceptableForRouting(candidate(backend('b:1'), { load: 3, latencyMs: 50 }), best, view), false, 'slow and already holding its share');
    assert.equal(acceptableForRouting(candidate(backend('b:1'), { load: 0, local: false }), best, view), false, 'remote');
  });
});

describe('rebalance rounds', () => {
  it('moves the oldest sessions from the busiest to the idlest, within migrations-per-second, until balanced', () => {
    const w = world({ 'a:1': { sessions: 20 }, 'b:1': { sessions: 0 } });
    const r = w.make(4);
    let now = Date.now();
    const first = r.tick((now += 1000));
    assert.equal(first.length, 4, 'one second of budget');
    assert.deepEqual(first.map((m) => m.sessionId), [1, 2, 3, 4], 'oldest first');
    assert.ok(first.every((m) => m.from === 'a:1' && m.to === 'b:1' && m.reason === 'rebalance'));
    assert.equal(r.tick((now += 250)).length, 1, 'a quarter second of budget');
    let total = 5;
    for (let i = 0; i < 20; i++) total += r.tick((now += 1000)).length;
    // Requested moves count as done: 20/0 balances at 11/9 (11 ≤ (9 + 1) × 1.2).
    assert.equal(total, 9);
    assert.deepEqual([...w.requests.keys()], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('evacuates a draining backend at its connections / evacuate-seconds per second, regardless of migrations-per-second', () => {
    const w = world({ 'a:1': { sessions: 10, patch: { draining: true } }, 'b:1': { sessions: 10 }, 'c:1': { sessions: 12 } });
    const r = w.make(1, 5);
    let now = Date.now();
    const moves = r.tick((now += 1000));
    assert.equal(moves.filter((m) => m.reason === 'drain').length, 2, '10 sessions / 5 s');
    assert.ok(moves.filter((m) => m.reason === 'drain').every((m) => m.from === 'a:1' && m.to !== 'a:1'));
    for (let i = 0; i < 5; i++) r.tick((now += 1000));
    assert.equal([...w.requests.values()].filter((q) => q.reason === 'drain').length, 10, 'all of them within evacuate-seconds');
    const targets = [...w.requests.values()].filter((q) => q.reason === 'drain').map((q) => q.to);
    assert.ok(targets.filter((t) => t === 'b:1').length >= targets.filter((t) => t === 'c:1').length, 'mostly to the idler one');
  });

  it('sessions on a backend discovery dropped are moved away', () => {
    const w = world({ 'a:1': { sessions: 3 }, 'b:1': { sessions: 0 } });
    w.backends.delete('a:1');
    const moves = w.make().tick(Date.now() + 1000);
    assert.deepEqual(moves.map((m) => [m.reason, m.to]), [['removed', 'b:1']]);
  });

  it('does nothing when balanced or when the only difference favours the source', () => {
    const w = world({ 'a:1': { sessions: 6 }, 'b:1': { sessions: 5 } });
    assert.deepEqual(w.make().tick(Date.now() + 1000), []);
  });
});
