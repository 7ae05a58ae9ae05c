// The minimal-host fixture, proved with the real ssh and sftp clients: its
// sessions see only busybox, SFTP still works, and stop() leaves no process,
// mount or temp dir behind.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeTempDir, removeTempDir } from './loop.js';
import { HASH_APPLETS, minimalHostAvailable } from './minimal-host.js';
import { haveCommand, NEEDS, requireReal } from './real.js';
import { BATCH, processGone, runSsh, sshSession } from './ssh-run.js';
import { startMinimalHost, type TestSshd } from './sshd.js';
import { until } from './until.js';

const execFileP = promisify(execFile);
const run = (sshd: TestSshd, command: string) => runSsh([...sshd.sshArgs(), ...BATCH, `${sshd.user}@${sshd.host}`, command]);

// Every process whose mount table mentions `path` (a session's namespace shows its bind mounts).
function processesMounting(path: string): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        return readFileSync(`/proc/${name}/mountinfo`, 'utf8').includes(path);
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe('minimal host fixture', () => {
  let dir: string;
  before(async function () {
    requireReal(this, NEEDS.minimalHost, minimalHostAvailable());
    dir = await makeTempDir('ddt-minimal-test-');
  });
  after(async () => dir && removeTempDir(dir));

  describe('with every applet', () => {
    let sshd: TestSshd;
    before(async function () {
      requireReal(this, NEEDS.minimalHost, minimalHostAvailable());
      sshd = await startMinimalHost();
    });
    after(async () => sshd?.stop());

    it('this machine has the tools the mask must hide', async function () {
      // Otherwise the next test would pass on any host.
      requireReal(this, 'xxhsum, perl', existsSync('/usr/bin/xxhsum') && existsSync('/usr/bin/perl'));
      for (const path of ['/usr/bin/xxhsum', '/usr/bin/perl', '/usr/bin/dd']) assert.ok(existsSync(path), path);
      assert.match((await execFileP('/usr/bin/dd', ['--version'])).stdout, /coreutils/);
    });

    it('sessions see only busybox, even by absolute path', async () => {
      const help = await run(sshd, 'dd --help 2>&1');
      assert.match(help.stdout, /BusyBox/);
      assert.doesNotMatch(help.stdout, /coreutils/);
      for (const path of ['/usr/bin/xxhsum', '/usr/bin/perl', '/bin/perl', '/usr/bin/openssl', '/usr/bin/python3', '/usr/sbin/sshd']) {
        const probe = await run(sshd, `test -e ${path}`);
        assert.equal(probe.code, 1, `${path} is visible: ${probe.stderr}`);
      }
      const perl = await run(sshd, '/usr/bin/perl -e "print 42"');
      assert.equal(perl.code, 127, perl.stderr);
      assert.doesNotMatch(perl.stdout, /42/);
      for (const tool of ['xxhsum', 'openssl', 'python3', 'bash', 'sudo']) {
        assert.notEqual((await run(sshd, `command -v ${tool}`)).code, 0, `${tool} found`);
      }
      // The shell running the command is busybox's, and so is /bin/sh.
      assert.equal((await run(sshd, 'readlink /bin/sh; readlink /usr/sbin/losetup')).stdout, 'busybox\nbusybox\n');
    });

    it('has the hash applets, and HOME is the empty one of the sshd', async () => {
      const sum = await run(sshd, 'printf abc | sha256sum; echo $HOME');
      assert.equal(sum.stdout, `ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  -\n${sshd.home}\n`);
      for (const applet of HASH_APPLETS) assert.equal((await run(sshd, `command -v ${applet}`)).code, 0, applet);
      assert.ok(sshd.minimalHost?.programs.includes('sha256sum'));
    });

    it('the masked dirs are read-only', async () => {
      const touch = await run(sshd, 'touch /usr/bin/extra-tool');
      assert.notEqual(touch.code, 0);
      assert.match(touch.stderr, /Read-only file system/);
      assert.equal(existsSync(join(sshd.minimalHost!.binDir, 'extra-tool')), false);
    });

    it('serves SFTP with the real sftp-server', async () => {
      const up = join(dir, 'up.bin');
      const down = join(dir, 'down.bin');
      const remote = join(dir, 'remote.bin');
      const data = randomBytes(300_000);
      await writeFile(up, data);
      const batch = join(dir, 'sftp-batch');
      await writeFile(batch, `put ${up} ${remote}\nget ${remote} ${down}\nrm ${remote}\n`);
      const sftp = await runSsh(['-P', String(sshd.port), '-i', sshd.clientKeyPath, '-o', `UserKnownHostsFile=${sshd.knownHostsPath}`, ...BATCH, '-b', batch, `${sshd.user}@${sshd.host}`], { program: 'sftp' });
      assert.equal(sftp.code, 0, sftp.stderr);
      assert.ok((await readFile(down)).equals(data));
      assert.equal(existsSync(remote), false);
    });
  });

  it('without the hash applets: no checksum tool at all, dd still there', async () => {
    const sshd = await startMinimalHost({ without: HASH_APPLETS });
    try {
      for (const applet of HASH_APPLETS) {
        const probe = await run(sshd, `command -v ${applet} || test -e /usr/bin/${applet}`);
        assert.notEqual(probe.code, 0, `${applet} present`);
      }
      assert.notEqual((await run(sshd, 'command -v xxhsum')).code, 0);
      assert.equal((await run(sshd, 'echo hi | dd 2>/dev/null')).stdout, 'hi\n');
    } finally {
      await sshd.stop();
    }
  });

  it('extraPrograms puts real binaries next to the applets', async function () {
    requireReal(this, 'xxhsum', haveCommand('xxhsum'));
    const sshd = await startMinimalHost({ extraPrograms: ['xxhsum'] });
    try {
      const file = join(dir, 'hashed');
      await writeFile(file, 'some bytes\n');
      const local = (await execFileP('xxhsum', ['-H64', file])).stdout;
      const remote = await run(sshd, `xxhsum -H64 ${file}; test -e /usr/bin/perl || echo no perl`);
      assert.equal(remote.stdout, `${local}no perl\n`, remote.stderr);
    } finally {
      await sshd.stop();
    }
  });

  it('stop() ends the sessions and with them their mounts, and removes its dirs', async () => {
    const sshd = await startMinimalHost();
    const binDir = sshd.minimalHost!.binDir;
    // mountinfo names a bind mount's source relative to its file system's root: match the tail.
    const source = binDir.split('/').slice(-2).join('/');
    const session = await sshSession([...sshd.sshArgs(), ...BATCH, `${sshd.user}@${sshd.host}`]);
    // The session's shell runs inside its own mount namespace, where binDir is mounted over /usr/bin.
    const mounts = readFileSync(`/proc/${session.remotePid}/mountinfo`, 'utf8').split('\n');
    assert.ok(mounts.some((line) => line.split(' ')[3].endsWith(source) && line.split(' ')[4] === '/usr/bin'), mounts.join('\n'));
    assert.ok(processesMounting(source).includes(session.remotePid));
    assert.equal(readFileSync('/proc/self/mountinfo', 'utf8').includes(source), false, 'nothing mounted on the host');
    await sshd.stop();
    await until('the session process to end', () => processGone(session.remotePid));
    assert.deepEqual(processesMounting(source), []);
    assert.equal(existsSync(binDir), false);
    assert.equal(existsSync(sshd.dir), false);
  });
});
