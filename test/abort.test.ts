// untilAborted: a caller stops waiting for shared work without cancelling it.
import assert from 'node:assert/strict';
import { untilAborted, WaitLine } from '../src/abort.js';

describe('abort: untilAborted', () => {
  it('passes the result or the error of the promise through', async () => {
    assert.equal(await untilAborted(Promise.resolve(7), new AbortController().signal), 7);
    await assert.rejects(untilAborted(Promise.reject(new Error('boom')), new AbortController().signal), /boom/);
  });

  it('rejects with the reason as soon as the signal aborts, before the promise settles', async () => {
    const ac = new AbortController();
    let settle!: () => void;
    const shared = new Promise<void>((r) => (settle = r));
    const waiting = untilAborted(shared, ac.signal);
    ac.abort(new Error('stop'));
    await assert.rejects(waiting, /stop/);
    settle(); // the shared work goes on for others
    await shared;
    const gone = new AbortController();
    gone.abort(new Error('already'));
    await assert.rejects(untilAborted(Promise.reject(new Error('later')), gone.signal), /already/);
  });

  it('WaitLine: first come first served; an aborted waiter leaves the line; wakeAll wakes the rest', async () => {
    const line = new WaitLine<number>();
    const gone = new AbortController();
    const a = line.wait(new AbortController().signal);
    const b = line.wait(gone.signal);
    const c = line.wait(new AbortController().signal);
    const d = line.wait(new AbortController().signal);
    gone.abort(new Error('left'));
    await assert.rejects(b, /left/);
    assert.equal(line.wakeOne(1), true);
    assert.equal(await a, 1);
    assert.equal(line.wakeOne(2), true);
    assert.equal(await c, 2, 'b left the line: c is next');
    line.wakeAll(3);
    assert.equal(await d, 3);
    assert.equal(line.wakeOne(4), false, 'nobody waits');
  });
});
