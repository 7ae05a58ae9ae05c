// Progress that moves with the bytes, on every data path of `ddt send`: under --bwlimit a block
// takes seconds to cross, and the JSON progress events must show its bytes on the wire and at
// the target while nothing is proven yet; the summary counts them all.
// Real parts: the harness sshd, the built CLI, image files on this host as remote targets.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileOfSize, makeTempDir, sha256File } from '../harness/loop.js';
import { haveCommand, NEEDS, requireReal } from '../harness/real.js';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd.js';
import { jsonOf, runCli } from './cli.js';
import { sshArgs } from './remote-helpers.js';

const MiB = 1024 * 1024;

interface ProgressLine {
  type: string;
  phase: string;
  bytesVerified: number;
  bytesWire: number;
  bytesMoved: number;
  bytesAcked: number;
  percentMoved: number;
  averageRate: number;
  elapsed: number;
}

describe('e2e: progress moves with the bytes (--progress json, --bwlimit)', function () {
  let sshd: TestSshd;
  let dir: string;
  let src: string;

  before(async function () {
    requireReal(this, NEEDS.sshd, sshdAvailable());
    dir = await makeTempDir('ddt-e2e-progress-');
    sshd = await startSshd();
    src = join(dir, 'src.img');
    await fileOfSize(src, 12 * MiB, 'random', 71);
  });
  after(async () => sshd?.stop());

  const paths: Array<{ name: string; args: string[]; needs?: string }> = [
    { name: '--via openssh', args: ['--via', 'openssh'], needs: 'ssh' },
    { name: '--via stream', args: ['--via', 'stream'] },
    { name: '--via sftp', args: ['--via', 'sftp', '--remote-dir'] },
  ];
  for (const p of paths) {
    it(`${p.name}: one block at 3 MiB/s shows its bytes on the wire and at the target before it is proven`, async function () {
      if (p.needs) requireReal(this, p.needs, haveCommand(p.needs));
      const name = p.args[1]!;
      const target = join(dir, `${name}.img`);
      await fileOfSize(target, 12 * MiB, 'zero'); // a remote target must exist
      // One 12 MiB block at 3 MiB/s: at least 3 s between its first byte and its last, so the
      // once-a-second JSON events must see it half-way (the limit makes it slow, never fast).
      const r = await runCli(['send', src, `root@127.0.0.1:${target}`, ...sshArgs(sshd), ...p.args, ...(p.args.includes('--remote-dir') ? [dir] : []), '-b', '16M', '--bwlimit', '3M', '--compress', 'none', '--yes', '--json', '--progress', 'json', '--journal', join(dir, `${name}.journal`)]);
      assert.equal(r.code, 0, r.stderr);
      const events = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as ProgressLine);
      const progress = events.filter((e) => e.type === 'progress' && e.phase === 'transfer');
      const midway = progress.filter((e) => e.bytesVerified === 0 && e.bytesWire > 0 && e.bytesWire < 12 * MiB);
      assert.ok(midway.length >= 1, `no event saw the block half-way:\n${r.stderr}`);
      // The target takes what went on the wire (this data has no zeros to take without sending).
      for (const e of midway) assert.ok(e.bytesMoved <= e.bytesWire && e.bytesAcked === e.bytesMoved, JSON.stringify(e));
      const moving = midway.filter((e) => e.bytesMoved > 0);
      assert.ok(moving.length >= 1, `the bar never moved before the block was proven:\n${r.stderr}`);
      for (const e of moving) assert.ok(e.percentMoved > 0 && e.percentMoved < 100);
      const wire = progress.map((e) => e.bytesWire);
      assert.deepEqual([...wire].sort((a, b) => a - b), wire, 'bytesWire only goes up');
      const done = events.at(-1)!;
      assert.equal(done.type, 'done');
      assert.equal(done.bytesWire, 12 * MiB);
      assert.equal(done.bytesVerified, 12 * MiB);
      assert.ok(done.elapsed > 0 && done.averageRate > 0);
      const s = jsonOf(r);
      assert.equal(s.bytesOnWire, 12 * MiB, 'the summary counts the wire bytes of a --bwlimit run');
      assert.equal(await sha256File(target), await sha256File(src));
    });
  }

  it('--engine rsync: the bytes rsync sends show before the run ends, and the summary has them', async function () {
    requireReal(this, 'rsync, ssh', haveCommand('rsync') && haveCommand('ssh'));
    const target = join(dir, 'rsync.img');
    await fileOfSize(target, 12 * MiB, 'zero');
    // Four 3 MiB blocks at 3 MiB/s, one at a time: each is staged at that pace (where this path
    // applies --bwlimit), then rsync'd; the ones before the last are on the wire a second apart.
    const r = await runCli(['send', src, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--engine', 'rsync', '--channels', '1', '--remote-dir', dir, '-b', '3M', '--bwlimit', '3M', '--compress', 'none', '--yes', '--json', '--progress', 'json', '--journal', join(dir, 'rsync.journal')]);
    assert.equal(r.code, 0, r.stderr);
    const events = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as ProgressLine);
    const progress = events.filter((e) => e.type === 'progress' && e.phase === 'transfer');
    assert.ok(progress.some((e) => e.bytesWire > 0 && e.bytesWire < 12 * MiB), `no event between the first block and the last:\n${r.stderr}`);
    assert.equal(events.at(-1)!.bytesWire, 12 * MiB);
    assert.equal(jsonOf(r).bytesOnWire, 12 * MiB);
    assert.equal(await sha256File(target), await sha256File(src));
  });
});
