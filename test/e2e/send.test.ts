import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { attachLoop, fileOfSize, loopAvailable, makeTempDir, sha256File, type LoopDevice } from '../harness/loop.js';
import { NEEDS, requireReal, haveCommand } from '../harness/real.js';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd.js';
import { jsonOf, runCli, startCli } from './cli.js';
import { sshArgs, countConnections, waitForVerified } from './remote-helpers.js';

const MiB = 1024 * 1024;

describe('e2e: ddt send over a real sshd', function () {
  let sshd: TestSshd;
  let dir: string;
  let mixed: string;

  before(async function () {
    requireReal(this, NEEDS.sshd, sshdAvailable());
    requireReal(this, 'xxhsum', haveCommand('xxhsum'));
    dir = await makeTempDir('ddt-e2e-send-');
    sshd = await startSshd();
    mixed = join(dir, 'mixed.img');
    await fileOfSize(mixed, 40 * MiB + 4096, 'mixed', 101);
  });
  after(async () => sshd?.stop());

  it('sends a mixed image to a loop device: bytes equal, zero blocks counted, connections ≤ --connections', async function () {
    requireReal(this, NEEDS.loop, loopAvailable());
    const backing = join(dir, 'loop-target.img');
    await fileOfSize(backing, 48 * MiB, 'random', 102);
    const loop = await attachLoop(backing);
    try {
      const run = startCli(['send', mixed, `root@127.0.0.1:${loop.dev}`, ...sshArgs(sshd), '-b', '1M', '--connections', '2', '--channels', '3', '--compress', 'none', '--yes', '--json', '--progress', 'none', '--journal', join(dir, 'loop.journal')]);
      const { total } = await countConnections(sshd, run.done);
      const r = await run.done;
      assert.equal(r.code, 0, r.stderr);
      const s = jsonOf(r);
      assert.equal(s.ok, true);
      assert.equal(s.verified, s.blocks);
      assert.equal(s.blocks, 41);
      const image = readFileSync(mixed);
      let expectedZero = 0;
      for (let at = 0; at < image.length; at += MiB) if (image.subarray(at, at + MiB).every((b) => b === 0)) expectedZero++;
      assert.equal(s.zeroBlocks, expectedZero);
      // Zero blocks are never sent; zero runs inside data blocks need not be either (finer than blocks is welcome).
      const dataBytes = (s.bytesTotal as number) - expectedZero * MiB - (expectedZero && readFileSync(mixed).subarray(40 * MiB).every((b) => b === 0) ? 4096 - MiB : 0);
      assert.ok((s.bytesOnWire as number) > 0.5 * dataBytes && (s.bytesOnWire as number) <= dataBytes, `${s.bytesOnWire} bytes on the wire, ${dataBytes} in data blocks`);
      assert.ok(total >= 1 && total <= 2, `the sshd accepted ${total} connections`);
      assert.equal(await sha256File(loop.dev, 40 * MiB + 4096), await sha256File(mixed));
    } finally {
      await loop.detach();
    }
  });

  it('zero runs inside blocks stop crossing the wire once they are common (X frames), bytes still equal', async function () {
    requireReal(this, NEEDS.loop, loopAvailable());
    // 16 blocks of 4 MiB, each half random, half zeros: no block is all zeros.
    const img = join(dir, 'half-zero.img');
    await fileOfSize(img, 32 * MiB, 'random', 104);
    const random = readFileSync(img);
    const parts: Buffer[] = [];
    for (let i = 0; i < 16; i++) parts.push(i % 2 ? Buffer.alloc(2 * MiB) : Buffer.from(random.subarray(i * 2 * MiB, (i + 1) * 2 * MiB)), i % 2 ? Buffer.from(random.subarray(i * 2 * MiB, (i + 1) * 2 * MiB)) : Buffer.alloc(2 * MiB));
    await fs.writeFile(img, Buffer.concat(parts));
    const backing = join(dir, 'half-zero-target.img');
    await fileOfSize(backing, 64 * MiB, 'random', 103);
    const loop = await attachLoop(backing);
    try {
      const r = await runCli(['send', img, `root@127.0.0.1:${loop.dev}`, ...sshArgs(sshd), '-b', '4M', '--compress', 'none', '--yes', '--json', '--progress', 'none', '--journal', join(dir, 'half-zero.journal')]);
      assert.equal(r.code, 0, r.stderr);
      const s = jsonOf(r);
      assert.equal(s.verified, 16);
      assert.equal(s.zeroBlocks, 0);
      // The first blocks go whole (W) until the zero share is known; after that 2 MiB per block.
      assert.ok((s.bytesOnWire as number) <= 48 * MiB, `${s.bytesOnWire} bytes on the wire of 64 MiB`);
      assert.ok((s.bytesOnWire as number) >= 32 * MiB, 'the data itself was sent');
      assert.equal(await sha256File(loop.dev, 64 * MiB), await sha256File(img));
    } finally {
      await loop.detach();
    }
  });

  it('sends to a file target with sha256 checksums and leaves no work dir behind', async () => {
    const target = join(dir, 'file-target.img');
    await fileOfSize(target, 41 * MiB, 'zero');
    const r = await runCli(['send', mixed, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '-b', '4M', '--checksum', 'sha256', '--yes', '--json', '--progress', 'none', '--journal', join(dir, 'file.journal')], { env: { DDT_DEBUG: '1' } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(jsonOf(r).checksum, 'sha256');
    assert.equal(await sha256File(target, 40 * MiB + 4096), await sha256File(mixed));
    const journal = readFileSync(join(dir, 'file.journal'), 'utf8');
    assert.match(journal, /"source":"[0-9a-f]{64}"/);
    // The lock's holder removed it, in the run's last round trip.
    assert.match(r.stderr, /lock record clean, lock released, work dir removed/);
    const workDirs = join(sshd.home, '.ddt');
    assert.deepEqual(existsSync(workDirs) ? await fs.readdir(workDirs) : [], []);
    // --keep-logs: the work dir (its helpers' logs) stays.
    const kept = await runCli(['send', mixed, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '-b', '4M', '--keep-logs', '--yes', '--json', '--progress', 'none', '--journal', join(dir, 'file-kept.journal')], { env: { DDT_DEBUG: '1' } });
    assert.equal(kept.code, 0, kept.stderr);
    assert.match(kept.stderr, /lock record clean, lock released\n/);
    const left = (await fs.readdir(workDirs)).filter((n) => n !== '.hashers');
    assert.equal(left.length, 1, `one work dir kept: ${left.join(', ')}`);
    assert.ok(existsSync(join(workDirs, left[0]!, '.ddt-workdir')));
    await fs.rm(join(workDirs, left[0]!), { recursive: true });
  });

  it('completes with fewer channels and one warning when the server allows only 2 sessions', async () => {
    const small = await startSshd({ maxSessions: 2 });
    try {
      const target = join(dir, 'maxsessions.img');
      await fileOfSize(target, 41 * MiB, 'zero');
      // One session of the two holds the target's lock for the run; the other carries blocks.
      const r = await runCli(['send', mixed, `root@127.0.0.1:${target}`, ...sshArgs(small), '--via', 'stream', '-b', '2M', '--connections', '1', '--channels', '6', '--yes', '--json', '--progress', 'plain', '--journal', join(dir, 'ms.journal')]);
      assert.equal(r.code, 0, r.stderr);
      const warnings = r.stderr.split('\n').filter((l) => /warning/i.test(l));
      assert.equal(warnings.length, 1, r.stderr);
      assert.match(warnings[0]!, /MaxSessions|channel/i);
      assert.equal(await sha256File(target, 40 * MiB + 4096), await sha256File(mixed));
    } finally {
      await small.stop();
    }
  });

  it('one connection of one channel carries the lock, the background install of ddt-hash (a source of 1 GiB) and the blocks', async () => {
    // Two sessions in all: the lock holds one for the run, and the workers open only once the
    // install that shares the other with them has ended.
    const big = join(dir, 'big-sparse.img');
    const target = join(dir, 'one-channel.img');
    await fileOfSize(big, 1024 * MiB, 'sparse', 41);
    await fs.writeFile(target, '');
    await fs.truncate(target, 1024 * MiB);
    try {
      const r = await runCli(['send', big, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--via', 'stream', '--connections', '1', '--channels', '1', '--yes', '--json', '--progress', 'none', '--journal', join(dir, 'one-channel.journal')], { env: { DDT_DEBUG: '1' } });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /ddt-hash (uploaded|from the cache)/);
      assert.equal(await sha256File(target), await sha256File(big));
    } finally {
      await fs.rm(big, { force: true });
      await fs.rm(target, { force: true });
    }
  });

  it('a remote target file that does not exist is created at the source size; never under /dev, never in a missing directory', async () => {
    const t = join(dir, 'created-remote.img');
    const r = await runCli(['send', mixed, `root@127.0.0.1:${t}`, ...sshArgs(sshd), '-b', '4M', '--yes', '--json', '--progress', 'none', '--journal', join(dir, 'created.journal')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await fs.stat(t)).size, 40 * MiB + 4096);
    assert.equal(await sha256File(t), await sha256File(mixed));
    for (const [path, message] of [
      ['/dev/ddt-no-such-device', /does not exist: a device must be there already/],
      [join(dir, 'no-such-dir', 'x.img'), /cannot create .*directory .*no-such-dir does not exist/],
    ] as const) {
      const n = await runCli(['send', mixed, `root@127.0.0.1:${path}`, ...sshArgs(sshd), '--yes', '--progress', 'none', '--journal', join(dir, `nocreate-${path.length}.journal`)]);
      assert.equal(n.code, 2, n.stderr);
      assert.match(n.stderr, message);
      assert.equal(existsSync(path), false);
    }
  });

  it('survives a connection killed mid-run (the per-connection sshd process, by PID)', async () => {
    const src = join(dir, 'kill-conn-src.img');
    await fileOfSize(src, 96 * MiB, 'random', 103);
    const target = join(dir, 'kill-conn-dst.img');
    await fileOfSize(target, 96 * MiB, 'zero');
    const journal = join(dir, 'killconn.journal');
    const run = startCli(['send', src, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '-b', '1M', '--connections', '2', '--channels', '2', '--yes', '--json', '--progress', 'none', '--journal', journal]);
    await waitForVerified(journal, 3, undefined, run);
    const pids = sshd.connectionPids();
    assert.ok(pids.length >= 1, 'no connection process found');
    process.kill(pids[0]!, 'SIGKILL');
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(jsonOf(r).verified, 96);
    assert.equal(await sha256File(target), await sha256File(src));
  });

  it('resumes a send after SIGKILL of the CLI', async () => {
    const src = join(dir, 'resume-src.img');
    await fileOfSize(src, 64 * MiB, 'random', 104);
    const target = join(dir, 'resume-dst.img');
    await fileOfSize(target, 64 * MiB, 'zero');
    const journal = join(dir, 'resume.journal');
    const run = startCli(['send', src, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '-b', '1M', '--yes', '--progress', 'none', '--journal', journal]);
    await waitForVerified(journal, 4, undefined, run);
    run.child.kill('SIGKILL');
    await run.done;
    const before = jsonOf(await runCli(['status', journal, '--json']));
    assert.ok((before.verified as number) < 64);
    const r = await runCli(['resume', journal, '--json', '--progress', 'none']);
    assert.equal(r.code, 0, r.stderr);
    const s = jsonOf(r);
    assert.equal(s.verified, 64);
    assert.ok((s.sent as number) <= 64 - (before.verified as number));
    assert.equal(await sha256File(target), await sha256File(src));
  });

  describe('refusals leave the target unchanged', () => {
    let target: string;
    let loop: LoopDevice | undefined;
    beforeEach(async () => {
      target = join(dir, 'refuse-target.img');
      await fileOfSize(target, 48 * MiB, 'random', 105);
    });
    afterEach(async () => {
      await loop?.detach();
      loop = undefined;
    });

    async function refused(args: string[], code: number, pattern: RegExp, path = target): Promise<string> {
      const before = existsSync(path) ? await sha256File(path) : undefined;
      const r = await runCli(args);
      assert.equal(r.code, code, `exit ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.equal(existsSync(path) ? await sha256File(path) : undefined, before, 'target changed');
      return r.stderr;
    }

    it('an unknown host key: exit 3 with the fingerprint and the line to add', async () => {
      const empty = join(dir, 'empty_known_hosts');
      await fs.writeFile(empty, '');
      const err = await refused(['send', mixed, `root@127.0.0.1:${target}`, '-p', String(sshd.port), '-i', sshd.clientKeyPath, '--known-hosts', empty, '--yes'], 3, /unknown|not known/i);
      assert.ok(err.includes(sshd.hostKeyFingerprint), err);
    });

    it('a changed host key: exit 3, even with --accept-new-host-key', async () => {
      const other = join(dir, 'other_key');
      if (!existsSync(other)) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
      const pub = readFileSync(`${other}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
      const kh = join(dir, 'changed_known_hosts');
      await fs.writeFile(kh, `[127.0.0.1]:${sshd.port} ${pub}\n`);
      await refused(['send', mixed, `root@127.0.0.1:${target}`, '-p', String(sshd.port), '-i', sshd.clientKeyPath, '--known-hosts', kh, '--yes', '--accept-new-host-key'], 3, /changed/i);
    });

    it('--accept-new-host-key records an unknown key and proceeds', async () => {
      const kh = join(dir, 'tofu_known_hosts');
      await fs.writeFile(kh, '');
      const r = await runCli(['send', mixed, `root@127.0.0.1:${target}`, '-p', String(sshd.port), '-i', sshd.clientKeyPath, '--known-hosts', kh, '--accept-new-host-key', '--yes', '--progress', 'none', '-b', '8M', '--journal', join(dir, 'tofu.journal')]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(readFileSync(kh, 'utf8'), new RegExp(`\\[127\\.0\\.0\\.1\\]:${sshd.port} ssh-ed25519 `));
      assert.match(r.stderr, /host key/i, 'accepting a key must never be silent');
    });

    it('a target smaller than the source: exit 2', async () => {
      const small = join(dir, 'small-target.img');
      await fileOfSize(small, 8 * MiB, 'random', 106);
      await refused(['send', mixed, `root@127.0.0.1:${small}`, ...sshArgs(sshd), '--yes'], 2, /smaller than the source/, small);
    });

    it('a mounted target: exit 2', async function () {
      requireReal(this, `${NEEDS.loop}, mkfs.ext4`, loopAvailable() && haveCommand('mkfs.ext4'));
      loop = await attachLoop(target);
      execFileSync('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', loop.dev]);
      const mnt = await makeTempDir('ddt-send-mnt-');
      execFileSync('mount', ['-o', 'ro', loop.dev, mnt]); // read-only: no journal commits change the bytes under the test
      try {
        await refused(['send', mixed, `root@127.0.0.1:${loop.dev}`, ...sshArgs(sshd), '--yes'], 2, /in use.*mounted/, loop.dev);
      } finally {
        execFileSync('umount', [mnt]);
      }
    });

    it('a target path with shell metacharacters is a path, never shell', async () => {
      const marker = join(dir, 'pwned');
      await refused(['send', mixed, `root@127.0.0.1:/dev/loop0; touch ${marker}`, ...sshArgs(sshd), '--yes'], 2, /does not exist|not a/);
      await refused(['send', mixed, `root@127.0.0.1:$(touch ${marker})`, ...sshArgs(sshd), '--yes'], 2, /absolute|path/);
      assert.ok(!existsSync(marker), 'a shell ran part of the target path');
    });

    it('no terminal and no --yes: exit 2', async () => {
      await refused(['send', mixed, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--journal', join(dir, 'notty.journal')], 2, /--yes/);
      assert.ok(!existsSync(join(dir, 'notty.journal')));
    });
  });
});
