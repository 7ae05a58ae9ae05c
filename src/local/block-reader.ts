import { constants as fsConstants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { createHasher } from '../checksum/hasher.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import type { BlockPart, BlockRef, BlockSource, ByteRange, OpenedBlock, UnitSpec } from '../block/types.js';
import { BlockDigester } from '../checksum/block-digest.js';
import { isZero, zeroChunk } from '../block/zero.js';
import { DdtError, isDdtError } from '../errors.js';
import { mergeRanges } from '../plan/block-plan.js';
import { hashLocally, localHasher } from './local-hasher.js';

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

/**
 * Errors that mean "this medium cannot be read here" and that `--noerror` turns into zeros:
 * EIO (buffered reads), ENODATA (a medium error through O_DIRECT), EILSEQ (integrity, T10 PI).
 */
const MEDIA_ERRORS = new Set(['EIO', 'ENODATA', 'EILSEQ']);

function isMediaError(err: unknown): boolean {
  return MEDIA_ERRORS.has((err as NodeJS.ErrnoException)?.code ?? '');
}

/** Spare chunk buffers kept for reuse (beyond that, finished blocks' buffers go to the GC). */
const SPARE_MAX = 64;

/**
 * Positioned reads of a source in chunks. A block streams through: it is hashed chunk by chunk
 * and never held whole, so memory is bounded by chunks in flight, not by block size.
 */
export class BlockReader implements BlockSource {
  /** A local device serves as many blocks at once as are asked for. */
  readonly capacity = Infinity;
  readonly noerror: boolean;
  readonly sectorSize: number;
  /** Sector re-reads, one at a time: they share `sectorBuf`, and a failing disk is not hammered in parallel. */
  private rescueQueue: Promise<unknown> = Promise.resolve();
  /** O_DIRECT handle for sector re-reads: `undefined` = not opened yet, `null` = unavailable. */
  private directFh: FileHandle | null | undefined;
  private sectorBuf: Buffer | undefined;
  /** Chunk buffers of finished blocks, reused: a fresh 1 MiB buffer per chunk made V8 run a major GC every few dozen MiB (≈ 1 CPU-s per GiB). */
  private readonly spare: Buffer[] = [];

  /** `--skip-identical`: checksums from ddt-hash here (not with --noerror: only this reader zero-fills). */
  readonly hashStream?: BlockSource['hashStream'];

  private constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    private readonly chunkSize: number,
    opts: BlockReaderOptions,
  ) {
    this.noerror = opts.noerror ?? false;
    this.sectorSize = opts.sectorSize ?? 512;
    const bin = this.noerror ? undefined : localHasher();
    if (bin) this.hashStream = (blocks, algo, signal, units) => hashLocally(bin, path, blocks, algo, signal, units, true);
  }

  static async open(path: string, chunkSize = DEFAULT_CHUNK_SIZE, opts: BlockReaderOptions = {}): Promise<BlockReader> {
    const ss = opts.sectorSize ?? 512;
    if (!Number.isSafeInteger(ss) || ss < 512 || ss > 65536 || (ss & (ss - 1)) !== 0) {
      throw new RangeError(`sector size ${ss} is not a power of two between 512 and 64K`);
    }
    return new BlockReader(await fs.open(path, 'r'), path, chunkSize, opts);
  }

  async close(): Promise<void> {
    await this.rescueQueue.catch(() => {});
    if (this.directFh) await this.directFh.close();
    this.directFh = null;
    await this.fh.close();
  }

  /**
   * Read exactly `length` bytes at `offset` into a fresh buffer, or into the start of `into`
   * (short source = error). With `noerror` and a `badRanges` list, a media error does not
   * throw: the rest of the chunk is re-read sector by sector, unreadable sectors become zeros
   * and are appended to the list.
   */
  async readChunk(offset: number, length: number, badRanges?: ByteRange[], into?: Buffer): Promise<Buffer> {
    const buf = into ? into.subarray(0, length) : Buffer.allocUnsafeSlow(length);
    let done = 0;
    while (done < length) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await this.fh.read(buf, done, length - done, offset + done));
      } catch (err) {
        if (this.noerror && badRanges && isMediaError(err)) {
          await this.rescue(buf, offset, offset + done, offset + length, badRanges);
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
   * Fill `buf` (which holds the source from byte `bufStart`) for `[from, to)` one sector at a
   * time; an unreadable sector becomes zeros and a bad range. Serialized per reader.
   */
  private rescue(buf: Buffer, bufStart: number, from: number, to: number, badRanges: ByteRange[]): Promise<void> {
    const run = this.rescueQueue.catch(() => {}).then(async () => {
      const ss = this.sectorSize;
      for (let sectorAt = from - (from % ss); sectorAt < to; sectorAt += ss) {
        const lo = Math.max(sectorAt, from);
        const hi = Math.min(sectorAt + ss, to);
        if (!(await this.readSector(sectorAt, buf, lo - bufStart, hi - bufStart, lo - sectorAt))) {
          buf.fill(0, lo - bufStart, hi - bufStart);
          const last = badRanges[badRanges.length - 1];
          if (last && last.offset + last.length === lo) last.length += hi - lo;
          else badRanges.push({ offset: lo, length: hi - lo });
        }
      }
    });
    this.rescueQueue = run;
    return run;
  }

  /**
   * Read the sector starting at byte `sectorAt` and copy its bytes `[skip, skip + (end - start))` to
   * `buf[start, end)`. False when the medium cannot be read there.
   *
   * Buffered reads of a block device fail a whole page (4 KiB) for one bad 512-byte sectorAt,
   * so sectors are read with O_DIRECT (into page-aligned memory, as O_DIRECT wants) where the
   * source allows it, and buffered otherwise (then good neighbours in a bad page count as bad).
   */
  private async readSector(sectorAt: number, buf: Buffer, start: number, end: number, skip: number): Promise<boolean> {
    const ss = this.sectorSize;
    const need = skip + (end - start);
    const direct = await this.openDirect();
    if (direct && this.sectorBuf) {
      try {
        const { bytesRead } = await direct.read(this.sectorBuf, 0, ss, sectorAt);
        if (bytesRead < need) throw new DdtError('SOURCE_READ', `source ${this.path} ended early at byte ${sectorAt + bytesRead}: did it shrink?`);
        this.sectorBuf.copy(buf, start, skip, need);
        return true;
      } catch (err) {
        if (isDdtError(err, 'SOURCE_READ')) throw err;
        if (isMediaError(err)) return false;
        if ((err as NodeJS.ErrnoException).code !== 'EINVAL') {
          throw new DdtError('SOURCE_READ', `cannot read source ${this.path} at byte ${sectorAt}: ${(err as Error).message}`, { cause: err });
        }
        // EINVAL: this source does not take O_DIRECT at this size or alignment; read buffered from now on.
        this.directFh = null;
        await direct.close().catch(() => {});
      }
    }
    let done = start;
    while (done < end) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await this.fh.read(buf, done, end - done, sectorAt + skip + (done - start)));
      } catch (err) {
        if (isMediaError(err)) return false;
        throw new DdtError('SOURCE_READ', `cannot read source ${this.path} at byte ${sectorAt + skip + (done - start)}: ${(err as Error).message}`, { cause: err });
      }
      if (bytesRead === 0) throw new DdtError('SOURCE_READ', `source ${this.path} ended early at byte ${sectorAt + skip + (done - start)}: did it shrink?`);
      done += bytesRead;
    }
    return true;
  }

  private async openDirect(): Promise<FileHandle | null> {
    if (this.directFh !== undefined) return this.directFh;
    try {
      this.directFh = await fs.open(this.path, fsConstants.O_RDONLY | fsConstants.O_DIRECT);
      // Node buffers carry no alignment guarantee; a WebAssembly memory is page-aligned.
      this.sectorBuf = Buffer.from(new WebAssembly.Memory({ initial: Math.ceil(this.sectorSize / 65536) }).buffer, 0, this.sectorSize);
    } catch {
      this.directFh = null; // e.g. a filesystem without O_DIRECT: buffered re-reads only
    }
    return this.directFh;
  }

  /**
   * Open a block: read leading chunks until one is not all zeros. A block that is zero to the
   * end becomes a `zero` payload (sent as a command, not data); otherwise the zeros seen so far
   * are replayed from a shared buffer and the rest is read as the consumer pulls.
   */
  async openBlock(block: BlockRef, algo: ChecksumAlgo): Promise<OpenedBlock> {
    const hasher = createHasher(algo);
    const bad: ByteRange[] = [];
    // One buffer per open block, every chunk read into it: a consumer is done with a chunk when
    // it asks for the next one (it has written it to a file or channel, or copied it into SSH
    // packets), so the next read may overwrite it.
    const buf = this.spare.pop() ?? Buffer.allocUnsafeSlow(this.chunkSize);
    const giveBack = () => {
      if (this.spare.length < SPARE_MAX) this.spare.push(buf);
    };
    let pos = 0;
    let firstData: Buffer | undefined;
    try {
      while (pos < block.length) {
        const len = Math.min(this.chunkSize, block.length - pos);
        const chunk = await this.readChunk(block.offset + pos, len, bad, buf);
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
    const read = (offset: number, length: number) => this.readChunk(offset, length, bad, buf);
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
    const digester = new BlockDigester(block.length, algo, units);
    const bad: ByteRange[] = [];
    let zero = true;
    const buf = this.spare.pop() ?? Buffer.allocUnsafeSlow(this.chunkSize);
    try {
      for (let pos = 0; pos < block.length; ) {
        const chunk = await this.readChunk(block.offset + pos, Math.min(this.chunkSize, block.length - pos), bad, buf);
        digester.update(chunk);
        if (zero && !isZero(chunk)) zero = false;
        pos += chunk.length;
      }
    } finally {
      if (this.spare.length < SPARE_MAX) this.spare.push(buf);
    }
    return { ...digester.digest(), zero, badRanges: mergeRanges(bad) };
  }

  /** Ranges of a block as parts (zero chunks as a length), each in a buffer of its own: a delta. */
  async *openRanges(block: BlockRef, ranges: ByteRange[]): AsyncGenerator<BlockPart> {
    const bad: ByteRange[] = [];
    for (const r of ranges) {
      for (let pos = r.offset; pos < r.offset + r.length; ) {
        const length = Math.min(this.chunkSize, r.offset + r.length - pos);
        const data = await this.readChunk(pos, length, bad);
        yield isZero(data) ? { kind: 'zero', offset: pos, length } : { kind: 'raw', offset: pos, length, data };
        pos += length;
      }
    }
  }
}
