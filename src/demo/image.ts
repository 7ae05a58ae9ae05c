/**
 * Deterministic disk images for `ddt demo`, the tests (test/harness/loop.ts re-exports this) and
 * the benchmarks (benchmarks/make-image.mjs runs the built copy): `mixed` is the benchmarks' image,
 * ≈ 40 % random, 40 % zeros, 20 % text in runs of 4–40 MiB.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';

export type Fill = 'random' | 'zero' | 'text' | 'mixed' | 'sparse';

const CHUNK = 4 << 20;
const ZEROS = Buffer.alloc(CHUNK);

// xorshift32: tiny, fast and identical on every platform; drives layout and
// text choices. Bulk random bytes come from AES-CTR (GB/s, also seedable).
function xorshift32(seed: number): () => number {
  let x = (Math.imul(seed | 0, 0x9e3779b9) ^ 0x2545f491) >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
}

interface Run {
  kind: 'random' | 'zero' | 'text';
  length: number;
}

// Mixed layout as in the benchmarks (≈ 40 % random, 40 % zeros, 20 % text),
// with run lengths scaled to the file: 4–40 MiB for 1 GiB and up, smaller for
// small files so they still contain every kind. Runs are 4 KiB aligned so
// whole zero blocks exist for zero detection at any block size ≥ 4 KiB.
// `sparse`: the same layout with ≈ 5 % random data and the rest zeros (the benchmarks' mostly-zero image).
function* mixedRuns(size: number, seed: number, sparse = false): Generator<Run> {
  const next = xorshift32(seed ^ 0x5eed);
  const maxRun = Math.max(4096, Math.min(40 << 20, Math.floor(size / 8 / 4096) * 4096));
  const minRun = Math.max(4096, Math.floor(maxRun / 10 / 4096) * 4096);
  for (let left = size; left > 0; ) {
    const pick = next() % 10;
    const kind = sparse ? (next() % 20 === 0 ? 'random' : 'zero') : pick < 4 ? 'random' : pick < 8 ? 'zero' : 'text';
    const span = minRun + Math.floor(((next() % 1_000_000) / 1_000_000) * (maxRun - minRun));
    const length = Math.min(left, Math.max(4096, span - (span % 4096)));
    yield { kind, length };
    left -= length;
  }
}

const WORDS = ('block device verify journal resume checksum transfer remote target source sector ' +
  'offset length channel connection stream helper the a of to and in is it for on with').split(' ');

// 1 MiB of pseudo-text lines; text runs copy pieces of it from random
// offsets, which is fast and compresses like real text.
function textPool(seed: number): Buffer {
  const next = xorshift32(seed ^ 0x7e47);
  const parts: string[] = [];
  let size = 0;
  while (size < 1 << 20) {
    const words = 4 + (next() % 12);
    let line = `${next() % 100000} `;
    for (let i = 0; i < words; i++) line += WORDS[next() % WORDS.length] + (i + 1 < words ? ' ' : '\n');
    parts.push(line);
    size += line.length;
  }
  return Buffer.from(parts.join(''), 'ascii');
}

function textChunk(pool: Buffer, next: () => number, n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  for (let at = 0; at < n; ) {
    const piece = Math.min(n - at, 4096 + (next() % 61440));
    const from = next() % (pool.length - piece + 1);
    pool.copy(out, at, from, from + piece);
    at += piece;
  }
  return out;
}

export interface ImageOptions {
  /** checked between chunks: a generator of gigabytes must stop on Ctrl-C */
  signal?: AbortSignal;
  /** bytes laid out so far, after every chunk */
  onProgress?: (done: number) => void;
}

/**
 * Write `size` bytes of deterministic data (same fill + seed → same bytes).
 * Regular files are recreated and zero runs are left as holes (they read as
 * zeros, and a 16 GiB mostly-zero image costs nothing); on a block device the
 * zeros are written.
 */
export async function writeImage(path: string, size: number, fill: Fill, seed = 1, opts: ImageOptions = {}): Promise<void> {
  const isDevice = await stat(path).then((s) => s.isBlockDevice(), () => false);
  const fh = await open(path, isDevice ? 'r+' : 'w');
  try {
    const key = createHash('sha256').update(`ddt-test-data:${seed}`).digest();
    const keystream = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
    const pool = fill === 'text' || fill === 'mixed' ? textPool(seed) : Buffer.alloc(0);
    const nextText = xorshift32(seed ^ 0x1e47);
    const runs: Iterable<Run> = fill === 'mixed' || fill === 'sparse' ? mixedRuns(size, seed, fill === 'sparse') : [{ kind: fill, length: size }];
    let pos = 0;
    for (const run of runs) {
      for (let done = 0; done < run.length; ) {
        opts.signal?.throwIfAborted();
        opts.onProgress?.(pos);
        const n = Math.min(CHUNK, run.length - done);
        if (run.kind === 'random') await fh.write(keystream.update(ZEROS.subarray(0, n)), 0, n, pos);
        else if (run.kind === 'text') await fh.write(textChunk(pool, nextText, n), 0, n, pos);
        else if (isDevice) await fh.write(ZEROS, 0, n, pos);
        done += n;
        pos += n;
      }
    }
    if (!isDevice) await fh.truncate(size); // sets the size past a trailing hole
  } finally {
    await fh.close();
  }
}
