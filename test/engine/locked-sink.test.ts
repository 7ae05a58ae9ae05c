// The shaped sink's writes wait for the target's record to name the run, while hashing does
// not (--skip-identical compares before anything is written); a record that could not be
// written stops the run instead of being retried block by block, with nothing written.
// Real parts: a LocalTarget over a file; the lock is an object whose `writing` the test settles.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HeldLock } from '../../src/block/last-writer.js';
import { initChecksums } from '../../src/checksum/hasher.js';
import { namingRecord, trueByNow } from '../../src/engine/job-lock.js';
import { shapeSink } from '../../src/engine/shaping.js';
import { DdtError, retryClassOf } from '../../src/errors.js';
import { LocalTarget } from '../../src/local/local-target.js';
import { makeTempDir } from '../harness/loop.js';

const SIZE = 256 * 1024;

function heldLock(): HeldLock {
  return { last: undefined, writing: async () => {}, held: async () => {}, finish: async () => false, release: async () => {} };
}

function settleable() {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const p = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  p.catch(() => undefined);
  return { p, resolve, reject };
}

async function rig() {
  await initChecksums();
  const dir = await makeTempDir('ddt-locked-');
  const dst = join(dir, 'dst.img');
  await writeFile(dst, Buffer.alloc(SIZE));
  const target = await LocalTarget.open(dst);
  const block = { index: 0, offset: 0, length: SIZE };
  return { dst, target, block };
}

const tick = () => new Promise((r) => setTimeout(r, 50));

describe('engine/shaping: writes wait for the record naming the run', () => {
  it('hashes at once, writes only once the record is written', async () => {
    const { dst, target, block } = await rig();
    const writing = settleable();
    const sink = shapeSink(target, { compress: 'none', takesParts: false, lock: { held: heldLock(), writing: () => writing.p } });
    const signal = new AbortController().signal;
    assert.match(await sink.hashAt(block, 'xxh64', signal), /^[0-9a-f]{16}$/);
    const data = randomBytes(SIZE);
    let done = false;
    const write = sink.writeAt(block, { kind: 'data', chunks: (async function* () { yield data; })() }, 'xxh64', signal).then((sum) => ((done = true), sum));
    await tick();
    assert.equal(done, false, 'the write waited');
    assert.ok((await readFile(dst)).equals(Buffer.alloc(SIZE)), 'nothing written before the record');
    writing.resolve();
    await write;
    await target.close();
    assert.ok((await readFile(dst)).equals(data));
  });

  it('a record that could not be written stops the run (not retried per block), nothing written', async () => {
    const { dst, target, block } = await rig();
    const writing = settleable();
    writing.reject(new DdtError('REMOTE_COMMAND', "the target's lock (WRITING): ERR cannot write /var/lib/ddt/locks/x.last"));
    const sink = shapeSink(target, { compress: 'none', takesParts: false, lock: { held: heldLock(), writing: () => writing.p } });
    const data = randomBytes(SIZE);
    await assert.rejects(
      sink.writeAt(block, { kind: 'data', chunks: (async function* () { yield data; })() }, 'xxh64', new AbortController().signal),
      (err: unknown) => {
        assert.ok(err instanceof DdtError && err.code === 'REMOTE_PERMANENT', String(err));
        assert.notEqual(retryClassOf(err), 'block');
        assert.match(err.message, /record could not name this run: .*cannot write/);
        return true;
      },
    );
    await target.close();
    assert.ok((await readFile(dst)).equals(Buffer.alloc(SIZE)));
  });
});

describe('engine/job-lock: the record naming the run, at once or at the first write', () => {
  const counting = (fail?: Error) => {
    const lock = { ...heldLock(), asked: 0 };
    lock.writing = async () => {
      lock.asked++;
      if (fail) throw fail;
    };
    return lock;
  };

  it('at once: asked before any write', async () => {
    const lock = counting();
    const naming = namingRecord(lock, true);
    assert.equal(lock.asked, 1);
    await naming.beforeWrite();
    await naming.done();
    assert.equal(lock.asked, 1, 'asked once');
  });

  it('at the first write: not asked by a run that writes nothing, asked once by one that writes', async () => {
    const idle = counting();
    await namingRecord(idle, false).done();
    assert.equal(idle.asked, 0, 'a run without writes leaves the record alone');
    const busy = counting();
    const naming = namingRecord(busy, false);
    await Promise.all([naming.beforeWrite(), naming.beforeWrite()]);
    await naming.done();
    assert.equal(busy.asked, 1);
  });

  it("a re-sync's hint: taken when it has resolved true already, never waited for", async () => {
    assert.equal(await trueByNow(Promise.resolve(true)), true);
    assert.equal(await trueByNow(Promise.resolve(false)), false);
    assert.equal(await trueByNow(Promise.reject(new Error('stream failed'))), false, 'a failed hint is no hint');
    let later!: (v: boolean) => void;
    const pending = new Promise<boolean>((r) => (later = r));
    assert.equal(await trueByNow(pending), false, 'pending: false at once (waiting would hang: nothing resolves it yet)');
    later(true);
    assert.equal(await trueByNow(pending), true, 'resolved since: taken');
    // An async function's result that resolved true (as the first difference is).
    const hint = (async () => true)();
    await hint;
    assert.equal(await trueByNow(hint), true);
  });

  it('a request that failed fails the writes and the end of the run', async () => {
    const lock = counting(new DdtError('REMOTE_COMMAND', 'ERR cannot write'));
    const naming = namingRecord(lock, false);
    await assert.rejects(naming.beforeWrite(), /cannot write/);
    await assert.rejects(naming.done(), /cannot write/);
  });
});

