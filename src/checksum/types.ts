export type ChecksumAlgo = 'xxh64' | 'sha256';
export const CHECKSUM_ALGOS: readonly ChecksumAlgo[] = ['xxh64', 'sha256'];

/** Digest length in hex digits, as `xxhsum -H64` and `sha256sum` print them. */
const HEX_LENGTH: Record<ChecksumAlgo, number> = { xxh64: 16, sha256: 64 };

/** Is `s` a digest of `algo` as the shell tools print it (lowercase hex, full length)? */
export function isDigest(algo: ChecksumAlgo, s: string): boolean {
  return s.length === HEX_LENGTH[algo] && /^[0-9a-f]+$/.test(s);
}
