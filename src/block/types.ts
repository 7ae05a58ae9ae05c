/**
 * What the two ends of a job exchange, whatever they are (a local device, a remote helper, a
 * staging directory): block references, payloads, and the interfaces every source and every
 * target implements. The lowest layer but checksum/ and errors: everything else may use it.
 */
import type { ChecksumAlgo } from '../checksum/types.js';

/** A half-open byte range `[offset, offset + length)`. */
export interface ByteRange {
  offset: number;
  length: number;
}

/** One block of the plan: the unit of checksum, journal and retransmission. */
export interface BlockRef extends ByteRange {
  index: number;
}

/** One part of a block on the wire: raw bytes, gzip bytes, or zeros (no bytes at all). */
export type BlockPart =
  | { kind: 'raw'; offset: number; length: number; data: Buffer }
  | { kind: 'gzip'; offset: number; length: number; data: Buffer }
  | { kind: 'zero'; offset: number; length: number };

/**
 * Sub-block checksums, for finding what differs below the block size: units of `unit` bytes from
 * each block's start (the last one shorter), hashed with `algo`. A block no longer than one unit
 * has no unit checksums: its own checksum says it all.
 */
export interface UnitSpec {
  unit: number;
  algo: ChecksumAlgo;
}

/** A block's checksum as an end has it now (undefined: it could not be read), and its units'. */
export interface BlockDigest {
  block: BlockRef;
  checksum?: string;
  units?: string[];
}

/**
 * Hears bytes as they go, for progress and the summary: `onWire` payload bytes put on the link
 * (after compression), `onAck` bytes of the block the target has taken (its answer to a part
 * or an SFTP write; for a block streamed whole, what the link took under the target's flow
 * control; for a local target, what was written).
 */
export type WireListener = (bytes: number) => void;

/**
 * What a target does with the zero ranges it writes: `sparse` (holes in files, zeroing offloaded
 * to devices that offer it), `discard` (as sparse, and devices may unmap them where unmapped
 * blocks read as zeros), `write` (zeros written: `--no-sparse`).
 */
export type ZeroMode = 'sparse' | 'discard' | 'write';

/** How a target made zero bytes without writing them: holes (or zeros already there left alone), or the device zeroed them. */
export type ZeroedHow = 'hole' | 'offload';

/** Hears how a block's zero ranges were made and how many bytes they were: the summary's figures. */
export type ZeroListener = (how: ZeroedHow, bytes: number) => void;

/**
 * A block's payload as it travels: a stream of chunks (memory bounded by the chunk, never by the
 * block), the same as parts (compressed, zero runs as commands), or "all zeros" (no data).
 */
export type BlockPayload =
  | {
      kind: 'data';
      /** Each chunk is valid until the next one is asked for: the source reads into the same buffer. */
      chunks: AsyncIterable<Buffer>;
      onWire?: WireListener;
      onAck?: WireListener;
      onZeroed?: ZeroListener;
    }
  | { kind: 'parts'; parts: AsyncIterable<BlockPart>; onWire?: WireListener; onAck?: WireListener; onZeroed?: ZeroListener }
  /**
   * Only the parts of the block that differ on the target (`--skip-identical`): the rest is
   * there already. Proven like any block, by the checksum of the whole block read back.
   */
  | { kind: 'delta'; parts: AsyncIterable<BlockPart>; onWire?: WireListener; onAck?: WireListener; onZeroed?: ZeroListener }
  | { kind: 'zero'; onZeroed?: ZeroListener };

/** A block opened for sending: its payload, and its checksum once every byte has been read. */
export interface OpenedBlock {
  payload: BlockPayload;
  /** Resolves after the payload has been fully consumed (immediately for zero blocks). */
  checksum: Promise<string>;
  /**
   * Unreadable source ranges of this block (`--noerror` only, else empty): they read as zeros in
   * the payload and the checksum covers those zeros. Settles together with `checksum`.
   */
  badRanges: Promise<ByteRange[]>;
  /** Bytes of the block the payload covers where that is less than the block (a delta's units). */
  covers?: number;
}

/** Hashes ranges of a target as it is now (verify, skip-identical, resume checks). */
export interface BlockHasher {
  hashAt(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal): Promise<string>;
  /**
   * Checksums of many blocks in order, streamed (no round trip per block), with their units'
   * where `units` asks for them; optional.
   */
  hashStream?(blocks: BlockRef[], algo: ChecksumAlgo, signal: AbortSignal, units?: UnitSpec): AsyncIterable<BlockDigest>;
  /** The algo this end hashes units with fastest, where that is not the job's own. */
  readonly unitAlgo?: ChecksumAlgo;
  close(): Promise<void>;
}

/**
 * Where blocks go. A write returns the checksum read back from the target after the data was
 * flushed (or see `durable`), so a block is proven in one round trip.
 */
export interface BlockSink extends BlockHasher {
  /** Blocks it takes at once (its workers or channels). */
  readonly capacity: number;
  /** It takes `delta` payloads (a block's differing parts only). */
  readonly takesDelta?: boolean;
  writeAt(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal): Promise<string>;
  /**
   * A write is coming (the run asks for the target's record first): a sink that sets itself
   * up at its first write may begin now, beside that request.
   */
  expectWrite?(): void;
  /**
   * A sink that may answer before its flush (group commit) has this: it resolves once the block's
   * last write is durable. The journal records a block verified only after it.
   */
  durable?(block: BlockRef, signal: AbortSignal): Promise<void>;
  /** Let blocks in flight finish, then release everything. Idempotent. */
  close(): Promise<void>;
  /** Drop everything now; blocks in flight stay unproven. */
  abort(): Promise<void>;
}

/**
 * Where blocks come from: a local device read in place, or a remote one read by the helper on its
 * host. `openBlock` gives the payload and the checksum of exactly the bytes read, computed where
 * they were read.
 */
export interface BlockSource {
  /** Blocks it reads at once. */
  readonly capacity: number;
  openBlock(block: BlockRef, algo: ChecksumAlgo): Promise<OpenedBlock>;
  /**
   * Checksum only, no payload (`--skip-identical` compares it with the target's first), with
   * its units' where `units` asks for them. `zero`: the block is all zeros, where known.
   */
  hashBlock(block: BlockRef, algo: ChecksumAlgo, units?: UnitSpec): Promise<{ checksum: string; badRanges: ByteRange[]; units?: string[]; zero?: boolean }>;
  /** The same for many blocks, streamed, where the source is better at that (a remote helper). */
  hashStream?(blocks: BlockRef[], algo: ChecksumAlgo, signal: AbortSignal, units?: UnitSpec): AsyncIterable<BlockDigest>;
  /** The algo this end hashes units with fastest, where that is not the job's own. */
  readonly unitAlgo?: ChecksumAlgo;
  /**
   * The bytes of some ranges of a block as parts (raw, or zero runs as a length), in order:
   * the differing units of a `delta` payload.
   */
  openRanges?(block: BlockRef, ranges: ByteRange[], algo: ChecksumAlgo): AsyncIterable<BlockPart>;
  /** Bytes of the source's holes skipped so far (never read: they read as zeros). */
  readonly holeBytes?: number;
  /** The connection that carried block `index` (a remote source; for per-connection progress). */
  connectionOf?(index: number): number | undefined;
  close(): Promise<void>;
}
