import { promises as fs } from 'node:fs';
import type { DeviceIdentity } from '../block/identity.js';
import { DdtError } from '../errors.js';

export interface DeviceInfo {
  path: string;
  kind: 'file' | 'block';
  size: number;
  sectorSize: number;
  /** major:minor for block devices */
  devno?: string;
  identity: DeviceIdentity;
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
    throw new DdtError('BAD_PATH', `cannot stat ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (st.isFile()) {
    const size = Number(st.size);
    return {
      path,
      kind: 'file',
      size,
      sectorSize: 512,
      identity: { kind: 'file', size, ino: st.ino.toString(), dev: st.dev.toString(), mtimeMs: Number(st.mtimeMs) },
    };
  }
  if (st.isBlockDevice()) {
    const { major, minor } = splitDevno(st.rdev);
    const sys = `/sys/dev/block/${major}:${minor}`;
    const sectors = await readSysfs(`${sys}/size`);
    if (sectors === undefined) throw new DdtError('BAD_PATH', `cannot read ${sys}/size for ${path}: is /sys mounted?`);
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
      identity: { kind: 'block', size, devno: `${major}:${minor}`, serial: serial || loopBacking || undefined, wwid: wwid || undefined },
    };
  }
  throw new DdtError('BAD_PATH', `${path} is neither a regular file nor a block device: give an image file or a /dev path`);
}

/** Source must exist and be non-empty. */
export async function probeSource(path: string): Promise<DeviceInfo> {
  const info = await probeDevice(path);
  if (!info) throw new DdtError('SOURCE_MISSING', `source ${path} does not exist: check the path`);
  if (info.size === 0) throw new DdtError('SOURCE_INVALID', `source ${path} is empty (0 bytes): nothing to copy`);
  return info;
}
