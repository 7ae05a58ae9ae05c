// The pipeline with a writer that answers before its flush (group commit, `durable`): the
// journal records a block verified only once it is durable, a failed flush is retried, and no
// more than two blocks per slot are ever unproven.
// Real parts: a BlockReader over a file, a LocalTarget, a journal on disk; the writer only adds
// a gate in front of durable() so the test decides when each flush ends.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { initChecksums } from '../../src/checksum/hasher.js';
import type { ChecksumAlgo } from '../../src/checksum/types.js';
import { runPipeline } from '../../src/engine/pipeline.js';
import type { BlockPayload, BlockRef, BlockSink } from '../../src/block/types.js';
import { LocalTarget } from '../../src/local/local-target.js';
import { JournalWriter } from '../../src/journal/journal.js';
import { planBlocks } from '../../src/plan/block-plan.js';
import { BlockReader } from '../../src/local/block-reader.js';
import { testHeader } from '../harness/header.js';
import { makeTempDir } from '../harness/loop.js';

const BLOCK = 256 * 1024;

class GatedDurable implements BlockSink {
  readonly capacity = Infinity;
  readonly waiting: Array<{ block: BlockRef; resolve(): void; reject(err: Error): void }> = [];
  private onWait?: () => void;
  constructor(private readonly inner: LocalTarget) {}
  writeAt(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    return this.inner.writeAt(block, payload, algo, signal);
  }
  durable(block: BlockRef): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ block, resolve, reject });
      this.onWait?.();
    });
  }
  /** Resolves once `n` blocks wait for their flush. */
  async untilWaiting(n: number): Promise<void> {
    while (this.waiting.length < n) await new Promise<void>((r) => (this.onWait = r));
  }
  hashAt(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    return this.inner.hashAt(block, algo, signal);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  async abort(): Promise<void> {}
}

/** Source and target files of `data`, a journal, a reader and a gated writer over them. */
async function rig(data: Buffer) {
  await initChecksums();
  const dir = await makeTempDir('ddt-durable-');
  const src = join(dir, 'src.img');
  const dst = join(dir, 'dst.img');
  await writeFile(src, data);
  await writeFile(dst, Buffer.alloc(data.length));
  const blocks = planBlocks(data.length, BLOCK);
  const journalPath = join(dir, 'job.journal');
  const journal = JournalWriter.create(journalPath, testHeader({ source: src, target: dst, size: data.length, blockSize: BLOCK }));
  const reader = await BlockReader.open(src);
  const writer = new GatedDurable(await LocalTarget.open(dst));
  const verifiedInJournal = async () => (await readFile(journalPath, 'utf8')).split('\n').filter((l) => l.includes('"verified"')).length;
  const close = async () => {
    journal.close();
    await reader.close();
    await writer.close();
  };
  return { dst, blocks, journalPath, journal, reader, writer, verifiedInJournal, close };
}

describe('engine/pipeline: writers that flush later (durable)', () => {
  it('journals a block verified only once durable; a failed flush is a failed attempt, re-sent', async () => {
    const data = Buffer.concat([randomBytes(2 * BLOCK), Buffer.alloc(BLOCK), randomBytes(BLOCK)]);
    const { dst, blocks, journalPath, journal, reader, writer, verifiedInJournal, close } = await rig(data);
    const run = runPipeline(blocks, { source: reader, sink: writer, journal, emit: () => {} }, { algo: 'xxh64', retries: 2, concurrency: 2, targetZeroed: false }, new AbortController().signal);

    // Two slots, four blocks: every block gets written while no flush has ended (a slot does not
    // wait for its block's flush, up to two unproven blocks per slot).
    await writer.untilWaiting(4);
    assert.equal(await verifiedInJournal(), 0, 'nothing is verified before its flush');
    const byIndex = (i: number) => writer.waiting.find((w) => w.block.index === i)!;
    byIndex(1).reject(new Error('fsync: EIO'));
    for (const i of [0, 2, 3]) byIndex(i).resolve();
    await writer.untilWaiting(5); // block 1 written again
    assert.equal(writer.waiting[4]!.block.index, 1);
    assert.equal(await verifiedInJournal(), 3);
    writer.waiting[4]!.resolve();
    const counters = await run;
    await close();
    assert.equal(counters.verified, 4);
    assert.equal(counters.retransmitted, 1);
    assert.equal(counters.failed, 0);
    assert.equal(counters.zeroBlocks, 1);
    const lines = (await readFile(journalPath, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { block?: number; state?: string; reason?: string });
    const one = lines.filter((l) => l.block === 1).map((l) => l.state);
    assert.deepEqual(one, ['failed', 'verified'], 'block 1: the failed flush, then its verified re-send');
    assert.match(lines.find((l) => l.block === 1 && l.state === 'failed')!.reason!, /flush failed: fsync: EIO/);
    assert.ok((await readFile(dst)).equals(data));
  });

  it('at most two unproven blocks per slot: with every flush pending, the next block waits for one', async () => {
    const data = randomBytes(6 * BLOCK);
    const { dst, blocks, journal, reader, writer, close } = await rig(data);
    let writes = 0;
    const writeAt = writer.writeAt.bind(writer);
    writer.writeAt = (...args) => {
      writes++;
      return writeAt(...args);
    };
    const run = runPipeline(blocks, { source: reader, sink: writer, journal, emit: () => {} }, { algo: 'xxh64', retries: 0, concurrency: 2, targetZeroed: false }, new AbortController().signal);
    await writer.untilWaiting(4);
    await new Promise((r) => setTimeout(r, 200)); // time enough to read and write two more blocks
    assert.equal(writes, 4, 'two slots: four blocks unproven at most');
    writer.waiting[0]!.resolve();
    await writer.untilWaiting(5);
    assert.equal(writes, 5);
    for (let i = 1; i < 5; i++) writer.waiting[i]!.resolve();
    await writer.untilWaiting(6);
    writer.waiting[5]!.resolve();
    const counters = await run;
    await close();
    assert.equal(counters.verified, 6);
    assert.ok((await readFile(dst)).equals(data));
  });
});
