// Gate for tests that need real system parts (root, sshd, losetup, rsync, xxhsum ...). Locally a
// missing part skips the test, and the run ends with one line naming every part that was missing
// and the command that installs them (test/reporter.cjs prints it); in CI it fails the test, so a
// broken CI image can never turn the integration suite silently green.
//
// `what` lists the parts, separated by commas: a command (`sshd`, `xxhsum`; .ci/setup, the one
// list of system packages, says which package has it), `root`, a path (`/dev/fuse`), or a few
// words for anything else (`python3-fusepy`). Named so, the line at the end can say which of
// them are missing here, and which packages `npm run setup` would install.

import { existsSync, readFileSync } from 'node:fs';
import { haveCommand, haveRoot } from '../../src/demo/system.js';

export { commandPath, haveCommand, haveRoot } from '../../src/demo/system.js';

/** command → Debian package, from .ci/setup's NEED list; `pkg:NAME` entries are packages only. */
const PACKAGES = new Map<string, string>();
const PACKAGE_ONLY = new Set<string>();
try {
  const text = readFileSync(new URL('../../.ci/setup', import.meta.url), 'utf8');
  for (const m of text.matchAll(/^\s*"([^"\s]+) ([^"\s]+)"\s*$/gm)) {
    const name = m[1]!.replace(/^pkg:/, '');
    PACKAGES.set(name, m[2]!);
    if (m[1]!.startsWith('pkg:')) PACKAGE_ONLY.add(name);
  }
} catch {
  // Without the list the line still names the parts, only not their packages.
}

/** What the run lacked, kept where test/reporter.cjs (CommonJS, no import) finds it. */
interface MissingParts {
  /** part → its Debian package, when .ci/setup names one */
  parts: Map<string, string | undefined>;
  /** The line the run ends with before its summary; '' when nothing was missing. */
  line(): string;
}

const KEY = Symbol.for('ddt.test.missing-parts');
const registry = globalThis as typeof globalThis & { [KEY]?: MissingParts };

export function missingParts(): MissingParts {
  return (registry[KEY] ??= { parts: new Map(), line() {
    return missingLine(this.parts);
  } });
}

const isCommand = (p: string) => /^[a-z][\w.+-]*$/.test(p) && !PACKAGE_ONLY.has(p);

/** A part this host can be asked about: root, a command, or a path (`/dev/fuse`). */
function isMissing(p: string): boolean | undefined {
  if (p === 'root') return !haveRoot();
  if (p.startsWith('/')) return !existsSync(p);
  return isCommand(p) ? !haveCommand(p) : undefined;
}

/** The parts of `what` that are missing here; the ones described in words when none is. */
export function partsMissing(what: string): string[] {
  const parts = what.split(',').map((p) => p.trim()).filter(Boolean);
  const missing = parts.filter((p) => isMissing(p) === true);
  if (missing.length > 0) return missing;
  const described = parts.filter((p) => isMissing(p) === undefined);
  return described.length > 0 ? described : parts;
}

export function requireReal(ctx: Mocha.Context, what: string, available: boolean): void {
  if (available) return;
  if (process.env.CI === 'true') throw new Error(`CI requires ${what}`);
  const { parts } = missingParts();
  for (const part of partsMissing(what)) parts.set(part, PACKAGES.get(part));
  ctx.skip();
}

/** e.g. `missing here: sfdisk, xxhsum (their tests were skipped); install them with: npm run setup (Debian packages fdisk xxhash)` */
export function missingLine(parts: ReadonlyMap<string, string | undefined>): string {
  if (parts.size === 0) return '';
  const names = [...parts.keys()].sort();
  const packages = [...new Set([...parts.values()].filter((p): p is string => p !== undefined))].sort();
  let line = `missing here: ${names.join(', ')} (their tests were skipped)`;
  if (packages.length > 0) line += `; install them with: npm run setup (Debian packages ${packages.join(' ')})`;
  if (parts.has('root')) line += '; run the tests as root for the ones that need root';
  return line;
}

/** What the fixtures need, as `what` lists: the parts their `…Available()` checks look at. */
export const NEEDS = {
  loop: 'root, losetup, /dev/loop-control',
  sshd: 'root, sshd, ssh-keygen',
  fuse: 'root, losetup, /dev/fuse, python3-fusepy',
  busybox: 'root, busybox, unshare',
  minimalHost: 'root, sshd, ssh-keygen, busybox, unshare, /usr/lib/openssh/sftp-server',
  users: 'root, useradd, userdel, sudo, visudo, ssh-keygen',
  bastion: 'root, sshd, ssh-keygen, ssh, ip, busybox',
} as const;
