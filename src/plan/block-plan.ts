import { UsageError } from '../errors.js';
import type { BlockRef } from '../engine/types.js';

export const DEFAULT_BLOCK_SIZE = 64 * 1024 * 1024;

/** Blocks of `blockSize` bytes covering `size` bytes; the last one may be short. */
export function planBlocks(size: number, blockSize: number): BlockRef[] {
  validateBlockSize(blockSize);
  const blocks: BlockRef[] = [];
  for (let index = 0, offset = 0; offset < size; index++, offset += blockSize) {
    blocks.push({ index, offset, length: Math.min(blockSize, size - offset) });
  }
  return blocks;
}

export function blockCount(size: number, blockSize: number): number {
  return Math.ceil(size / blockSize);
}

export function validateBlockSize(blockSize: number): void {
  if (!Number.isSafeInteger(blockSize) || blockSize <= 0 || blockSize % 512 !== 0) {
    throw new UsageError('BAD_BLOCK_SIZE', `block size ${blockSize} is not a positive multiple of 512: pass e.g. -b 64M`);
  }
  if (blockSize > 4 * 1024 * 1024 * 1024) {
    throw new UsageError('BAD_BLOCK_SIZE', `block size ${blockSize} is larger than 4G: pass a smaller -b (64M is the default)`);
  }
}

/** Merge adjacent or overlapping byte ranges (sorted by offset) into half-open ranges. */
export function mergeRanges(ranges: { offset: number; length: number }[]): { offset: number; length: number }[] {
  const sorted = [...ranges].sort((a, b) => a.offset - b.offset);
  const out: { offset: number; length: number }[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.offset <= last.offset + last.length) {
      last.length = Math.max(last.offset + last.length, r.offset + r.length) - last.offset;
    } else {
      out.push({ ...r });
    }
  }
  return out;
}
