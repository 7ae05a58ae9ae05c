// Gate for tests that need real system parts (root, sshd, losetup, rsync,
// xxhsum ...). Locally a missing part skips the test; in CI it fails it, so a
// broken CI image can never turn the integration suite silently green.

import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export function requireReal(ctx: Mocha.Context, what: string, available: boolean): void {
  if (available) return;
  if (process.env.CI === 'true') throw new Error(`CI requires ${what}`);
  ctx.skip();
}

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
