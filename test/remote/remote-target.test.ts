// RemoteTarget through real SSH channels into ddt-helper.sh workers.
import { RemoteHelperError } from '../harness/errors.js';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ChecksumAlgo } from '../../src/checksum/types.js';
import type { BlockPayload, BlockRef } from '../../src/block/types.js';
import { RemoteHelper } from '../../src/remote/helper.js';
import { RemoteTarget } from '../../src/remote/remote-target.js';
import { SshPool, type SshPoolOptions } from '../../src/transport/ssh-pool.js';
import { attachLoop, loopAvailable, makeTempDir } from '../harness/loop.js';
import { haveCommand, NEEDS, requireReal } from '../harness/real.js';
import { poolOptions, sshdAvailable, startSshd, type TestSshd } from '../harness/sshd.js';

const run = promisify(execFile);
const MiB = 1 << 20;

/** What the shell tools print for a byte range of a file: the contract for checksums. */
async function toolHash(file: string, offset: number, length: number, algo: ChecksumAlgo): Promise<string> {
  const tool = algo === 'xxh64' ? 'xxhsum -H64' : 'sha256sum';
  const { stdout } = await run('sh', ['-c', `dd if="$1" bs=1M iflag=skip_bytes,count_bytes skip=${offset} count=${length} 2>/dev/null | ${tool}`, 'sh', file]);
  return stdout.split(/\s+/)[0];
}

function data(buf: Buffer, chunk = 256 * 1024): BlockPayload {
  return {
    kind: 'data',
    chunks: (async function* () {
      for (let at = 0; at < buf.length; at += chunk) yield buf.subarray(at, Math.min(buf.length, at + chunk));
    })(),
  };
}

const ZERO: BlockPayload = { kind: 'zero' };

const options = (sshd: TestSshd, over: Partial<SshPoolOptions> = {}): SshPoolOptions => poolOptions(sshd, { connections: 2, channelsPerConnection: 2, ...over });

describe('remote/remote-target (real sshd)', function () {
  this.timeout(120_000);
  let sshd: TestSshd;
  let dir: string;

  before(async function () {
    // The blocks are checked against xxhsum -H64 on this host.
    requireReal(this, `${NEEDS.sshd}, xxhsum`, sshdAvailable() && haveCommand('xxhsum'));
    sshd = await startSshd();
    dir = await makeTempDir('ddt-rtarget-');
  });
  after(async () => {
    await sshd?.stop();
  });

  /** A pool and an installed helper; afterEach removes the helper's work dir and closes the pool. */
  const opened: Array<{ pool: SshPool; helper: RemoteHelper }> = [];
  async function setup(over: Partial<SshPoolOptions> = {}, jobId = `job-${Date.now()}`) {
    const warnings: string[] = [];
    const pool = await SshPool.open(options(sshd, { onWarning: (m) => warnings.push(m), ...over }));
    const helper = await RemoteHelper.install(pool, { jobId });
    opened.push({ pool, helper });
    return { pool, helper, warnings };
  }
  afterEach(async function () {
    for (const { pool, helper } of opened.splice(0)) {
      try {
        await helper.cleanup();
      } catch (err) {
        if (this.currentTest?.state !== 'failed') throw err; // else the test's own failure is the news
      } finally {
        await pool.close();
      }
    }
  });

  it('writes data and zero blocks concurrently; bytes and checksums match xxhsum -H64 / sha256sum', async () => {
    const { helper } = await setup();
    const file = join(dir, 'target.img');
    await writeFile(file, randomBytes(16 * MiB)); // zero blocks must really overwrite
    const expected = await readFile(file);
    const w = await RemoteTarget.open(helper, file, helper.control);
    assert.equal(w.capacity, 4);
    const ac = new AbortController();
    const blocks: Array<{ b: BlockRef; payload: Buffer | 'zero'; algo: ChecksumAlgo }> = [
      { b: { index: 0, offset: 0, length: 4 * MiB }, payload: randomBytes(4 * MiB), algo: 'xxh64' },
      { b: { index: 1, offset: 4 * MiB, length: 4 * MiB }, payload: 'zero', algo: 'xxh64' },
      { b: { index: 2, offset: 8 * MiB + 123, length: 777_777 }, payload: randomBytes(777_777), algo: 'sha256' },
      { b: { index: 3, offset: 10 * MiB, length: 3 * MiB }, payload: 'zero', algo: 'sha256' },
      { b: { index: 4, offset: 13 * MiB, length: 1 }, payload: Buffer.from([0x42]), algo: 'xxh64' },
      { b: { index: 5, offset: 14 * MiB, length: 2 * MiB }, payload: randomBytes(2 * MiB), algo: 'xxh64' },
    ];
    const sums = await Promise.all(
      blocks.map(({ b, payload, algo }) => w.writeAt(b, payload === 'zero' ? ZERO : data(payload, 65_536 + b.index * 99_991), algo, ac.signal)),
    );
    for (const { b, payload } of blocks) (payload === 'zero' ? Buffer.alloc(b.length) : payload).copy(expected, b.offset);
    assert.ok((await readFile(file)).equals(expected), 'target bytes');
    for (const [i, { b, algo }] of blocks.entries()) {
      assert.equal(sums[i], await toolHash(file, b.offset, b.length, algo), `block ${i}`);
      assert.equal(await w.hashAt(b, algo, ac.signal), sums[i], `hashAt ${i}`);
    }
    // A 16-hex xxh64 that starts with 0 keeps its leading zeros; sha256 is 64 hex.
    assert.ok(sums.every((s, i) => s.length === (blocks[i].algo === 'xxh64' ? 16 : 64)));
    await w.close();
  });

  it('a remote error rejects that block only; the worker keeps its framing', async function () {
    requireReal(this, NEEDS.loop, loopAvailable());
    const { helper } = await setup({ connections: 1, channelsPerConnection: 1 });
    const img = join(dir, 'small.img');
    await writeFile(img, Buffer.alloc(MiB));
    const loop = await attachLoop(img);
    try {
      const w = await RemoteTarget.open(helper, loop.dev, helper.control);
      const ac = new AbortController();
      // Past the end of the device: dd fails after taking part of the payload.
      await assert.rejects(
        w.writeAt({ index: 9, offset: MiB - 4096, length: 3 * MiB }, data(randomBytes(3 * MiB)), 'xxh64', ac.signal),
        (err: unknown) => err instanceof RemoteHelperError && err.code === 'REMOTE_ERR' && /No space left/.test(err.message),
      );
      const buf = randomBytes(64 * 1024);
      const sum = await w.writeAt({ index: 0, offset: 8192, length: buf.length }, data(buf), 'xxh64', ac.signal);
      assert.equal(sum, await toolHash(loop.dev, 8192, buf.length, 'xxh64'));
      await w.close();
    } finally {
      await loop.detach();
    }
  });

  it('a short payload or an abort mid-block kills that worker; a new one takes over', async () => {
    const { helper } = await setup({ connections: 1, channelsPerConnection: 1 });
    const file = join(dir, 'abort.img');
    await writeFile(file, Buffer.alloc(4 * MiB));
    const w = await RemoteTarget.open(helper, file, helper.control);
    const ac = new AbortController();
    await assert.rejects(
      w.writeAt({ index: 0, offset: 0, length: MiB }, data(randomBytes(MiB - 1)), 'xxh64', ac.signal),
      (err: unknown) => err instanceof RemoteHelperError && err.code === 'PAYLOAD',
    );
    const stop = new AbortController();
    const hanging: BlockPayload = {
      kind: 'data',
      chunks: (async function* () {
        yield randomBytes(1000);
        stop.abort(new Error('user pressed ^C'));
        await new Promise(() => undefined); // never more data
      })(),
    };
    await assert.rejects(w.writeAt({ index: 1, offset: 0, length: MiB }, hanging, 'xxh64', stop.signal), /user pressed/);
    const buf = randomBytes(MiB);
    assert.equal(await w.writeAt({ index: 2, offset: MiB, length: MiB }, data(buf), 'xxh64', ac.signal), await toolHash(file, MiB, MiB, 'xxh64'));
    assert.equal(w.capacity, 1);
    await w.close();
  });

  it('MaxSessions 2 with 4 channels requested: 2 workers, one warning, all blocks written', async () => {
    const small = await startSshd({ maxSessions: 2 });
    const warnings: string[] = [];
    const pool = await SshPool.open(options(small, { connections: 1, channelsPerConnection: 4, onWarning: (m) => warnings.push(m) }));
    const helper = await RemoteHelper.install(pool, { jobId: 'maxsessions' });
    const file = join(dir, 'ms.img');
    await writeFile(file, Buffer.alloc(8 * MiB));
    try {
      const w = await RemoteTarget.open(helper, file, helper.control);
      assert.equal(w.capacity, 2);
      assert.equal(pool.capacity(), 2);
      const ac = new AbortController();
      const bufs = Array.from({ length: 8 }, () => randomBytes(MiB));
      const sums = await Promise.all(bufs.map((b, i) => w.writeAt({ index: i, offset: i * MiB, length: MiB }, data(b), 'xxh64', ac.signal)));
      for (let i = 0; i < 8; i++) assert.equal(sums[i], await toolHash(file, i * MiB, MiB, 'xxh64'));
      assert.ok((await readFile(file)).equals(Buffer.concat(bufs)));
      assert.equal(warnings.length, 1, warnings.join('\n'));
      await w.close();
    } finally {
      await helper.cleanup();
      await pool.close();
      await small.stop();
    }
  });

  it('survives a dropped connection: the in-flight block rejects, later blocks go through a reconnected channel', async () => {
    const { pool, helper, warnings } = await setup({ connections: 1, channelsPerConnection: 2 });
    const file = join(dir, 'drop.img');
    await writeFile(file, Buffer.alloc(8 * MiB));
    const w = await RemoteTarget.open(helper, file, helper.control);
    const ac = new AbortController();
    const stalled: BlockPayload = {
      kind: 'data',
      chunks: (async function* () {
        yield randomBytes(4096);
        for (const pid of sshd.connectionPids()) process.kill(pid, 'SIGKILL');
        await new Promise((r) => setTimeout(r, 500));
        yield randomBytes(4096);
      })(),
    };
    await assert.rejects(w.writeAt({ index: 0, offset: 0, length: 8192 }, stalled, 'xxh64', ac.signal), (err: unknown) => err instanceof RemoteHelperError);
    const buf = randomBytes(MiB);
    assert.equal(await w.writeAt({ index: 1, offset: MiB, length: MiB }, data(buf), 'sha256', ac.signal), await toolHash(file, MiB, MiB, 'sha256'));
    assert.ok(warnings.some((m) => /lost/.test(m)));
    assert.equal(pool.liveConnections(), 1);
    await w.close();
  });

  it('deferFlush: aligned blocks skip their own fsync until durable(); a lost flusher comes back; without a free channel nothing is deferred', async () => {
    const { helper } = await setup({ connections: 1, channelsPerConnection: 3 });
    const file = join(dir, 'defer.img');
    await writeFile(file, randomBytes(8 * MiB));
    // Two workers and the flusher: the pool's three channels.
    const w = await RemoteTarget.open(helper, file, helper.control, { workers: 2, deferFlush: true });
    assert.equal(w.defersFlush, true);
    const ac = new AbortController();
    const a = randomBytes(2 * MiB);
    const odd = randomBytes(5000);
    const blocks: BlockRef[] = [
      { index: 0, offset: 0, length: 2 * MiB },
      { index: 1, offset: 2 * MiB, length: 2 * MiB },
      { index: 2, offset: 4 * MiB + 5, length: odd.length },
    ];
    const sums = await Promise.all([w.writeAt(blocks[0]!, data(a), 'sha256', ac.signal), w.writeAt(blocks[1]!, ZERO, 'sha256', ac.signal), w.writeAt(blocks[2]!, data(odd), 'sha256', ac.signal)]);
    assert.equal(w.unflushedBlocks, 2, 'the O_DIRECT data and zero blocks wait for a flush; the unaligned one was flushed as written');
    for (const [i, b] of blocks.entries()) assert.equal(sums[i], await toolHash(file, b.offset, b.length, 'sha256'), `block ${i}`);
    await Promise.all(blocks.map((b) => w.durable(b, ac.signal)));
    assert.equal(w.unflushedBlocks, 0);
    // The flusher's channel dies (as with a dropped connection): the next flush opens a new one.
    for (const pid of sshd.connectionPids()) process.kill(pid, 'SIGKILL');
    const b2 = randomBytes(MiB);
    const sum = await w.writeAt({ index: 3, offset: 6 * MiB, length: MiB }, data(b2), 'xxh64', ac.signal).catch(() => w.writeAt({ index: 3, offset: 6 * MiB, length: MiB }, data(b2), 'xxh64', ac.signal));
    assert.equal(sum, await toolHash(file, 6 * MiB, MiB, 'xxh64'));
    assert.equal(w.unflushedBlocks, 1);
    await w.durable({ index: 3, offset: 6 * MiB, length: MiB }, ac.signal);
    assert.equal(w.unflushedBlocks, 0);
    await w.close();
    // Every channel taken by workers: no flusher, every block flushed as it is written.
    const full = await RemoteTarget.open(helper, file, helper.control, { deferFlush: true });
    assert.equal(full.defersFlush, false);
    await full.writeAt({ index: 0, offset: 0, length: MiB }, data(randomBytes(MiB)), 'xxh64', ac.signal);
    assert.equal(full.unflushedBlocks, 0);
    await full.close();
  });
  it('sparse: blocks go whole (W) while zero chunks are rare, as X frames once recent blocks are ≥ 25 % zeros', async () => {
    const { helper } = await setup({ connections: 1, channelsPerConnection: 2 });
    const file = join(dir, 'sparse.img');
    await writeFile(file, randomBytes(24 * MiB));
    const w = await RemoteTarget.open(helper, file, helper.control, { workers: 1, framed: true });
    const ac = new AbortController();
    const halfZero = () => Buffer.concat([randomBytes(2 * MiB), Buffer.alloc(2 * MiB)]);
    const contents = [randomBytes(4 * MiB), randomBytes(4 * MiB), halfZero(), halfZero(), halfZero(), halfZero()];
    const wire: number[] = [];
    for (const [i, buf] of contents.entries()) {
      const payload = data(buf, MiB);
      let sent = 0;
      if (payload.kind === 'data') payload.onWire = (n) => (sent += n);
      const sum = await w.writeAt({ index: i, offset: i * 4 * MiB, length: 4 * MiB }, payload, 'xxh64', ac.signal);
      assert.equal(sum, await toolHash(file, i * 4 * MiB, 4 * MiB, 'xxh64'), `block ${i}`);
      wire.push(sent / MiB);
    }
    // Zero share after each block: 0, 0, 0.25 (first half-zero block still whole), then X.
    assert.deepEqual(wire, [4, 4, 4, 2, 2, 2]);
    assert.ok((await readFile(file)).subarray(0, 24 * MiB).equals(Buffer.concat(contents)));
    await w.close();
  });
});
