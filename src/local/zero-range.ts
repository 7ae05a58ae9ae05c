/**
 * Zero ranges of a local target without writing zeros: a hole in a file (fallocate punch), on
 * a loop device a hole in its backing file, BLKZEROOUT where a device takes write-zeroes, and
 * with `--discard` an unmap where the device guarantees zeros for it. The addon punches in
 * process; without it util-linux's `fallocate` and `blkdiscard` do. Whatever was done, the
 * block's read-back checksum proves it; an offload the target refuses is not asked again, and
 * the caller writes zeros.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { ZeroedHow, ZeroMode } from '../block/types.js';
import { splitDevno } from './device.js';
import { PUNCH_HOLE, sparseCalls } from './holes.js';

type How = 'punch' | 'zeroout' | 'discard' | 'write';

async function sysNumber(path: string): Promise<number> {
  const v = Number((await fs.readFile(path, 'utf8').catch(() => '')).trim());
  return Number.isSafeInteger(v) ? v : 0;
}

/** How zero ranges of `path` are made in `mode` (the remote helper decides the same way). */
async function howFor(path: string, mode: ZeroMode): Promise<{ how: How; kind: ZeroedHow }> {
  if (mode === 'write') return { how: 'write', kind: 'hole' };
  const st = await fs.stat(path, { bigint: true });
  if (st.isFile()) return { how: 'punch', kind: 'hole' };
  if (!st.isBlockDevice()) return { how: 'write', kind: 'hole' };
  const { major, minor } = splitDevno(st.rdev);
  const sys = `/sys/dev/block/${major}:${minor}`;
  const queue = (await fs.stat(`${sys}/queue`).catch(() => undefined)) ? `${sys}/queue` : `${sys}/../queue`;
  const writeZeroes = await sysNumber(`${queue}/write_zeroes_max_bytes`);
  const loop = (await fs.stat(`${sys}/loop`).catch(() => undefined)) !== undefined;
  if (writeZeroes > 0 && (loop || mode === 'discard')) return { how: 'punch', kind: 'offload' };
  if (mode === 'discard' && (await sysNumber(`${queue}/discard_zeroes_data`)) === 1) return { how: 'discard', kind: 'offload' };
  if (writeZeroes > 0) return { how: 'zeroout', kind: 'offload' };
  return { how: 'write', kind: 'offload' };
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => execFile(cmd, args, (err) => (err ? reject(err) : resolve())));
}

export class LocalZeroer {
  private constructor(
    private readonly path: string,
    private readonly fh: FileHandle,
    private how: How,
    private readonly kind: ZeroedHow,
  ) {}

  static async open(path: string, fh: FileHandle, mode: ZeroMode): Promise<LocalZeroer> {
    const { how, kind } = await howFor(path, mode).catch(() => ({ how: 'write' as const, kind: 'hole' as const }));
    return new LocalZeroer(path, fh, how, kind);
  }

  /** Zeros are made without writing them (else the caller writes them). */
  get active(): boolean {
    return this.how !== 'write';
  }

  /** Make `[offset, offset + length)` zero: how it was done, or undefined when the caller must write zeros. */
  async zero(offset: number, length: number): Promise<ZeroedHow | undefined> {
    if (this.how === 'write' || length === 0) return undefined;
    try {
      const range = ['-o', String(offset), '-l', String(length), this.path];
      if (this.how === 'punch') {
        const sys = sparseCalls();
        if (sys) sys.fallocate(this.fh.fd, PUNCH_HOLE, offset, length);
        else await run('fallocate', ['-p', ...range]);
      } else await run('blkdiscard', [...(this.how === 'zeroout' ? ['-z'] : []), ...range]);
      return this.kind;
    } catch {
      this.how = 'write';
      return undefined;
    }
  }
}
