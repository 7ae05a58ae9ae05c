/** What a whole-block write request to the helper carries and gives back (see HelperWorker). */
import type { WireListener, ZeroedHow } from '../block/types.js';

/** What a whole-block write gave: the read-back checksum, whether its flush is deferred. */
export interface WriteResult {
  checksum: string;
  deferred: boolean;
  /** bytes of the block in all-zero chunks (sent or not) */
  zeroBytes: number;
  /** the target made the block's zero ranges holes or had the device zero them (else: written) */
  zeros?: ZeroedHow;
}

export interface WriteOptions {
  /**
   * The helper may leave the flush to a later `flush()`: where the write and the read-back both
   * bypass the page cache (O_DIRECT), `deferred` says the checksum is of bytes the device holds,
   * not yet durable.
   */
  defer?: boolean;
  /** Send the block as `X` frames: zero chunks as a length only. */
  framed?: boolean;
  /**
   * Hear payload bytes as the channel takes them (`onWire`), and block bytes taken (`onAck`,
   * zero frames included): the channel takes bytes only within the window the target's end
   * grants, so they lag what reached the target by one window at most.
   */
  onWire?: WireListener;
  onAck?: WireListener;
}

/** A request's payload: `length` bytes from `chunks`, as they are or as `X` frames. */
export interface Payload extends Pick<WriteOptions, 'onWire' | 'onAck'> {
  length: number;
  chunks: AsyncIterable<Buffer>;
  framed: boolean;
  /** filled in as the bytes go: bytes in all-zero chunks */
  zeroBytes: number;
}
