/**
 * `--engine rsync` as a target writer: the original script's path, kept for compatibility and
 * as the benchmark baseline. A data block is cut from the source (the same positioned, hashed
 * reads as the native engine) into a local staging file, rsync'd over the one OpenSSH
 * ControlMaster connection into the remote staging dir, then written at its offset by the ddt
 * helper (`F`: dd, flush, read back, hash, remove the file). Zero blocks (`Z`) and hashing
 * (`H`) go straight to the helper. The checksums are the native engine's: the source's from
 * the reader, the target's read back by the same helper code, hence the same journal.
 */
import type { ChecksumAlgo } from '../checksum/types.js';
import type { JobHeader } from '../journal/records.js';
import type { RemoteHelper } from '../remote/helper.js';
import { RemoteTargetWriter } from '../remote/remote-target.js';
import { throttled, type TokenBucket } from '../transport/bwlimit.js';
import type { RsyncSession } from './rsync-session.js';
import type { BlockPayload, BlockRef, TargetHasher, TargetWriter } from './types.js';

export class RsyncTargetWriter implements TargetWriter, TargetHasher {
  private constructor(
    private readonly helpers: RemoteTargetWriter,
    private readonly rsync: RsyncSession,
    private readonly bucket: TokenBucket | undefined,
  ) {}

  static async open(helper: RemoteHelper, rsync: RsyncSession, target: string, o: { workers: number; signal: AbortSignal; bucket?: TokenBucket }): Promise<RsyncTargetWriter> {
    const helpers = await RemoteTargetWriter.open(helper, target, { workers: o.workers, signal: o.signal });
    return new RsyncTargetWriter(helpers, rsync, o.bucket);
  }

  /** Blocks in flight: one per helper worker (each stages, rsyncs, then writes its block). */
  get workers(): number {
    return this.helpers.workers;
  }

  async writeAt(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    if (payload.kind === 'zero') return this.helpers.writeAt(block, payload, algo, signal);
    const remoteFile = this.rsync.remoteFileFor(block.index);
    await this.rsync.remoteSlots.acquire(signal);
    try {
      // --bwlimit: the bytes rsync sends next are paced as they are staged (the average holds).
      const chunks = throttled(payload.chunks, this.bucket, (c) => c.length, signal);
      const staged = await this.rsync.staging.stage(`block-${block.index}`, block.length, chunks, signal).catch((err: unknown) => {
        // Let the source release its buffers if the payload was never read (no-op otherwise).
        void payload.chunks[Symbol.asyncIterator]().return?.()?.catch(() => undefined);
        throw err;
      });
      let wire: number;
      try {
        wire = await this.rsync.send(staged.path, remoteFile, block.length, signal);
      } finally {
        await staged.remove();
      }
      payload.onWire?.(wire);
      return await this.helpers.writeStaged(block, remoteFile, algo, signal);
    } finally {
      this.rsync.remoteSlots.release();
    }
  }

  async hashAt(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    return this.helpers.hashAt(block, algo, signal);
  }

  hashStream(blocks: BlockRef[], algo: ChecksumAlgo, signal: AbortSignal): AsyncIterable<{ block: BlockRef; checksum: string }> {
    return this.helpers.hashStream(blocks, algo, signal);
  }

  /** Let blocks in flight finish, then quit the helper workers (the session closes with the run). */
  async close(): Promise<void> {
    await this.helpers.close();
  }

  async abort(): Promise<void> {
    await this.helpers.abort();
  }
}

/** The writer for a job whose (effective) engine is rsync; the session was set up beforehand. */
export async function openRsyncWriter(
  header: JobHeader,
  helper: RemoteHelper,
  rsync: RsyncSession | undefined,
  o: { channels: number; signal: AbortSignal; bucket?: TokenBucket },
): Promise<RsyncTargetWriter> {
  if (!rsync) throw new Error('the rsync engine was not set up for this run');
  await rsync.ensureRemoteDir(o.signal);
  return RsyncTargetWriter.open(helper, rsync, header.target.path, { workers: o.channels, signal: o.signal, bucket: o.bucket });
}
