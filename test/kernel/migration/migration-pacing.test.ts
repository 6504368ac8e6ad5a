// Unit test, no servers: how many migrations may run at once follows what foreground traffic feels — it
// grows while moves are waiting, the loop is prompt and the foreground keeps its rate; it halves when
// the loop is held up or the foreground's command rate falls below 80 % of its undisturbed rate, which
// is measured (quiet time, or a short probe with no new moves), not assumed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MigrationPacing } from '../../../src/kernel/migration/migration-pacing.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A fake foreground completing `perSecond` commands a second (changeable: the count is integrated over
 * time when read, so a late timer does not change the rate), a count of running moves and the event
 * loop's delay as the pacing should see it (the machine's own loop delay is not what these tests are about).
 */
function foreground(perSecond: number) {
  let count = 0;
  let rate = perSecond;
  let since = performance.now();
  const settle = () => {
    const now = performance.now();
    count += (rate * (now - since)) / 1000;
    since = now;
  };
  const f = {
    running: 0,
    loopDelayMs: 0,
    get perSecond() { return rate; },
    set perSecond(v: number) { settle(); rate = v; },
  };
  const signals = {
    completedCommands: () => { settle(); return count; },
    running: () => f.running,
    loopDelayP99Ms: () => f.loopDelayMs,
  };
  return { f, signals, stop: () => {} };
}

/** One quiet-time interval (no move running, over 500 ms) as the scheduler's periodic timer would give it. */
async function quietInterval(pacing: MigrationPacing): Promise<void> {
  pacing.quietTick();
  await sleep(600);
  pacing.quietTick();
}

describe('migration pacing', () => {
  it('probes the undisturbed rate first when it has none, starting no move meanwhile', async () => {
    const { f, signals, stop } = foreground(2000);
    const pacing = new MigrationPacing(() => {}, signals);
    try {
      pacing.demand(true, true);
      assert.equal(pacing.concurrency, 0, 'no move starts before the foreground was measured');
      await sleep(420);
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
      await quietInterval(pacing);
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
      await sleep(1000);
      assert.equal(pacing.gapMs, 0, 'first the spacing goes');
      assert.ok(pacing.concurrency > 1, 'then it grows again, the foreground having recovered');
    } finally {
      pacing.stop();
      stop();
    }
  });

  it('spaces moves out when even one at a time keeps the foreground below 80 %, and stops spacing once it recovers', async () => {
    const { f, signals, stop } = foreground(1000);
    const pacing = new MigrationPacing(() => {}, signals);
    try {
      await quietInterval(pacing);
      f.running = 1;
      pacing.demand(true, true);
      f.perSecond = 250;
      await sleep(900);
      assert.equal(pacing.concurrency, 1);
      assert.ok(pacing.gapMs >= 10, `starts spaced ${pacing.gapMs} ms apart while the foreground runs at 25 %`);
      pacing.started();
      const wait = pacing.mayStart(0);
      assert.ok(typeof wait === 'number' && wait > 0 && wait <= pacing.gapMs, `the next start waits for the gap (${String(wait)})`);
      assert.equal(pacing.mayStart(1), false, 'never more than one at a time while spaced');
      f.perSecond = 1000;
      await sleep(1000);
      assert.equal(pacing.gapMs, 0, 'no spacing once the foreground has its rate back');
      assert.equal(pacing.mayStart(0), true);
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
      await quietInterval(pacing);
      pacing.demand(true, true);
      await sleep(450);
      const grown = pacing.concurrency;
      f.loopDelayMs = 60;
      await sleep(450);
      assert.ok(pacing.concurrency < grown, `${grown} -> ${pacing.concurrency} after the loop was held up 60 ms at a time`);
      assert.ok(pacing.concurrency >= 1, 'never below one, so a drain always makes progress');
    } finally {
      pacing.stop();
      stop();
    }
  });

  it('reads the event loop\'s own delay when nothing else says it', async () => {
    const { signals } = foreground(0);
    const pacing = new MigrationPacing(() => {}, { completedCommands: signals.completedCommands, running: () => 2 });
    try {
      await quietInterval(pacing);
      const start = pacing.concurrency;
      pacing.demand(true, true);
      for (let i = 0; i < 4; i++) {
        const until = Date.now() + 60;
        while (Date.now() < until) { /* the loop held up, as a burst of foreground work would */ }
        await sleep(110);
      }
      assert.ok(pacing.concurrency < start, `${start} -> ${pacing.concurrency} after the loop was held up 60 ms at a time`);
    } finally {
      pacing.stop();
    }
  });

  it('does not grow while moves are not waiting for a slot', async () => {
    const { signals, stop } = foreground(0);
    const pacing = new MigrationPacing(() => {}, signals);
    try {
      await quietInterval(pacing);
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
