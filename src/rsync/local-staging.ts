/**
 * Local staging for the rsync engine: each block is cut from the source into a file here, sent
 * with rsync, then removed. Free-space control: a block is staged only when the filesystem's
 * free space, minus a reserve, holds it together with every block still being written; else it
 * waits for a staged block to go. When not even one block fits, setup refuses (exit 2).
 */
import { mkdtemp, open, rm, stat, statfs, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { formatBytes } from '../format.js';
import { resolveReserve } from '../remote/staging-space.js';
import { DdtError } from '../errors.js';

/** Space others free is noticed by polling; our own removals wake waiters at once. */
const POLL_MS = 1000;

export interface StagedFile {
  path: string;
  remove(): Promise<void>;
}

interface Space {
  free: number;
  reserve: number;
}

/**
 * The remote staging dir's default reserve (`--remote-reserve`: the smaller of 1 GiB and 10 % of
 * the filesystem): a staging dir is often on / or /tmp, and filling it to the last byte breaks
 * other programs (and our own journal).
 */
async function spaceOf(dir: string): Promise<Space> {
  const s = await statfs(dir);
  return { free: s.bavail * s.bsize, reserve: resolveReserve(undefined, s.blocks * s.bsize) };
}

/** Name prefix of a job's local staging dirs. */
export function stagingPrefix(jobId: string): string {
  return `ddt-stage-${jobId.slice(0, 64)}-`;
}

export class LocalStaging {
  /** Bytes of blocks being written (not yet counted in the filesystem's free space). */
  private pending = 0;
  /** Staged files on disk. */
  private held = 0;
  private waiters: Array<() => void> = [];
  private closed = false;

  private constructor(readonly dir: string) {}

  /**
   * A private dir (mode 700) `ddt-stage-<jobId>-XXXXXX` inside `parent` [the system temp dir],
   * refused (exit 2) when `largestBlock` does not fit there. The job id in the name lets a
   * resume find what a killed run left (`removeRsyncLeftovers`).
   */
  static async open(parent: string | undefined, largestBlock: number, jobId: string): Promise<LocalStaging> {
    const base = resolve(parent ?? tmpdir());
    const st = await stat(base).catch(() => undefined);
    if (!st?.isDirectory()) throw new DdtError('BAD_PATH', `local staging dir ${base} does not exist or is not a directory: check --local-dir`);
    const prefix = stagingPrefix(jobId);
    const { free, reserve } = await spaceOf(base);
    if (free - reserve < largestBlock) {
      throw new DdtError(
      'STAGING_SPACE',
        `local staging dir ${base} has ${formatBytes(free)} free; a block needs ${formatBytes(largestBlock)} plus ${formatBytes(reserve)} kept free: use --local-dir on a larger filesystem or a smaller --block-size`,
      );
    }
    let dir: string;
    try {
      dir = await mkdtemp(join(base, prefix));
    } catch (err) {
      throw new DdtError('BAD_PATH', `cannot create a staging dir in ${base}: ${(err as Error).message}`, { cause: err });
    }
    return new LocalStaging(dir);
  }

  /** Write a block's chunks into a staged file of exactly `length` bytes (waits for space first). */
  async stage(name: string, length: number, chunks: AsyncIterable<Buffer>, signal: AbortSignal): Promise<StagedFile> {
    await this.reserve(length, signal);
    const path = join(this.dir, name);
    let counted = true;
    try {
      const fh = await open(path, 'w', 0o600);
      let written = 0;
      try {
        for await (const chunk of chunks) {
          signal.throwIfAborted();
          for (let at = 0; at < chunk.length; ) {
            const { bytesWritten } = await fh.write(chunk, at, chunk.length - at);
            at += bytesWritten;
          }
          written += chunk.length;
        }
      } finally {
        await fh.close();
      }
      if (written !== length) throw new Error(`staged block ${name} has ${written} of ${length} bytes`);
      this.pending -= length;
      counted = false;
      this.held++;
    } catch (err) {
      if (counted) this.pending -= length;
      await unlink(path).catch(() => undefined);
      this.wake();
      throw err;
    }
    let removed = false;
    return {
      path,
      remove: async () => {
        if (removed) return;
        removed = true;
        await unlink(path).catch(() => undefined);
        this.held--;
        this.wake();
      },
    };
  }

  /** Remove the staging dir and whatever is still in it. */
  async close(): Promise<void> {
    this.closed = true;
    this.wake();
    await rm(this.dir, { recursive: true, force: true });
  }

  // ---------------------------------------------------------------------------------------

  private async reserve(length: number, signal: AbortSignal): Promise<void> {
    for (;;) {
      signal.throwIfAborted();
      if (this.closed) throw new Error('local staging is closed');
      const { free, reserve } = await spaceOf(this.dir);
      if (free - reserve - this.pending >= length) {
        this.pending += length;
        return;
      }
      if (this.pending === 0 && this.held === 0) {
        // Nothing of ours will free space: someone else filled the disk since setup.
        throw new DdtError('STAGING_FULL', `local staging dir ${this.dir} has ${formatBytes(free)} free, a block needs ${formatBytes(length)} plus ${formatBytes(reserve)} kept free`);
      }
      await this.waitForSpace(signal);
    }
  }

  private waitForSpace(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve();
      };
      const onAbort = () => {
        done();
        reject(signal.reason);
      };
      const timer = setTimeout(done, POLL_MS);
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(done);
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}
