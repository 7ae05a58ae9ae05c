// A "minimal host" for the private sshd: every session sees only busybox, as
// on a rescue system or a small appliance. A ForceCommand wrapper enters a
// private mount namespace and bind-mounts a directory of busybox applet links
// over every directory of executables, so GNU dd, xxhsum, perl, openssl or
// python cannot be reached, not even by absolute path. The client's command
// then runs under busybox sh. The mounts live and die with the session's
// processes: nothing is mounted on the host itself.

import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, symlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { sftpServerPath, sshdAvailable } from '../../src/demo/private-sshd.js';
import { commandPath, haveCommand, haveRoot } from './real.js';

const execFileP = promisify(execFile);

/** The busybox applets that compute checksums: leave them out for "no checksum tool on the remote". */
export const HASH_APPLETS: readonly string[] = ['md5sum', 'sha1sum', 'sha256sum', 'sha3sum', 'sha512sum'];

/** Hidden from sessions. /bin and /sbin are symlinks into /usr on merged-/usr systems and are then masked through their targets. */
export const MASKED_DIRS: readonly string[] = ['/usr/bin', '/usr/sbin', '/bin', '/sbin', '/usr/local/bin', '/usr/local/sbin'];

export interface MinimalHostOptions {
  /** Applets to link (default: every applet this busybox has). */
  applets?: readonly string[];
  /** Applets to leave out, e.g. HASH_APPLETS. */
  without?: readonly string[];
  /**
   * Real programs to add next to the applets (a name on PATH or an absolute
   * path), e.g. ['xxhsum']; they replace an applet of the same name. Their
   * shared libraries stay reachable: library dirs are not masked.
   */
  extraPrograms?: readonly string[];
}

/** What a minimal host needs on this machine: root (mount namespaces), its private sshd, busybox, util-linux unshare, an external sftp-server. */
export function minimalHostAvailable(): boolean {
  return haveRoot() && sshdAvailable() && haveCommand('busybox') && haveCommand('unshare') && sftpServerPath() !== undefined;
}

export interface MinimalHostParts {
  /** sshd_config lines that turn the private sshd into a minimal host. */
  extraConfig: string[];
  /** The directory mounted over the masked ones. */
  binDir: string;
  /** The names in binDir (applets and extra programs). */
  programs: string[];
}

async function busyboxApplets(busybox: string): Promise<string[]> {
  const { stdout } = await execFileP(busybox, ['--list']);
  return stdout.split('\n').filter((name) => /^[\w.[\]-]+$/.test(name));
}

const shq = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;

// Runs under the login shell, still before any masking.
function sessionScript(dir: string, busybox: string, unshare: string): string {
  return `#!/bin/sh
# ForceCommand of a minimal-host sshd: new mount namespace, then ./inside.
if [ "$(id -u)" != 0 ]; then
  echo "this minimal-host sshd runs sessions for root only (masking needs a mount namespace)" >&2
  exit 126
fi
exec ${shq(unshare)} --mount --propagation private -- ${shq(busybox)} sh ${shq(join(dir, 'inside'))}
`;
}

// Runs under busybox sh inside the session's own mount namespace.
function insideScript(binDir: string, sftpServer: string): string {
  const busybox = shq(join(binDir, 'busybox'));
  return `set -e
for dir in ${MASKED_DIRS.map(shq).join(' ')}; do
  # A symlink (merged /usr) is masked through its target; a missing dir has nothing to hide.
  if [ -L "$dir" ] || [ ! -d "$dir" ]; then continue; fi
  ${busybox} mount --bind ${shq(binDir)} "$dir"
  # Read-only, so a session cannot add tools through a masked path.
  ${busybox} mount -o remount,bind,ro "$dir"
done
set +e
export SHELL=/bin/sh
# sshd hands a subsystem request to the forced command with the Subsystem
# line's command as SSH_ORIGINAL_COMMAND: serve SFTP with the real server
# (it lives in a library dir, which is not masked).
case "$SSH_ORIGINAL_COMMAND" in
  ${shq(sftpServer)}) exec ${shq(sftpServer)} ;;
  '') exec /bin/sh -l ;;
esac
exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
`;
}

/**
 * Build the applet dir and the session wrapper in `dir` (a fresh temp dir the
 * caller removes), and return the sshd_config lines that use them.
 */
export async function prepareMinimalHost(dir: string, opts: MinimalHostOptions = {}): Promise<MinimalHostParts> {
  const busybox = commandPath('busybox');
  const unshare = commandPath('unshare');
  const sftpServer = sftpServerPath();
  if (!busybox || !unshare || !sftpServer) throw new Error('a minimal host needs busybox, util-linux unshare and an external sftp-server');
  const binDir = join(dir, 'bin');
  await mkdir(binDir);
  // A copy, not a link: /usr/bin/busybox itself is behind the mask.
  await copyFile(busybox, join(binDir, 'busybox'));
  await chmod(join(binDir, 'busybox'), 0o755);
  const extra = (opts.extraPrograms ?? []).map((program) => {
    const path = commandPath(program);
    if (!path) throw new Error(`extra program not found: ${program}`);
    return path;
  });
  const extraNames = new Set(extra.map((path) => basename(path)));
  const without = new Set(opts.without ?? []);
  const applets = (opts.applets ?? (await busyboxApplets(busybox))).filter(
    (name) => name !== 'busybox' && !without.has(name) && !extraNames.has(name),
  );
  for (const name of applets) await symlink('busybox', join(binDir, name));
  for (const path of extra) await copyFile(path, join(binDir, basename(path)));
  const session = join(dir, 'session');
  await writeFile(session, sessionScript(dir, join(binDir, 'busybox'), unshare), { mode: 0o755 });
  // Other users' sessions must reach the wrapper, if only to be told they cannot have one.
  await chmod(dir, 0o711);
  await writeFile(join(dir, 'inside'), insideScript(binDir, sftpServer));
  return {
    extraConfig: [`ForceCommand ${session}`, `Subsystem sftp ${sftpServer}`],
    binDir,
    programs: ['busybox', ...applets, ...extraNames].sort(),
  };
}
