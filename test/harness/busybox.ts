// A host that has nothing but busybox, for the remote helper (as root): a private mount
// namespace binds a directory of busybox applet links over every directory of programs, so no
// GNU dd, perl, xxhsum or openssl is reachable, even by absolute path. The helper then runs as
// `busybox sh ddt-helper.sh ...`, as on a rescue system.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { commandPath, haveCommand, haveRoot } from './real.js';

export function busyboxAvailable(): boolean {
  return haveRoot() && haveCommand('busybox') && haveCommand('unshare') && existsSync('/proc/self/ns/mnt');
}

/**
 * A directory holding a copy of busybox and a link for each of its applets except `without`
 * (e.g. the hash applets, for a host that has no checksum tool).
 */
export async function appletDir(dir: string, without: string[] = []): Promise<string> {
  const busybox = commandPath('busybox')!;
  await mkdir(dir, { recursive: true });
  await copyFile(busybox, join(dir, 'busybox'));
  await chmod(join(dir, 'busybox'), 0o755);
  const applets = execFileSync(busybox, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const a of applets) if (a !== 'busybox' && !without.includes(a)) await symlink('busybox', join(dir, a));
  return dir;
}

// Runs in the new namespace: every real directory of programs (on a merged /usr, /bin and
// /sbin are links and covered through /usr) gets the applet dir; then busybox runs the command.
const ENTER = [
  'b=$1',
  'shift',
  'for d in /usr/sbin /usr/local/sbin /usr/local/bin /sbin /bin /usr/bin; do',
  '  [ -d "$d" ] && [ ! -L "$d" ] || continue',
  '  "$b/busybox" mount --bind "$b" "$d" || exit 125',
  'done',
  'PATH=/usr/bin:/usr/sbin:/bin:/sbin',
  'export PATH',
  'exec "$b/busybox" "$@"',
].join('\n');

export interface BusyboxRun {
  out: Buffer;
  err: string;
  code: number | null;
  /** killed after `timeoutMs`: the command hung */
  timedOut: boolean;
}

/**
 * The command line that runs `busybox ARGS...` where only the applets of `bin` exist: spawn
 * `unshare` with these arguments. The command keeps unshare's PID (nothing forks on the way).
 */
export function busyboxArgs(bin: string, args: string[]): string[] {
  return ['--mount', '--propagation', 'private', join(bin, 'busybox'), 'sh', '-c', ENTER, 'enter', bin, ...args];
}

/** `busybox ARGS...` (e.g. `sh script.sh probe /x`) where only the applets of `bin` exist. */
export function inBusybox(bin: string, args: string[], o: { input?: Buffer | string; timeoutMs?: number } = {}): Promise<BusyboxRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('unshare', busyboxArgs(bin, args));
    const out: Buffer[] = [];
    let err = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, o.timeoutMs ?? 30_000);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ out: Buffer.concat(out), err, code, timedOut });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(o.input ?? '');
  });
}
