/**
 * The small native addon (`native/addon`): the system calls and memory Node does not offer.
 * Optional: without it (not built: no compiler or headers; or DDT_NO_ADDON set) every caller has
 * a slower way that is never wrong.
 */
import { createRequire } from 'node:module';

export interface Addon {
  /** lseek(fd, offset, whence): the offset, or -1 where there is no data at or after it (ENXIO). */
  seek(fd: number, offset: number, whence: number): number;
  /** fallocate(fd, mode, offset, length); throws with the errno's name as `code`. */
  fallocate(fd: number, mode: number, offset: number, length: number): void;
  /** A Buffer of `length` bytes whose memory starts on a 4 KiB boundary, as O_DIRECT wants. */
  aligned?(length: number): Buffer;
}

let loaded: Addon | null | undefined;

/** The addon, loaded once: next to the bundle (dist/) or, from src/ (tests), in dist/. */
export function addon(): Addon | undefined {
  if (loaded === undefined) {
    loaded = null;
    if (!process.env.DDT_NO_ADDON) {
      const req = createRequire(import.meta.url);
      for (const rel of ['../ddt_sparse.node', '../../dist/ddt_sparse.node']) {
        try {
          loaded = req(new URL(rel, import.meta.url).pathname) as Addon;
          break;
        } catch {
          // not there (or not loadable by this Node): try the next place
        }
      }
    }
  }
  return loaded ?? undefined;
}
