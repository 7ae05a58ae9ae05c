/**
 * Holes of sparse files, through the small native addon (`native/addon`: lseek with SEEK_DATA
 * and SEEK_HOLE, fallocate), which Node does not offer. Without the addon (not built: no
 * compiler or headers), `sparseCalls()` is undefined and callers read holes as data and write
 * zeros where no other tool punches: slower, never wrong.
 */
import { createRequire } from 'node:module';
import type { ByteRange } from '../block/types.js';

export interface SparseCalls {
  /** lseek(fd, offset, whence): the offset, or -1 where there is no data at or after it (ENXIO). */
  seek(fd: number, offset: number, whence: number): number;
  /** fallocate(fd, mode, offset, length); throws with the errno's name as `code`. */
  fallocate(fd: number, mode: number, offset: number, length: number): void;
}

export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;
/** FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE: the range becomes a hole, the size stays. */
export const PUNCH_HOLE = 0x02 | 0x01;

let calls: SparseCalls | null | undefined;

/** The addon, loaded once: next to the bundle (dist/) or, from src/ (tests), in dist/. */
export function sparseCalls(): SparseCalls | undefined {
  if (calls === undefined) {
    calls = null;
    if (!process.env.DDT_NO_ADDON) {
      const req = createRequire(import.meta.url);
      for (const rel of ['../ddt_sparse.node', '../../dist/ddt_sparse.node']) {
        try {
          calls = req(new URL(rel, import.meta.url).pathname) as SparseCalls;
          break;
        } catch {
          // not there (or not loadable by this Node): try the next place
        }
      }
    }
  }
  return calls ?? undefined;
}

/**
 * The data ranges of a regular file's `[from, to)` (clipped to it), from SEEK_DATA/SEEK_HOLE;
 * the rest reads as zeros. Undefined where that is not known: no addon, or a filesystem that
 * does not answer (EINVAL), which then reads everything.
 */
export function dataRanges(fd: number, from: number, to: number): ByteRange[] | undefined {
  const sys = sparseCalls();
  if (!sys) return undefined;
  const out: ByteRange[] = [];
  try {
    for (let at = from; at < to; ) {
      const data = sys.seek(fd, at, SEEK_DATA);
      if (data < 0 || data >= to) break;
      const hole = sys.seek(fd, data, SEEK_HOLE);
      const end = hole < 0 ? to : Math.min(hole, to);
      out.push({ offset: data, length: end - data });
      at = end;
    }
  } catch {
    return undefined;
  }
  return out;
}

/** Does `[offset, offset + length)` meet any of `ranges` (sorted, as dataRanges gives them)? */
export function touches(ranges: ByteRange[], offset: number, length: number): boolean {
  const end = offset + length;
  return ranges.some((r) => r.offset < end && offset < r.offset + r.length);
}
