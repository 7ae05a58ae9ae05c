/**
 * Reading a file the user pointed at (an identity file, the ssh config, a known_hosts file):
 * only a regular file, and only up to a size such a file can have. `-i /dev/zero` or a FIFO
 * must be a one-line refusal, not a read that never ends or fills the memory. `/dev/null`
 * is the conventional "no file" in ssh configs (`UserKnownHostsFile /dev/null`): empty.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { DdtError, type ErrorCode } from '../errors.js';

/** A private key in any format OpenSSH writes is a few KiB; 64 KiB leaves room for comments. */
export const IDENTITY_FILE_MAX = 64 * 1024;
/** ssh configs and known_hosts files: generous, but bounded. */
export const SSH_FILE_MAX = 16 * 1024 * 1024;

export interface BoundedFile {
  /** What the file is, for messages ("identity file"). */
  what: string;
  max: number;
  /** The refusal's code (its exit code is 2). */
  code?: ErrorCode;
}

function tooBig(path: string, f: BoundedFile): DdtError {
  return new DdtError(f.code ?? 'BAD_OPTION', `${f.what} ${path} is larger than ${f.max / 1024} KiB: not a ${f.what}, check the path`);
}

/**
 * Open `path` non-blocking (a FIFO does not hang the open) and refuse (exit 2) anything but a
 * regular file of at most `max` bytes: the fd, or undefined where the open failed and
 * `ignore(err)` says so; with its size. The caller closes the fd.
 */
function openRegular(path: string, f: BoundedFile, ignore: (err: NodeJS.ErrnoException) => boolean): { fd: number; size: number } | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    if (ignore(err as NodeJS.ErrnoException)) return undefined;
    throw err;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new DdtError(f.code ?? 'BAD_OPTION', `${f.what} ${path} is not a regular file: check the path`);
    if (st.size > f.max) throw tooBig(path, f);
    return { fd, size: st.size };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/**
 * The file's bytes, or undefined when it does not exist; refused (exit 2) unless it is a
 * regular file of at most `max` bytes. Other errors (EACCES) are thrown as they are, for the
 * caller to word.
 */
export function readBoundedFile(path: string, f: BoundedFile): Buffer | undefined {
  if (path === '/dev/null') return Buffer.alloc(0);
  const opened = openRegular(path, f, (err) => err.code === 'ENOENT');
  if (opened === undefined) return undefined;
  const { fd, size } = opened;
  try {
    // The file may grow while it is read: read at most one byte past the bound to notice.
    const buf = Buffer.alloc(Math.min(f.max + 1, size + 4096));
    let n = 0;
    for (let got = 1; got > 0 && n < buf.length; n += got) got = readSync(fd, buf, n, buf.length - n, null);
    if (n > f.max) throw tooBig(path, f);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** Refuse (exit 2) a path that exists but is not a regular file of at most `max` bytes; nothing is read. */
export function checkBoundedFile(path: string, f: BoundedFile): void {
  if (path === '/dev/null') return;
  const opened = openRegular(path, f, () => true); // missing or unreadable: the reader words that
  if (opened !== undefined) closeSync(opened.fd);
}
