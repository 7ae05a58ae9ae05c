import PQueue from 'p-queue';
import type { ChecksumAlgo } from '../checksum/types.js';
import { SourceReadError, SshError, messageOf } from '../errors.js';
import type { JournalWriter } from '../journal/journal.js';
import type { ProgressListener } from '../progress/events.js';
import { HashAhead } from './hash-ahead.js';
import type { BlockRef, SourceReader, TargetHasher, TargetWriter } from './types.js';

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
}

export interface PipelineCounters {
  verified: number;
  sent: number;
  zeroBlocks: number;
  identicalBlocks: number;
  retransmitted: number;
  failed: number;
  bytesOnWire: number;
  lastError?: string;
  /** the error that stopped the run early (a source read error) */
  fatal?: unknown;
  /** the caller's signal stopped the run */
  interrupted: boolean;
  /** unreadable source ranges zero-filled this run (`--noerror`) */
  badRanges: { offset: number; length: number }[];
}

/** What to do after a block attempt failed: the one place that decides retry, record or abort. */
export type FailureDecision = 'retry' | 'abort';

export function decideFailure(err: unknown): FailureDecision {
  // A source that cannot be read will not read better on the next try, and a host that stayed
  // unreachable past --reconnect-timeout (or refused us) will not come back for the next
  // block either: stop, resumable, instead of failing every remaining block in turn.
  if (err instanceof SourceReadError || (err instanceof SshError && err.code !== 'SSH_CHANNEL')) return 'abort';
  return 'retry';
}

/**
 * Stage order for one block: read + hash + zero-detect → (zero on a zeroed target: hash only)
 * → write → read-back hash → compare → journal. Blocks run concurrently under a p-queue; the
 * feeder adds blocks only as slots free up, so nothing is buffered beyond what is in flight.
 */
export async function runPipeline(
  blocks: BlockRef[],
  deps: { reader: SourceReader; writer: TargetWriter; hasher: TargetHasher; journal: JournalWriter; emit: ProgressListener },
  opts: PipelineOptions,
  signal: AbortSignal,
): Promise<PipelineCounters> {
  const { reader, writer, hasher, journal, emit } = deps;
  const counters: PipelineCounters = { verified: 0, sent: 0, zeroBlocks: 0, identicalBlocks: 0, retransmitted: 0, failed: 0, bytesOnWire: 0, interrupted: false, badRanges: [] };
  const stop = new AbortController();
  const runSignal = AbortSignal.any([signal, stop.signal]);

  /** Unreadable sectors were zero-filled (`--noerror`): the journal and summary must say where. */
  function recordBad(block: BlockRef, ranges: { offset: number; length: number }[]): void {
    if (ranges.length === 0) return;
    journal.block({ block: block.index, state: 'bad', ranges });
    counters.badRanges.push(...ranges);
    emit({ type: 'warning', message: `unreadable source bytes zero-filled in block ${block.index}: ${ranges.map((r) => `${r.offset}..${r.offset + r.length}`).join(', ')}` });
  }

  const ahead = opts.skipIdentical && reader.hashBlock ? new HashAhead(blocks, hasher, opts.algo, runSignal) : undefined;

  /** `--skip-identical`: a block whose target checksum already equals the source's is proven unsent. */
  async function alreadyThere(block: BlockRef): Promise<boolean> {
    if (!ahead || !reader.hashBlock) return false;
    const [src, tgt] = await Promise.all([reader.hashBlock(block, opts.algo), ahead.get(block.index)]);
    if (tgt === undefined || src.checksum !== tgt) return false;
    recordBad(block, src.badRanges);
    journal.block({ block: block.index, state: 'verified', source: src.checksum, target: tgt, how: 'identical' });
    counters.verified++;
    counters.identicalBlocks++;
    emit({ type: 'block', index: block.index, state: 'identical', bytes: block.length });
    return true;
  }

  async function attempt(block: BlockRef, first: boolean): Promise<boolean> {
    if (first && (await alreadyThere(block))) return true;
    const opened = await reader.openBlock(block, opts.algo);
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
    let reported: number | undefined;
    if (opened.payload.kind === 'data') opened.payload.onWire = (n) => (reported = (reported ?? 0) + n);
    const tgt = await writer.writeAt(block, opened.payload, opts.algo, runSignal);
    const src = await opened.checksum;
    const wire = reported ?? (zero ? 0 : block.length);
    counters.sent++;
    counters.bytesOnWire += wire;
    emit({ type: 'block', index: block.index, state: 'sent', bytes: block.length, wireBytes: wire });
    if (src !== tgt) {
      journal.block({ block: block.index, state: 'failed', source: src, target: tgt, reason: 'checksum mismatch after write' });
      counters.lastError = `block ${block.index}: target checksum ${tgt} != source ${src}`;
      return false;
    }
    recordBad(block, await opened.badRanges);
    journal.block({ block: block.index, state: 'verified', source: src, target: tgt, how: zero ? 'zero' : 'data' });
    counters.verified++;
    if (zero) counters.zeroBlocks++;
    emit({ type: 'block', index: block.index, state: zero ? 'zero' : 'verified', bytes: block.length });
    return true;
  }

  async function processBlock(block: BlockRef): Promise<void> {
    for (let n = 0; n <= opts.retries; n++) {
      if (runSignal.aborted) return;
      if (n > 0) {
        counters.retransmitted++;
        emit({ type: 'block', index: block.index, state: 'retry', bytes: block.length });
      }
      try {
        if (await attempt(block, n === 0)) return;
      } catch (err) {
        if (runSignal.aborted) return;
        if (decideFailure(err) === 'abort') {
          journal.block({ block: block.index, state: 'failed', reason: messageOf(err) });
          counters.fatal ??= err;
          stop.abort();
          return;
        }
        counters.lastError = `block ${block.index}: ${messageOf(err)}`;
        journal.block({ block: block.index, state: 'failed', reason: messageOf(err) });
      }
    }
    counters.failed++;
    emit({ type: 'block', index: block.index, state: 'failed', bytes: block.length });
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
  counters.interrupted = signal.aborted;
  return counters;
}
