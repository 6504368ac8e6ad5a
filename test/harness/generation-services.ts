// What buildGeneration borrows from a kernel, for unit tests that build generations without one: no
// backends, no sessions, nothing to migrate; anything that would need a server throws.
import { pino } from 'pino';
import type { GenerationServices } from '../../src/kernel/plugins/generation.js';

export function offlineGenerationServices(): GenerationServices {
  const none = (): never => {
    throw new Error('not available in this test');
  };
  return {
    logger: pino({ level: 'silent' }),
    backendsFor: () => ({ list: () => [], get: () => undefined, replace: none, announce: none, withdraw: none, setHealth: none, setDraining: none, traffic: () => undefined }),
    sessions: { list: () => [], get: () => undefined, count: () => 0 },
    migrations: { request: () => false, pending: () => [], cancel: () => false, unmovableReason: () => null, dropped: () => new Map(),
      pacing: () => ({ concurrency: 0, running: 0, undisturbedRate: null, gapMs: 0 }) },
    openBackendSql: none,
    errorCounts: new Map(),
  };
}
