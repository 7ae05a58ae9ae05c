/**
 * Zero detection: all-zero chunks travel as a length, never as bytes, and all-zero blocks as a
 * command. Compared against a shared zero buffer: memcmp speed, and it stops at the first
 * non-zero byte, so data costs next to nothing to test.
 */
import { createHasher } from '../checksum/hasher.js';
import type { ChecksumAlgo } from '../checksum/types.js';

const zeroChunks = new Map<number, Buffer>();

/** One shared, never-written buffer of zeros per length. */
export function zeroChunk(length: number): Buffer {
  let z = zeroChunks.get(length);
  if (!z) {
    z = Buffer.alloc(length);
    zeroChunks.set(length, z);
  }
  return z;
}

/** All zeros? The shared zero chunks (a block's zero prefix replayed) are known without a look. */
export function isZero(buf: Buffer): boolean {
  const zero = zeroChunk(buf.length);
  return buf === zero || buf.equals(zero);
}

/** Passes `chunks` on and counts the bytes of the all-zero ones into `count.bytes`. */
export async function* countingZeros(chunks: AsyncIterable<Buffer>, count: { bytes: number }): AsyncGenerator<Buffer> {
  for await (const c of chunks) {
    if (isZero(c)) count.bytes += c.length;
    yield c;
  }
}

const zeroDigests = new Map<string, string>();

/**
 * The checksum of `length` zero bytes, computed once per algo and length (a run has one block
 * size, and a last block): a hole of the source is proven as zeros without reading it.
 */
export function zeroDigest(algo: ChecksumAlgo, length: number): string {
  const key = `${algo}:${length}`;
  let d = zeroDigests.get(key);
  if (d === undefined) {
    const h = createHasher(algo);
    const step = 1024 * 1024;
    for (let at = 0; at < length; at += step) h.update(zeroChunk(Math.min(step, length - at)));
    d = h.digest();
    zeroDigests.set(key, d);
  }
  return d;
}
