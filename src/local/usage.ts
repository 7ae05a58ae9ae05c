import { promises as fs } from 'node:fs';
import { basename } from 'node:path';
import { splitDevno } from './device.js';

async function devnoOf(path: string): Promise<string | undefined> {
  try {
    const st = await fs.stat(path, { bigint: true });
    if (!st.isBlockDevice()) return undefined;
    const { major, minor } = splitDevno(st.rdev);
    return `${major}:${minor}`;
  } catch {
    return undefined;
  }
}

async function readLines(path: string): Promise<string[]> {
  try {
    return (await fs.readFile(path, 'utf8')).split('\n');
  } catch {
    return [];
  }
}

async function listDir(path: string): Promise<string[]> {
  try {
    return await fs.readdir(path);
  } catch {
    return [];
  }
}

/** The sysfs name of a block device and of its partitions (sda → sda, sda1, sda2…). */
async function deviceAndPartitions(devno: string): Promise<{ name: string; devno: string }[]> {
  const sys = `/sys/dev/block/${devno}`;
  const name = basename(await fs.realpath(sys).catch(() => sys));
  const out = [{ name, devno }];
  for (const entry of await listDir(`/sys/class/block/${name}`)) {
    if (!entry.startsWith(name)) continue;
    const dev = (await readLines(`/sys/class/block/${name}/${entry}/dev`))[0]?.trim();
    if (dev) out.push({ name: entry, devno: dev });
  }
  return out;
}

/**
 * Why a local target must not be written: mounted, swap, held by another device (device-mapper,
 * md, a loop device over an image file). Empty when it is free. Checked for partitions too.
 */
export async function targetUsers(path: string): Promise<string[]> {
  const reasons: string[] = [];
  const devno = await devnoOf(path);
  if (!devno) {
    // A regular image file that backs an attached loop device is in use by that device.
    const real = await fs.realpath(path).catch(() => path);
    for (const loop of await listDir('/sys/block')) {
      if (!loop.startsWith('loop')) continue;
      const backing = (await readLines(`/sys/block/${loop}/loop/backing_file`))[0]?.trim();
      if (backing === real) reasons.push(`${path} backs /dev/${loop}`);
    }
    return reasons;
  }
  const parts = await deviceAndPartitions(devno);
  const devnos = new Set(parts.map((p) => p.devno));
  for (const line of await readLines('/proc/mounts')) {
    const [dev, mnt] = line.split(' ');
    if (!dev?.startsWith('/')) continue;
    const d = await devnoOf(dev);
    if (d && devnos.has(d)) reasons.push(`${dev} is mounted on ${mnt?.replace(/\\040/g, ' ')}`);
  }
  for (const line of (await readLines('/proc/swaps')).slice(1)) {
    const dev = line.split(/\s+/)[0];
    if (!dev) continue;
    const d = await devnoOf(dev);
    if (d && devnos.has(d)) reasons.push(`${dev} is in use as swap`);
  }
  for (const p of parts) {
    for (const holder of await listDir(`/sys/class/block/${p.name}/holders`)) {
      reasons.push(`/dev/${p.name} is held by ${holder}`);
    }
  }
  return reasons;
}
