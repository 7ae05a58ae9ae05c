// The hosts people actually have on the other end: a rescue system with only busybox, and a
// cloud image that logs in as a user with password-less sudo. Every run ends byte-identical;
// what cannot work is refused before anything is written, naming what to install or allow.
import assert from 'node:assert/strict';
import { chmod, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { attachLoop, fileOfSize, loopAvailable, makeTempDir, sha256File } from '../harness/loop.js';
import { haveCommand, requireReal } from '../harness/real.js';
import { createUser, HASH_APPLETS, minimalHostAvailable, startMinimalHost, startSshd, usersAvailable, type TestSshd, type TestUser } from '../harness/remote-hosts.js';
import { jsonOf, runCli, startCli } from './cli.js';
import { sshArgs, waitForVerified } from './remote-helpers.js';

const MiB = 1024 * 1024;

function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n').filter((l) => !/warning/.test(l));
  assert.equal(lines.length, 1, stderr);
  return lines[0]!;
}

describe('e2e: a busybox-only remote host', function () {
  let host: TestSshd;
  let dir: string;
  let src: string;

  before(async function () {
    requireReal(this, 'a busybox-only host (root, busybox, unshare)', minimalHostAvailable());
    dir = await makeTempDir('ddt-e2e-busybox-');
    host = await startMinimalHost();
    src = join(dir, 'src.img');
    await fileOfSize(src, 20 * MiB + 4096, 'mixed', 1701);
  });
  after(async () => host?.stop());

  for (const via of ['openssh', 'stream', 'sftp']) {
    it(`send --via ${via}: byte-identical, sha256 (no xxhsum there)`, async () => {
      const t = join(dir, `send-${via}.img`);
      await fileOfSize(t, 21 * MiB, 'random', 1702);
      const r = await runCli(['send', src, `root@127.0.0.1:${t}`, ...sshArgs(host), '--via', via, '-b', '2M', '--yes', '--json', '--progress', 'none', '--journal', join(dir, `${via}.journal`)]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(jsonOf(r).checksum, 'sha256');
      assert.equal(await sha256File(t, 20 * MiB + 4096), await sha256File(src));
    });
  }

  it('send to a loop device, killed and resumed; verify; --skip-identical re-sync sends nothing', async function () {
    requireReal(this, 'loop devices (root)', loopAvailable());
    const backing = join(dir, 'loop.img');
    await fileOfSize(backing, 24 * MiB, 'random', 1703);
    const loop = await attachLoop(backing);
    try {
      const j = join(dir, 'loop.journal');
      const run = startCli(['send', src, `root@127.0.0.1:${loop.dev}`, ...sshArgs(host), '-b', '1M', '--bwlimit', '6M', '--yes', '--progress', 'none', '--journal', j]);
      await waitForVerified(j, 3, undefined, run);
      run.child.kill('SIGKILL');
      await run.done;
      const r = await runCli(['resume', j, '--json', '--progress', 'none']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await sha256File(loop.dev, 20 * MiB + 4096), await sha256File(src));
      const v = await runCli(['verify', src, `root@127.0.0.1:${loop.dev}`, ...sshArgs(host), '-b', '1M', '--json']);
      assert.equal(v.code, 0, v.stderr);
      assert.equal(jsonOf(v).different, 0);
      const again = await runCli(['send', src, `root@127.0.0.1:${loop.dev}`, ...sshArgs(host), '-b', '1M', '--skip-identical', '--yes', '--json', '--progress', 'none', '--journal', join(dir, 'again.journal')]);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(jsonOf(again).bytesOnWire, 0);
      // The next run's install copies the helper script kept there (busybox's sha256sum checks it).
      const third = await runCli(['send', src, `root@127.0.0.1:${loop.dev}`, ...sshArgs(host), '-b', '1M', '--skip-identical', '--yes', '--json', '--progress', 'none', '--journal', join(dir, 'third.journal')], { env: { DDT_DEBUG: '1' } });
      assert.equal(third.code, 0, third.stderr);
      assert.equal(jsonOf(third).bytesOnWire, 0);
      assert.match(third.stderr, /helper installed \(script kept\)/);
    } finally {
      await loop.detach();
    }
  });

  it('pull from it into a new file: byte-identical', async () => {
    const out = join(dir, 'pulled.img');
    const r = await runCli(['pull', `root@127.0.0.1:${src}`, out, ...sshArgs(host), '-b', '2M', '--yes', '--json', '--progress', 'none', '--journal', join(dir, 'pull.journal')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await sha256File(out), await sha256File(src));
  });

  it('--engine rsync there: exit 2 naming rsync, nothing written', async () => {
    const t = join(dir, 'rsync.img');
    await fileOfSize(t, 21 * MiB, 'zero');
    const before = await sha256File(t);
    const r = await runCli(['send', src, `root@127.0.0.1:${t}`, ...sshArgs(host), '--engine', 'rsync', '--yes', '--journal', join(dir, 'rsync.journal')]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(oneLine(r.stderr), /rsync is not installed on 127\.0\.0\.1.*install the rsync package/);
    assert.equal(await sha256File(t), before);
  });

  describe('without any checksum tool there', () => {
    let bare: TestSshd;
    before(async () => (bare = await startMinimalHost({ without: HASH_APPLETS })));
    after(async () => bare?.stop());

    for (const [what, args] of [
      ['send', (t: string) => ['send', src, `root@127.0.0.1:${t}`, '--yes']],
      ['send --dry-run', (t: string) => ['send', src, `root@127.0.0.1:${t}`, '--dry-run']],
      ['pull', (t: string) => ['pull', `root@127.0.0.1:${t}`, join(dir, 'never.img'), '--yes']],
      ['verify', (t: string) => ['verify', src, `root@127.0.0.1:${t}`]],
    ] as const) {
      it(`${what}: exit 2 naming the tool and its package, before anything is written`, async () => {
        const t = join(dir, `nohash-${what.replace(/\W+/g, '-')}.img`);
        await fileOfSize(t, 21 * MiB, 'random', 1704);
        const before = await sha256File(t);
        const extra = what === 'verify' ? [] : ['--progress', 'none', '--journal', join(dir, `nohash-${what.replace(/\W+/g, '-')}.journal`)];
        const r = await runCli([...args(t), ...sshArgs(bare), ...extra]);
        assert.equal(r.code, 2, r.stderr);
        assert.match(oneLine(r.stderr), /no working checksum tool.*sha256sum.*coreutils on Debian\/Ubuntu/);
        assert.equal(await sha256File(t), before);
      });
    }
  });
});

describe('e2e: a login user with password-less sudo', function () {
  let sshd: TestSshd;
  let admin: TestUser;
  let plain: TestUser;
  let dir: string;
  let src: string;

  before(async function () {
    requireReal(this, 'users and sudo (root)', usersAvailable());
    requireReal(this, 'loop devices (root)', loopAvailable());
    requireReal(this, 'xxhsum', haveCommand('xxhsum'));
    dir = await makeTempDir('ddt-e2e-sudo-');
    await chmod(dir, 0o755); // the users read the source image from here
    sshd = await startSshd();
    admin = await createUser({ sudo: true, sshd });
    plain = await createUser({ sshd });
    src = join(dir, 'src.img');
    await fileOfSize(src, 12 * MiB + 4096, 'mixed', 1711);
  });
  after(async () => {
    await admin?.remove();
    await plain?.remove();
    await sshd?.stop();
  });

  /** ssh options for a user of the fixture. */
  const as = (u: TestUser) => ['-l', u.name, '-p', String(sshd.port), '-i', u.keyPath, '--known-hosts', sshd.knownHostsPath];

  for (const via of ['openssh', 'stream', 'sftp']) {
    it(`--sudo --via ${via} writes a loop device the user may not write itself; verify and pull too`, async () => {
      const backing = join(dir, `loop-${via}.img`);
      await fileOfSize(backing, 16 * MiB, 'random', 1712);
      const loop = await attachLoop(backing);
      try {
        const r = await runCli(['send', src, `127.0.0.1:${loop.dev}`, ...as(admin), '--sudo', '--via', via, '-b', '1M', '--yes', '--json', '--progress', 'none', '--journal', join(dir, `${via}.journal`)]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(await sha256File(loop.dev, 12 * MiB + 4096), await sha256File(src));
        if (via !== 'stream') return;
        const v = await runCli(['verify', src, `127.0.0.1:${loop.dev}`, ...as(admin), '--sudo', '-b', '1M', '--json']);
        assert.equal(v.code, 0, v.stderr);
        const out = join(dir, 'pulled.img');
        const p = await runCli(['pull', `127.0.0.1:${loop.dev}`, out, ...as(admin), '--sudo', '-b', '1M', '--yes', '--json', '--progress', 'none', '--journal', join(dir, 'pull.journal')]);
        assert.equal(p.code, 0, p.stderr);
        assert.equal(await sha256File(out, 12 * MiB + 4096), await sha256File(src));
      } finally {
        await loop.detach();
      }
    });
  }

  it('without --sudo: exit 2, not writable by the remote user; a user without sudo rights: exit 3 saying what to allow', async () => {
    const backing = join(dir, 'loop-refused.img');
    await fileOfSize(backing, 16 * MiB, 'random', 1713);
    const loop = await attachLoop(backing);
    try {
      const before = await sha256File(loop.dev);
      const r = await runCli(['send', src, `127.0.0.1:${loop.dev}`, ...as(admin), '--yes', '--progress', 'none', '--journal', join(dir, 'nosudo.journal')]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(oneLine(r.stderr), /not writable by the remote user.*--sudo/);
      const n = await runCli(['send', src, `127.0.0.1:${loop.dev}`, ...as(plain), '--sudo', '--yes', '--progress', 'none', '--journal', join(dir, 'plain.journal')]);
      assert.equal(n.code, 3, n.stderr);
      assert.match(oneLine(n.stderr), /sudo .* without a password.*NOPASSWD|log in as root/);
      assert.equal(await sha256File(loop.dev), before);
    } finally {
      await loop.detach();
    }
  });

  it('--sudo --skip-identical: the ddt-hash the root helper kept serves the next run, with sudo and without', async () => {
    const backing = join(dir, 'loop-kept.img');
    await fileOfSize(backing, 16 * MiB, 'random', 1714);
    const loop = await attachLoop(backing);
    const own = join(admin.home, 'kept.img');
    await fileOfSize(own, 13 * MiB, 'random', 1715);
    const { execFileSync } = await import('node:child_process');
    execFileSync('chown', [`${admin.uid}:${admin.gid}`, own]);
    const resync = async (target: string, sudo: boolean, name: string) => {
      const r = await runCli(['send', src, `127.0.0.1:${target}`, ...as(admin), ...(sudo ? ['--sudo'] : []), '--skip-identical', '--yes', '--json', '--progress', 'none', '--journal', join(dir, `${name}.journal`)], { env: { DDT_DEBUG: '1' } });
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /did not pass|shell tools/);
      assert.equal(await sha256File(target, 12 * MiB + 4096), await sha256File(src));
      assert.match(r.stderr, /lock released, work dir removed/, 'the holder removed the work dir, with sudo too');
      return r.stderr;
    };
    try {
      assert.match(await resync(loop.dev, true, 'kept-1'), /ddt-hash uploaded/);
      const second = await resync(loop.dev, true, 'kept-2');
      assert.match(second, /ddt-hash from the cache/);
      // The helper's copy kept beside it too: the target is read through sudo before the lock.
      assert.match(second, /prehash: reading with ddt-hash-/);
      assert.doesNotMatch(second, /prehash not taken/);
      // And the install copies that script (kept in the login user's home) instead of the upload.
      assert.match(second, /helper installed \(script kept\)/);
    } finally {
      await loop.detach();
    }
    assert.match(await resync(own, false, 'kept-3'), /ddt-hash from the cache/);
  });

  it('a file target the user owns needs no sudo', async () => {
    const t = join(admin.home, 'own.img');
    await copyFile(src, t);
    await fileOfSize(t, 13 * MiB, 'zero');
    const { execFileSync } = await import('node:child_process');
    execFileSync('chown', [`${admin.uid}:${admin.gid}`, t]);
    const r = await runCli(['send', src, `127.0.0.1:${t}`, ...as(admin), '-b', '1M', '--yes', '--json', '--progress', 'none', '--journal', join(dir, 'own.journal')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await sha256File(t, 12 * MiB + 4096), await sha256File(src));
  });
});
