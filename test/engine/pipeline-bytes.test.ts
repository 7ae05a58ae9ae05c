// Progress that moves with the bytes: the pipeline turns what the data path reports as bytes go
// (onWire, onAck) into `bytes` events, at most one per chunk, before the block is answered; the
// run's bytes on the wire count also what a failed attempt sent.
// Real parts: a BlockReader over a file, a LocalTarget, a journal on disk.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlockPayload, BlockRef, BlockSink } from '../../src/block/types.js';
import { initChecksums } from '../../src/checksum/hasher.js';
import type { ChecksumAlgo } from '../../src/checksum/types.js';
import { ByteMeter, METER_CHUNK } from '../../src/engine/byte-meter.js';
import { runPipeline } from '../../src/engine/pipeline.js';
import { JournalWriter } from '../../src/journal/journal.js';
import { BlockReader } from '../../src/local/block-reader.js';
import { LocalTarget } from '../../src/local/local-target.js';
import { planBlocks } from '../../src/plan/block-plan.js';
import type { ProgressEvent } from '../../src/progress/events.js';
import { testHeader } from '../harness/header.js';
import { makeTempDir } from '../harness/loop.js';

const MiB = 1024 * 1024;
const BLOCK = 8 * MiB;

type BytesEvent = Extract<ProgressEvent, { type: 'bytes' }>;

/** A LocalTarget whose first write of `failIndex` dies after `failAfter` bytes (a dropped channel). */
class FailingOnce implements BlockSink {
  readonly capacity = 2;
  private failed = false;
  constructor(
    private readonly inner: LocalTarget,
    private readonly failIndex: number,
    private readonly failAfter: number,
  ) {}
  async writeAt(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    if (block.index !== this.failIndex || this.failed || payload.kind !== 'data') return this.inner.writeAt(block, payload, algo, signal);
    this.failed = true;
    let sent = 0;
    for await (const chunk of payload.chunks) {
      payload.onWire?.(chunk.length);
      payload.onAck?.(chunk.length);
      sent += chunk.length;
      if (sent >= this.failAfter) break;
    }
    throw new Error('channel closed');
  }
  hashAt(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    return this.inner.hashAt(block, algo, signal);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  async abort(): Promise<void> {}
}

async function run(data: Buffer, sinkOf: (t: LocalTarget) => BlockSink) {
  await initChecksums();
  const dir = await makeTempDir('ddt-bytes-');
  const src = join(dir, 'src.img');
  const dst = join(dir, 'dst.img');
  await writeFile(src, data);
  await writeFile(dst, Buffer.alloc(data.length));
  const blocks = planBlocks(data.length, BLOCK);
  const journal = JournalWriter.create(join(dir, 'job.journal'), testHeader({ source: src, target: dst, size: data.length, blockSize: BLOCK }));
  const reader = await BlockReader.open(src);
  const sink = sinkOf(await LocalTarget.open(dst));
  const events: ProgressEvent[] = [];
  try {
    const counters = await runPipeline(blocks, { source: reader, sink, journal, emit: (e) => events.push(e) }, { algo: 'xxh64', retries: 2, concurrency: 2, targetZeroed: false }, new AbortController().signal);
    return { counters, events, blocks };
  } finally {
    journal.close();
    await reader.close();
    await sink.close();
  }
}

describe('engine/pipeline: bytes as they go', () => {
  it('a data block moves in chunk-sized events before its answer; a zero block costs no wire', async () => {
    const data = Buffer.concat([randomBytes(BLOCK), Buffer.alloc(BLOCK), randomBytes(BLOCK)]);
    const { counters, events } = await run(data, (t) => t);
    for (const index of [0, 2]) {
      const mine = events.filter((e) => 'index' in e && e.index === index);
      const bytes = mine.filter((e): e is BytesEvent => e.type === 'bytes');
      const sent = mine.findIndex((e) => e.type === 'block' && e.state === 'sent');
      assert.equal(bytes.reduce((n, e) => n + e.acked, 0), BLOCK, `block ${index}: every byte taken once`);
      assert.equal(bytes.reduce((n, e) => n + e.wire, 0), BLOCK, `block ${index}: every byte on the wire once`);
      // 8 chunks of 1 MiB: at most one event each, and several of them before the answer.
      assert.ok(bytes.length >= 2 && bytes.length <= BLOCK / METER_CHUNK, `block ${index}: ${bytes.length} bytes events`);
      for (const e of bytes) assert.ok(Math.max(e.wire, e.acked) <= METER_CHUNK, 'no event holds more than a chunk');
      assert.ok(mine.indexOf(bytes.at(-1)!) < sent, `block ${index}: its bytes are told before it is answered`);
    }
    const zero = events.filter((e): e is BytesEvent => e.type === 'bytes' && e.index === 1);
    assert.equal(zero.reduce((n, e) => n + e.wire, 0), 0, 'the zero block is a command, not bytes');
    assert.equal(zero.reduce((n, e) => n + e.acked, 0), BLOCK, 'but the target took all of it');
    assert.equal(counters.bytesOnWire, 2 * BLOCK);
  });

  it('bytes a failed attempt put on the wire are counted, and the re-send counts again', async () => {
    const data = randomBytes(2 * BLOCK);
    const { counters, events } = await run(data, (t) => new FailingOnce(t, 1, 3 * MiB));
    assert.equal(counters.verified, 2);
    assert.equal(counters.retransmitted, 1);
    assert.equal(counters.bytesOnWire, 2 * BLOCK + 3 * MiB);
    const block1 = events.filter((e) => 'index' in e && e.index === 1);
    const retry = block1.findIndex((e) => e.type === 'block' && e.state === 'retry');
    const before = block1.slice(0, retry).filter((e): e is BytesEvent => e.type === 'bytes');
    assert.equal(before.reduce((n, e) => n + e.wire, 0), 3 * MiB, 'the failed attempt told its bytes before the retry');
  });
});

describe('engine/byte-meter', () => {
  it('one event per chunk at most, one a second at least while bytes trickle, the rest on flush', () => {
    let t = 0;
    const events: BytesEvent[] = [];
    let total = 0;
    const meter = new ByteMeter(7, (e) => events.push(e as BytesEvent), (n) => (total += n), () => t);
    for (let i = 0; i < 8; i++) {
      meter.onWire(128 * 1024); // compressed: half the bytes on the wire
      meter.onAck(256 * 1024);
    }
    assert.deepEqual(events.map((e) => [e.wire, e.acked]), [[MiB / 2, MiB], [MiB / 2, MiB]]);
    // Wire bytes alone (a path that learns them only at the end) wait for a chunk taken or a second.
    meter.onWire(3 * MiB);
    assert.equal(events.length, 2);
    meter.onAck(MiB);
    assert.deepEqual(events.slice(2).map((e) => [e.wire, e.acked]), [[3 * MiB, MiB]]);
    meter.onWire(MiB); // before the trickle below: it goes with the first of its events
    // 100 KiB every 400 ms: an event once a second has passed since the last one.
    for (let i = 0; i < 5; i++) {
      t += 400;
      meter.onAck(100 * 1024);
    }
    assert.deepEqual(events.slice(3).map((e) => [e.wire, e.acked]), [[MiB, 300 * 1024]]);
    meter.onWire(0);
    meter.onAck(-5);
    meter.flush();
    assert.deepEqual(events.slice(4).map((e) => [e.wire, e.acked]), [[0, 200 * 1024]], 'the rest on flush');
    meter.flush();
    assert.equal(events.length, 5, 'nothing left, nothing more');
    assert.ok(events.every((e) => e.type === 'bytes' && e.index === 7));
    assert.equal(total, 5 * MiB, 'wire bytes passed on to the run total with their events');
    assert.equal(meter.wireBytes, 5 * MiB);
    assert.equal(meter.ackedBytes, 3 * MiB + 500 * 1024);
  });
});
