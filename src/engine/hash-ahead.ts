import type { BlockDigest, BlockRef } from '../block/types.js';
import { trace } from '../trace.js';

const LOOKAHEAD = 256;

/**
 * `--skip-identical`: one end's checksums of the blocks still to do (and of their units),
 * computed ahead of the sender in block order (one pipelined stream where the end offers it, so
 * no round trip per block) and handed out as the pipeline reaches each block. Bounded: it runs at
 * most LOOKAHEAD blocks ahead of what was taken.
 */
export class HashAhead {
  private readonly ready = new Map<number, BlockDigest>();
  private readonly waiting = new Map<number, { resolve(d: BlockDigest | undefined): void }>();
  private failed = false;
  private room?: () => void;
  private finished = false;
  private readonly watchers: Array<(d: BlockDigest | undefined) => void> = [];

  /** `name`: which end, for the DDT_DEBUG trace of when its first and last checksums came. */
  constructor(stream: AsyncIterable<BlockDigest>, private readonly name: string) {
    void this.consume(stream);
  }

  /** The end's digest of a block, or undefined when it could not be had (then: send it). */
  get(index: number): Promise<BlockDigest | undefined> {
    const hit = this.ready.get(index);
    if (hit !== undefined) {
      this.ready.delete(index);
      this.room?.();
      return Promise.resolve(hit);
    }
    if (this.failed || this.finished) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiting.set(index, { resolve }));
  }

  /**
   * Hear every digest as it arrives (first those waiting to be taken), and `undefined` once the
   * stream has ended: a look at what is coming, taking nothing.
   */
  watch(fn: (d: BlockDigest | undefined) => void): void {
    for (const d of this.ready.values()) fn(d);
    if (this.finished) fn(undefined);
    else this.watchers.push(fn);
  }

  private async consume(stream: AsyncIterable<BlockDigest>): Promise<void> {
    let count = 0;
    try {
      for await (const d of stream) {
        if (count++ === 0) trace(`${this.name}'s first checksum`);
        for (const fn of this.watchers) fn(d);
        const w = this.waiting.get(d.block.index);
        if (w) {
          this.waiting.delete(d.block.index);
          w.resolve(d);
          continue;
        }
        this.ready.set(d.block.index, d);
        while (this.ready.size >= LOOKAHEAD) await new Promise<void>((r) => (this.room = r));
      }
    } catch {
      this.failed = true; // the blocks it could not hash are simply sent
    } finally {
      this.finished = true;
      trace(`${this.name}'s checksums done: ${count}`);
      for (const w of this.waiting.values()) w.resolve(undefined);
      this.waiting.clear();
      for (const fn of this.watchers.splice(0)) fn(undefined);
    }
  }
}

/**
 * An end whose stream cannot hold a worker for the whole run (it has one): a stream per block,
 * in order, so the worker is free for the blocks being sent between two of them.
 */
export async function* streamPerBlock(blocks: BlockRef[], stream: (blocks: BlockRef[]) => AsyncIterable<BlockDigest>): AsyncGenerator<BlockDigest> {
  for (const block of blocks) yield* stream([block]);
}

/** An end without a stream: its blocks hashed one by one, in order. */
export async function* oneByOne(blocks: BlockRef[], hash: (block: BlockRef) => Promise<string>): AsyncGenerator<BlockDigest> {
  for (const block of blocks) yield { block, checksum: await hash(block) };
}
