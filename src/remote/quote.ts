import { DdtError } from '../errors.js';
/**
 * Quoting for commands that run in the remote user's shell. Every remote command ddt sends is
 * built from words passed through `shQuote`, so a path such as `/dev/vdd; rm -rf /` stays one
 * argument.
 */

/**
 * POSIX single-quoting: inside '…' nothing is special except the closing quote, which is
 * written as '\''. Also safe in bash, zsh and dash; plain words stay unquoted for readable logs.
 */
export function shQuote(s: string): string {
  if (s.includes('\0')) throw new DdtError('BAD_OPTION', 'a NUL byte cannot be passed to a remote command');
  if (/^[A-Za-z0-9_\/.,:=@%+-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Quote each word and join them into one command line. */
export function shCommand(...words: string[]): string {
  return words.map(shQuote).join(' ');
}

/**
 * A remote path ddt will hand to dd: absolute and on one line. The helper's framed protocol
 * and its pids file are line-based, and a relative path would depend on the remote cwd.
 */
export function validateRemotePath(p: string, what = 'remote path'): string {
  if (typeof p !== 'string' || p.length === 0) throw new DdtError('BAD_PATH', `${what} is empty`);
  if (p.includes('\0') || p.includes('\n') || p.includes('\r')) {
    throw new DdtError('BAD_PATH', `${what} contains a NUL or line break: ${JSON.stringify(p)}`);
  }
  if (!p.startsWith('/')) throw new DdtError('BAD_PATH', `${what} must be absolute: ${JSON.stringify(p)}`);
  return p;
}
