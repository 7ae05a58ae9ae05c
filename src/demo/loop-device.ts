/**
 * Loop devices for `ddt demo` (as root) and the test harness (test/harness/loop.ts adapts this):
 * attach a file, and detach only while the device still backs *that* file, since once detached
 * the same number may already belong to someone else.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { basename } from 'node:path';
import { promisify } from 'node:util';
import { haveCommand, haveRoot } from './system.js';

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface LoopDevice {
  dev: string;
  detach(): Promise<void>;
}

export function loopAvailable(): boolean {
  return haveRoot() && haveCommand('losetup') && existsSync('/dev/loop-control');
}

// The kernel's view of which file backs a loop device (absent when free).
function backingFile(dev: string): string | undefined {
  try {
    return readFileSync(`/sys/block/${basename(dev)}/loop/backing_file`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * `losetup --find --show FILE`. `registerCleanup` gets a synchronous detach for the process's
 * exit (the returned function unregisters it); `detach()` waits until the device is really free.
 * `directIo`: the device reads and writes its backing file with O_DIRECT, as a disk would (without
 * it, an O_DIRECT read of the device is served from the backing file's page cache, and fills it).
 */
export async function attachLoopDevice(file: string, registerCleanup: (fn: () => void) => () => void = () => () => {}, directIo = false): Promise<LoopDevice> {
  const path = await realpath(file);
  // Parallel processes can race for the same free device; losetup then
  // fails with EBUSY and a retry picks the next one.
  let dev = '';
  for (let attempt = 1; ; attempt++) {
    try {
      dev = (await execFileP('losetup', ['--find', '--show', ...(directIo ? ['--direct-io=on'] : []), path])).stdout.trim();
      break;
    } catch (err) {
      if (attempt >= 5) throw err;
      await sleep(100 * attempt);
    }
  }
  const ours = () => backingFile(dev) === path;
  const unregister = registerCleanup(() => {
    if (ours()) execFileSync('losetup', ['-d', dev], { stdio: 'ignore' });
  });
  let detaching: Promise<void> | undefined;
  const detach = () =>
    (detaching ??= (async () => {
      unregister();
      if (ours()) await execFileP('losetup', ['-d', dev]);
      // `losetup -d` on a device someone still holds open only sets
      // autoclear; the detach happens at the last close. Wait for it so the
      // caller can rely on "gone", and say so if an open fd leaks.
      for (let waited = 0; ours(); waited += 50) {
        if (waited >= 10_000) throw new Error(`${dev} still attached to ${path} (held open?)`);
        await sleep(50);
      }
    })());
  return { dev, detach };
}
