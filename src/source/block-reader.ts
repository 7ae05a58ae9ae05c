import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { createHasher } from '../checksum/hasher.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import { SourceReadError } from '../errors.js';
import type { BlockPayload, BlockRef } from '../engine/types.js';

export const DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024;

/** A block opened for sending: its payload, and its checksum once every byte has been read. */
export interface OpenedBlock {
  payload: BlockPayload;
  /** Resolves after the payload has been fully consumed (immediately for zero blocks). */
  checksum: Promise<string>;
}

const zeroChunks = new Map<number, Buffer>();
/** One shared, never-written buffer of zeros per chunk length. */
export function zeroChunk(length: number): Buffer {
  let z = zeroChunks.get(length);
  if (!z) {
    z = Buffer.alloc(length);
    zeroChunks.set(length, z);
  }
  return z;
}

function isZero(buf: Buffer): boolean {
  // Compare against a zero buffer: memcmp speed, no per-byte JS loop.
  return buf.equals(zeroChunk(buf.length));
}

/**
 * Positioned reads of a source in chunks. A block streams through: it is hashed chunk by chunk
 * and never held whole, so memory is bounded by chunks in flight, not by block size.
 */
export class BlockReader {
  private constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    private readonly chunkSize: number,
  ) {}

  static async open(path: string, chunkSize = DEFAULT_CHUNK_SIZE): Promise<BlockReader> {
    return new BlockReader(await fs.open(path, 'r'), path, chunkSize);
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  /** Read exactly `length` bytes at `offset` into a fresh buffer (short source = error). */
  async readChunk(offset: number, length: number): Promise<Buffer> {
    // A fresh buffer per chunk: a consumer (an SSH channel) may still hold the previous one.
    const buf = Buffer.allocUnsafeSlow(length);
    let done = 0;
    while (done < length) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await this.fh.read(buf, done, length - done, offset + done));
      } catch (err) {
        throw new SourceReadError(`cannot read source ${this.path} at byte ${offset + done}: ${(err as Error).message}`, { cause: err });
      }
      if (bytesRead === 0) throw new SourceReadError(`source ${this.path} ended early at byte ${offset + done}: did it shrink?`);
      done += bytesRead;
    }
    return buf;
  }

  /**
   * Open a block: read leading chunks until one is not all zeros. A block that is zero to the
   * end becomes a `zero` payload (sent as a command, not data); otherwise the zeros seen so far
   * are replayed from a shared buffer and the rest is read as the consumer pulls.
   */
  async openBlock(block: BlockRef, algo: ChecksumAlgo): Promise<OpenedBlock> {
    const hasher = createHasher(algo);
    let pos = 0;
    let firstData: Buffer | undefined;
    while (pos < block.length) {
      const len = Math.min(this.chunkSize, block.length - pos);
      const chunk = await this.readChunk(block.offset + pos, len);
      hasher.update(chunk);
      if (!isZero(chunk)) {
        firstData = chunk;
        break;
      }
      pos += len;
    }
    if (!firstData) return { payload: { kind: 'zero' }, checksum: Promise.resolve(hasher.digest()) };

    let resolveSum!: (s: string) => void;
    let rejectSum!: (e: unknown) => void;
    const checksum = new Promise<string>((res, rej) => {
      resolveSum = res;
      rejectSum = rej;
    });
    // Callers that never consume the payload (an aborted send) must not see an unhandled rejection.
    checksum.catch(() => {});
    const zeroPrefix = pos;
    const first = firstData;
    const chunkSize = this.chunkSize;
    const self = this;
    async function* chunks(): AsyncGenerator<Buffer> {
      try {
        for (let z = 0; z < zeroPrefix; z += chunkSize) yield zeroChunk(Math.min(chunkSize, zeroPrefix - z));
        yield first;
        let p = zeroPrefix + first.length;
        while (p < block.length) {
          const chunk = await self.readChunk(block.offset + p, Math.min(chunkSize, block.length - p));
          hasher.update(chunk);
          yield chunk;
          p += chunk.length;
        }
        resolveSum(hasher.digest());
      } catch (err) {
        rejectSum(err);
        throw err;
      } finally {
        rejectSum(new Error('block payload was not fully consumed'));
      }
    }
    return { payload: { kind: 'data', chunks: chunks() }, checksum };
  }

  /** Checksum of a block without keeping its data (verify). */
  async hashBlock(block: BlockRef, algo: ChecksumAlgo): Promise<{ checksum: string; zero: boolean }> {
    const hasher = createHasher(algo);
    let zero = true;
    for (let pos = 0; pos < block.length; ) {
      const chunk = await this.readChunk(block.offset + pos, Math.min(this.chunkSize, block.length - pos));
      hasher.update(chunk);
      if (zero && !isZero(chunk)) zero = false;
      pos += chunk.length;
    }
    return { checksum: hasher.digest(), zero };
  }
}
