// Unit test, no servers: how many migrations may run at once follows what foreground traffic feels — it
// grows while moves are waiting, the loop is prompt and the foreground keeps its rate; it halves when
// the loop is held up or the foreground's command rate falls below 80 % of its undisturbed rate, which
// is measured (quiet time, or a short probe with no new moves), not assumed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MigrationPacing } from '../../../src/kernel/migration/migration-pacing.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Keeps the event loop busy for `ms`, as a burst of foreground work would. */
function block(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) { /* busy */ }
}

/** A fake foreground completing `perSecond` commands a second (changeable), and a count of running moves. */
function foreground(perSecond: number) {
  const f = { perSecond, count: 0, running: 0, timer: null as NodeJS.Timeout | null };
  let last = performance.now();
  f.timer = setInterval(() => {
    const now = performance.now();
    f.count += (f.perSecond * (now - last)) / 1000;
    last = now;
  }, 5);
  return { f, signals: { completedCommands: () => f.count, running: () => f.running }, stop: () => clearInterval(f.timer!) };
}

describe('migration pacing', () => {
  it('probes the undisturbed rate first when it has none, starting no move meanwhile', async () => {
    const { f, signals, stop } = foreground(2000);
    const pacing = new MigrationPacing(() => {}, signals);
    try {
      pacing.demand(true, true);
      assert.equal(pacing.concurrency, 0, 'no move starts before the foreground was measured');
      await sleep(260);
      assert.ok(pacing.concurrency > 0, 'moves start once the probe is over');
      const measured = pacing.undisturbedRate ?? 0;
      assert.ok(Math.abs(measured - f.perSecond) < f.perSecond * 0.25, `undisturbed rate measured ${measured.toFixed(0)}/s, fake ${f.perSecond}/s`);
    } finally {
      pacing.stop();
      stop();
    }
  });

  it('takes the undisturbed rate from quiet time, grows while the foreground keeps it, halves to one when it falls below 80 %', async () => {
    const { f, signals, stop } = foreground(1000);
    let changes = 0;
    const pacing = new MigrationPacing(() => void changes++, signals);
    try {
      pacing.quietTick();
      await sleep(600);
      pacing.quietTick();
      assert.ok(Math.abs((pacing.undisturbedRate ?? 0) - 1000) < 250, `quiet rate ${pacing.undisturbedRate}`);
      f.running = 4;
      pacing.demand(true, true);
      assert.ok(pacing.concurrency > 0, 'a fresh quiet-time rate needs no probe');
      const start = pacing.concurrency;
      await sleep(450);
      const grown = pacing.concurrency;
      assert.ok(grown > start, `${start} -> ${grown} while the foreground kept its rate`);
      assert.ok(changes > 0, 'the scheduler is told when it may start more');
      f.perSecond = 300;
      await sleep(750);
      assert.equal(pacing.concurrency, 1, `down to one move at a time while the foreground runs at 30 % (was ${grown})`);
      f.perSecond = 950;
      await sleep(450);
      assert.ok(pacing.concurrency > 1, 'grows again once the foreground recovers');
    } finally {
      pacing.stop();
      stop();
    }
  });

  it('halves when the event loop is held up, even with no foreground to steer by', async () => {
    const { f, signals, stop } = foreground(0);
    const pacing = new MigrationPacing(() => {}, signals);
    try {
      f.running = 2;
      pacing.quietTick();
      await sleep(550);
      pacing.quietTick();
      pacing.demand(true, true);
      await sleep(450);
      const grown = pacing.concurrency;
      for (let i = 0; i < 4; i++) {
        block(60);
        await sleep(110);
      }
      assert.ok(pacing.concurrency < grown, `${grown} -> ${pacing.concurrency} after the loop was held up 60 ms at a time`);
      assert.ok(pacing.concurrency >= 1, 'never below one, so a drain always makes progress');
    } finally {
      pacing.stop();
      stop();
    }
  });

  it('does not grow while moves are not waiting for a slot', async () => {
    const { signals, stop } = foreground(0);
    const pacing = new MigrationPacing(() => {}, signals);
    try {
      pacing.quietTick();
      await sleep(550);
      pacing.quietTick();
      const start = pacing.concurrency;
      pacing.demand(true, false);
      await sleep(350);
      assert.equal(pacing.concurrency, start);
    } finally {
      pacing.stop();
      stop();
    }
  });
});
