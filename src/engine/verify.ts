import PQueue from 'p-queue';
import type { ChecksumAlgo } from '../checksum/types.js';
import { mergeRanges, planBlocks, validateBlockSize } from '../plan/block-plan.js';
import type { BlockReader } from '../source/block-reader.js';
import type { TargetHasher } from './types.js';

export interface VerifyResult {
  blocks: number;
  identical: number;
  different: number;
  /** half-open byte ranges [offset, offset+length) where the target differs */
  differences: { offset: number; length: number }[];
  checksum: ChecksumAlgo;
  bytesTotal: number;
}

/** Compare block checksums of source and target; never writes. */
export async function verifyBlocks(
  size: number,
  blockSize: number,
  algo: ChecksumAlgo,
  reader: BlockReader,
  target: TargetHasher,
  concurrency: number,
  signal: AbortSignal,
  onBlock?: (index: number, same: boolean, length: number) => void,
): Promise<VerifyResult> {
  validateBlockSize(blockSize);
  const blocks = planBlocks(size, blockSize);
  const diffs: { offset: number; length: number }[] = [];
  const queue = new PQueue({ concurrency: Math.max(1, concurrency) });
  let identical = 0;
  for (const block of blocks) {
    await queue.onSizeLessThan(queue.concurrency);
    signal.throwIfAborted();
    void queue.add(async () => {
      const [src, tgt] = await Promise.all([reader.hashBlock(block, algo), target.hashAt(block, algo, signal)]);
      const same = src.checksum === tgt;
      if (same) identical++;
      else diffs.push({ offset: block.offset, length: block.length });
      onBlock?.(block.index, same, block.length);
    });
  }
  await queue.onIdle();
  signal.throwIfAborted();
  return { blocks: blocks.length, identical, different: blocks.length - identical, differences: mergeRanges(diffs), checksum: algo, bytesTotal: size };
}
