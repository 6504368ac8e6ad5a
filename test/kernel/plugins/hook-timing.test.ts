// Real components: none (the kernel's hook set and its plugin isolation, in-process).
// Per-query taps are timed one call in 16 and scaled (tiproxy_plugin_hook_seconds_total): the estimate
// must still track the time the tap takes, every call must be counted, and a throw in an untimed call
// must be caught like any other.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { createHookSet } from '../../../src/kernel/hooks/hook-set.js';
import type { ResultContext } from '../../../src/kernel/hooks/hook-types.js';
import { isolateHooks, type PluginErrorCounts, type PluginHookStatsTable } from '../../../src/kernel/plugins/plugin-isolation.js';

const busyFor = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

describe('per-query tap timing', () => {
  it('counts every call and estimates the time from one call in 16', () => {
    const hooks = createHookSet();
    const stats: PluginHookStatsTable = new Map();
    isolateHooks(hooks, pino({ level: 'silent' }), new Map(), stats);
    hooks.onResult.tap('slow', () => busyFor(1));
    const ctx = {} as ResultContext;
    for (let i = 0; i < 64; i++) hooks.onResult.call(ctx);
    const s = stats.get('slow/onResult')!;
    assert.equal(s.calls, 64);
    // 64 calls of at least 1 ms: at least 64 ms by the estimate (4 timed calls × 16), and not wildly more.
    assert.ok(s.seconds >= 0.064 && s.seconds < 0.064 * 4, `estimated ${(s.seconds * 1000).toFixed(1)} ms for 64 × 1 ms`);
  });

  it('catches a throw in an untimed call, counts it and fails open', () => {
    const hooks = createHookSet();
    const stats: PluginHookStatsTable = new Map();
    const counts: PluginErrorCounts = new Map();
    isolateHooks(hooks, pino({ level: 'silent' }), counts, stats);
    let n = 0;
    hooks.onResult.tap('flaky', () => {
      if (++n === 3) throw new Error('third call fails');
    });
    const ctx = {} as ResultContext;
    for (let i = 0; i < 5; i++) assert.doesNotThrow(() => hooks.onResult.call(ctx));
    assert.equal(stats.get('flaky/onResult')!.errors, 1);
    assert.equal(counts.get('flaky/onResult'), 1);
    assert.equal(stats.get('flaky/onResult')!.calls, 5);
  });
});
