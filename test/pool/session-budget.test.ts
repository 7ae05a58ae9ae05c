// What a refused session teaches a connection's budget: a refusal of an open begun right after
// one of our sessions closed is a slot sshd is still freeing (tried again, with growing waits),
// anything else is the server's limit (the budget shrinks to what it holds, and says so once).
import assert from 'node:assert/strict';
import { SessionBudget } from '../../src/pool/session-budget.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A budget of `capacity` with `open` sessions open; `shrinks` records what it announced. */
function budget(capacity: number, open: number) {
  const shrinks: Array<[number, number]> = [];
  const b = new SessionBudget(capacity, (now, before) => shrinks.push([now, before]));
  for (let i = 0; i < open; i++) {
    b.take();
    b.opened();
  }
  return { b, shrinks };
}

describe('pool/session-budget', () => {
  it('a refusal right after a close is retried with growing waits, then believed', () => {
    const { b, shrinks } = budget(4, 3);
    b.give(); // one of ours closed: 2 open
    b.take();
    const begunAt = Date.now();
    b.failed();
    const waits = [0, 1, 2, 3, 4].map((n) => b.refused(n, begunAt));
    assert.deepEqual(waits, [25, 50, 100, 200, 400].map((retryInMs) => ({ retryInMs })));
    assert.deepEqual(b.refused(5, begunAt), { shrunkTo: 2 });
    assert.equal(b.capacity, 2);
    assert.deepEqual(shrinks, [[2, 4]]);
  });

  it('the close is measured against when the open was sent, not when its refusal is handled', async () => {
    const { b, shrinks } = budget(4, 2);
    b.give();
    b.take();
    const begunAt = Date.now();
    b.failed();
    await sleep(1_100); // a busy event loop handles the refusal late
    assert.deepEqual(b.refused(0, begunAt), { retryInMs: 25 });
    assert.equal(b.capacity, 4);
    assert.deepEqual(shrinks, []);
  });

  it('a refusal with no close near it is the limit at once, never below one session', () => {
    const { b, shrinks } = budget(4, 0);
    b.take();
    b.failed();
    assert.deepEqual(b.refused(0, Date.now()), { shrunkTo: 1 });
    assert.deepEqual(shrinks, [[1, 4]]);
  });
});
