import { constants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { createHasher } from '../checksum/hasher.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import type { BlockPart, BlockRef, BlockSource, ByteRange, OpenedBlock, UnitSpec } from '../block/types.js';
import { BlockDigester } from '../checksum/block-digest.js';
import { isZero, zeroChunk, zeroDigest } from '../block/zero.js';
import { DdtError } from '../errors.js';
import { mergeRanges } from '../plan/block-plan.js';
import { alignedBuffer } from './aligned.js';
import { dataRanges, touches } from './holes.js';
import { hashLocally, localHasher } from './local-hasher.js';
import { isMediaError, SectorRescue } from './sector-rescue.js';

// 1 MiB: the read size made no measurable difference from 64 KiB to 4 MiB, and smaller
// chunks bound memory per channel and let zero runs inside a block travel as commands.
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;

export interface BlockReaderOptions {
  /**
   * `--noerror`: when a chunk read fails with a media error (EIO), re-read it sector by sector,
   * fill the unreadable sectors with zeros and report them as bad ranges instead of failing.
   */
  noerror?: boolean;
  /** Granularity of that re-read: the source's logical sector size [512]. */
  sectorSize?: number;
}


/** Spare chunk buffers kept for reuse (beyond that, finished blocks' buffers go to the GC). */
const SPARE_MAX = 64;
/** The most bytes of a delta's data run that go as one part (one process on the target). */
const PART_MAX = 8 * 1024 * 1024;
/** Such buffers kept for reuse: about the deltas in flight at once (one per block worker). */
const SPARE_RUNS_MAX = 8;
/** What an O_DIRECT read's offset, length and memory are aligned to (any logical sector divides it). */
const DIRECT_ALIGN = 4096;

/**
 * Whether a local source is read O_DIRECT: a block device is (see BlockReader's `direct`), unless
 * DDT_SOURCE_DIRECT=off asks for the page cache, for comparisons and the warning's test.
 */
export function readsDirect(blockDevice: boolean): boolean {
  return blockDevice && process.env.DDT_SOURCE_DIRECT !== 'off';
}

/**
 * Positioned reads of a source in chunks. A block streams through: it is hashed chunk by chunk
 * and never held whole, so memory is bounded by chunks in flight, not by block size.
 */
export class BlockReader implements BlockSource {
  /** A local device serves as many blocks at once as are asked for. */
  readonly capacity = Infinity;
  readonly noerror: boolean;
  readonly sectorSize: number;
  private readonly rescuer: SectorRescue;
  /**
   * Chunk buffers of finished blocks, reused by the next ones. A fresh 1 MiB buffer per chunk
   * made V8 run a major GC every few dozen MiB (external memory): ≈ 1 CPU-s per GiB of the
   * sender's ≈ 2.5 on loopback.
   */
  private readonly spare: Buffer[] = [];
  /** Buffers of deltas' data runs, kept for the next delta (their pages are touched already). */
  private readonly spareRuns: Buffer[] = [];
  /** Bytes of the source's holes that were never read (they read as zeros). */
  holeBytes = 0;
  /**
   * A block device's source, opened once more with O_DIRECT: its bytes come from the device.
   * Through the page cache a device that holds a mounted filesystem (even remounted read-only or
   * frozen for the last pass of a live copy) can answer with blocks that are not what is on it:
   * a cached copy from an earlier read that the filesystem's own writes went around (seen with
   * ext4's journal superblock; dropping the caches does not help while it is mounted). Undefined
   * for files (their cache is the file), and where the device or the memory will not do.
   */
  private direct?: FileHandle;
  /** That handle, closed at the end (reads may still be in flight on it when `direct` is dropped). */
  private readonly directHandle?: FileHandle;
  /** The memory of buffers allocated on a 4 KiB boundary, the only ones `direct` reads into. */
  private readonly alignedMemory = new WeakSet<ArrayBufferLike>();

  /**
   * Why a block device is read through the page cache after all (the device refused O_DIRECT at
   * open, no aligned memory, or DDT_SOURCE_DIRECT=off). Undefined where it is read O_DIRECT, and
   * for files.
   */
  readonly cachedBecause?: string;

  /** The warning a run gives when `cachedBecause` is set. */
  get cacheWarning(): string | undefined {
    if (!this.cachedBecause) return undefined;
    return `source ${this.path} is read through the page cache (${this.cachedBecause}): blocks a mounted filesystem on it wrote may read stale there; unmount it for the last pass`;
  }

  /** `--skip-identical`: checksums from ddt-hash here (not with --noerror: only this reader zero-fills). */
  readonly hashStream?: BlockSource['hashStream'];

  private constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    private readonly chunkSize: number,
    opts: BlockReaderOptions,
    /** A regular file: its holes are asked for (SEEK_DATA) and never read. */
    private readonly sparseFile: boolean,
    /** A block device: read O_DIRECT here through `direct` (where it opened so) and by ddt-hash. */
    device: { direct?: FileHandle; cachedBecause?: string } | undefined,
  ) {
    const direct = device?.direct;
    this.cachedBecause = device?.cachedBecause;
    this.direct = this.directHandle = direct;
    this.noerror = opts.noerror ?? false;
    this.sectorSize = opts.sectorSize ?? 512;
    this.rescuer = new SectorRescue(fh, path, this.sectorSize);
    const bin = this.noerror ? undefined : localHasher();
    // ddt-hash reads a device O_DIRECT where this reader does, for the same reason; a file
    // through the page cache, where it may well be already.
    if (bin) this.hashStream = (blocks, algo, signal, units) => hashLocally(bin, path, blocks, algo, signal, units, !direct);
  }

  static async open(path: string, chunkSize = DEFAULT_CHUNK_SIZE, opts: BlockReaderOptions = {}): Promise<BlockReader> {
    const ss = opts.sectorSize ?? 512;
    if (!Number.isSafeInteger(ss) || ss < 512 || ss > 65536 || (ss & (ss - 1)) !== 0) {
      throw new RangeError(`sector size ${ss} is not a power of two between 512 and 64K`);
    }
    const fh = await fs.open(path, 'r');
    const st = await fh.stat().catch(() => undefined);
    let device: { direct?: FileHandle; cachedBecause?: string } | undefined;
    if (st?.isBlockDevice()) {
      device = {};
      if (!readsDirect(true)) device.cachedBecause = 'DDT_SOURCE_DIRECT=off';
      else {
        try {
          alignedBuffer(4096);
          device.direct = await fs.open(path, constants.O_RDONLY | constants.O_DIRECT);
        } catch (err) {
          device.cachedBecause = `no O_DIRECT: ${(err as Error).message}`;
        }
      }
    }
    return new BlockReader(fh, path, chunkSize, opts, st?.isFile() ?? false, device);
  }

  /** A buffer for chunks: on a 4 KiB boundary where this source is read O_DIRECT. */
  private buffer(length: number): Buffer {
    if (this.direct) {
      try {
        const b = alignedBuffer(length);
        this.alignedMemory.add(b.buffer);
        return b;
      } catch {
        this.direct = undefined; // out of address space: through the cache from now on
      }
    }
    return Buffer.allocUnsafeSlow(length);
  }

  /** Can `length` bytes at `offset` go into `buf` at `at` with O_DIRECT? */
  private directFits(buf: Buffer, at: number, offset: number, length: number): boolean {
    return this.alignedMemory.has(buf.buffer) && (buf.byteOffset + at) % DIRECT_ALIGN === 0 && offset % DIRECT_ALIGN === 0 && length % DIRECT_ALIGN === 0;
  }

  /**
   * The data ranges of a block (the rest are holes), or undefined to read it all: not a file,
   * no addon, a filesystem that does not say. Asked when the block is opened: a file being
   * written meanwhile is not a source ddt can prove anyway.
   */
  private dataOf(block: BlockRef): ByteRange[] | undefined {
    return this.sparseFile ? dataRanges(this.fh.fd, block.offset, block.offset + block.length) : undefined;
  }

  /** A chunk: read, or the shared zeros where it lies wholly in a hole (counted, not read). */
  private chunkAt(data: ByteRange[] | undefined, offset: number, length: number, bad: ByteRange[], into?: Buffer): Promise<Buffer> {
    if (data && !touches(data, offset, length)) {
      this.holeBytes += length;
      return Promise.resolve(zeroChunk(length));
    }
    return this.readChunk(offset, length, bad, into);
  }

  async close(): Promise<void> {
    await this.rescuer.close();
    await this.directHandle?.close();
    await this.fh.close();
  }

  /**
   * Read exactly `length` bytes at `offset` into a fresh buffer, or into the start of `into`
   * (short source = error). With `noerror` and a `badRanges` list, a media error does not
   * throw: the rest of the chunk is re-read sector by sector, unreadable sectors become zeros
   * and are appended to the list.
   */
  async readChunk(offset: number, length: number, badRanges?: ByteRange[], into?: Buffer): Promise<Buffer> {
    const buf = into ? into.subarray(0, length) : this.buffer(length);
    let done = 0;
    while (done < length) {
      let bytesRead: number;
      const direct = this.direct && this.directFits(buf, done, offset + done, length - done) ? this.direct : undefined;
      try {
        ({ bytesRead } = await (direct ?? this.fh).read(buf, done, length - done, offset + done));
      } catch (err) {
        if (direct && (err as NodeJS.ErrnoException).code === 'EINVAL') {
          // The device takes O_DIRECT at open but not these reads: through the cache from now on.
          this.direct = undefined;
          continue;
        }
        if (this.noerror && badRanges && isMediaError(err)) {
          await this.rescuer.rescue(buf, offset, offset + done, offset + length, badRanges);
          return buf;
        }
        throw new DdtError('SOURCE_READ', `cannot read source ${this.path} at byte ${offset + done}: ${(err as Error).message}`, { cause: err });
      }
      if (bytesRead === 0) throw new DdtError('SOURCE_READ', `source ${this.path} ended early at byte ${offset + done}: did it shrink?`);
      done += bytesRead;
    }
    return buf;
  }


  /**
   * Open a block: read leading chunks until one is not all zeros. A block that is zero to the
   * end becomes a `zero` payload (sent as a command, not data); otherwise the zeros seen so far
   * are replayed from a shared buffer and the rest is read as the consumer pulls.
   */
  async openBlock(block: BlockRef, algo: ChecksumAlgo): Promise<OpenedBlock> {
    const data = this.dataOf(block);
    if (data?.length === 0) {
      // All hole: zeros by definition, their checksum known without reading a byte.
      this.holeBytes += block.length;
      return { payload: { kind: 'zero' }, checksum: Promise.resolve(zeroDigest(algo, block.length)), badRanges: Promise.resolve([]) };
    }
    const hasher = createHasher(algo);
    const bad: ByteRange[] = [];
    // One buffer per open block, every chunk read into it: a consumer is done with a chunk when
    // it asks for the next one (it has written it to a file or channel, or copied it into SSH
    // packets), so the next read may overwrite it.
    const buf = this.spare.pop() ?? this.buffer(this.chunkSize);
    const giveBack = () => {
      if (this.spare.length < SPARE_MAX) this.spare.push(buf);
    };
    let pos = 0;
    let firstData: Buffer | undefined;
    try {
      while (pos < block.length) {
        const len = Math.min(this.chunkSize, block.length - pos);
        const chunk = await this.chunkAt(data, block.offset + pos, len, bad, buf);
        hasher.update(chunk);
        if (!isZero(chunk)) {
          firstData = chunk;
          break;
        }
        pos += len;
      }
    } catch (err) {
      giveBack();
      throw err;
    }
    if (!firstData) {
      giveBack();
      return { payload: { kind: 'zero' }, checksum: Promise.resolve(hasher.digest()), badRanges: Promise.resolve(mergeRanges(bad)) };
    }

    let resolveSum!: (s: string) => void;
    let rejectSum!: (e: unknown) => void;
    const checksum = new Promise<string>((res, rej) => {
      resolveSum = res;
      rejectSum = rej;
    });
    // Callers that never consume the payload (an aborted send) must not see an unhandled rejection.
    checksum.catch(() => {});
    const badRanges = checksum.then(() => mergeRanges(bad));
    badRanges.catch(() => {});
    const zeroPrefix = pos;
    const first = firstData;
    const chunkSize = this.chunkSize;
    const read = (offset: number, length: number) => this.chunkAt(data, offset, length, bad, buf);
    async function* chunks(): AsyncGenerator<Buffer> {
      try {
        for (let z = 0; z < zeroPrefix; z += chunkSize) yield zeroChunk(Math.min(chunkSize, zeroPrefix - z));
        yield first;
        let p = zeroPrefix + first.length;
        while (p < block.length) {
          const chunk = await read(block.offset + p, Math.min(chunkSize, block.length - p));
          hasher.update(chunk);
          yield chunk;
          p += chunk.length;
        }
        resolveSum(hasher.digest());
      } catch (err) {
        rejectSum(err);
        throw err;
      } finally {
        rejectSum(new Error('block payload was not fully consumed'));
        giveBack();
      }
    }
    return { payload: { kind: 'data', chunks: chunks() }, checksum, badRanges };
  }

  /**
   * Checksum of a block without keeping its data (verify, `--skip-identical`), and its units'
   * where asked. With `noerror`, unreadable ranges are hashed as zeros and listed in `badRanges`
   * (merged, absolute offsets).
   */
  async hashBlock(block: BlockRef, algo: ChecksumAlgo, units?: UnitSpec): Promise<{ checksum: string; zero: boolean; badRanges: ByteRange[]; units?: string[] }> {
    const data = this.dataOf(block);
    // All hole: its units are never needed (a zero block is sent whole, one command).
    if (data?.length === 0) {
      this.holeBytes += block.length;
      return { checksum: zeroDigest(algo, block.length), zero: true, badRanges: [] };
    }
    const digester = new BlockDigester(block.length, algo, units);
    const bad: ByteRange[] = [];
    let zero = true;
    const buf = this.spare.pop() ?? this.buffer(this.chunkSize);
    try {
      for (let pos = 0; pos < block.length; ) {
        // Chunks in holes are the shared zeros, not read (hashed all the same: units ask for it).
        const chunk = await this.chunkAt(data, block.offset + pos, Math.min(this.chunkSize, block.length - pos), bad, buf);
        digester.update(chunk);
        if (zero && !isZero(chunk)) zero = false;
        pos += chunk.length;
      }
    } finally {
      if (this.spare.length < SPARE_MAX) this.spare.push(buf);
    }
    return { ...digester.digest(), zero, badRanges: mergeRanges(bad) };
  }

  /**
   * Ranges of a block as parts: a delta. A run of zero chunks goes as one zero part, a run of
   * data chunks as one raw part of up to PART_MAX bytes: the target starts a process per part
   * (a dd to write its bytes, a fallocate to make its zeros). As with a block's chunks, a part's
   * data is valid until the next part is asked for (its buffer is reused).
   */
  async *openRanges(block: BlockRef, ranges: ByteRange[]): AsyncGenerator<BlockPart> {
    const bad: ByteRange[] = [];
    const data = this.dataOf(block);
    const buf = this.spare.pop() ?? this.buffer(this.chunkSize);
    let gathered: Buffer | undefined;
    try {
      for (const r of ranges) {
        const end = r.offset + r.length;
        // The run being gathered: from `from`, `length` bytes, zeros or data.
        let run: { zero: boolean; from: number; length: number } | undefined;
        const part = (x: NonNullable<typeof run>): BlockPart => (x.zero ? { kind: 'zero', offset: x.from, length: x.length } : { kind: 'raw', offset: x.from, length: x.length, data: gathered!.subarray(0, x.length) });
        for (let pos = r.offset; pos < end; ) {
          const length = Math.min(this.chunkSize, end - pos);
          const chunk = await this.chunkAt(data, pos, length, bad, buf);
          const zero = isZero(chunk);
          if (run && (run.zero !== zero || (!zero && run.length + length > PART_MAX))) {
            yield part(run);
            run = undefined;
          }
          run ??= { zero, from: pos, length: 0 };
          if (!zero) chunk.copy((gathered ??= this.spareRuns.pop() ?? Buffer.allocUnsafeSlow(Math.max(PART_MAX, this.chunkSize))), run.length);
          run.length += length;
          pos += length;
        }
        if (run) yield part(run);
      }
    } finally {
      if (this.spare.length < SPARE_MAX) this.spare.push(buf);
      if (gathered && this.spareRuns.length < SPARE_RUNS_MAX) this.spareRuns.push(gathered);
    }
  }
}
