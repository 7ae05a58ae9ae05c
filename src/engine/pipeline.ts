import { trace } from '../trace.js';
import PQueue from 'p-queue';
import type { BlockRef, BlockSink, BlockSource, ByteRange, OpenedBlock, ZeroedHow } from '../block/types.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import { messageOf, retryClassOf } from '../errors.js';
import type { JournalWriter } from '../journal/journal.js';
import type { ProgressListener } from '../progress/events.js';
import { ByteMeter } from './byte-meter.js';
import type { EarlyEnds } from './skip-identical.js';
import { SkipIdentical } from './skip-identical.js';

export interface PipelineOptions {
  algo: ChecksumAlgo;
  /** re-sends after the first attempt */
  retries: number;
  /** blocks in flight (one per channel for remote targets) */
  concurrency: number;
  /** the target is known to be zero: zero source blocks are proven by hashing, not written */
  targetZeroed: boolean;
  /** hash the target ahead and send only blocks whose checksum differs */
  skipIdentical?: boolean;
  /** either end's checksums already streaming (`--skip-identical` on a new job) */
  ahead?: EarlyEnds;
}

/** How many blocks ended how (a run's, or the whole job's). */
export interface BlockTally {
  verified: number;
  sent: number;
  zeroBlocks: number;
  identicalBlocks: number;
  retransmitted: number;
  failed: number;
}

export interface PipelineCounters extends BlockTally {
  bytesOnWire: number;
  /** bytes of blocks proven this run that the target made holes, zeroed by offload, or wrote */
  bytesHoles: number;
  bytesOffloaded: number;
  bytesWritten: number;
  lastError?: string;
  /** the error that stopped the run early (a source read error) */
  fatal?: unknown;
  /** the caller's signal stopped the run */
  interrupted: boolean;
  /** unreadable source ranges zero-filled this run (`--noerror`) */
  badRanges: ByteRange[];
}

/** Bytes of one block's write that were not written: made holes, zeroed by the device. */
type Zeroed = Record<ZeroedHow, number>;

/** What to do after a block attempt failed: the one place that decides retry, record or abort. */
export type FailureDecision = 'retry' | 'abort';

export function decideFailure(err: unknown): FailureDecision {
  // A source that cannot be read will not read better on the next try, a host that stayed
  // unreachable past --reconnect-timeout (or refused us) will not come back for the next block,
  // and a tool the remote host lacks will not appear: stop instead of failing block after block.
  return retryClassOf(err) === 'block' ? 'retry' : 'abort';
}

/**
 * Stage order for one block: read + hash + zero-detect → (zero on a zeroed target: hash only)
 * → write → read-back hash → compare → journal. Blocks run concurrently under a p-queue; the
 * feeder adds blocks only as slots free up, so nothing is buffered beyond what is in flight.
 */
export async function runPipeline(
  blocks: BlockRef[],
  deps: { source: BlockSource; sink: BlockSink; journal: JournalWriter; emit: ProgressListener },
  opts: PipelineOptions,
  signal: AbortSignal,
): Promise<PipelineCounters> {
  const { source: reader, sink: writer, journal, emit } = deps;
  const hasher = writer;
  const counters: PipelineCounters = { verified: 0, sent: 0, zeroBlocks: 0, identicalBlocks: 0, retransmitted: 0, failed: 0, bytesOnWire: 0, bytesHoles: 0, bytesOffloaded: 0, bytesWritten: 0, interrupted: false, badRanges: [] };
  let firstWriteTraced = false;
  const stop = new AbortController();
  const runSignal = AbortSignal.any([signal, stop.signal]);

  /** Unreadable sectors were zero-filled (`--noerror`): the journal and summary must say where. */
  function recordBad(block: BlockRef, ranges: ByteRange[]): void {
    if (ranges.length === 0) return;
    journal.block({ block: block.index, state: 'bad', ranges });
    counters.badRanges.push(...ranges);
    emit({ type: 'warning', message: `unreadable source bytes zero-filled in block ${block.index}: ${ranges.map((r) => `${r.offset}..${r.offset + r.length}`).join(', ')}` });
  }

  const skip = opts.skipIdentical ? new SkipIdentical(blocks, reader, writer, opts.algo, runSignal, opts.ahead) : undefined;

  /**
   * `--skip-identical`: a block whose target checksum already equals the source's is proven
   * unsent (true); one that differs in some units only is opened as a delta of those units.
   */
  async function compared(block: BlockRef): Promise<boolean | OpenedBlock> {
    const c = skip ? await skip.compare(block) : undefined;
    if (c?.kind === 'delta') {
      const parts = reader.openRanges!(block, c.ranges, opts.algo);
      return { payload: { kind: 'delta', parts }, checksum: Promise.resolve(c.source), badRanges: Promise.resolve(c.badRanges), covers: c.covered };
    }
    if (c?.kind !== 'identical') return false;
    recordBad(block, c.badRanges);
    journal.block({ block: block.index, state: 'verified', source: c.source, target: c.target, how: 'identical' });
    counters.verified++;
    counters.identicalBlocks++;
    emit({ type: 'block', index: block.index, state: 'identical', bytes: block.length });
    return true;
  }

  /**
   * A verified block: journal, counters, progress. `z`: its bytes that were not written (holes,
   * offload); a delta wrote no more than its units (`covers`), the journal says how much.
   */
  async function proven(block: BlockRef, opened: OpenedBlock, src: string, tgt: string, zero: boolean, z: Zeroed): Promise<void> {
    recordBad(block, await opened.badRanges);
    const span = opened.covers ?? block.length; // a delta covers less than its block
    const holes = Math.min(z.hole, span);
    const offloaded = Math.min(z.offload, span - holes);
    const written = span - holes - offloaded;
    const delta = opened.covers !== undefined && { written };
    journal.block({ block: block.index, state: 'verified', source: src, target: tgt, how: zero ? 'zero' : 'data', ...(holes && { holes }), ...(offloaded && { offloaded }), ...delta });
    counters.bytesHoles += holes;
    counters.bytesOffloaded += offloaded;
    counters.bytesWritten += written;
    counters.verified++;
    if (zero) counters.zeroBlocks++;
    emit({ type: 'block', index: block.index, state: zero ? 'zero' : 'verified', bytes: block.length });
  }

  /**
   * A block whose read-back matched but whose flush is still to come (a writer with
   * `durable`): proven once the flush is done, off the queue, so its slot takes the next block
   * meanwhile. A failed flush is a failed attempt: re-queued while retries last.
   */
  const settling = new Set<Promise<void>>();
  /**
   * Blocks being written now. With those waiting for a flush, at most two per slot are unproven
   * at any moment: what a kill can cost stays bounded however slow the flushes are.
   */
  let writing = 0;
  const unprovenMax = 2 * Math.max(1, opts.concurrency);
  function settleLater(block: BlockRef, n: number, opened: OpenedBlock, src: string, tgt: string, zero: boolean, z: Zeroed): void {
    const p = writer
      .durable!(block, runSignal)
      .then(
        () => proven(block, opened, src, tgt, zero, z),
        (err: unknown) => {
          if (runSignal.aborted) return;
          failedAttempt(block, err, 'flush failed');
          if (runSignal.aborted) return;
          if (n < opts.retries) void queue.add(() => processBlock(block, n + 1));
          else gaveUp(block);
        },
      )
      .finally(() => settling.delete(p));
    p.catch(() => undefined); // observed by the Promise.all at the end, not an unhandled rejection meanwhile
    settling.add(p);
  }

  /** Journal a failed attempt; a failure that will not go away by retrying stops the run. */
  function failedAttempt(block: BlockRef, err: unknown, what?: string): void {
    const reason = what ? `${what}: ${messageOf(err)}` : messageOf(err);
    journal.block({ block: block.index, state: 'failed', reason });
    if (decideFailure(err) === 'abort') {
      counters.fatal ??= err;
      stop.abort();
      return;
    }
    counters.lastError = `block ${block.index}: ${reason}`;
  }

  function gaveUp(block: BlockRef): void {
    counters.failed++;
    emit({ type: 'block', index: block.index, state: 'failed', bytes: block.length });
  }

  async function attempt(block: BlockRef, n: number): Promise<boolean> {
    const known = n === 0 ? await compared(block) : false;
    if (known === true) return true;
    // A delta that failed its read-back goes again whole (n > 0).
    const opened = known || (await reader.openBlock(block, opts.algo));
    emit({ type: 'block', index: block.index, state: 'read', bytes: block.length });
    const zero = opened.payload.kind === 'zero';
    if (zero && opts.targetZeroed) {
      const [src, tgt] = await Promise.all([opened.checksum, hasher.hashAt(block, opts.algo, runSignal)]);
      if (src === tgt) {
        recordBad(block, await opened.badRanges);
        journal.block({ block: block.index, state: 'verified', source: src, target: tgt, how: 'skipped-zero' });
        counters.verified++;
        counters.zeroBlocks++;
        emit({ type: 'block', index: block.index, state: 'zero', bytes: block.length });
        return true;
      }
      // Not zero after all on the target: write the zeros like any other block.
    }
    // The data path reports its bytes as they go; the meter turns them into progress events.
    const meter = new ByteMeter(block.index, emit, (n) => (counters.bytesOnWire += n));
    if (opened.payload.kind !== 'zero') {
      opened.payload.onWire = meter.onWire;
      opened.payload.onAck = meter.onAck;
    }
    const z: Zeroed = { hole: 0, offload: 0 };
    opened.payload.onZeroed = (how, bytes) => (z[how] += bytes);
    if (!firstWriteTraced) trace('first block write');
    firstWriteTraced = true;
    let tgt: string;
    try {
      tgt = await writer.writeAt(block, opened.payload, opts.algo, runSignal);
      // The answer covers the whole block, also what the path could not report on its way.
      meter.onAck(block.length - meter.ackedBytes);
    } finally {
      meter.flush();
    }
    const src = await opened.checksum;
    counters.sent++;
    emit({ type: 'block', index: block.index, state: 'sent', bytes: block.length });
    if (src !== tgt) {
      journal.block({ block: block.index, state: 'failed', source: src, target: tgt, reason: 'checksum mismatch after write' });
      counters.lastError = `block ${block.index}: target checksum ${tgt} != source ${src}`;
      return false;
    }
    if (writer.durable) settleLater(block, n, opened, src, tgt, zero, z);
    else await proven(block, opened, src, tgt, zero, z);
    return true;
  }

  /**
   * Attempts `from`..retries of a block (a re-queued block continues its count), begun once
   * fewer than `unprovenMax` blocks are unproven.
   */
  async function processBlock(block: BlockRef, from = 0): Promise<void> {
    while (writing + settling.size >= unprovenMax) await Promise.race(settling).catch(() => undefined);
    writing++;
    try {
      await attempts(block, from);
    } finally {
      writing--;
    }
  }

  async function attempts(block: BlockRef, from: number): Promise<void> {
    for (let n = from; n <= opts.retries; n++) {
      if (runSignal.aborted) return;
      if (n > 0) {
        counters.retransmitted++;
        emit({ type: 'block', index: block.index, state: 'retry', bytes: block.length });
      }
      try {
        if (await attempt(block, n)) return;
      } catch (err) {
        if (runSignal.aborted) return;
        failedAttempt(block, err);
        if (runSignal.aborted) return;
      }
    }
    gaveUp(block);
  }

  const queue = new PQueue({ concurrency: Math.max(1, opts.concurrency) });
  for (const block of blocks) {
    if (runSignal.aborted) break;
    // Backpressure: keep at most one waiting block per slot.
    await queue.onSizeLessThan(queue.concurrency);
    if (runSignal.aborted) break;
    void queue.add(() => processBlock(block));
  }
  await queue.onIdle();
  // Blocks waiting for their flush; a failed one is re-queued, so go round until both are empty.
  while (settling.size) {
    await Promise.all([...settling]);
    await queue.onIdle();
  }
  counters.interrupted = signal.aborted;
  return counters;
}
