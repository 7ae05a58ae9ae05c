// The stall warning: after 15 s in which the target took nothing, one warning names what the
// run waits for and when the reconnect timeout gives up; another says when bytes move again.
import assert from 'node:assert/strict';
import { StallWatch } from '../../src/engine/stall-watch.js';
import type { ProgressEvent } from '../../src/progress/events.js';

function rig(o: { reconnectTimeoutMs?: number; peer?: string } = {}) {
  let t = 1_000_000;
  const seen: ProgressEvent[] = [];
  const watch = new StallWatch((e) => seen.push(e), { peer: o.peer ?? 'root@10.0.0.5:/dev/vdb', reconnectTimeoutMs: o.reconnectTimeoutMs, now: () => t, everyMs: 0 });
  const warnings = () => seen.filter((e): e is Extract<ProgressEvent, { type: 'warning' }> => e.type === 'warning').map((e) => e.message);
  return { watch, seen, warnings, advance: (ms: number) => (t += ms) };
}

describe('engine/stall-watch', () => {
  it('warns once after 15 s without progress, and again when bytes move', () => {
    const { watch, seen, warnings, advance } = rig({ reconnectTimeoutMs: 600_000 });
    watch.listen({ type: 'bytes', index: 0, wire: 1024, acked: 1024 });
    advance(14_999);
    watch.check();
    assert.deepEqual(warnings(), []);
    // Wire bytes the target has not taken, and a block read, are no progress.
    watch.listen({ type: 'bytes', index: 1, wire: 4096, acked: 0 });
    watch.listen({ type: 'block', index: 1, state: 'read', bytes: 4096 });
    advance(1);
    watch.check();
    assert.deepEqual(warnings(), ['no progress for 15s: waiting for root@10.0.0.5:/dev/vdb, reconnect timeout in 9m45s']);
    advance(30_000);
    watch.check();
    assert.equal(warnings().length, 1, 'one warning per stall');
    watch.listen({ type: 'bytes', index: 1, wire: 0, acked: 512 });
    assert.deepEqual(warnings().slice(1), ['moving again after 45s without progress']);
    assert.equal(seen.filter((e) => e.type === 'bytes').length, 3, 'every event passes through');
    advance(15_000);
    watch.check();
    assert.equal(warnings().length, 3, 'a second stall is told too');
    watch.stop();
  });

  it('a proven block is progress; a local copy has no reconnect timeout to tell', () => {
    const { watch, warnings, advance } = rig({ peer: '/dev/loop3' });
    advance(10_000);
    watch.listen({ type: 'block', index: 0, state: 'zero', bytes: 64 << 20 });
    advance(10_000);
    watch.check();
    assert.deepEqual(warnings(), []);
    advance(50_000);
    watch.check();
    assert.deepEqual(warnings(), ['no progress for 1m00s: waiting for /dev/loop3']);
  });
});
