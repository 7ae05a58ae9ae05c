// GroupFlush: the group-commit rule that lets blocks skip an fsync each.
import assert from 'node:assert/strict';
import { GroupFlush } from '../../src/remote/group-flush.js';

/** A flush that runs until released; records when each one began. */
function gatedFlushes() {
  const began: number[] = [];
  const gates: Array<{ release(): void; fail(err: Error): void }> = [];
  let clock = 0;
  const flush = () =>
    new Promise<void>((resolve, reject) => {
      began.push(clock);
      gates.push({ release: resolve, fail: reject });
    });
  return { began, gates, flush, tick: () => ++clock };
}

const settled = async <T>(p: Promise<T>) => {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((r) => setImmediate(r));
  return done;
};

describe('remote/group-flush', () => {
  it('a caller waits for a flush that began after its call; callers arriving meanwhile share the next', async () => {
    const g = gatedFlushes();
    const group = new GroupFlush(g.flush);
    const first = group.request(); // starts flush 1 at once
    g.tick();
    const second = group.request(); // flush 1 began before this call: needs flush 2
    const third = group.request(); // shares flush 2
    assert.equal(g.began.length, 1, 'one flush at a time');
    g.gates[0]!.release();
    await first;
    assert.equal(await settled(second), false, 'the flush that was running when it asked does not count');
    await new Promise((r) => setImmediate(r));
    assert.equal(g.began.length, 2, 'the next flush starts as soon as the running one ends');
    assert.equal(g.began[1], 1, 'and it began after the second and third calls');
    g.gates[1]!.release();
    await Promise.all([second, third]);
    assert.equal(g.began.length, 2, 'two flushes for three callers');
  });

  it('a failed flush rejects its callers only; the next request starts a fresh one', async () => {
    const g = gatedFlushes();
    const group = new GroupFlush(g.flush);
    const a = group.request();
    const b = group.request();
    g.gates[0]!.fail(new Error('EIO'));
    await assert.rejects(a, /EIO/);
    await new Promise((r) => setImmediate(r));
    g.gates[1]!.release();
    await b;
    const c = group.request();
    await new Promise((r) => setImmediate(r));
    assert.equal(g.began.length, 3);
    g.gates[2]!.release();
    await c;
  });
});
