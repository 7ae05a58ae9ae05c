// A re-sync's target checksums read before the lock: what the helper's first line says, when
// the run may take what was read (the lock's record unchanged, the self-tested ddt-hash), and
// the hint they give before the lock that a block will be written (the data path then begins).
import assert from 'node:assert/strict';
import type { BlockDigest, BlockSink } from '../../src/block/types.js';
import { firstDifference, prehashRefused, type JobAhead } from '../../src/engine/early-hashes.js';
import { HashAhead } from '../../src/engine/hash-ahead.js';
import { deferredPath } from '../../src/paths/deferred.js';
import type { PreparedPath } from '../../src/paths/types.js';
import { parsePrehashStart } from '../../src/remote/prehash.js';

describe('prehash: its first line, and when its checksums stand', () => {
  const hasher = 'ddt-hash-x86_64-0123456789abcdef';
  const ok = { name: hasher, answer: 'hasher=ok' };

  it('reads PREHASH with the record as the lock prints it, and NO with its reason', () => {
    assert.deepEqual(parsePrehashStart(`PREHASH ${hasher} last=none`), { ok: true, hasher, last: undefined });
    assert.deepEqual(parsePrehashStart(`PREHASH ${hasher} last=job=j1 run=j1.x state=clean`), { ok: true, hasher, last: { job: 'j1', run: 'j1.x', state: 'clean' } });
    assert.deepEqual(parsePrehashStart('NO busy'), { ok: false, why: 'busy' });
    assert.equal(parsePrehashStart(undefined).ok, false);
    assert.equal(parsePrehashStart('sh: 1: stat: not found').ok, false);
    assert.equal(parsePrehashStart('PREHASH /bin/sh last=none').ok, false, 'only a hasher name');
  });

  it('stands only with the same record and the hasher whose self-test passed', () => {
    const found = parsePrehashStart(`PREHASH ${hasher} last=job=j1 run=j1.x state=clean`);
    const same = { job: 'j1', run: 'j1.x', state: 'clean' } as const;
    assert.equal(prehashRefused(found, same, ok), undefined);
    assert.match(prehashRefused(found, { ...same, run: 'j1.y' }, ok)!, /record of the last writer changed/);
    assert.match(prehashRefused(found, { ...same, state: 'writing' }, ok)!, /record/);
    assert.match(prehashRefused(found, undefined, ok)!, /record/, 'a record that went is a change too');
    assert.match(prehashRefused(parsePrehashStart(`PREHASH ${hasher} last=none`), same, ok)!, /record/);
    assert.equal(prehashRefused(parsePrehashStart(`PREHASH ${hasher} last=none`), undefined, ok), undefined);
    assert.match(prehashRefused(found, same, { name: hasher, answer: 'hasher=failed self-test: x' })!, /self-test/);
    assert.match(prehashRefused(found, same, { name: 'ddt-hash-x86_64-fedcba9876543210', answer: 'hasher=ok' })!, /self-test/);
    assert.match(prehashRefused(found, same, undefined)!, /self-test/);
    assert.equal(prehashRefused({ ok: false, why: 'busy' }, same, ok), 'busy');
  });
});

describe('firstDifference: the hint that a re-sync will write, before the lock', () => {
  /** A HashAhead fed by hand: `push` a block's checksum, `end` the stream. */
  function fed(): { ahead: HashAhead; push(index: number, checksum?: string): void; end(): void } {
    const queue: Array<BlockDigest | undefined> = [];
    let wake: (() => void) | undefined;
    async function* stream(): AsyncGenerator<BlockDigest> {
      for (;;) {
        while (queue.length === 0) await new Promise<void>((r) => (wake = r));
        const d = queue.shift();
        if (!d) return;
        yield d;
      }
    }
    const put = (d: BlockDigest | undefined) => {
      queue.push(d);
      wake?.();
    };
    return {
      ahead: new HashAhead(stream(), 'test'),
      push: (index, checksum) => put({ block: { index, offset: index * 4096, length: 4096 }, checksum }),
      end: () => put(undefined),
    };
  }
  const ends = (a: HashAhead, b: HashAhead) => ({ source: a, pre: b }) as unknown as JobAhead;
  const settled = async (p: Promise<boolean>) => Promise.race([p, tick().then(() => 'pending' as const)]);

  it('answers true at the first block whose checksums differ, whichever end has it first', async () => {
    const src = fed();
    const pre = fed();
    const hint = firstDifference(ends(src.ahead, pre.ahead));
    src.push(0, 'aa');
    src.push(1, 'bb');
    pre.push(0, 'aa');
    await tick();
    assert.equal(await settled(hint), 'pending', 'block 0 is the same on both ends');
    pre.push(1, 'b0');
    assert.equal(await hint, true);
  });

  it('a checksum an end could not read counts as a difference', async () => {
    const src = fed();
    const pre = fed();
    const hint = firstDifference(ends(src.ahead, pre.ahead));
    pre.push(0, undefined);
    src.push(0, 'aa');
    assert.equal(await hint, true);
  });

  it('answers false once both streams ended with every block the same', async () => {
    const src = fed();
    const pre = fed();
    src.push(0, 'aa');
    src.push(1, 'bb');
    await tick();
    const hint = firstDifference(ends(src.ahead, pre.ahead));
    pre.push(1, 'bb');
    pre.push(0, 'aa');
    src.end();
    await tick();
    assert.equal(await settled(hint), 'pending', 'the target is still being read');
    pre.end();
    assert.equal(await hint, false);
  });

  it('hears what an end had read before it was asked', async () => {
    const src = fed();
    const pre = fed();
    src.push(0, 'aa');
    await tick();
    const hint = firstDifference(ends(src.ahead, pre.ahead));
    pre.push(0, 'a0');
    src.end();
    pre.end();
    assert.equal(await hint, true);
  });

  it('without both streams there is no hint', async () => {
    assert.equal(await firstDifference({}), false);
  });
});

describe('deferredPath: a sink that opens at its first write (or when one is expected)', () => {
  it('opens its path once, at expectWrite, and nothing after it is closed', async () => {
    let prepared = 0;
    let opened = 0;
    const real = { name: 'stream', record: { name: 'stream' }, describe: [], takesParts: true, openSink: async () => (opened++, { capacity: 1 } as unknown as BlockSink), openSource: async () => assert.fail('no source'), close: async () => undefined } as unknown as PreparedPath;
    const path = deferredPath({ name: 'stream', workers: 2, prepare: async () => (prepared++, real), unitAlgo: () => undefined });
    const sink = await path.openSink({});
    assert.equal(prepared, 0, 'nothing set up before a write is expected');
    sink.expectWrite!();
    sink.expectWrite!();
    await tick();
    assert.equal(prepared, 1);
    assert.equal(opened, 1);

    const late = deferredPath({ name: 'stream', workers: 2, prepare: async () => (prepared++, real), unitAlgo: () => undefined });
    const lateSink = await late.openSink({});
    await lateSink.close();
    lateSink.expectWrite!(); // a hint that comes after the run ended
    await tick();
    assert.equal(prepared, 1, 'a closed sink sets nothing up');
    await assert.rejects(lateSink.hashAt({ index: 0, offset: 0, length: 1 }, 'xxh64', new AbortController().signal), /closed/);
    await late.close(true);
    await assert.rejects(late.openSource(), /closed/, 'nor does a closed path');
    assert.equal(prepared, 1);
  });
});

function tick(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}
