export type ChecksumAlgo = 'xxh64' | 'sha256';
export const CHECKSUM_ALGOS: readonly ChecksumAlgo[] = ['xxh64', 'sha256'];
