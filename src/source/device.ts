import { promises as fs } from 'node:fs';
import { UsageError } from '../errors.js';

/** What identifies a source between runs, so resume can refuse a changed source. */
export interface SourceIdentity {
  kind: 'file' | 'block';
  size: number;
  /** files: inode and mtime; block devices: serial/wwid where sysfs offers them */
  ino?: string;
  mtimeMs?: number;
  serial?: string;
  wwid?: string;
}

export interface DeviceInfo {
  path: string;
  kind: 'file' | 'block';
  size: number;
  sectorSize: number;
  /** major:minor for block devices */
  devno?: string;
  identity: SourceIdentity;
}

/** Linux dev_t split, as glibc's major()/minor() do it. */
export function splitDevno(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

async function readSysfs(path: string): Promise<string | undefined> {
  try {
    return (await fs.readFile(path, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/**
 * Size and sector size without privileged ioctls: stat for files; for block devices
 * sysfs (`/sys/dev/block/MAJ:MIN/size` counts 512-byte sectors whatever the device's own).
 */
export async function probeDevice(path: string): Promise<DeviceInfo | undefined> {
  let st;
  try {
    st = await fs.stat(path, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UsageError('PATH_UNREADABLE', `cannot stat ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (st.isFile()) {
    const size = Number(st.size);
    return {
      path,
      kind: 'file',
      size,
      sectorSize: 512,
      identity: { kind: 'file', size, ino: st.ino.toString(), mtimeMs: Number(st.mtimeMs) },
    };
  }
  if (st.isBlockDevice()) {
    const { major, minor } = splitDevno(st.rdev);
    const sys = `/sys/dev/block/${major}:${minor}`;
    const sectors = await readSysfs(`${sys}/size`);
    if (sectors === undefined) throw new UsageError('NO_SYSFS', `cannot read ${sys}/size for ${path}: is /sys mounted?`);
    const size = Number(sectors) * 512;
    // A partition has no queue/ of its own: its disk's applies.
    const lbs = (await readSysfs(`${sys}/queue/logical_block_size`)) ?? (await readSysfs(`${sys}/../queue/logical_block_size`));
    const serial = (await readSysfs(`${sys}/device/serial`)) ?? (await readSysfs(`${sys}/serial`));
    const wwid = (await readSysfs(`${sys}/wwid`)) ?? (await readSysfs(`${sys}/device/wwid`));
    const loopBacking = await readSysfs(`${sys}/loop/backing_file`);
    return {
      path,
      kind: 'block',
      size,
      sectorSize: lbs ? Number(lbs) : 512,
      devno: `${major}:${minor}`,
      identity: { kind: 'block', size, serial: serial || loopBacking || undefined, wwid: wwid || undefined },
    };
  }
  throw new UsageError('NOT_A_DEVICE', `${path} is neither a regular file nor a block device: give an image file or a /dev path`);
}

/** Source must exist and be non-empty. */
export async function probeSource(path: string): Promise<DeviceInfo> {
  const info = await probeDevice(path);
  if (!info) throw new UsageError('SOURCE_MISSING', `source ${path} does not exist: check the path`);
  if (info.size === 0) throw new UsageError('SOURCE_EMPTY', `source ${path} is empty (0 bytes): nothing to copy`);
  return info;
}

/** Describe how an identity changed, or undefined when it is the same source. */
export function identityChange(recorded: SourceIdentity, now: SourceIdentity): string | undefined {
  if (recorded.kind !== now.kind) return `it was a ${recorded.kind}, now it is a ${now.kind}`;
  if (recorded.size !== now.size) return `its size changed from ${recorded.size} to ${now.size} bytes`;
  if (recorded.kind === 'file') {
    if (recorded.ino !== now.ino) return 'it is a different file (inode changed)';
    if (recorded.mtimeMs !== now.mtimeMs) return 'it was modified since the run started (mtime changed)';
  } else {
    if (recorded.serial && recorded.serial !== now.serial) return `its serial changed from ${recorded.serial} to ${now.serial ?? 'none'}`;
    if (recorded.wwid && recorded.wwid !== now.wwid) return `its wwid changed from ${recorded.wwid} to ${now.wwid ?? 'none'}`;
  }
  return undefined;
}
