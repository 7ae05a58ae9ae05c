// Loop devices, temp dirs and deterministic test data for integration tests.
//
// Everything created here is registered with the cleanup registry, so a
// crashed or interrupted test run leaves no loop device or temp dir behind.

import { createHash } from 'node:crypto';
import { createReadStream, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeImage, type Fill } from '../../src/demo/image.js';
import { attachLoopDevice, type LoopDevice } from '../../src/demo/loop-device.js';
import { registerCleanup } from './hooks.js';

// ---------------------------------------------------------------- temp dirs

const tempDirs = new Map<string, () => void>();

/** A fresh dir under the OS temp dir; removed by removeTempDirs() or at exit. */
export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  // DDT_KEEP_TEST_DIRS=1 keeps them for post-mortem debugging.
  const unregister = registerCleanup(() => {
    if (process.env.DDT_KEEP_TEST_DIRS !== '1') rmSync(dir, { recursive: true, force: true });
  });
  tempDirs.set(dir, unregister);
  return dir;
}

/** Remove one dir made by makeTempDir now (instead of at exit). */
export async function removeTempDir(dir: string): Promise<void> {
  tempDirs.get(dir)?.();
  tempDirs.delete(dir);
  if (process.env.DDT_KEEP_TEST_DIRS !== '1') await rm(dir, { recursive: true, force: true });
}

export async function removeTempDirs(): Promise<void> {
  for (const dir of [...tempDirs.keys()]) await removeTempDir(dir);
}

// ------------------------------------------------------------- loop devices

// Attaching and detaching is src/demo/loop-device.ts (`ddt demo` uses it too);
// here every device is also tracked for detachAllLoops() and the exit cleanup.
export { loopAvailable, type LoopDevice } from '../../src/demo/loop-device.js';

const attached = new Map<string, () => Promise<void>>();

export async function attachLoop(file: string, o: { directIo?: boolean } = {}): Promise<LoopDevice> {
  const loop = await attachLoopDevice(file, registerCleanup, o.directIo);
  const detach = () => {
    attached.delete(loop.dev);
    return loop.detach();
  };
  attached.set(loop.dev, detach);
  return { dev: loop.dev, detach };
}

/** Detach every loop device this process attached and has not yet detached. */
export async function detachAllLoops(): Promise<void> {
  await Promise.all([...attached.values()].map((detach) => detach()));
}

// --------------------------------------------------------- test data files

// The generator is src/demo/image.ts (`ddt demo` and the benchmarks use it too).
export type { Fill } from '../../src/demo/image.js';

/** Deterministic data (same fill + seed → same bytes); see writeImage. */
export function fileOfSize(path: string, size: number, fill: Fill, seed = 1): Promise<void> {
  return writeImage(path, size, fill, seed);
}

const CHUNK = 4 << 20;

/** Hex sha256 of the first `length` bytes (default: all) of a file or device. */
export async function sha256File(path: string, length?: number): Promise<string> {
  const hash = createHash('sha256');
  if (length === 0) return hash.digest('hex');
  const stream = createReadStream(path, { start: 0, end: length === undefined ? undefined : length - 1, highWaterMark: CHUNK });
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
