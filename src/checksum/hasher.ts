import { createHash } from 'node:crypto';
import xxhashInit from 'xxhash-wasm';
import type { ChecksumAlgo } from './types.js';

/** Incremental hasher whose digest is the lowercase hex string `xxhsum -H64` / `sha256sum` print. */
export interface StreamHasher {
  update(data: Uint8Array): void;
  digest(): string;
}

type XxhashApi = Awaited<ReturnType<typeof xxhashInit>>;
let xxhashApi: XxhashApi | undefined;

/** xxhash-wasm compiles its module asynchronously; call once before creating hashers. */
export async function initChecksums(): Promise<void> {
  xxhashApi ??= await xxhashInit();
}

export function createHasher(algo: ChecksumAlgo): StreamHasher {
  if (algo === 'sha256') {
    const h = createHash('sha256');
    return { update: (d) => void h.update(d), digest: () => h.digest('hex') };
  }
  if (!xxhashApi) throw new Error('initChecksums() was not awaited before createHasher(xxh64)');
  const h = xxhashApi.create64();
  return {
    update: (d) => void h.update(d),
    // toString(16) drops leading zeros (about 1 hash in 16): pad to what xxhsum prints.
    digest: () => h.digest().toString(16).padStart(16, '0'),
  };
}

/** One-shot checksum of a buffer. */
export function checksumOf(algo: ChecksumAlgo, data: Uint8Array): string {
  const h = createHasher(algo);
  h.update(data);
  return h.digest();
}
