/**
 * Facts about this machine that the demo (and the test harness, which re-exports these) needs:
 * root or not, and where an executable is, sbin dirs included.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export function haveRoot(): boolean {
  return process.getuid?.() === 0;
}

// sbin dirs are added because a non-login root shell's PATH may lack them,
// and sshd, losetup and mkfs.ext4 live there.
const EXTRA_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
const found = new Map<string, string | undefined>();

/** Absolute path of an executable (PATH plus the sbin dirs), or undefined. */
export function commandPath(name: string): string | undefined {
  if (found.has(name)) return found.get(name);
  const candidates = name.includes('/')
    ? [name]
    : [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...EXTRA_DIRS].map((dir) => join(dir, name));
  let hit: string | undefined;
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      hit = candidate;
      break;
    } catch {
      // not here; try the next dir
    }
  }
  found.set(name, hit);
  return hit;
}

export function haveCommand(name: string): boolean {
  return commandPath(name) !== undefined;
}
