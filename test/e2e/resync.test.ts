// Re-sync below the block size (--skip-identical): both ends hash every block and its 1 MiB
// units (the remote one with the streaming hasher ddt-hash, or its shell tools where that cannot
// run), only the units that differ go over the wire, and every block is still proven by its
// whole read-back checksum. Bytes on the wire come from the summary; the target must end equal.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fileOfSize, makeTempDir, sha256File } from '../harness/loop.js';
import { requireReal } from '../harness/real.js';
import { minimalHostAvailable, startMinimalHost } from '../harness/remote-hosts.js';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd.js';
import { jsonOf, runCli, type CliResult } from './cli.js';

const MiB = 1024 * 1024;
const UNIT = MiB;
const ARCH = process.arch === 'arm64' ? 'aarch64' : 'x86_64';
/** Request headers of the parts and their answers are not payload; this bounds what else a run may count. */
const FRAMING = 64 * 1024;

/** Changed regions: unit-aligned, inside one unit, and across unit boundaries; block 2 (of 64 MiB) untouched. */
const REGIONS = [
  { offset: 10 * MiB, length: MiB },
  { offset: 70 * MiB + 500 * 1024, length: 100 * 1024 },
  { offset: 200 * MiB + 300 * 1024, length: 2 * MiB + 512 * 1024 },
];
const CHANGED = REGIONS.reduce((n, r) => n + r.length, 0);

/** The units (1 MiB) the regions touch: what a re-sync has to send. */
function touchedUnits(regions: { offset: number; length: number }[]): number {
  const units = new Set<number>();
  for (const r of regions) for (let u = Math.floor(r.offset / UNIT); u * UNIT < r.offset + r.length; u++) units.add(u);
  return units.size;
}

/** `dst` becomes `src` with the regions overwritten by other bytes: the target of an earlier sync. */
async function staleCopy(src: string, dst: string): Promise<void> {
  await fs.copyFile(src, dst);
  const fh = await fs.open(dst, 'r+');
  for (const r of REGIONS) await fh.write(randomBytes(r.length), 0, r.length, r.offset);
  await fh.close();
}

function assertDelta(r: CliResult, blocks: number, identical: number): Record<string, unknown> {
  assert.equal(r.code, 0, r.stderr);
  const s = jsonOf(r);
  assert.equal(s.verified, blocks);
  assert.equal(s.identicalBlocks, identical);
  assert.equal(s.sent, blocks - identical);
  const wire = s.bytesOnWire as number;
  // Only the touched units travel: no more than the changed bytes plus one unit per region.
  assert.ok(wire <= CHANGED + REGIONS.length * UNIT + FRAMING, `sent ${wire} bytes for ${CHANGED} changed`);
  assert.ok(wire <= touchedUnits(REGIONS) * UNIT, `sent ${wire} bytes, more than the ${touchedUnits(REGIONS)} units touched`);
  return s;
}

/** The name of the helper's copy kept beside the hashers: named by its bytes. */
const helperCopyName = () => `ddt-helper-${createHash('sha256').update(readFileSync(fileURLToPath(new URL('../../dist/ddt-helper.sh', import.meta.url)))).digest('hex').slice(0, 16)}.sh`;

const sshOf = (sshd: TestSshd) => ['-p', String(sshd.port), '-i', sshd.clientKeyPath, '--known-hosts', sshd.knownHostsPath, '--yes', '--json', '--progress', 'none'];

describe('e2e: re-sync below the block size (--skip-identical)', function () {
  let dir: string;
  let src: string;
  const SIZE = 256 * MiB; // 4 blocks of the default 64 MiB

  before(async function () {
    requireReal(this, 'OpenSSH sshd (root)', sshdAvailable());
    dir = await makeTempDir('ddt-e2e-resync-');
    src = join(dir, 'src.img');
    await fileOfSize(src, SIZE, 'mixed', 2201);
  });

  /**
   * `ddt send --skip-identical` through `host` onto NAME-dst.img, a stale copy of the source
   * (`prepare` may change it further), with `extra` and a journal NAME.journal of its own.
   */
  async function staleSend(host: TestSshd, name: string, extra: string[] = [], o: { env?: NodeJS.ProcessEnv; prepare?: (dst: string) => Promise<void> } = {}): Promise<{ r: CliResult; dst: string }> {
    const dst = join(dir, `${name}-dst.img`);
    await staleCopy(src, dst);
    await o.prepare?.(dst);
    const r = await runCli(['send', src, `root@127.0.0.1:${dst}`, ...sshOf(host), '--skip-identical', ...extra, '--journal', join(dir, `${name}.journal`)], { env: o.env });
    return { r, dst };
  }

  describe('on a Debian host (ddt-hash)', () => {
    let sshd: TestSshd;
    /** Connections the sshd accepted so far (one log line each). */
    const accepted = async () => ((await fs.readFile(sshd.logPath, 'utf8')).match(/Accepted publickey/g) ?? []).length;
    before(async () => {
      sshd = await startSshd();
    });
    after(async () => sshd?.stop());

    it('send at the default block size sends only the changed units and ends byte-identical', async () => {
      const { r, dst } = await staleSend(sshd, 'send');
      const s = assertDelta(r, 4, 1);
      assert.ok((s.bytesOnWire as number) >= MiB, `sent ${s.bytesOnWire} bytes`);
      // The streaming hasher ran: no word of falling back.
      assert.doesNotMatch(r.stderr, /ddt-hash|shell tools/);
      assert.equal(await sha256File(dst), await sha256File(src));
      // The target took the differing units only (written, or made holes where they are zeros),
      // not the three blocks they are in; the journal says so too.
      const took = (x: Record<string, unknown>) => (x.bytesWritten as number) + (x.bytesHoles as number) + (x.bytesOffloaded as number);
      assert.equal(took(s), touchedUnits(REGIONS) * UNIT, `written ${s.bytesWritten}, holes ${s.bytesHoles}, offloaded ${s.bytesOffloaded}`);
      const st = jsonOf(await runCli(['status', join(dir, 'send.journal'), '--json']));
      assert.equal(st.bytesWritten, s.bytesWritten);
    });

    it('keeps ddt-hash on the host once it passed its self-test: later runs take that copy, and upload over one that fails', async () => {
      const cacheDir = join(sshd.home, '.ddt', '.hashers');
      await fs.rm(cacheDir, { recursive: true, force: true });
      const resync = async (name: string): Promise<string> => {
        const { r, dst } = await staleSend(sshd, name, [], { env: { DDT_DEBUG: '1' } });
        assertDelta(r, 4, 1);
        assert.doesNotMatch(r.stderr, /did not pass|shell tools/);
        assert.equal(await sha256File(dst), await sha256File(src));
        return r.stderr;
      };
      assert.match(await resync('kept-1'), /ddt-hash uploaded/);
      const build = fileURLToPath(new URL(`../../dist/native/ddt-hash-${ARCH}`, import.meta.url));
      const bytes = await fs.readFile(build);
      const name = `ddt-hash-${ARCH}-${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}`;
      // Beside it, a copy of the helper the next run's prehash starts from (see below).
      assert.deepEqual((await fs.readdir(cacheDir)).sort(), [name, helperCopyName()]);
      const kept = join(cacheDir, name);
      assert.ok((await fs.readFile(kept)).equals(bytes), 'the kept copy is the build');
      // A stand-in that notes that it ran: the next run's hashes go through it only if that run
      // takes the kept copy instead of uploading the build.
      const ran = join(dir, 'kept-copy-ran');
      await fs.writeFile(kept, `#!/bin/sh\necho ran >>${ran}\nexec ${build} "$@"\n`, { mode: 0o755 });
      assert.match(await resync('kept-2'), /ddt-hash from the cache/);
      assert.ok(existsSync(ran), 'the kept copy ran');
      // One that fails its self-test is uploaded over, without a word of it.
      await fs.writeFile(kept, '#!/bin/sh\nexit 1\n', { mode: 0o755 });
      assert.match(await resync('kept-3'), /ddt-hash uploaded/);
      assert.ok((await fs.readFile(kept)).equals(bytes), 'the broken copy was replaced by the build');
    });

    it("a later re-sync hashes the target from its first session on, before the lock; a record changed meanwhile makes it hash again", async () => {
      const cacheDir = join(sshd.home, '.ddt', '.hashers');
      const resync = async (name: string, prepare?: (dst: string) => Promise<void>): Promise<string> => {
        const { r, dst } = await staleSend(sshd, name, [], { env: { DDT_DEBUG: '1' }, prepare });
        assertDelta(r, 4, 1);
        assert.equal(await sha256File(dst), await sha256File(src));
        return r.stderr;
      };
      await resync('pre-0'); // keeps ddt-hash and the helper's copy, where earlier tests have not
      assert.ok(existsSync(join(cacheDir, helperCopyName())), 'the helper is kept beside the hashers');
      const taken = await resync('pre-1');
      assert.match(taken, /prehash: reading with ddt-hash-/);
      assert.match(taken, /target \(pre-lock\)'s checksums done: 4/);
      assert.doesNotMatch(taken, /prehash not taken/);
      // A run that writes the target meanwhile names itself in its record first: a stand-in for
      // the kept ddt-hash plays that run as the prehash starts reading (once: the run's own
      // hashing goes through it too).
      const kept = join(cacheDir, (await fs.readdir(cacheDir)).find((f) => f.startsWith(`ddt-hash-${ARCH}-`))!);
      const bytes = await fs.readFile(kept);
      const build = fileURLToPath(new URL(`../../dist/native/ddt-hash-${ARCH}`, import.meta.url));
      let record = '';
      try {
        const changed = await resync('pre-2', async (dst) => {
          const st = await fs.stat(dst, { bigint: true });
          record = `/var/lib/ddt/locks/f-${st.dev}_${st.ino}.last`;
          const once = join(dir, 'pre-2-wrote');
          const play = `[ "$2" = ${dst} ] && [ ! -e ${once} ] && : >${once} && echo 'job=another run=another.1 state=clean' >${record}`;
          await fs.writeFile(kept, `#!/bin/sh\n${play}\nexec ${build} "$@"\n`, { mode: 0o755 });
        });
        assert.match(changed, /prehash: reading with/);
        assert.match(changed, /prehash not taken: the record of the last writer changed/);
        assert.match(changed, /target \(early\)'s checksums done: 4/, 'hashed again, once the lock was held');
      } finally {
        await fs.writeFile(kept, bytes, { mode: 0o755 });
        if (record) await fs.rm(record, { force: true });
      }
    });

    it('a ddt-hash that fails its self-test leaves the shell tools in charge, with one warning', async () => {
      const { r, dst } = await staleSend(sshd, 'selftest', [], { env: { DDT_NATIVE_HASHER: 'fail-selftest' } });
      assertDelta(r, 4, 1);
      const warnings = r.stderr.split('\n').filter((l) => /self-test/.test(l));
      assert.equal(warnings.length, 1, r.stderr);
      assert.match(warnings[0]!, /ddt-hash did not pass its self-test.*shell tools/);
      assert.equal(await sha256File(dst), await sha256File(src));
    });

    it('opens the data path\'s own connection only once much must go: none for an unchanged target or a small delta', async () => {
      // Connections the sshd accepted (one line each in its log): the run's ssh2 connection, and
      // the OpenSSH master of the default path (--connections 2) only where much is sent.
      const same = join(dir, 'same-dst.img');
      await fs.copyFile(src, same);
      let before = await accepted();
      const r = await runCli(['send', src, `root@127.0.0.1:${same}`, ...sshOf(sshd), '--skip-identical', '--journal', join(dir, 'same.journal')], { env: { DDT_DEBUG: '1' } });
      assert.equal(r.code, 0, r.stderr);
      const s = jsonOf(r);
      assert.equal(s.identicalBlocks, 4);
      assert.equal(s.bytesOnWire, 0);
      assert.equal((await accepted()) - before, 1, 'one connection for an unchanged target');
      assert.doesNotMatch(r.stderr, /light sink: opened|path openssh: set up/);
      assert.doesNotMatch(r.stderr, /a block differs before the lock/, 'no hint of a write where every block is the same');
      assert.equal(await sha256File(same), await sha256File(src));

      // A few changed units go over the light sink, on the run's own connection.
      const stale = join(dir, 'stale-dst.img');
      await staleCopy(src, stale);
      before = await accepted();
      const d = await runCli(['send', src, `root@127.0.0.1:${stale}`, ...sshOf(sshd), '--skip-identical', '--journal', join(dir, 'stale.journal')], { env: { DDT_DEBUG: '1' } });
      assertDelta(d, 4, 1);
      assert.match(d.stderr, /light sink: opened/);
      // As many workers as the blocks the pipeline puts in flight (--channels 4): the lock and the
      // target's hash stream keep their own sessions beside them.
      assert.match(d.stderr, /light sink: 4 workers/);
      assert.doesNotMatch(d.stderr, /path openssh: set up/);
      assert.equal((await accepted()) - before, 1, 'no master for a small delta');
      assert.equal(await sha256File(stale), await sha256File(src));
    });

    it('hands a re-sync that sends much over to the data path\'s own connections, every block proven', async () => {
      // One changed unit in each of 32 blocks of 8 MiB, paced so that the run outlasts the
      // masters' set-up and the light sink's blocks in flight after it (≈ 4 s at 8 MB/s: at 16 a
      // loaded CI machine once finished 0.5 s after the set-up, before the light sink was free);
      // the light sink's share made small, so that its first block uses it up.
      const stale = join(dir, 'handover-dst.img');
      await fs.copyFile(src, stale);
      const fh = await fs.open(stale, 'r+');
      for (let b = 0; b < SIZE / (8 * MiB); b++) await fh.write(randomBytes(UNIT), 0, UNIT, b * 8 * MiB + 3 * MiB);
      await fh.close();
      const before = await accepted();
      const d = await runCli(['send', src, `root@127.0.0.1:${stale}`, ...sshOf(sshd), '--skip-identical', '-b', '8M', '--bwlimit', '8M', '--journal', join(dir, 'handover.journal')], { env: { DDT_DEBUG: '1', DDT_LIGHT_BYTES: '1' } });
      assert.equal(d.code, 0, d.stderr);
      const s = jsonOf(d);
      assert.equal(s.verified, 32);
      assert.equal(s.sent, 32);
      assert.ok((s.bytesOnWire as number) <= 32 * (UNIT + FRAMING), `sent ${String(s.bytesOnWire)} bytes for 32 changed units`);
      assert.match(d.stderr, /light sink: opened[^]*light sink: \d+ bytes given, the path is set up[^]*light sink: closed, the path takes the blocks/);
      assert.equal((await accepted()) - before, 2, 'the master connects once the share is used up');
      assert.equal(s.via, 'openssh');
      assert.equal(await sha256File(stale), await sha256File(src));
    });

    it('pull --skip-identical: the local target hashed here, the remote source streamed by the helper', async () => {
      const local = join(dir, 'pull-dst.img');
      await staleCopy(src, local);
      const r = await runCli(['pull', `root@127.0.0.1:${src}`, local, ...sshOf(sshd), '--skip-identical', '--journal', join(dir, 'pull.journal')]);
      const s = assertDelta(r, 4, 1);
      // The units that differ and hold data did travel (the bound above holds for 0 bytes too).
      assert.ok((s.bytesOnWire as number) >= MiB, `sent ${s.bytesOnWire} bytes`);
      assert.equal(await sha256File(local), await sha256File(src));
    });

    it("resume --reverify re-checks the proven blocks with the same stream and re-sends the one that changed", async () => {
      const dst = join(dir, 'reverify-dst.img');
      await fs.copyFile(src, dst);
      const journal = join(dir, 'reverify.journal');
      const first = await runCli(['send', src, `root@127.0.0.1:${dst}`, ...sshOf(sshd), '--skip-identical', '--journal', journal]);
      assert.equal(first.code, 0, first.stderr);
      assert.equal(jsonOf(first).identicalBlocks, 4);
      // Someone writes into block 1 behind the journal's back.
      const fh = await fs.open(dst, 'r+');
      await fh.write(randomBytes(4096), 0, 4096, 64 * MiB + 12345);
      await fh.close();
      const r = await runCli(['resume', journal, '--reverify', '--json', '--progress', 'none']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /1 block\(s\) proven earlier read differently/);
      assert.doesNotMatch(r.stderr, /ddt-hash|shell tools/);
      assert.equal(jsonOf(r).sent, 1);
      assert.equal(await sha256File(dst), await sha256File(src));
    });

    it('--via stream with one connection of one channel: the lock, the hasher and the hashing share it with the blocks', async () => {
      // The lock holds one session for the whole run, and the target's hashes would hold
      // another: with room for only one more, the target is hashed block by block instead.
      await fs.rm(join(sshd.home, '.ddt', '.hashers'), { recursive: true, force: true });
      const { r, dst } = await staleSend(sshd, 'one-channel', ['--via', 'stream', '--connections', '1', '--channels', '1']);
      assertDelta(r, 4, 1);
      assert.equal(await sha256File(dst), await sha256File(src));
    });

    it('--connections 1 (no OpenSSH path): exec channels, not staged files, so still only the changed units', async () => {
      const { r, dst } = await staleSend(sshd, 'one-conn', ['--connections', '1']);
      const s = assertDelta(r, 4, 1);
      assert.equal(s.via, 'stream');
      assert.equal(await sha256File(dst), await sha256File(src));
    });

    it('--via sftp: the changed units go to the helper as parts, not as staged whole blocks', async () => {
      const { r, dst } = await staleSend(sshd, 'sftp', ['--via', 'sftp']);
      const s = assertDelta(r, 4, 1);
      assert.equal(s.via, 'sftp');
      assert.equal(await sha256File(dst), await sha256File(src));
    });

    it('-b 1M: one block per unit, the changed blocks sent whole', async () => {
      const { r, dst } = await staleSend(sshd, 'small', ['-b', '1M']);
      assertDelta(r, 256, 256 - touchedUnits(REGIONS));
      assert.equal(await sha256File(dst), await sha256File(src));
    });
  });

  describe('on a busybox-only host', () => {
    let host: TestSshd;
    before(async function () {
      requireReal(this, 'root, busybox, util-linux unshare, OpenSSH sshd and sftp-server', minimalHostAvailable());
      host = await startMinimalHost();
    });
    after(async () => host?.stop());

    it('with the shell tools only (no ddt-hash): sha256 units, the same delta', async () => {
      const { r, dst } = await staleSend(host, 'bb-sh', [], { env: { DDT_NATIVE_HASHER: 'off' } });
      const s = assertDelta(r, 4, 1);
      assert.equal(s.checksum, 'sha256');
      assert.equal(await sha256File(dst), await sha256File(src));
    });

    it('ddt-hash runs there too (static): xxh64 units although the host has no xxhsum; the next run takes the kept copy', async () => {
      for (const [n, how] of [[1, /ddt-hash uploaded/], [2, /ddt-hash from the cache/]] as const) {
        const { r, dst } = await staleSend(host, `bb-native${n}`, [], { env: { DDT_DEBUG: '1' } });
        assertDelta(r, 4, 1);
        assert.doesNotMatch(r.stderr, /did not pass|shell tools/);
        assert.match(r.stderr, how);
        assert.equal(await sha256File(dst), await sha256File(src));
      }
    });

    it('--via sftp: its staging sink hands the changed units to the shell helper as parts', async () => {
      const { r, dst } = await staleSend(host, 'bb-sftp', ['--via', 'sftp'], { env: { DDT_NATIVE_HASHER: 'off' } });
      const s = assertDelta(r, 4, 1);
      assert.equal(s.via, 'sftp');
      assert.equal(await sha256File(dst), await sha256File(src));
    });
  });
});
