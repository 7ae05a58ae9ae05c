// Throwaway local users, as on cloud images that log in as a non-root user:
// with password-less sudo, or without any sudo rights. Each has a locked-out
// password ('*': no password can ever match, yet sshd does not treat the
// account as locked), an ed25519 key of its own and an empty HOME it owns.
//
// Everything is registered with the cleanup registry: the sudoers file goes
// first, then the user's processes (by PID), then the user, its group and its
// HOME (userdel -r). Names carry the creating PID, so a later run can sweep
// what a killed one left.

import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { chown, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { registerCleanup } from './hooks.js';
import { ownerGone } from './netns.js';
import { makeTempDir, removeTempDir } from './loop.js';
import { haveCommand, haveRoot } from './real.js';
import type { TestSshd } from './sshd.js';
import { until } from './until.js';

const execFileP = promisify(execFile);
const SUDOERS_DIR = '/etc/sudoers.d';
const COMMENT = 'ddt test user of pid';
// --force: a process that is dead but not yet reaped (a zombie) must not keep
// the user; every live one was killed before.
const USERDEL = (name: string) => ['--force', '--remove', name];
// Sleeping inside the synchronous exit cleanup.
const PAUSE = new Int32Array(new SharedArrayBuffer(4));
let created = 0;

/** Root, the shadow tools, sudo and visudo: what createUser needs. */
export function usersAvailable(): boolean {
  return haveRoot() && ['useradd', 'userdel', 'sudo', 'visudo', 'ssh-keygen'].every(haveCommand);
}

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  /** Empty, owned by the user: sessions of the private sshd get it as HOME. */
  home: string;
  /** Private key (readable by the test process only) and its public line. */
  keyPath: string;
  publicKey: string;
  /** Whether the user may run anything as root through `sudo -n`. */
  sudo: boolean;
  /** The sudoers drop-in that grants it, when `sudo`. */
  sudoersPath?: string;
  remove(): Promise<void>;
}

export interface CreateUserOptions {
  /** Password-less sudo for everything [false]. */
  sudo?: boolean;
  /** Let the user log in to this private sshd with its key. */
  sshd?: TestSshd;
}

// Live processes of a user; zombies are dead already.
function userPids(uid: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        const status = readFileSync(`/proc/${name}/status`, 'utf8');
        return /^Uid:\s+(\d+)/m.exec(status)?.[1] === String(uid) && !/^State:\s+Z/m.test(status);
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

function kill(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

// Another process (a concurrent test run) may hold the lock on /etc/passwd.
async function shadowTool(tool: string, args: string[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await execFileP(tool, args);
      return;
    } catch (err) {
      const stderr = String((err as { stderr?: string }).stderr ?? '');
      if (attempt >= 20 || !/lock/i.test(stderr)) throw new Error(`${tool} ${args.join(' ')}: ${stderr.trim() || err}`);
      await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
    }
  }
}

/** Remove the users of test processes that were killed before their cleanup could run. */
export function sweepStaleUsers(): void {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [name, , uid, , comment] = line.split(':');
    if (!name || !comment?.startsWith(COMMENT) || !ownerGone(name)) continue;
    rmSync(join(SUDOERS_DIR, name), { force: true });
    kill(userPids(Number(uid)), 'SIGKILL');
    try {
      execFileSync('userdel', USERDEL(name), { stdio: 'ignore' });
    } catch {
      // another process swept it first
    }
  }
}

/** Create a user; with `sshd`, it can log in there with `-i keyPath -l name`. */
export async function createUser(opts: CreateUserOptions = {}): Promise<TestUser> {
  sweepStaleUsers();
  const name = `ddt-${process.pid}-${++created}`;
  const keyDir = await makeTempDir('ddt-userkey-');
  const home = await makeTempDir('ddt-home-');
  const sudoersPath = opts.sudo ? join(SUDOERS_DIR, name) : undefined;
  let uid = -1;
  const removeNow = () => {
    if (sudoersPath) rmSync(sudoersPath, { force: true });
    if (uid >= 0) {
      kill(userPids(uid), 'SIGKILL');
      // Killed processes need a moment to go (userdel --force would not wait).
      for (let waited = 0; userPids(uid).length > 0 && waited < 2000; waited += 20) Atomics.wait(PAUSE, 0, 0, 20);
    }
    try {
      execFileSync('userdel', USERDEL(name), { stdio: 'ignore' });
    } catch {
      // never created, or still busy: the home goes with the temp dirs regardless
    }
  };
  const unregister = registerCleanup(removeNow);
  const remove = async () => {
    unregister();
    if (sudoersPath) await rm(sudoersPath, { force: true });
    if (uid >= 0) {
      kill(userPids(uid), 'SIGTERM');
      const ended = () => userPids(uid).length === 0;
      await until(`processes of ${name} to end`, ended, 3000).catch(async () => {
        kill(userPids(uid), 'SIGKILL');
        await until(`processes of ${name} to die`, ended, 1000).catch(() => undefined);
      });
    }
    // userdel warns (and exits 12) when there is no mail spool to remove: check the result instead.
    await execFileP('userdel', USERDEL(name)).catch(() => undefined);
    if (readFileSync('/etc/passwd', 'utf8').split('\n').some((line) => line.startsWith(`${name}:`))) {
      throw new Error(`userdel could not remove ${name}`);
    }
    await removeTempDir(home);
    await removeTempDir(keyDir);
  };
  try {
    const keyPath = join(keyDir, 'id_ed25519');
    await execFileP('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', keyPath]);
    await shadowTool('useradd', [
      '--no-create-home', '--home-dir', home, '--shell', '/bin/bash', '--user-group',
      '--password', '*', '--comment', `${COMMENT} ${process.pid}`, name,
    ]);
    const entry = readFileSync('/etc/passwd', 'utf8').split('\n').find((line) => line.startsWith(`${name}:`));
    if (!entry) throw new Error(`useradd did not create ${name}`);
    const [, , uidText, gidText] = entry.split(':');
    uid = Number(uidText);
    const gid = Number(gidText);
    await chown(home, uid, gid);
    if (sudoersPath) {
      // sudo skips drop-ins whose name has a dot: the file is inert until renamed.
      const draft = `${sudoersPath}.draft`;
      await writeFile(draft, `${name} ALL=(ALL:ALL) NOPASSWD: ALL\n`, { mode: 0o440 });
      try {
        await execFileP('visudo', ['-c', '-q', '-f', draft]);
        await rename(draft, sudoersPath);
      } finally {
        await rm(draft, { force: true });
      }
    }
    const publicKey = (await readFile(`${keyPath}.pub`, 'utf8')).trim();
    await opts.sshd?.authorize(name, publicKey);
    return { name, uid, gid, home, keyPath, publicKey, sudo: !!opts.sudo, sudoersPath, remove };
  } catch (err) {
    await remove().catch(() => undefined);
    throw err;
  }
}
