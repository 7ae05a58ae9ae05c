// ddt send --via sftp against the real sshd: staging files in --remote-dir, free-space control,
// resume of a half-uploaded staging file.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statfsSync } from 'node:fs';
import { mkdir, open, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { attachLoop, fileOfSize, loopAvailable, makeTempDir, sha256File } from '../harness/loop.js';
import { haveCommand, haveRoot, requireReal } from '../harness/real.js';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd.js';
import { jsonOf, runCli, startCli } from './cli.js';
import { sshArgs, countConnections } from './remote-helpers.js';

const MiB = 1024 * 1024;

function stagingDirs(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((n) => n.startsWith('.ddt-staging-')) : [];
}

/** A tmpfs of `size` bytes mounted at a new dir; unmount it with the returned function. */
async function smallTmpfs(parent: string, name: string, size: number): Promise<{ path: string; unmount(): void }> {
  const path = join(parent, name);
  await mkdir(path);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=700`, 'ddt-test-staging', path]);
  let mounted = true;
  return {
    path,
    unmount: () => {
      if (mounted) execFileSync('umount', [path]);
      mounted = false;
    },
  };
}

function journalLines(path: string): Array<Record<string, unknown>> {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('e2e: ddt send --via sftp over a real sshd', function () {
  let sshd: TestSshd;
  let dir: string;
  let mixed: string;
  const mounts: Array<{ unmount(): void }> = [];

  before(async function () {
    requireReal(this, 'OpenSSH sshd (root)', sshdAvailable());
    requireReal(this, 'xxhsum', haveCommand('xxhsum'));
    dir = await makeTempDir('ddt-e2e-sftp-');
    sshd = await startSshd();
    mixed = join(dir, 'mixed.img');
    await fileOfSize(mixed, 40 * MiB + 4096, 'mixed', 401);
  });
  after(async () => {
    for (const m of mounts) m.unmount();
    await sshd?.stop();
  });

  it('sends a mixed image to a loop device: bytes equal, staging dir gone, connections ≤ --connections', async function () {
    requireReal(this, 'loop devices (root)', loopAvailable());
    const backing = join(dir, 'loop-target.img');
    await fileOfSize(backing, 48 * MiB, 'random', 402);
    const loop = await attachLoop(backing);
    try {
      const journal = join(dir, 'loop.journal');
      const run = startCli(['send', mixed, `root@127.0.0.1:${loop.dev}`, ...sshArgs(sshd), '--via', 'sftp', '-b', '1M', '--connections', '2', '--channels', '3', '--yes', '--json', '--progress', 'none', '--journal', journal]);
      const { total } = await countConnections(sshd, run.done);
      const r = await run.done;
      assert.equal(r.code, 0, r.stderr);
      const s = jsonOf(r);
      assert.equal(s.verified, 41);
      assert.equal(s.retransmitted, 0);
      assert.ok((s.zeroBlocks as number) > 0, 'the mixed image has zero blocks (sent as commands, never staged)');
      assert.ok(total >= 1 && total <= 2, `the sshd accepted ${total} connections`);
      assert.equal(await sha256File(loop.dev, 40 * MiB + 4096), await sha256File(mixed));
      const header = journalLines(journal)[0]!;
      assert.equal((header.path as { name: string }).name, 'sftp');
      assert.equal((header.path as Record<string, unknown>).remoteDir, undefined, 'default --remote-dir: the remote $HOME, resolved by every run');
      assert.deepEqual(stagingDirs(sshd.home), [], 'staging dir removed at the end');
    } finally {
      await loop.detach();
    }
  });

  it('a tmpfs staging dir smaller than connections × channels × block size still completes, never over-full', async function () {
    requireReal(this, 'root (mount tmpfs)', haveRoot());
    const size = 12 * MiB;
    const fs = await smallTmpfs(dir, 'small-staging', size);
    mounts.push(fs);
    const target = join(dir, 'tmpfs-target.img');
    await fileOfSize(target, 41 * MiB, 'zero');
    // 2 × 4 × 4 MiB = 32 MiB in flight would not fit; the default reserve is 10 % (1.2 MiB).
    const run = startCli(['send', mixed, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--via', 'sftp', '--remote-dir', fs.path, '-b', '4M', '--connections', '2', '--channels', '4', '--yes', '--json', '--progress', 'none', '--journal', join(dir, 'tmpfs.journal')]);
    let peak = 0;
    let finished = false;
    void run.done.finally(() => (finished = true));
    while (!finished) {
      const st = statfsSync(fs.path);
      peak = Math.max(peak, (st.blocks - st.bavail) * st.bsize);
      await new Promise((r) => setTimeout(r, 5));
    }
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    const s = jsonOf(r);
    assert.equal(s.verified, 11);
    assert.equal(s.retransmitted, 0, 'no block failed (no ENOSPC, no short staging file)');
    assert.ok(peak <= size - size / 10, `staging used ${peak} bytes, more than size − reserve`);
    assert.ok(peak >= 4 * MiB, `staging peaked at ${peak} bytes: were blocks staged there at all?`);
    assert.equal(await sha256File(target, 40 * MiB + 4096), await sha256File(mixed));
    assert.deepEqual(await readdir(fs.path), [], 'staging dir removed, nothing left on the tmpfs');
  });

  it('a staging dir too small for a single block: exit 2 before anything is written, says how much is needed', async function () {
    requireReal(this, 'root (mount tmpfs)', haveRoot());
    const fs = await smallTmpfs(dir, 'tiny-staging', 2 * MiB);
    mounts.push(fs);
    const target = join(dir, 'tiny-target.img');
    await fileOfSize(target, 41 * MiB, 'random', 403);
    const before = await sha256File(target);
    const journal = join(dir, 'tiny.journal');
    const r = await runCli(['send', mixed, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--via', 'sftp', '--remote-dir', fs.path, '-b', '4M', '--yes', '--progress', 'none', '--journal', journal]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /not enough space to stage even one block in .*tiny-staging.*2\.0 MiB available, 4\.3 MiB needed/);
    assert.equal(await sha256File(target), before, 'target changed');
    assert.ok(!existsSync(journal), 'a refusal leaves no journal');
    assert.deepEqual(await readdir(fs.path), []);
  });

  it('without --via and one connection: sftp; where staging cannot work, stream with a warning', async function () {
    requireReal(this, 'root (mount tmpfs)', haveRoot());
    const target = join(dir, 'default-target.img');
    await fileOfSize(target, 41 * MiB, 'zero');
    const journal = join(dir, 'default.journal');
    // (With 2+ connections and ssh on PATH the default is --via openssh: test/e2e/openssh.test.ts.)
    const r = await runCli(['send', mixed, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--connections', '1', '-b', '4M', '--yes', '--json', '--progress', 'plain', '--journal', journal]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((journalLines(journal)[0]!.path as { name: string }).name, 'sftp');
    assert.doesNotMatch(r.stderr, /warning/i);

    // One channel in all: an SFTP session and a helper worker do not both fit.
    await fileOfSize(target, 41 * MiB, 'zero');
    const fallback = join(dir, 'fallback.journal');
    const f = await runCli(['send', mixed, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--connections', '1', '--channels', '1', '-b', '4M', '--yes', '--json', '--progress', 'plain', '--journal', fallback]);
    assert.equal(f.code, 0, f.stderr);
    assert.match(f.stderr, /warning.*sending with --via stream, staging is not possible: --via sftp needs at least 2 channels/i);
    assert.equal((journalLines(fallback)[0]!.path as { name: string }).name, 'stream');
    assert.equal(await sha256File(target, 40 * MiB + 4096), await sha256File(mixed));

    // --remote-dir asks for staging: no fallback there.
    const fs = await smallTmpfs(dir, 'fallback-staging', 2 * MiB);
    mounts.push(fs);
    const refused = await runCli(['send', mixed, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--remote-dir', fs.path, '-b', '4M', '--yes', '--progress', 'none', '--journal', join(dir, 'refused.journal')]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /not enough space to stage/);
  });

  it('zero runs inside a data block are not uploaded (holes in the staging file), the target gets real zeros', async () => {
    const src = join(dir, 'holes-src.img');
    const buf = Buffer.alloc(16 * MiB);
    const rnd = randomBytes(MiB);
    rnd.copy(buf, 0); // block 0: 1 MiB data, then 7 MiB of zeros to its end
    rnd.copy(buf, 11 * MiB); // block 1: 3 MiB zeros, data, 3 MiB zeros, data
    rnd.copy(buf, 15 * MiB);
    await writeFile(src, buf);
    const target = join(dir, 'holes-dst.img');
    await fileOfSize(target, 16 * MiB, 'random', 409); // the zeros must really be written
    const r = await runCli(['send', src, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--via', 'sftp', '-b', '8M', '--yes', '--json', '--progress', 'none', '--journal', join(dir, 'holes.journal')]);
    assert.equal(r.code, 0, r.stderr);
    const s = jsonOf(r);
    assert.equal(s.verified, 2);
    assert.ok((s.bytesOnWire as number) < 4 * MiB, `${s.bytesOnWire} bytes on the wire for 3 MiB of data`);
    assert.ok((s.bytesOnWire as number) >= 3 * MiB);
    assert.equal(await sha256File(target), await sha256File(src));
  });

  it('a --remote-dir that does not exist: exit 2', async () => {
    const target = join(dir, 'nodir-target.img');
    await fileOfSize(target, 41 * MiB, 'zero');
    const r = await runCli(['send', mixed, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--via', 'sftp', '--remote_transfer_dir', join(dir, 'no-such-dir'), '--yes', '--progress', 'none', '--journal', join(dir, 'nodir.journal')]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--remote-dir .*no-such-dir does not exist/);
  });

  it('survives a connection killed mid-run: its SFTP sessions and workers come back, bytes equal', async () => {
    const src = join(dir, 'kill-conn-src.img');
    await fileOfSize(src, 96 * MiB, 'random', 406);
    const target = join(dir, 'kill-conn-dst.img');
    await fileOfSize(target, 96 * MiB, 'zero');
    const journal = join(dir, 'killconn.journal');
    const run = startCli(['send', src, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--via', 'sftp', '-b', '2M', '--connections', '2', '--channels', '3', '--yes', '--json', '--progress', 'none', '--journal', journal]);
    const deadline = Date.now() + 60_000;
    while ((existsSync(journal) ? journalLines(journal).filter((l) => l.state === 'verified').length : 0) < 3) {
      assert.ok(Date.now() < deadline, 'fewer than 3 blocks verified in 60 s');
      await new Promise((r) => setTimeout(r, 10));
    }
    const pids = sshd.connectionPids();
    assert.ok(pids.length >= 1, 'no connection process found');
    process.kill(pids[0]!, 'SIGKILL');
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(jsonOf(r).verified, 48);
    assert.equal(await sha256File(target), await sha256File(src));
    assert.deepEqual(stagingDirs(sshd.home), []);
  });

  it('completes with one warning when the server allows only 2 sessions per connection', async () => {
    const small = await startSshd({ maxSessions: 2 });
    try {
      const target = join(dir, 'maxsessions.img');
      await fileOfSize(target, 41 * MiB, 'zero');
      // Two connections: one session holds the target's lock, an SFTP session and a worker need one each.
      const r = await runCli(['send', mixed, `root@127.0.0.1:${target}`, ...sshArgs(small), '--via', 'sftp', '-b', '2M', '--connections', '2', '--channels', '6', '--yes', '--json', '--progress', 'plain', '--journal', join(dir, 'ms.journal')]);
      assert.equal(r.code, 0, r.stderr);
      const warnings = r.stderr.split('\n').filter((l) => /warning/i.test(l));
      assert.equal(warnings.length, 1, r.stderr);
      assert.match(warnings[0]!, /MaxSessions|channel/i);
      assert.equal(await sha256File(target, 40 * MiB + 4096), await sha256File(mixed));
      assert.deepEqual(stagingDirs(small.home), []);
    } finally {
      await small.stop();
    }
  });

  it('a server without an sftp subsystem: exit 2 before anything is written', async () => {
    const nosftp = await startSshd({ extraConfig: ['Subsystem not-sftp /usr/lib/openssh/sftp-server'] });
    try {
      const target = join(dir, 'nosftp.img');
      await fileOfSize(target, 41 * MiB, 'random', 408);
      const before = await sha256File(target);
      const r = await runCli(['send', mixed, `root@127.0.0.1:${target}`, ...sshArgs(nosftp), '--via', 'sftp', '--yes', '--progress', 'none', '--journal', join(dir, 'nosftp.journal')]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /no SFTP session.*--via stream/);
      assert.equal(await sha256File(target), before);
    } finally {
      await nosftp.stop();
    }
  });

  it('--dry-run names the staging dir and writes nothing; a bad --remote-reserve exits 2', async () => {
    const target = join(dir, 'dry-target.img');
    await fileOfSize(target, 41 * MiB, 'random', 407);
    const before = await sha256File(target);
    const r = await runCli(['send', mixed, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--via', 'sftp', '--remote-reserve', '5%', '--dry-run', '--journal', join(dir, 'dry.journal')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`via sftp: staging in ${sshd.home}/\\.ddt-staging-\\S+ \\(\\d+ bytes available, \\d+ kept free\\)`));
    assert.deepEqual(stagingDirs(sshd.home), []);
    assert.equal(await sha256File(target), before);
    const bad = await runCli(['send', mixed, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--via', 'sftp', '--remote-reserve', 'plenty', '--yes']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--remote-reserve/);
  });

  /**
   * An sftp run killed (SIGKILL) once its staging dir exists; then the first unproven block gets
   * a staging file holding the first half of that block (`corrupt`: of wrong bytes) and every
   * other staging file is removed, as if the kill had landed in the middle of that upload.
   */
  async function interruptedWithHalfFile(name: string, corrupt: boolean) {
    const src = join(dir, `${name}-src.img`);
    await fileOfSize(src, 64 * MiB, 'random', corrupt ? 404 : 405);
    const target = join(dir, `${name}-dst.img`);
    await fileOfSize(target, 64 * MiB, 'zero');
    const journal = join(dir, `${name}.journal`);
    const remoteDir = join(dir, `${name}-remote`);
    await mkdir(remoteDir);
    const run = startCli(['send', src, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--via', 'sftp', '--remote-dir', remoteDir, '-b', '8M', '--connections', '1', '--channels', '2', '--yes', '--progress', 'none', '--journal', journal]);
    const deadline = Date.now() + 60_000;
    while (stagingDirs(remoteDir).length === 0) {
      assert.ok(Date.now() < deadline, 'no staging dir appeared');
      await new Promise((r) => setTimeout(r, 5));
    }
    run.child.kill('SIGKILL');
    await run.done;
    const lines = journalLines(journal);
    const header = lines[0]! as { jobId: string };
    const verified = new Set(lines.filter((l) => l.type === 'block' && l.state === 'verified').map((l) => l.block as number));
    const k = [...Array(8).keys()].find((i) => !verified.has(i));
    assert.ok(k !== undefined, 'the run finished before it was killed');
    const staging = join(remoteDir, `.ddt-staging-${header.jobId}`);
    for (const f of await readdir(staging)) await rm(join(staging, f));
    const half = Buffer.alloc(4 * MiB);
    const fh = await open(src, 'r');
    await fh.read(half, 0, half.length, k * 8 * MiB);
    await fh.close();
    if (corrupt) half.fill(0x5a, MiB, 2 * MiB);
    await writeFile(join(staging, `block-${k}`), half, { mode: 0o600 });
    const pending = 8 - verified.size;
    return { src, target, journal, remoteDir, k, pending };
  }

  it('resume continues a half-uploaded staging file at its size: bytes equal, only the missing half sent', async () => {
    const t = await interruptedWithHalfFile('resume-half', false);
    const r = await runCli(['resume', t.journal, '--json', '--progress', 'none']);
    assert.equal(r.code, 0, r.stderr);
    const s = jsonOf(r);
    assert.equal(s.verified, 8);
    assert.equal(s.retransmitted, 0);
    assert.equal(s.bytesOnWire, t.pending * 8 * MiB - 4 * MiB, `block ${t.k}: its first half came from the staging file`);
    assert.equal(await sha256File(t.target), await sha256File(t.src));
    assert.deepEqual(stagingDirs(t.remoteDir), []);
  });

  it('resume with a corrupt half-uploaded staging file: the read-back checksum catches it, the block is re-sent whole', async () => {
    const t = await interruptedWithHalfFile('resume-corrupt', true);
    const r = await runCli(['resume', t.journal, '--json', '--progress', 'none']);
    assert.equal(r.code, 0, r.stderr);
    const s = jsonOf(r);
    assert.equal(s.verified, 8);
    assert.equal(s.retransmitted, 1);
    const failed = journalLines(t.journal).filter((l) => l.type === 'block' && l.state === 'failed');
    assert.deepEqual(
      failed.map((l) => [l.block, l.reason]),
      [[t.k, 'checksum mismatch after write']],
    );
    assert.equal(await sha256File(t.target), await sha256File(t.src));
    assert.deepEqual(stagingDirs(t.remoteDir), []);
  });

  it('resume --via stream finishes an sftp run and still removes its staging dir', async () => {
    const t = await interruptedWithHalfFile('resume-stream', false);
    const r = await runCli(['resume', t.journal, '--via', 'stream', '--json', '--progress', 'none']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(jsonOf(r).verified, 8);
    assert.equal(await sha256File(t.target), await sha256File(t.src));
    assert.deepEqual(stagingDirs(t.remoteDir), []);
  });
});
