/**
 * The local end of a job (the source of send and copy, the target of pull and copy): the
 * refusals before anything is written, creating a new target file, and proving on resume that
 * it is still the same device or file.
 */
import { promises as fs } from 'node:fs';
import { describeIdentity, identityChange, type DeviceIdentity } from '../block/identity.js';
import { DdtError } from '../errors.js';
import { probeDevice, type DeviceInfo } from '../local/device.js';
import { targetUsers } from '../local/usage.js';

/**
 * Refusals for a local target: too small, in use (mounted, swap, holders), the source itself.
 * Undefined when it does not exist (it will be created). `sameAs`: the local source, whose
 * device and inode the target must not share.
 */
export async function checkLocalTarget(sourceSize: number, targetPath: string, force: boolean, sameAs?: string): Promise<DeviceInfo | undefined> {
  const target = await probeDevice(targetPath);
  if (!target) {
    await checkParentDir(targetPath);
    return undefined;
  }
  if (sameAs !== undefined) {
    const [s, t] = await Promise.all([fs.stat(sameAs), fs.stat(targetPath)]);
    if (s.dev === t.dev && s.ino === t.ino) throw new DdtError('TARGET_INVALID', `source and target are the same ${target.kind}: ${targetPath}: pick another target`);
  }
  if (target.size < sourceSize) {
    throw new DdtError('TARGET_INVALID', `target ${targetPath} has ${target.size} bytes, smaller than the source's ${sourceSize}: use a target of at least that size`);
  }
  const users = await targetUsers(targetPath);
  if (users.length > 0 && !force) throw new DdtError('TARGET_IN_USE', `target is in use (${users.join('; ')}): unmount or release it first, or pass --force`);
  return target;
}

/** A new target file goes into an existing, writable directory: refused before connecting otherwise. */
async function checkParentDir(path: string): Promise<void> {
  const dir = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) || '/' : '.';
  const st = await fs.stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw new DdtError('TARGET_MISSING', `cannot create target ${path}: directory ${dir} does not exist: create it or check the path`);
  await fs.access(dir, fs.constants.W_OK).catch(() => {
    throw new DdtError('TARGET_INVALID', `cannot create target ${path}: directory ${dir} is not writable`);
  });
}

/** A local target that does not exist yet: a new sparse file of the source's size (mode 600). */
export async function createTargetFile(path: string, size: number): Promise<void> {
  const fh = await fs.open(path, 'wx', 0o600).catch((err: unknown) => {
    throw new DdtError('TARGET_INVALID', `cannot create target ${path}: ${(err as Error).message}`, { cause: err });
  });
  await fh.truncate(size);
  await fh.close();
}

/**
 * On resume, the local target must be the very device or file the journal recorded (a path
 * may point elsewhere now: a re-pointed symlink, a re-attached loop device). `--yes` does not
 * override this: writing another device with this job's proofs would be wrong whatever the user says.
 */
export async function checkResumedLocalTarget(path: string, recorded: DeviceIdentity | undefined, size: number): Promise<DeviceInfo> {
  const target = await probeDevice(path);
  if (!target) throw new DdtError('TARGET_MISSING', `target ${path} no longer exists: start a new run`);
  if (target.size !== size) throw new DdtError('TARGET_CHANGED', `target ${path} changed size from ${size} to ${target.size} bytes: start a new run`);
  const change = recorded && identityChange(recorded, target.identity, { target: true });
  if (change) {
    throw new DdtError('TARGET_CHANGED', `target ${path} is not the one this job wrote: ${change} (recorded ${describeIdentity(recorded)}, now ${describeIdentity(target.identity)}): start a new run for it`);
  }
  return target;
}
