/** The plan of a job: which byte ranges are its blocks. Pure. */
import type { BlockRef, ByteRange } from '../block/types.js';
import { DdtError } from '../errors.js';
import { formatBytes } from '../format.js';
import { LIMITS } from '../limits.js';

export const DEFAULT_BLOCK_SIZE = 64 * 1024 * 1024;

/** Blocks of `blockSize` bytes covering `size` bytes; the last one may be short. */
export function planBlocks(size: number, blockSize: number): BlockRef[] {
  validateBlockSize(blockSize);
  const count = blockCount(size, blockSize);
  if (count > LIMITS.blocks) {
    throw new DdtError('BAD_OPTION', `${formatBytes(size)} in blocks of ${formatBytes(blockSize)} makes ${count} blocks, more than ${LIMITS.blocks}: pass a larger -b`);
  }
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
    throw new DdtError('BAD_OPTION', `block size ${blockSize} is not a positive multiple of 512: pass e.g. -b 64M`);
  }
  if (blockSize > LIMITS.blockSize) {
    throw new DdtError('BAD_OPTION', `block size ${blockSize} is larger than 4G: pass a smaller -b (64M is the default)`);
  }
}

/** Merge adjacent or overlapping byte ranges into sorted half-open ranges. */
export function mergeRanges(ranges: ByteRange[]): ByteRange[] {
  const sorted = [...ranges].sort((a, b) => a.offset - b.offset);
  const out: ByteRange[] = [];
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
