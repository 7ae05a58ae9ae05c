import { promisify } from 'node:util';
import { gzip as gzipCb, constants } from 'node:zlib';
import type { BlockPart } from '../block/types.js';
import { isZero } from '../block/zero.js';
import type { CompressMode } from '../journal/records.js';

const gzip = promisify(gzipCb);

/** A part is sent compressed only when it shrinks at least this much. */
const WORTH_IT = 0.9;
/** In `auto`, re-test compression on one part in this many while it is not paying. */
const PROBE_EVERY = 16;
/** In `auto`, one block in this many sent whole lends a chunk to measure gzip (the first one too). */
const SAMPLE_BLOCKS = 16;

export class CompressionPolicy {
  private gzipBytes = 0;
  private gzipMs = 0;
  private wireBytes = 0;
  private wireSince?: number;
  private recentRatio = 0.5;
  private skipped = 0;
  private wholeBlocks = 0;

  constructor(readonly mode: CompressMode) {}

  /** Writers report bytes they put on the link, so `auto` knows the link's speed (all channels). */
  noteWire(bytes: number): void {
    this.wireSince ??= performance.now();
    this.wireBytes += bytes;
  }

  private shouldTry(): boolean {
    if (this.mode === 'none') return false;
    if (this.mode === 'gzip') return true;
    // auto: keep compressing while it pays; otherwise probe now and then, things change.
    // Compression pays when the link, all channels together, is slower than one gzip thread:
    // then the CPU spent shrinking buys more than it costs. On a fast link it only slows us.
    const gzipRate = this.gzipMs > 0 ? this.gzipBytes / this.gzipMs : Infinity;
    const elapsed = this.wireSince === undefined ? 0 : performance.now() - this.wireSince;
    const wireRate = elapsed > 1000 ? this.wireBytes / elapsed : 0;
    if (elapsed > 1000 && this.recentRatio < WORTH_IT && wireRate < gzipRate) return true;
    return ++this.skipped % PROBE_EVERY === 0;
  }

  /**
   * Send this block as parts (zero runs as commands, gzip where it shrinks) rather than whole?
   * Parts cost the target one dd per 1 MiB part and the sender a request each, worth it only
   * while bytes on the link are dear. `auto` sends whole blocks until the link, all channels
   * together, is measured slower than gzip (measured on samples, see `sampled`), then parts.
   * On loopback whole blocks ran a 2 GiB mixed image at 0.84× the time of `dd | ssh dd`
   * against 1.27× as parts.
   */
  wantsParts(): boolean {
    if (this.mode === 'none') return false;
    if (this.mode === 'gzip') return true;
    const elapsed = this.wireSince === undefined ? 0 : performance.now() - this.wireSince;
    if (elapsed <= 1000 || this.gzipMs === 0) return false;
    return this.wireBytes / elapsed < this.gzipBytes / this.gzipMs;
  }

  /**
   * `auto`, a block sent whole: its chunks as they are, but one block in SAMPLE_BLOCKS (the
   * first one too) lends a copy of its first non-zero chunk to gzip in zlib's thread pool, off
   * the data path, so gzip's speed and the data's ratio are known when the link turns slow.
   * The other blocks' chunks pass untouched (no extra step per chunk).
   */
  sampled(chunks: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
    if (this.mode !== 'auto' || this.wholeBlocks++ % SAMPLE_BLOCKS !== 0) return chunks;
    return this.lendSample(chunks);
  }

  private async *lendSample(chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    let sample = true;
    for await (const chunk of chunks) {
      if (sample && !isZero(chunk)) {
        sample = false;
        // A copy: the reader reuses the chunk's buffer once the next one is asked for.
        this.measured = this.measure(Buffer.from(chunk)).catch(() => undefined);
      }
      yield chunk;
    }
  }

  /** The latest sample's gzip (tests wait for it). */
  measured: Promise<unknown> = Promise.resolve();

  private async measure(chunk: Buffer): Promise<void> {
    const t0 = performance.now();
    const packed = await gzip(chunk, { level: constants.Z_BEST_SPEED });
    this.noteGzip(chunk.length, packed.length, performance.now() - t0);
  }

  private noteGzip(bytes: number, packedBytes: number, ms: number): void {
    this.gzipMs += ms;
    this.gzipBytes += bytes;
    this.recentRatio = this.recentRatio * 0.7 + (packedBytes / bytes) * 0.3;
  }

  /** Turn a chunk of a block into a part: zeros as a command, else raw or gzip. */
  async part(offset: number, chunk: Buffer): Promise<BlockPart> {
    if (isZero(chunk)) return { kind: 'zero', offset, length: chunk.length };
    if (!this.shouldTry()) return { kind: 'raw', offset, length: chunk.length, data: chunk };
    const t0 = performance.now();
    const packed = await gzip(chunk, { level: constants.Z_BEST_SPEED });
    this.noteGzip(chunk.length, packed.length, performance.now() - t0);
    return packed.length / chunk.length < WORTH_IT ? { kind: 'gzip', offset, length: chunk.length, data: packed } : { kind: 'raw', offset, length: chunk.length, data: chunk };
  }

  /** Raw parts (a delta's) compressed where that pays, the others as they are. */
  async *repack(parts: AsyncIterable<BlockPart>): AsyncGenerator<BlockPart> {
    for await (const p of parts) yield p.kind === 'raw' ? await this.part(p.offset, p.data) : p;
  }

  /** The parts of a block, in order, from its payload chunks. */
  async *parts(blockOffset: number, chunks: AsyncIterable<Buffer>): AsyncGenerator<BlockPart> {
    let pos = blockOffset;
    for await (const chunk of chunks) {
      yield await this.part(pos, chunk);
      pos += chunk.length;
    }
  }
}
