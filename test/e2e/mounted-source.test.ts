// The last pass of a live copy: a source device whose filesystem is still mounted (read-only
// now) and whose page cache holds a block that is not on it (test/fixtures/stale-device.ts).
// Every way a source is read, here and on a remote host, must give the target the bytes on the
// device; a `--skip-identical` pass onto a target that holds the cached copy must find the
// block that differs instead of proving the stale one.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { staleMountedDevice, type StaleDevice } from '../fixtures/stale-device.js';
import { loopAvailable, makeTempDir } from '../harness/loop.js';
import { haveCommand, NEEDS, requireReal } from '../harness/real.js';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd.js';
import { jsonOf, runCli } from './cli.js';
import { sshArgs } from './remote-helpers.js';

describe('e2e: a source device under a mounted filesystem, its page cache stale', function () {
  this.timeout(180_000);
  let sshd: TestSshd;
  let dir: string;
  let stale: StaleDevice;

  before(async function () {
    requireReal(this, NEEDS.sshd, sshdAvailable());
    requireReal(this, NEEDS.loop, loopAvailable());
    requireReal(this, 'mkfs.ext4 (e2fsprogs)', haveCommand('mkfs.ext4'));
    dir = await makeTempDir('ddt-e2e-mounted-');
    sshd = await startSshd();
    stale = await staleMountedDevice(dir);
    assert.ok(!stale.cached.equals(stale.onDevice), 'this kernel served no stale block: the tests below would prove nothing');
  });
  after(async () => {
    await stale?.close();
    await sshd?.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  const common = (name: string, extra: string[] = []) => [...sshArgs(sshd), '-b', '8M', '--yes', '--json', '--progress', 'none', '--journal', join(dir, `${name}.journal`), ...extra];

  it('send: the remote target gets the bytes on the device', async () => {
    const target = join(dir, 'sent.img');
    const r = await runCli(['send', stale.dev, `root@127.0.0.1:${target}`, ...common('send')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(jsonOf(r).ok, true);
    assert.ok((await fs.readFile(target)).equals(stale.onDevice), 'the target holds what the page cache had, not what is on the device');
    assert.doesNotMatch(r.stderr, /read through the page cache/);
  });

  it('a device read through the cache after all (here: told to) is named in a warning', async () => {
    const target = join(dir, 'copied.img');
    const r = await runCli(['copy', stale.dev, target, '-b', '8M', '--yes', '--json', '--progress', 'none', '--journal', join(dir, 'copy.journal')], { env: { DDT_SOURCE_DIRECT: 'off' } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`source ${stale.dev} is read through the page cache \\(DDT_SOURCE_DIRECT=off\\).*unmount it`));
    const v = await runCli(['verify', stale.dev, target, '-b', '8M', '--json'], { env: { DDT_SOURCE_DIRECT: 'off' } });
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stderr, /is read through the page cache \(DDT_SOURCE_DIRECT=off\)/);
  });

  it('send --skip-identical onto a target holding the cached copy: the differing block is sent', async () => {
    const target = join(dir, 'resync.img');
    await fs.writeFile(target, stale.cached);
    const r = await runCli(['send', stale.dev, `root@127.0.0.1:${target}`, ...common('resync', ['--skip-identical'])]);
    assert.equal(r.code, 0, r.stderr);
    const s = jsonOf(r);
    assert.equal(s.ok, true);
    assert.ok((s.bytesOnWire as number) > 0, 'nothing was sent: the stale block was taken as identical');
    assert.ok((await fs.readFile(target)).equals(stale.onDevice));
  });

  for (const via of ['openssh', 'stream']) {
    it(`pull --via ${via}: the local target gets the bytes on the remote device`, async () => {
      const target = join(dir, `pulled-${via}.img`);
      const r = await runCli(['pull', `root@127.0.0.1:${stale.dev}`, target, ...common(`pull-${via}`, ['--via', via])]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(jsonOf(r).ok, true);
      assert.ok((await fs.readFile(target)).equals(stale.onDevice), 'the target holds what the page cache had, not what is on the device');
    });
  }

  it('pull --skip-identical onto a local copy of the cached bytes: the differing block comes', async () => {
    const target = join(dir, 'pull-resync.img');
    await fs.writeFile(target, stale.cached);
    const r = await runCli(['pull', `root@127.0.0.1:${stale.dev}`, target, ...common('pull-resync', ['--skip-identical'])]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok((jsonOf(r).bytesOnWire as number) > 0, 'nothing was sent: the stale block was taken as identical');
    assert.ok((await fs.readFile(target)).equals(stale.onDevice));
  });
});
