// The throwaway-user fixture, proved with the real ssh client and sudo: a
// user with password-less sudo, one without, keys that let in only their own
// user, and remove() leaving no user, group, sudoers file, HOME or process.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { promisify } from 'node:util';
import { minimalHostAvailable } from './minimal-host.js';
import { NEEDS, requireReal } from './real.js';
import { BATCH, processGone, runSsh, sshSession } from './ssh-run.js';
import { sshdAvailable, startMinimalHost, startSshd, type TestSshd } from './sshd.js';
import { until } from './until.js';
import { createUser, usersAvailable, type TestUser } from './users.js';

const execFileP = promisify(execFile);

const loginArgs = (sshd: TestSshd, keyPath: string, user: string) => [
  '-p', String(sshd.port), '-i', keyPath, '-o', `UserKnownHostsFile=${sshd.knownHostsPath}`, '-o', 'IdentitiesOnly=yes', ...BATCH, `${user}@${sshd.host}`,
];
const runAs = (sshd: TestSshd, user: TestUser, command: string) => runSsh([...loginArgs(sshd, user.keyPath, user.name), command]);
const inFile = (path: string, name: string) => readFileSync(path, 'utf8').split('\n').some((line) => line.startsWith(`${name}:`));

describe('user fixture', () => {
  let sshd: TestSshd;
  let sudoer: TestUser;
  let plain: TestUser;
  before(async function () {
    requireReal(this, `${NEEDS.users}, sshd`, usersAvailable() && sshdAvailable());
    sshd = await startSshd();
    sudoer = await createUser({ sudo: true, sshd });
    plain = await createUser({ sshd });
  });
  after(async () => {
    await sudoer?.remove();
    await plain?.remove();
    await sshd?.stop();
  });

  it('the sudo user logs in with its key, into an empty HOME of its own', async () => {
    const r = await runAs(sshd, sudoer, 'id -un; id -u; echo $HOME; ls -A "$HOME"; mkdir "$HOME/.ddt" && echo writable');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${sudoer.name}\n${sudoer.uid}\n${sudoer.home}\nwritable\n`);
    assert.notEqual(sudoer.uid, 0);
    assert.equal(statSync(sudoer.home).uid, sudoer.uid);
  });

  it('the sudo user runs anything as root with sudo -n, from a validated sudoers file', async () => {
    const r = await runAs(sshd, sudoer, 'sudo -n id -u && sudo -n true && echo ok');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '0\nok\n');
    const path = sudoer.sudoersPath!;
    assert.equal(statSync(path).mode & 0o777, 0o440);
    await execFileP('visudo', ['-c', '-q', '-f', path]);
  });

  it('the other user logs in, but sudo -n wants a password', async () => {
    assert.equal(plain.sudoersPath, undefined);
    assert.equal((await runAs(sshd, plain, 'id -un')).stdout, `${plain.name}\n`);
    const r = await runAs(sshd, plain, 'sudo -n true');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /sudo: a password is required/);
  });

  it('each key lets in only its own user', async () => {
    const wrong = [
      runSsh([...loginArgs(sshd, sudoer.keyPath, 'root'), 'true']),
      runSsh([...loginArgs(sshd, sshd.clientKeyPath, sudoer.name), 'true']),
      runSsh([...loginArgs(sshd, plain.keyPath, sudoer.name), 'true']),
    ];
    for (const r of await Promise.all(wrong)) {
      assert.equal(r.code, 255);
      assert.match(r.stderr, /Permission denied \(publickey\)/);
    }
    // The sshd's own user still gets in with the sshd's key and keeps its HOME.
    assert.equal((await runSsh([...sshd.sshArgs(), ...BATCH, `${sshd.user}@${sshd.host}`, 'echo $HOME'])).stdout, `${sshd.home}\n`);
  });

  it('remove() ends the user’s sessions and leaves no user, group, sudoers file or HOME', async () => {
    const user = await createUser({ sudo: true, sshd });
    const session = await sshSession(loginArgs(sshd, user.keyPath, user.name));
    assert.ok(inFile('/etc/passwd', user.name) && inFile('/etc/group', user.name) && existsSync(user.sudoersPath!));
    await user.remove();
    await until('the session to end', () => processGone(session.remotePid));
    assert.equal(inFile('/etc/passwd', user.name), false);
    assert.equal(inFile('/etc/group', user.name), false);
    for (const path of [user.sudoersPath!, user.home, user.keyPath]) assert.equal(existsSync(path), false, path);
    session.child.kill();
  });

  it('a minimal host turns away non-root logins with a reason', async function () {
    requireReal(this, NEEDS.minimalHost, minimalHostAvailable());
    const minimal = await startMinimalHost();
    try {
      await minimal.authorize(plain.name, plain.publicKey);
      const r = await runAs(minimal, plain, 'true');
      assert.equal(r.code, 126);
      assert.match(r.stderr, /runs sessions for root only/);
    } finally {
      await minimal.stop();
    }
  });
});
