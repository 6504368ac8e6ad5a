// Unit test, no servers: how many migrations may run at once follows the event loop's delay — it grows
// while moves are waiting and the loop answers promptly, and halves when the loop is held up.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MigrationPacing } from '../../../src/kernel/migration/migration-pacing.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Keeps the event loop busy for `ms`, as a burst of foreground work would. */
function block(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) { /* busy */ }
}

describe('migration pacing', () => {
  it('adds moves while they are wanted and the loop is prompt, halves them when the loop is held up', async () => {
    let changes = 0;
    const pacing = new MigrationPacing(() => void changes++);
    try {
      const start = pacing.concurrency;
      pacing.demand(true, true);
      await sleep(450);
      const grown = pacing.concurrency;
      assert.ok(grown > start, `${start} -> ${grown} while saturated and prompt`);
      assert.ok(changes > 0, 'the scheduler is told when it may start more');
      for (let i = 0; i < 4; i++) {
        block(60);
        await sleep(110);
      }
      assert.ok(pacing.concurrency < grown, `${grown} -> ${pacing.concurrency} after the loop was held up 60 ms at a time`);
      assert.ok(pacing.concurrency >= 2, 'never below two, so a drain always makes progress');
    } finally {
      pacing.stop();
    }
  });

  it('does not grow while moves are not waiting for a slot', async () => {
    const pacing = new MigrationPacing(() => {});
    try {
      const start = pacing.concurrency;
      pacing.demand(true, false);
      await sleep(350);
      assert.equal(pacing.concurrency, start);
    } finally {
      pacing.stop();
    }
  });
});
