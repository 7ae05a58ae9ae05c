// Loop devices, temp dirs and deterministic test data for integration tests.
//
// Everything created here is registered with the cleanup registry, so a
// crashed or interrupted test run leaves no loop device or temp dir behind.

import { execFile, execFileSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, open, realpath, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { registerCleanup } from './hooks.js';
import { haveCommand, haveRoot } from './real.js';

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------- temp dirs

const tempDirs = new Map<string, () => void>();

/** A fresh dir under the OS temp dir; removed by removeTempDirs() or at exit. */
export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  // DDT_KEEP_TEST_DIRS=1 keeps them for post-mortem debugging.
  const unregister = registerCleanup(() => {
    if (process.env.DDT_KEEP_TEST_DIRS !== '1') rmSync(dir, { recursive: true, force: true });
  });
  tempDirs.set(dir, unregister);
  return dir;
}

/** Remove one dir made by makeTempDir now (instead of at exit). */
export async function removeTempDir(dir: string): Promise<void> {
  tempDirs.get(dir)?.();
  tempDirs.delete(dir);
  if (process.env.DDT_KEEP_TEST_DIRS !== '1') await rm(dir, { recursive: true, force: true });
}

export async function removeTempDirs(): Promise<void> {
  for (const dir of [...tempDirs.keys()]) await removeTempDir(dir);
}

// ------------------------------------------------------------- loop devices

export interface LoopDevice {
  dev: string;
  detach(): Promise<void>;
}

const attached = new Map<string, () => Promise<void>>();

export function loopAvailable(): boolean {
  return haveRoot() && haveCommand('losetup') && existsSync('/dev/loop-control');
}

// The kernel's view of which file backs a loop device (absent when free).
function backingFile(dev: string): string | undefined {
  try {
    return readFileSync(`/sys/block/${basename(dev)}/loop/backing_file`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export async function attachLoop(file: string): Promise<LoopDevice> {
  const path = await realpath(file);
  // Parallel test processes can race for the same free device; losetup then
  // fails with EBUSY and a retry picks the next one.
  let dev = '';
  for (let attempt = 1; ; attempt++) {
    try {
      dev = (await execFileP('losetup', ['--find', '--show', path])).stdout.trim();
      break;
    } catch (err) {
      if (attempt >= 5) throw err;
      await sleep(100 * attempt);
    }
  }
  // Only ever detach the device while it still backs *our* file: once
  // detached, the same number may already belong to another test process.
  const ours = () => backingFile(dev) === path;
  const unregister = registerCleanup(() => {
    if (ours()) execFileSync('losetup', ['-d', dev], { stdio: 'ignore' });
  });
  let detaching: Promise<void> | undefined;
  const detach = () =>
    (detaching ??= (async () => {
      attached.delete(dev);
      unregister();
      if (ours()) await execFileP('losetup', ['-d', dev]);
      // `losetup -d` on a device someone still holds open only sets
      // autoclear; the detach happens at the last close. Wait for it so the
      // caller can rely on "gone", and say so if a test leaks an open fd.
      for (let waited = 0; ours(); waited += 50) {
        if (waited >= 10_000) throw new Error(`${dev} still attached to ${path} (held open?)`);
        await sleep(50);
      }
    })());
  attached.set(dev, detach);
  return { dev, detach };
}

/** Detach every loop device this process attached and has not yet detached. */
export async function detachAllLoops(): Promise<void> {
  await Promise.all([...attached.values()].map((detach) => detach()));
}

// --------------------------------------------------------- test data files

export type Fill = 'random' | 'zero' | 'text' | 'mixed';

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
function* mixedRuns(size: number, seed: number): Generator<Run> {
  const next = xorshift32(seed ^ 0x5eed);
  const maxRun = Math.max(4096, Math.min(40 << 20, Math.floor(size / 8 / 4096) * 4096));
  const minRun = Math.max(4096, Math.floor(maxRun / 10 / 4096) * 4096);
  for (let left = size; left > 0; ) {
    const pick = next() % 10;
    const kind = pick < 4 ? 'random' : pick < 8 ? 'zero' : 'text';
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

/**
 * Write `size` bytes of deterministic data (same fill + seed → same bytes).
 * Regular files are recreated and zero runs are left as holes (they read as
 * zeros, and a 16 GiB mostly-zero image costs nothing); on a block device the
 * zeros are written.
 */
export async function fileOfSize(path: string, size: number, fill: Fill, seed = 1): Promise<void> {
  const isDevice = await stat(path).then((s) => s.isBlockDevice(), () => false);
  const fh = await open(path, isDevice ? 'r+' : 'w');
  try {
    const key = createHash('sha256').update(`ddt-test-data:${seed}`).digest();
    const keystream = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
    const pool = fill === 'text' || fill === 'mixed' ? textPool(seed) : Buffer.alloc(0);
    const nextText = xorshift32(seed ^ 0x1e47);
    const runs: Iterable<Run> = fill === 'mixed' ? mixedRuns(size, seed) : [{ kind: fill, length: size }];
    let pos = 0;
    for (const run of runs) {
      for (let done = 0; done < run.length; ) {
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

/** Hex sha256 of the first `length` bytes (default: all) of a file or device. */
export async function sha256File(path: string, length?: number): Promise<string> {
  const hash = createHash('sha256');
  if (length === 0) return hash.digest('hex');
  const stream = createReadStream(path, { start: 0, end: length === undefined ? undefined : length - 1, highWaterMark: CHUNK });
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
