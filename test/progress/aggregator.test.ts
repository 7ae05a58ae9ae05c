import assert from 'node:assert/strict';
import { ProgressAggregator, MAX_WARNINGS } from '../../src/progress/aggregator.js';
import type { ProgressEvent } from '../../src/progress/events.js';

const MiB = 1024 * 1024;

/** A clock the test moves by hand. */
function manualClock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function startEvent(over: Partial<Extract<ProgressEvent, { type: 'start' }>> = {}): ProgressEvent {
  return {
    type: 'start',
    command: 'send',
    blocks: 16,
    blockSize: 64 * MiB,
    bytesTotal: 16 * 64 * MiB,
    blocksDone: 0,
    bytesDone: 0,
    engine: 'native',
    source: '/dev/loop0',
    target: 'root@vm:/dev/vdb',
    ...over,
  };
}

describe('progress/aggregator', () => {
  it('starts in setup with zero counters, rate 0 and no ETA', () => {
    const clock = manualClock();
    const agg = new ProgressAggregator({ now: clock.now });
    clock.advance(1500);
    const s = agg.snapshot();
    assert.equal(s.phase, 'setup');
    assert.equal(s.rate, 0);
    assert.equal(s.eta, null);
    assert.equal(s.percent, 0);
    assert.equal(s.done, false);
    assert.deepEqual(s.blocks, { total: 0, read: 0, sent: 0, verified: 0, zero: 0, identical: 0, retried: 0, failed: 0 });
  });

  it('counts a realistic run: reads, sends, zero and identical blocks, a retry, a failure', () => {
    const clock = manualClock();
    const agg = new ProgressAggregator({ now: clock.now });
    clock.advance(2000); // SSH setup: not part of elapsed
    agg.handle(startEvent());
    const s0 = agg.snapshot();
    assert.equal(s0.phase, 'transfer');
    assert.equal(s0.rate, 0);
    assert.equal(s0.eta, null);

    // One block per second for 6 s: 4 data blocks (one compressed), 1 zero, 1 identical.
    const block = 64 * MiB;
    for (let i = 0; i < 6; i++) {
      clock.advance(1000);
      agg.handle({ type: 'block', index: i, state: 'read', bytes: block });
      if (i === 4) agg.handle({ type: 'block', index: i, state: 'zero', bytes: block });
      else if (i === 5) agg.handle({ type: 'block', index: i, state: 'identical', bytes: block });
      else {
        const wire = i === 3 ? 16 * MiB : block; // block 3 went compressed
        agg.handle({ type: 'bytes', index: i, wire, acked: block, connection: i % 2 });
        agg.handle({ type: 'block', index: i, state: 'sent', bytes: block });
        if (i === 2) {
          agg.handle({ type: 'block', index: i, state: 'retry', bytes: block });
          agg.handle({ type: 'bytes', index: i, wire: block, acked: block, connection: 0 });
          agg.handle({ type: 'block', index: i, state: 'sent', bytes: block });
        }
        agg.handle({ type: 'block', index: i, state: 'verified', bytes: block });
      }
    }
    agg.handle({ type: 'block', index: 6, state: 'failed', bytes: block });

    const s = agg.snapshot();
    assert.deepEqual(s.blocks, { total: 16, read: 6, sent: 5, verified: 6, zero: 1, identical: 1, retried: 1, failed: 1 });
    assert.equal(s.bytesVerified, 6 * block);
    assert.equal(s.bytesWire, 4 * block + 16 * MiB);
    assert.equal(s.bytesAcked, 5 * block, 'the re-sent block was taken twice');
    assert.equal(s.bytesMoved, 6 * block, 'nothing unproven is in flight');
    assert.equal(s.elapsed, 6);
    assert.equal(s.percent, 37.5);
    // 7 blocks' worth moved in 6 s (block 2 twice); the remaining 10 blocks at that rate:
    assert.equal(s.rate, Math.round((7 * block) / 6));
    assert.equal(s.averageRate, Math.round((7 * block) / 6));
    assert.equal(s.eta, Math.ceil((10 * block) / Math.round((7 * block) / 6)));
    // Connection 0 carried blocks 0, 2, 2 (re-send); connection 1 carried 1 and 3 (compressed).
    assert.deepEqual(s.connections, { 0: Math.round((3 * block) / 6), 1: Math.round((block + 16 * MiB) / 6) });
    assert.equal(s.wireRate, Math.round((4 * block + 16 * MiB) / 6));
  });

  it('rate follows the current speed over a ~10 s window, and decays to 0 when idle', () => {
    const clock = manualClock(0);
    const agg = new ProgressAggregator({ now: clock.now });
    agg.handle(startEvent({ blocks: 1000, blockSize: MiB, bytesTotal: 1000 * MiB }));
    // 20 s at 10 MiB/s, then 20 s at 1 MiB/s; events mid-second, as real ones are not on the tick.
    for (let t = 0; t < 20; t++) {
      clock.advance(500);
      for (let k = 0; k < 10; k++) agg.handle({ type: 'block', index: 0, state: 'verified', bytes: MiB });
      clock.advance(500);
    }
    assert.equal(agg.snapshot().rate, 10 * MiB);
    for (let t = 0; t < 20; t++) {
      clock.advance(500);
      agg.handle({ type: 'block', index: 0, state: 'verified', bytes: MiB });
      clock.advance(500);
    }
    const slow = agg.snapshot();
    assert.equal(slow.rate, MiB, 'the window forgot the fast phase');
    assert.equal(slow.eta, Math.ceil((1000 - 220) * MiB / slow.rate));
    clock.advance(15_000);
    const idle = agg.snapshot();
    assert.equal(idle.rate, 0);
    assert.equal(idle.eta, null);
  });

  it('moves with the bytes the target takes, before a block is proven; a retry takes them back', () => {
    const clock = manualClock();
    const agg = new ProgressAggregator({ now: clock.now });
    agg.handle(startEvent({ blocks: 4, bytesTotal: 4 * 64 * MiB }));
    // 8 s at 8 MiB/s into block 0: a quarter of the job on the wire and taken, nothing proven.
    for (let t = 0; t < 8; t++) {
      clock.advance(1000);
      agg.handle({ type: 'bytes', index: 0, wire: 8 * MiB, acked: 8 * MiB });
    }
    let s = agg.snapshot();
    assert.equal(s.bytesVerified, 0);
    assert.equal(s.percent, 0);
    assert.equal(s.bytesWire, 64 * MiB);
    assert.equal(s.bytesMoved, 64 * MiB);
    assert.equal(s.percentMoved, 25);
    assert.equal(s.rate, 8 * MiB);
    assert.equal(s.eta, 24);
    assert.equal(s.idle, 0);
    // Proven: the bytes were counted already, the rate does not jump.
    agg.handle({ type: 'block', index: 0, state: 'verified', bytes: 64 * MiB });
    s = agg.snapshot();
    assert.equal(s.bytesVerified, 64 * MiB);
    assert.equal(s.bytesMoved, 64 * MiB);
    assert.equal(s.rate, 8 * MiB);
    // Half of block 1 taken, then it is re-sent: where the job stands goes back.
    agg.handle({ type: 'bytes', index: 1, wire: 32 * MiB, acked: 32 * MiB });
    assert.equal(agg.snapshot().bytesMoved, 96 * MiB);
    agg.handle({ type: 'block', index: 1, state: 'retry', bytes: 64 * MiB });
    s = agg.snapshot();
    assert.equal(s.bytesMoved, 64 * MiB);
    assert.equal(s.bytesAcked, 96 * MiB, 'what was taken stays counted');
    // Nothing moves for 20 s: idle says so, the rate decays and the ETA is unknown.
    clock.advance(20_000);
    s = agg.snapshot();
    assert.equal(s.idle, 20);
    assert.equal(s.rate, 0);
    assert.equal(s.eta, null);
    assert.equal(s.averageRate, Math.round((96 * MiB) / 28));
  });

  it('counts blocks verified by an earlier run as verified, but not in the rate (resume)', () => {
    const clock = manualClock();
    const agg = new ProgressAggregator({ now: clock.now });
    agg.handle(startEvent({ blocksDone: 10, bytesDone: 10 * 64 * MiB }));
    clock.advance(4000);
    agg.handle({ type: 'block', index: 10, state: 'verified', bytes: 64 * MiB });
    const s = agg.snapshot();
    assert.equal(s.blocks.verified, 11);
    assert.equal(s.bytesVerified, 11 * 64 * MiB);
    assert.equal(s.rate, 16 * MiB);
    assert.equal(s.eta, 20); // 5 blocks left at a quarter block per second
    assert.equal(s.percent, 68.7); // 11/16 = 68.75, floored
  });

  it('freezes elapsed at done and records the outcome', () => {
    const clock = manualClock();
    const agg = new ProgressAggregator({ now: clock.now });
    agg.handle(startEvent({ blocks: 1, blockSize: MiB, bytesTotal: MiB }));
    clock.advance(3000);
    agg.handle({ type: 'block', index: 0, state: 'verified', bytes: MiB });
    agg.handle({ type: 'done', ok: true, exitCode: 0 });
    clock.advance(60_000);
    const s = agg.snapshot();
    assert.equal(s.done, true);
    assert.equal(s.phase, 'done');
    assert.equal(s.ok, true);
    assert.equal(s.exitCode, 0);
    assert.equal(s.elapsed, 3);
    assert.equal(s.percent, 100);
    assert.equal(s.eta, 0);
  });

  it('keeps warnings in order, bounded, and hands out only new ones', () => {
    const agg = new ProgressAggregator();
    agg.handle({ type: 'warning', message: 'server refused channel 5; using 4 per connection' });
    assert.deepEqual(agg.snapshot().warnings, ['server refused channel 5; using 4 per connection']);
    assert.deepEqual(agg.warningsSince(1), []);
    for (let i = 0; i < MAX_WARNINGS + 5; i++) agg.handle({ type: 'warning', message: `w${i}` });
    const s = agg.snapshot();
    assert.equal(s.warningCount, MAX_WARNINGS + 6);
    assert.equal(s.warnings.length, MAX_WARNINGS);
    assert.equal(s.warnings.at(-1), `w${MAX_WARNINGS + 4}`);
    assert.deepEqual(agg.warningsSince(MAX_WARNINGS + 4), [`w${MAX_WARNINGS + 3}`, `w${MAX_WARNINGS + 4}`]);
    // Snapshots are copies: mutating one does not touch the aggregator.
    s.warnings.length = 0;
    s.blocks.verified = 99;
    assert.equal(agg.snapshot().warnings.length, MAX_WARNINGS);
    assert.equal(agg.snapshot().blocks.verified, 0);
  });
});
