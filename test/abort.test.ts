// untilAborted: a caller stops waiting for shared work without cancelling it.
import assert from 'node:assert/strict';
import { untilAborted } from '../src/abort.js';

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
});
