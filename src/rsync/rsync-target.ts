/**
 * The rsync data path as a BlockSink: the original script's path, kept for compatibility and
 * as the benchmark baseline. A data block is cut from the source (the same positioned, hashed
 * reads as every path) into a local staging file, rsync'd over the one OpenSSH ControlMaster
 * connection into the remote staging dir, then written at its offset by the ddt helper (`F`:
 * dd, flush, read back, hash, remove the file). Zero blocks (`Z`) and hashing (`H`) go straight
 * to the helper. The checksums are every path's: the source's from the reader, the target's
 * read back by the same helper code, hence the same journal.
 */
import type { BlockPayload, BlockDigest, BlockRef, BlockSink, UnitSpec } from '../block/types.js';
import { countingZeros } from '../block/zero.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import type { RemoteTarget } from '../remote/remote-target.js';
import type { RsyncSession } from './rsync-session.js';

export class RsyncSink implements BlockSink {
  constructor(
    private readonly writers: RemoteTarget,
    private readonly rsync: RsyncSession,
  ) {}

  /** Blocks in flight: one per helper worker (each stages, rsyncs, then writes its block). */
  get capacity(): number {
    return this.writers.capacity;
  }

  async writeAt(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    if (payload.kind !== 'data') return this.writers.writeAt(block, payload, algo, signal);
    const remoteFile = this.rsync.remoteFileFor(block.index);
    const zero = { bytes: 0 };
    return this.rsync.remoteSlots.add(
      async () => {
        const staged = await this.rsync.staging.stage(`block-${block.index}`, block.length, countingZeros(payload.chunks, zero), signal).catch((err: unknown) => {
          // Let the source release its buffers if the payload was never read (no-op otherwise).
          void payload.chunks[Symbol.asyncIterator]().return?.()?.catch(() => undefined);
          throw err;
        });
        try {
          await this.rsync.send(staged.path, remoteFile, block.length, signal, payload);
        } finally {
          await staged.remove();
        }
        return this.writers.writeStaged(block, remoteFile, algo, signal, { bytes: () => zero.bytes, onZeroed: payload.onZeroed });
      },
      { signal },
    );
  }

  hashAt(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    return this.writers.hashAt(block, algo, signal);
  }

  hashStream(blocks: BlockRef[], algo: ChecksumAlgo, signal: AbortSignal, units?: UnitSpec): AsyncIterable<BlockDigest> {
    return this.writers.hashStream(blocks, algo, signal, units);
  }

  get unitAlgo(): ChecksumAlgo | undefined {
    return this.writers.unitAlgo;
  }

  /** Let blocks in flight finish, then quit the helper workers (the session closes with the run). */
  async close(): Promise<void> {
    await this.writers.close();
  }

  async abort(): Promise<void> {
    await this.writers.abort();
  }
}
