// Free-space accounting of the --via sftp staging dir: pure, with a fake filesystem.
import { UsageError } from '../harness/errors.js';
import assert from 'node:assert/strict';
import { setMaxListeners } from 'node:events';
import { SpaceGate } from '../../src/remote/space-gate.js';
import { parseReserve, resolveReserve, StagingSpace } from '../../src/remote/staging-space.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/**
 * A filesystem with a size, other users' bytes, and our files: `available` is what statvfs
 * would say. Writing beyond it is an ENOSPC the tests must never see.
 */
class FakeFs {
  files = new Map<string, number>();
  other = 0;
  constructor(readonly size: number) {}
  get used(): number {
    let n = this.other;
    for (const v of this.files.values()) n += Math.ceil(v / 4096) * 4096;
    return n;
  }
  get available(): number {
    return Math.max(0, this.size - this.used);
  }
  write(name: string, bytes: number): void {
    const now = this.files.get(name) ?? 0;
    const grow = Math.ceil((now + bytes) / 4096) * 4096 - Math.ceil(now / 4096) * 4096;
    if (grow > this.available) throw new Error(`ENOSPC writing ${name}`);
    this.files.set(name, now + bytes);
  }
}

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('remote/staging-space', () => {
  describe('reserve', () => {
    it('defaults to the smaller of 1 GiB and 10 % of the filesystem', () => {
      assert.equal(resolveReserve(undefined, 100 * GiB), GiB);
      assert.equal(resolveReserve(undefined, 5 * GiB), Math.floor((5 * GiB) / 10));
      assert.equal(resolveReserve(undefined, 0), 0);
    });

    it('takes a size or a percentage; rejects nonsense with exit 2', () => {
      assert.equal(resolveReserve('512M', 100 * GiB), 512 * MiB);
      assert.equal(resolveReserve('0', 100 * GiB), 0);
      assert.equal(resolveReserve('5%', 10 * GiB), Math.floor(0.5 * GiB));
      assert.deepEqual(parseReserve('2.5%'), { percent: 2.5 });
      assert.throws(() => parseReserve('lots'), UsageError);
      assert.throws(() => parseReserve('100%'), UsageError);
      assert.throws(() => parseReserve('-1M'), UsageError);
    });
  });

  describe('StagingSpace', () => {
    it('admits a block only when available − reserve holds it with every block staged or in flight', () => {
      const s = new StagingSpace({ reserve: 1 * MiB, overhead: 0 });
      s.onMeasured(s.snapshot(), 10 * MiB);
      const a = s.admit(4 * MiB, 'block-0');
      const b = s.admit(4 * MiB, 'block-1');
      assert.ok(a && b);
      assert.equal(s.admit(4 * MiB, 'block-2'), undefined, '3 × 4 MiB + 1 MiB reserve > 10 MiB');
      assert.equal(s.shortfall(4 * MiB, 'block-2'), 3 * MiB);
      assert.ok(s.admit(1 * MiB, 'block-3'), 'a small last block still fits');
      s.release(a);
      assert.ok(s.admit(4 * MiB, 'block-2'));
    });

    it('rounds files up to the allocation unit and adds the per-file overhead', () => {
      const s = new StagingSpace({ reserve: 0, unit: 4096, overhead: 64 * KiB });
      assert.equal(s.need(1), 4096 + 64 * KiB);
      assert.equal(s.need(8192), 8192 + 64 * KiB);
      assert.equal(s.required(8192), 8192 + 64 * KiB);
    });

    it('admits nothing before the first measurement', () => {
      const s = new StagingSpace({ reserve: 0 });
      assert.equal(s.measured, false);
      assert.equal(s.admit(1, 'block-0'), undefined);
    });

    it('does not count our own files twice when measuring while they are on disk', () => {
      const fs = new FakeFs(10 * MiB);
      const s = new StagingSpace({ reserve: 0, overhead: 0 });
      s.onMeasured(s.snapshot(), fs.available);
      const a = s.admit(4 * MiB, 'block-0')!;
      fs.write('block-0', 3 * MiB);
      s.ack(a, 3 * MiB);
      const snap = s.snapshot();
      s.onMeasured(snap, fs.available); // 7 MiB available, 3 of ours on disk
      assert.equal(s.free, 10 * MiB);
      assert.ok(s.admit(4 * MiB, 'block-1'), '4 + 4 ≤ 10: the second block fits');
      assert.equal(s.admit(4 * MiB, 'block-2'), undefined);
    });

    it('adds back nothing for a file handed to the helper (it may be gone by the time statvfs runs)', () => {
      const s = new StagingSpace({ reserve: 0, overhead: 0 });
      s.onMeasured(s.snapshot(), 10 * MiB);
      const a = s.admit(4 * MiB, 'block-0')!;
      s.ack(a, 4 * MiB);
      const snap = s.snapshot();
      s.handOver(a); // the helper deletes the file, then statvfs runs, then its answer arrives
      s.onMeasured(snap, 10 * MiB);
      assert.equal(s.free, 10 * MiB, 'not 14 MiB');
      // Released between snapshot and answer: likewise nothing added back.
      const b = s.admit(4 * MiB, 'block-1')!;
      s.ack(b, 4 * MiB);
      const snap2 = s.snapshot();
      s.release(b);
      s.onMeasured(snap2, 10 * MiB);
      assert.equal(s.free, 10 * MiB);
    });

    it('a truncated upload forgets what was on disk', () => {
      const s = new StagingSpace({ reserve: 0, overhead: 0 });
      s.onMeasured(s.snapshot(), 10 * MiB);
      const a = s.admit(4 * MiB, 'block-0')!;
      s.ack(a, 2 * MiB);
      s.truncated(a);
      assert.equal(a.acked, 0);
      s.ack(a, 8 * MiB);
      assert.equal(a.acked, 4 * MiB, 'never more than the block');
    });

    it('keeps counting an abandoned attempt’s file until the block is staged again', () => {
      const s = new StagingSpace({ reserve: 0, overhead: 0 });
      s.onMeasured(s.snapshot(), 8 * MiB);
      const a = s.admit(4 * MiB, 'block-0')!;
      s.ack(a, 1 * MiB);
      s.abandon(a);
      assert.equal(s.activeLeases(), 0);
      assert.equal(s.committed(), 4 * MiB, 'the file may be up to a block long');
      assert.ok(s.admit(4 * MiB, 'block-1'));
      assert.equal(s.admit(4 * MiB, 'block-2'), undefined);
      assert.ok(s.fits(4 * MiB, 'block-0'), 'its own retry replaces the old file');
      // A measurement counts the abandoned file's confirmed bytes as ours.
      s.onMeasured(s.snapshot(), 3 * MiB);
      assert.equal(s.free, 4 * MiB);
    });

    it('counts leftover files of an interrupted run and lets their blocks reuse them', () => {
      const fs = new FakeFs(10 * MiB);
      fs.write('block-3', 4 * MiB);
      fs.write('block-4', 2 * MiB);
      const s = new StagingSpace({ reserve: 1 * MiB, overhead: 0 });
      s.addOrphan('block-3', 4 * MiB);
      s.addOrphan('block-4', 2 * MiB);
      s.onMeasured(s.snapshot(), fs.available);
      assert.equal(s.free, 10 * MiB);
      assert.equal(s.admit(4 * MiB, 'block-0'), undefined, '4 + 2 + 4 + 1 > 10');
      const b3 = s.admit(4 * MiB, 'block-3');
      assert.ok(b3, 'block 3 continues its own file');
      assert.ok(s.admit(4 * MiB, 'block-4'), 'block 4 too: 4 + 4 + 1 ≤ 10');
    });
  });

  describe('SpaceGate', () => {
    const never = new AbortController().signal;
    setMaxListeners(100, never); // one signal for every block, as in a run

    it('simulated run: many blocks through a filesystem smaller than what is in flight, never ENOSPC', async () => {
      const fs = new FakeFs(11 * MiB);
      const space = new StagingSpace({ reserve: 1 * MiB, overhead: 0 });
      let measurements = 0;
      const gate = new SpaceGate(space, {
        measure: async () => {
          measurements++;
          await tick();
          return fs.available;
        },
        waitPollMs: 0,
      });
      await gate.measureNow();
      let peak = 0;
      let inFlight = 0;
      const block = async (i: number) => {
        const name = `block-${i}`;
        const lease = await gate.acquire(name, 3 * MiB, never);
        inFlight++;
        peak = Math.max(peak, inFlight);
        for (let k = 0; k < 3; k++) {
          await tick();
          fs.write(name, MiB);
          space.ack(lease, MiB);
        }
        space.handOver(lease);
        await tick();
        fs.files.delete(name);
        inFlight--;
        gate.release(lease);
      };
      await Promise.all(Array.from({ length: 20 }, (_, i) => block(i)));
      gate.close();
      assert.equal(peak, 3, '3 × 3 MiB + 1 MiB reserve ≤ 11 MiB: three at once, never four');
      assert.ok(measurements >= 1);
      assert.equal(fs.files.size, 0);
    });

    it('waits while someone else fills the disk, re-measures, warns once, continues when space returns', async () => {
      const fs = new FakeFs(10 * MiB);
      const warnings: string[] = [];
      const space = new StagingSpace({ reserve: 0, overhead: 0 });
      const gate = new SpaceGate(space, { measure: async () => fs.available, waitPollMs: 5, refreshMs: 0, onStuck: (m) => warnings.push(m) });
      await gate.measureNow();
      fs.other = 9 * MiB;
      const first = await gate.acquire('block-0', 4 * MiB, never); // still fits on the old figure
      gate.release(first); // nobody waits: a background refresh learns the new figure
      await tick();
      let got = false;
      const waiting = gate.acquire('block-1', 4 * MiB, never).then((l) => {
        got = true;
        return l;
      });
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(got, false, 'only 1 MiB available now');
      assert.equal(warnings.length, 1, warnings.join('\n'));
      assert.match(warnings[0]!, /waiting for staging space: 3\.0 MiB more needed/);
      fs.other = 0;
      const lease = await waiting;
      assert.equal(lease.length, 4 * MiB);
      gate.close();
    });

    it('admits in arrival order, but a block reusing its own leftover file may pass', async () => {
      const space = new StagingSpace({ reserve: 0, overhead: 0 });
      space.addOrphan('block-9', 4 * MiB);
      const gate = new SpaceGate(space, {});
      space.onMeasured(space.snapshot(), 6 * MiB); // 6 MiB available beside the 4 MiB leftover
      const order: string[] = [];
      const a = await gate.acquire('block-0', 4 * MiB, never);
      const big = gate.acquire('block-1', 4 * MiB, never).then((l) => (order.push('block-1'), l));
      const small = gate.acquire('block-2', 1 * MiB, never).then((l) => (order.push('block-2'), l));
      const own = gate.acquire('block-9', 4 * MiB, never).then((l) => (order.push('block-9'), l));
      await own;
      assert.deepEqual(order, ['block-9'], 'block 2 would fit but waits behind block 1');
      gate.release(a);
      await Promise.all([big, small]);
      assert.deepEqual(order, ['block-9', 'block-1', 'block-2']);
      gate.close();
    });

    it('an aborted wait leaves the queue; close rejects the rest', async () => {
      const space = new StagingSpace({ reserve: 0, overhead: 0 });
      const gate = new SpaceGate(space, {});
      space.onMeasured(space.snapshot(), 4 * MiB);
      const held = await gate.acquire('block-0', 4 * MiB, never);
      const ac = new AbortController();
      const aborted = gate.acquire('block-1', 4 * MiB, ac.signal);
      const later = gate.acquire('block-2', 4 * MiB, never);
      ac.abort(new Error('stop'));
      await assert.rejects(aborted, /stop/);
      gate.release(held);
      assert.equal((await later).name, 'block-2');
      const pending = gate.acquire('block-3', 4 * MiB, never);
      gate.close();
      await assert.rejects(pending, /closed/);
    });

    it('without a measure function (no statvfs) it counts from the first figure and never re-measures', async () => {
      const space = new StagingSpace({ reserve: 0, overhead: 0 });
      const gate = new SpaceGate(space, {});
      space.onMeasured(space.snapshot(), 8 * MiB);
      const a = await gate.acquire('block-0', 4 * MiB, never);
      const b = await gate.acquire('block-1', 4 * MiB, never);
      let third = false;
      const c = gate.acquire('block-2', 4 * MiB, never).then(() => (third = true));
      await tick();
      assert.equal(third, false);
      gate.release(a);
      await c;
      gate.release(b);
      gate.close();
    });
  });
});
