import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs, readFileSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { fuseAvailable, withBadSectorDevice } from '../fixtures/bad-device.js';
import { attachLoop, fileOfSize, loopAvailable, makeTempDir, sha256File } from '../harness/loop.js';
import { haveCommand, NEEDS, requireReal } from '../harness/real.js';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd.js';
import { jsonOf, runCli, startCli } from './cli.js';
import { sshArgs, waitForVerified } from './remote-helpers.js';

const MiB = 1024 * 1024;

/** Whole zero blocks of `blockSize` in a file (the last block may be short). */
function zeroBlocks(path: string, blockSize: number): { count: number; bytes: number } {
  const data = readFileSync(path);
  let count = 0;
  let bytes = 0;
  for (let at = 0; at < data.length; at += blockSize) {
    const block = data.subarray(at, at + blockSize);
    if (block.every((b) => b === 0)) {
      count++;
      bytes += block.length;
    }
  }
  return { count, bytes };
}

function journalRecords(path: string): Array<Record<string, unknown>> {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('e2e: ddt pull over a real sshd', function () {
  let sshd: TestSshd;
  let dir: string;
  let mixed: string;

  before(async function () {
    requireReal(this, NEEDS.sshd, sshdAvailable());
    requireReal(this, 'xxhsum', haveCommand('xxhsum'));
    dir = await makeTempDir('ddt-e2e-pull-');
    sshd = await startSshd();
    mixed = join(dir, 'mixed.img');
    // An odd size: the last block is short.
    await fileOfSize(mixed, 40 * MiB + 4096, 'mixed', 201);
  });
  after(async () => sshd?.stop());

  it('pulls a mixed image into a new file: bytes equal, zero blocks never on the wire, both checksums journaled', async () => {
    const target = join(dir, 'new.img');
    const journal = join(dir, 'new.journal');
    const r = await runCli(['pull', `root@127.0.0.1:${mixed}`, target, ...sshArgs(sshd), '-b', '1M', '--json', '--progress', 'none', '--journal', journal]);
    assert.equal(r.code, 0, r.stderr);
    const s = jsonOf(r);
    assert.equal(s.ok, true);
    assert.equal(s.command, 'pull');
    assert.equal(s.blocks, 41);
    assert.equal(s.verified, 41);
    const zero = zeroBlocks(mixed, MiB);
    assert.ok(zero.count > 0, 'the mixed image should have whole zero blocks');
    assert.equal(s.zeroBlocks, zero.count);
    assert.equal(s.bytesOnWire, (s.bytesTotal as number) - zero.bytes);
    assert.equal(typeof s.bytesPerSecond, 'number');
    assert.equal((await fs.stat(target)).size, 40 * MiB + 4096);
    assert.equal(await sha256File(target), await sha256File(mixed));
    const records = journalRecords(journal);
    assert.equal(records[0]!.command, 'pull');
    assert.equal((records[0]!.source as { remote: { hosts: string[] } }).remote.hosts[0], '127.0.0.1');
    const verified = records.filter((x) => x.type === 'block' && x.state === 'verified');
    assert.equal(verified.length, 41);
    for (const v of verified) {
      assert.match(String(v.source), /^[0-9a-f]{16}$/);
      assert.equal(v.source, v.target);
    }
    // The helper's work dir goes at the end of a successful run.
    const workDirs = join(sshd.home, '.ddt');
    assert.deepEqual(existsSync(workDirs) ? await fs.readdir(workDirs) : [], []);
  });

  it('a source checksum is what sha256sum prints for that range on the source host', async () => {
    const target = join(dir, 'sha.img');
    const journal = join(dir, 'sha.journal');
    const r = await runCli(['pull', `root@127.0.0.1:${mixed}`, target, ...sshArgs(sshd), '-b', '8M', '--checksum', 'sha256', '--json', '--progress', 'none', '--journal', journal]);
    assert.equal(r.code, 0, r.stderr);
    const first = journalRecords(journal).find((x) => x.type === 'block' && x.state === 'verified' && x.block === 0)!;
    const want = execFileSync('sh', ['-c', `head -c ${8 * MiB} "$1" | sha256sum`, 'sh', mixed]).toString().split(' ')[0];
    assert.equal(first.source, want);
  });

  it('pulls onto a loop device with --yes: the device holds the source, the rest untouched', async function () {
    requireReal(this, NEEDS.loop, loopAvailable());
    const backing = join(dir, 'loop-target.img');
    await fileOfSize(backing, 48 * MiB, 'random', 202);
    const tailBefore = execFileSync('sh', ['-c', `tail -c ${8 * MiB - 4096} "$1" | sha256sum`, 'sh', backing]).toString();
    const loop = await attachLoop(backing);
    try {
      const r = await runCli(['pull', `root@127.0.0.1:${mixed}`, loop.dev, ...sshArgs(sshd), '-b', '4M', '--connections', '1', '--channels', '3', '--yes', '--json', '--progress', 'none', '--journal', join(dir, 'loop.journal')]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(jsonOf(r).verified, 11);
      assert.equal(await sha256File(loop.dev, 40 * MiB + 4096), await sha256File(mixed));
    } finally {
      await loop.detach();
    }
    const tailAfter = execFileSync('sh', ['-c', `tail -c ${8 * MiB - 4096} "$1" | sha256sum`, 'sh', backing]).toString();
    assert.equal(tailAfter, tailBefore, 'bytes past the source size must stay as they were');
  });

  it('--progress json: lines parse, counters only go up, one final done event', async () => {
    const src = join(dir, 'progress-src.img');
    await fileOfSize(src, 192 * MiB, 'random', 203);
    const r = await runCli(['pull', `root@127.0.0.1:${src}`, join(dir, 'progress.img'), ...sshArgs(sshd), '-b', '2M', '--connections', '1', '--channels', '2', '--progress', 'json', '--journal', join(dir, 'progress.journal')]);
    assert.equal(r.code, 0, r.stderr);
    const events = r.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; bytesVerified: number; bytesTotal: number; blocks: { verified: number }; ok?: boolean; time: string });
    const progress = events.filter((e) => e.type === 'progress');
    assert.ok(progress.length >= 2, `expected several progress events, got ${progress.length}`);
    for (let i = 1; i < events.length; i++) {
      assert.ok(events[i]!.bytesVerified >= events[i - 1]!.bytesVerified, 'bytesVerified went down');
      assert.ok(events[i]!.blocks.verified >= events[i - 1]!.blocks.verified, 'verified blocks went down');
      assert.ok(Date.parse(events[i]!.time) >= Date.parse(events[i - 1]!.time));
    }
    assert.ok(progress.some((e) => e.bytesVerified > 0 && e.bytesVerified < e.bytesTotal), 'no intermediate progress seen');
    const done = events.filter((e) => e.type === 'done');
    assert.equal(done.length, 1);
    assert.equal(events.at(-1)!.type, 'done');
    assert.equal(done[0]!.ok, true);
    assert.equal(done[0]!.bytesVerified, 192 * MiB);
  });

  it('survives a connection killed mid-run (the per-connection sshd process, by PID)', async () => {
    const src = join(dir, 'kill-conn-src.img');
    await fileOfSize(src, 96 * MiB, 'random', 210);
    const target = join(dir, 'kill-conn-dst.img');
    const journal = join(dir, 'killconn.journal');
    const run = startCli(['pull', `root@127.0.0.1:${src}`, target, ...sshArgs(sshd), '-b', '1M', '--connections', '2', '--channels', '2', '--json', '--progress', 'none', '--journal', journal]);
    await waitForVerified(journal, 3, undefined, run);
    const pids = sshd.connectionPids();
    assert.ok(pids.length >= 1, 'no connection process found');
    process.kill(pids[0]!, 'SIGKILL');
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(jsonOf(r).verified, 96);
    assert.equal(await sha256File(target), await sha256File(src));
  });

  it('ddt verify against a remote target: identical exits 0; a flipped byte exits 4 and names its block range', async () => {
    const copy = join(dir, 'verify-target.img');
    await fs.copyFile(mixed, copy);
    const args = ['verify', mixed, `root@127.0.0.1:${copy}`, ...sshArgs(sshd), '-b', '1M', '--json'];
    const same = await runCli(args);
    assert.equal(same.code, 0, same.stderr);
    assert.deepEqual(jsonOf(same).differences, []);
    const fh = await fs.open(copy, 'r+');
    await fh.write(Buffer.from([0xff]), 0, 1, 5 * MiB + 123);
    await fh.close();
    const diff = await runCli(args);
    assert.equal(diff.code, 4, diff.stderr);
    const v = jsonOf(diff);
    assert.equal(v.different, 1);
    assert.deepEqual(v.differences, [{ offset: 5 * MiB, length: MiB }]);
    const human = await runCli(args.slice(0, -1));
    assert.match(human.stdout, new RegExp(`^${5 * MiB}\\.\\.${6 * MiB} \\(${MiB} bytes\\)$`, 'm'));
    assert.deepEqual(existsSync(join(sshd.home, '.ddt')) ? await fs.readdir(join(sshd.home, '.ddt')) : [], [], 'verify leaves no work dir');
  });

  it('resumes a pull after SIGKILL of the CLI: proven blocks are not fetched again, bytes equal', async () => {
    const src = join(dir, 'resume-src.img');
    await fileOfSize(src, 64 * MiB, 'random', 204);
    const target = join(dir, 'resume-dst.img');
    const journal = join(dir, 'resume.journal');
    const run = startCli(['pull', `root@127.0.0.1:${src}`, target, ...sshArgs(sshd), '-b', '1M', '--progress', 'none', '--journal', journal]);
    await waitForVerified(journal, 4, undefined, run);
    run.child.kill('SIGKILL');
    await run.done;
    const before = jsonOf(await runCli(['status', journal, '--json']));
    assert.equal(before.command, 'pull');
    const provenBefore = before.verified as number;
    assert.ok(provenBefore >= 4 && provenBefore < 64, `verified before resume: ${provenBefore}`);
    const r = await runCli(['resume', journal, '--json', '--progress', 'none']);
    assert.equal(r.code, 0, r.stderr);
    const s = jsonOf(r);
    assert.equal(s.verified, 64);
    assert.ok((s.sent as number) <= 64 - provenBefore, `resume fetched ${s.sent} blocks, ${provenBefore} were proven already`);
    assert.equal(await sha256File(target), await sha256File(src));
    const again = await runCli(['resume', journal]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /nothing to do/);
  });

  it('resume refuses a remote source that changed since the run began: exit 2, target untouched', async () => {
    const src = join(dir, 'changed-src.img');
    await fileOfSize(src, 8 * MiB, 'random', 205);
    const target = join(dir, 'changed-dst.img');
    const journal = join(dir, 'changed.journal');
    const r = await runCli(['pull', `root@127.0.0.1:${src}`, target, ...sshArgs(sshd), '-b', '1M', '--progress', 'none', '--journal', journal]);
    assert.equal(r.code, 0, r.stderr);
    // Make the journal unfinished again, then change the source's mtime.
    const lines = readFileSync(journal, 'utf8').split('\n').filter((l) => !l.includes('"block":7,'));
    await fs.writeFile(journal, lines.join('\n'));
    utimesSync(src, new Date(), new Date(Date.now() + 5000));
    const before = await sha256File(target);
    const again = await runCli(['resume', journal, '--progress', 'none']);
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, /changed since the run began/);
    assert.equal(await sha256File(target), before);
  });

  it('a read error on the source host stops the run: exit 4, proven blocks stay proven, resumable', async function () {
    requireReal(this, NEEDS.fuse, fuseAvailable());
    const img = join(dir, 'bad-src.img');
    await fileOfSize(img, 4 * MiB, 'random', 209);
    await withBadSectorDevice(img, [(3 * MiB) / 512 + 10], async (dev) => {
      const journal = join(dir, 'bad.journal');
      const r = await runCli(['pull', `root@127.0.0.1:${dev}`, join(dir, 'bad-dst.img'), ...sshArgs(sshd), '-b', '1M', '--connections', '1', '--channels', '1', '--json', '--progress', 'none', '--journal', journal]);
      assert.equal(r.code, 4, r.stderr);
      const s = jsonOf(r);
      assert.equal(s.verified, 3);
      assert.match(String(s.error), /read failed.*Input\/output error.*ddt resume/);
      const st = jsonOf(await runCli(['status', journal, '--json']));
      assert.equal(st.verified, 3);
      assert.match(String(st.lastError), /Input\/output error/);
    });
  });

  describe('refusals leave the local target unchanged', () => {
    let src: string;
    before(async () => {
      src = join(dir, 'refuse-src.img');
      await fileOfSize(src, 4 * MiB, 'random', 206);
    });

    async function refused(args: string[], target: string, code: number, pattern: RegExp): Promise<void> {
      const before = existsSync(target) ? await sha256File(target) : undefined;
      const r = await runCli([...args, '--progress', 'plain']);
      assert.equal(r.code, code, `exit ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.equal(r.stderr.trim().split('\n').length, 1, `more than one line: ${r.stderr}`);
      const after = existsSync(target) ? await sha256File(target) : undefined;
      assert.equal(after, before, 'target changed');
    }

    it('a local target smaller than the source: exit 2', async () => {
      const t = join(dir, 'small.img');
      await fileOfSize(t, 2 * MiB, 'random', 207);
      await refused(['pull', `root@127.0.0.1:${src}`, t, ...sshArgs(sshd), '--yes', '--journal', join(dir, 'p1.journal')], t, 2, /smaller than the source/);
    });

    it('an existing target without --yes and without a terminal: exit 2, no journal', async () => {
      const t = join(dir, 'exists.img');
      await fileOfSize(t, 4 * MiB, 'random', 208);
      await refused(['pull', `root@127.0.0.1:${src}`, t, ...sshArgs(sshd), '--journal', join(dir, 'p2.journal')], t, 2, /--yes/);
      assert.ok(!existsSync(join(dir, 'p2.journal')), 'a refused run must not leave a journal');
    });

    it('the source itself (pulled from this very host): exit 2', async () => {
      await refused(['pull', `root@127.0.0.1:${src}`, src, ...sshArgs(sshd), '--yes', '--journal', join(dir, 'p3.journal')], src, 2, /same file/);
    });

    it('a missing remote source, a relative or shell-like path: exit 2, nothing created', async () => {
      const t = join(dir, 'never.img');
      await refused(['pull', `root@127.0.0.1:${join(dir, 'nope.img')}`, t, ...sshArgs(sshd), '--journal', join(dir, 'p4.journal')], t, 2, /does not exist/);
      await refused(['pull', 'root@127.0.0.1:relative.img', t, ...sshArgs(sshd)], t, 2, /absolute/);
      await refused(['pull', `root@127.0.0.1:${join(dir, 'x; touch ' + join(dir, 'pwned'))}`, t, ...sshArgs(sshd)], t, 2, /does not exist/);
      assert.ok(!existsSync(join(dir, 'pwned')), 'a path must never run as shell');
      assert.ok(!existsSync(t), 'a refused pull must not create the target');
    });

    it('--noerror, --engine rsync and --bwlimit, which pull does not have yet: exit 2 before connecting', async () => {
      const t = join(dir, 'never2.img');
      await refused(['pull', `root@127.0.0.1:${src}`, t, ...sshArgs(sshd), '--noerror'], t, 2, /--noerror is not supported by pull/);
      await refused(['pull', `root@127.0.0.1:${src}`, t, ...sshArgs(sshd), '--engine', 'rsync'], t, 2, /native engine/);
      await refused(['pull', `root@127.0.0.1:${src}`, t, ...sshArgs(sshd), '--bwlimit', '1M'], t, 2, /--bwlimit/);
      assert.ok(!existsSync(t));
    });

    it('a mounted loop device: exit 2', async function () {
      requireReal(this, `${NEEDS.loop}, mkfs.ext4`, loopAvailable() && haveCommand('mkfs.ext4'));
      const img = join(dir, 'mounted.img');
      await fileOfSize(img, 16 * MiB, 'zero');
      const loop = await attachLoop(img);
      const mnt = await makeTempDir('ddt-mnt-');
      execFileSync('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', loop.dev]);
      execFileSync('mount', [loop.dev, mnt]);
      try {
        await refused(['pull', `root@127.0.0.1:${src}`, loop.dev, ...sshArgs(sshd), '--yes', '--journal', join(dir, 'p5.journal')], loop.dev, 2, /mounted on/);
      } finally {
        execFileSync('umount', [mnt]);
        await loop.detach();
      }
    });

    it('an unknown host key: exit 3 with the fingerprint, nothing created', async () => {
      const t = join(dir, 'never3.img');
      const empty = join(dir, 'empty_known_hosts');
      await fs.writeFile(empty, '');
      const r = await runCli(['pull', `root@127.0.0.1:${src}`, t, '-p', String(sshd.port), '-i', sshd.clientKeyPath, '--known-hosts', empty, '--progress', 'none']);
      assert.equal(r.code, 3, r.stderr);
      assert.ok(r.stderr.includes(sshd.hostKeyFingerprint), r.stderr);
      assert.ok(!existsSync(t));
    });
  });
});
