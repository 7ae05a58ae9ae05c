import type { BlockHasher, BlockRef } from '../block/types.js';
import type { ChecksumAlgo } from '../checksum/types.js';

const LOOKAHEAD = 256;

/**
 * `--skip-identical`: the target's checksums of the blocks still to do, computed ahead of the
 * sender in block order (one pipelined stream where the target offers it, so no round trip per
 * block) and handed out as the pipeline reaches each block. Bounded: it runs at most LOOKAHEAD
 * blocks ahead of what was taken.
 */
export class HashAhead {
  private readonly ready = new Map<number, string>();
  private readonly waiting = new Map<number, { resolve(s: string | undefined): void }>();
  private failed = false;
  private room?: () => void;
  private finished = false;

  constructor(blocks: BlockRef[], hasher: BlockHasher, algo: ChecksumAlgo, signal: AbortSignal) {
    const stream = hasher.hashStream?.(blocks, algo, signal) ?? sequential(blocks, hasher, algo, signal);
    void this.consume(stream);
  }

  /** The target's checksum of a block, or undefined when it could not be had (then: send it). */
  get(index: number): Promise<string | undefined> {
    const hit = this.ready.get(index);
    if (hit !== undefined) {
      this.ready.delete(index);
      this.room?.();
      return Promise.resolve(hit);
    }
    if (this.failed || this.finished) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiting.set(index, { resolve }));
  }

  private async consume(stream: AsyncIterable<{ block: BlockRef; checksum: string }>): Promise<void> {
    try {
      for await (const { block, checksum } of stream) {
        const w = this.waiting.get(block.index);
        if (w) {
          this.waiting.delete(block.index);
          w.resolve(checksum);
          continue;
        }
        this.ready.set(block.index, checksum);
        while (this.ready.size >= LOOKAHEAD) await new Promise<void>((r) => (this.room = r));
      }
    } catch {
      this.failed = true; // the blocks it could not hash are simply sent
    } finally {
      this.finished = true;
      for (const w of this.waiting.values()) w.resolve(undefined);
      this.waiting.clear();
    }
  }
}

async function* sequential(blocks: BlockRef[], hasher: BlockHasher, algo: ChecksumAlgo, signal: AbortSignal): AsyncGenerator<{ block: BlockRef; checksum: string }> {
  for (const block of blocks) yield { block, checksum: await hasher.hashAt(block, algo, signal) };
}
