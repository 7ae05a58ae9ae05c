import type { ChecksumAlgo } from '../checksum/types.js';

/** What a stage needs to know about one block of the plan. */
export interface BlockRef {
  index: number;
  offset: number;
  length: number;
}

/** Block payload as it travels: a stream of chunks (bounded memory) or "all zeros" (no data). */
export type BlockPayload =
  | { kind: 'data'; chunks: AsyncIterable<Buffer> }
  | { kind: 'zero' };

/**
 * Where blocks go. A write returns the checksum read back from the target after the data
 * was flushed, so a remote target proves a block in one round trip.
 */
export interface TargetWriter {
  /** Write `payload` at `block.offset`, flush, re-read the range and return its checksum. */
  writeAt(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal): Promise<string>;
  close(): Promise<void>;
  abort(): Promise<void>;
}

/** Hashes ranges of the target as it is now (verify, skip-identical, resume checks). */
export interface TargetHasher {
  hashAt(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal): Promise<string>;
  close(): Promise<void>;
}
