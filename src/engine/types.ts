import type { ChecksumAlgo } from '../checksum/types.js';
import type { OpenedBlock } from '../source/block-reader.js';

/** What a stage needs to know about one block of the plan. */
export interface BlockRef {
  index: number;
  offset: number;
  length: number;
}

/** Block payload as it travels: a stream of chunks (bounded memory) or "all zeros" (no data). */
export type BlockPayload =
  | {
      kind: 'data';
      /** Each chunk is valid until the next one is asked for: the source reads into the same buffer. */
      chunks: AsyncIterable<Buffer>;
      /** A writer that sends fewer bytes than the block (compression) reports what it sent. */
      onWire?: (bytes: number) => void;
    }
  | { kind: 'zero' };

/**
 * Where blocks go. A write returns the checksum read back from the target after the data
 * was flushed, so a remote target proves a block in one round trip.
 */
export interface TargetWriter {
  /** Write `payload` at `block.offset`, flush (or see `durable`), re-read the range and return its checksum. */
  writeAt(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal): Promise<string>;
  /**
   * A writer that may answer before its flush (group commit) has this: it resolves once the
   * block's last write is durable. The journal records a block verified only after it.
   */
  durable?(block: BlockRef, signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
}

/** Hashes ranges of the target as it is now (verify, skip-identical, resume checks). */
export interface TargetHasher {
  hashAt(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal): Promise<string>;
  /** Checksums of many blocks in order, streamed (no round trip per block); optional. */
  hashStream?(blocks: BlockRef[], algo: ChecksumAlgo, signal: AbortSignal): AsyncIterable<{ block: BlockRef; checksum: string }>;
  close(): Promise<void>;
}

/**
 * Where blocks come from: a local device read in place (`BlockReader`) or a remote one read by
 * the helper on the source host (pull). `openBlock` gives the payload and the checksum of
 * exactly the bytes read, computed where they were read.
 */
export interface SourceReader {
  openBlock(block: BlockRef, algo: ChecksumAlgo): Promise<OpenedBlock>;
  /** Checksum only, no payload (`--skip-identical` compares it with the target's first). */
  hashBlock?(block: BlockRef, algo: ChecksumAlgo): Promise<{ checksum: string; badRanges: { offset: number; length: number }[] }>;
  close(): Promise<void>;
}
