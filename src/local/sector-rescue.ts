import { constants as fsConstants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { ByteRange } from '../block/types.js';
import { DdtError, isDdtError } from '../errors.js';
import { alignedBuffer } from './aligned.js';

/**
 * Errors that mean "this medium cannot be read here" and that `--noerror` turns into zeros.
 * Buffered reads report media errors as EIO; O_DIRECT reads pass the block layer's status
 * through, where a medium error is ENODATA and an integrity (T10 PI) error EILSEQ.
 */
const MEDIA_ERRORS = new Set(['EIO', 'ENODATA', 'EILSEQ']);

export function isMediaError(err: unknown): boolean {
  return MEDIA_ERRORS.has((err as NodeJS.ErrnoException)?.code ?? '');
}

/**
 * `--noerror`'s re-reads of a source that failed with a media error: sector by sector, O_DIRECT
 * where the source takes it, unreadable sectors zero-filled and listed as bad ranges.
 */
export class SectorRescue {
  /** Sector re-reads, one at a time: they share `sectorBuf`, and a failing disk is not hammered in parallel. */
  private rescueQueue: Promise<unknown> = Promise.resolve();
  /** O_DIRECT handle for sector re-reads: `undefined` = not opened yet, `null` = unavailable. */
  private directFh: FileHandle | null | undefined;
  private sectorBuf: Buffer | undefined;

  constructor(
    private readonly fh: FileHandle,
    private readonly path: string,
    private readonly sectorSize: number,
  ) {}

  async close(): Promise<void> {
    await this.rescueQueue.catch(() => {});
    if (this.directFh) await this.directFh.close();
    this.directFh = null;
  }

  /**
   * Fill `buf` (which holds the source from byte `bufStart`) for `[from, to)` one sector at a
   * time; an unreadable sector becomes zeros and a bad range. Serialized per reader.
   */
  rescue(buf: Buffer, bufStart: number, from: number, to: number, badRanges: ByteRange[]): Promise<void> {
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
      this.sectorBuf = alignedBuffer(this.sectorSize);
    } catch {
      this.directFh = null; // e.g. a filesystem without O_DIRECT: buffered re-reads only
    }
    return this.directFh;
  }
}
