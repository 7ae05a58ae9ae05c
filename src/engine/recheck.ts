/**
 * A resume that cannot trust its earlier proofs (another job wrote the target since, or
 * `--reverify`) hashes those blocks of the target again and keeps only the ones that still read
 * as they were proven; the others go through the pipeline like never-sent blocks.
 */
import PQueue from 'p-queue';
import type { BlockHasher, BlockRef } from '../block/types.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import type { JournalState } from '../journal/journal.js';

/** The blocks whose target checksum is no longer the one the journal recorded. */
export async function changedSinceProven(blocks: BlockRef[], previous: JournalState, target: BlockHasher & { capacity?: number }, algo: ChecksumAlgo, signal: AbortSignal): Promise<BlockRef[]> {
  const changed: BlockRef[] = [];
  const check = (block: BlockRef, sum: string | undefined) => {
    if (previous.blocks.get(block.index)?.target !== sum) changed.push(block);
  };
  if (target.hashStream) {
    // One stream (one streaming hasher on a remote host), requests pipelined: no round trip per block.
    for await (const { block, checksum } of target.hashStream(blocks, algo, signal)) check(block, checksum);
  } else {
    const queue = new PQueue({ concurrency: Math.max(1, Math.min(8, target.capacity ?? 4)) });
    for (const block of blocks) {
      await queue.onSizeLessThan(queue.concurrency);
      signal.throwIfAborted();
      void queue.add(async () => check(block, await target.hashAt(block, algo, signal)));
    }
    await queue.onIdle();
  }
  return changed.sort((a, b) => a.index - b.index);
}
