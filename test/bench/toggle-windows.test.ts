// Pure logic: the statistics of bench/traffic-capture-cost.ts --toggle (no components started).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cpuPerQuery, medianInterval, modeQps, pairCosts, toggleMode, type ToggleWindow } from '../../bench/toggle-windows.js';

const win = (mode: 'off' | 'on', qps: number[], main = 0): ToggleWindow => ({ mode, qps, cpu: { main, all: main, machine: main } });

describe('toggled A/B windows', () => {
  it('switches in the order off, on, on, off so neighbouring pairs alternate which mode runs first', () => {
    assert.deepEqual(Array.from({ length: 8 }, (_, w) => toggleMode(w)), ['off', 'on', 'on', 'off', 'off', 'on', 'on', 'off']);
  });

  it('prices each pair by its own off window, whichever ran first, and sorts the costs', () => {
    // Pair 1: off 100 → on 90 (10 % cost). Pair 2, on first: on 210 vs off 200 (on faster: −5 %).
    const costs = pairCosts([win('off', [100, 100]), win('on', [80, 100]), win('on', [210]), win('off', [200])]);
    assert.equal(costs.length, 2);
    assert.ok(Math.abs(costs[0]! - -5) < 1e-9, `on-first pair: ${costs[0]}`);
    assert.ok(Math.abs(costs[1]! - 10) < 1e-9, `off-first pair: ${costs[1]}`);
  });

  it('refuses two windows of the same mode as a pair', () => {
    assert.throws(() => pairCosts([win('off', [1]), win('off', [1])]), /both off/);
  });

  it('gives the median with an interval of order statistics that narrows as pairs are added', () => {
    const values = (n: number) => Array.from({ length: n }, (_, k) => k);
    const few = medianInterval(values(20));
    const many = medianInterval(values(200));
    assert.equal(few.median, 10);
    assert.ok(few.low < few.median && few.median < few.high);
    // 0.98·√n order statistics each side: 5 of 20, 14 of 200.
    assert.deepEqual([few.low, few.high], [5, 15]);
    assert.deepEqual([many.low, many.high], [86, 114]);
    assert.ok((many.high - many.low) / 200 < (few.high - few.low) / 20, 'relatively narrower with more pairs');
    assert.deepEqual(medianInterval([3]), { median: 3, low: 3, high: 3 });
  });

  it('charges CPU per query over the measured seconds of one mode only', () => {
    const windows = [win('off', [1000, 1000], 0.1), win('on', [500, 500], 0.1), win('on', [1000], 0.2), win('off', [1000], 0.05)];
    // off: 0.15 s over 3,000 queries = 50 µs; on: 0.3 s over 2,000 = 150 µs.
    assert.ok(Math.abs(cpuPerQuery(windows, 'off', 'main') - 50) < 1e-9);
    assert.ok(Math.abs(cpuPerQuery(windows, 'on', 'main') - 150) < 1e-9);
    assert.equal(modeQps(windows, 'on'), (500 + 500 + 1000) / 3);
  });
});
