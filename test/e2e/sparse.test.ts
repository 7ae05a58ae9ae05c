// Sparse images and thin targets, end to end: holes of the source are never read, zero ranges
// of the target become holes (files) or device offloads (loop devices), every block is still
// proven by its read-back checksum, and --no-sparse writes the zeros. Allocation is what `du`
// (st_blocks) says of the target file or of the loop device's backing file.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { zeroDigest } from '../../src/block/zero.js';
import { initChecksums, createHasher } from '../../src/checksum/hasher.js';
import { BlockReader } from '../../src/local/block-reader.js';
import { dataRanges, sparseCalls } from '../../src/local/holes.js';
import { planBlocks } from '../../src/plan/block-plan.js';
import { answerWords, zerosOf } from '../../src/remote/wire.js';
import { attachLoop, loopAvailable, makeTempDir, sha256File } from '../harness/loop.js';
import { requireReal } from '../harness/real.js';
import { minimalHostAvailable, startMinimalHost } from '../harness/remote-hosts.js';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd.js';
import { jsonOf, runCli, startCli } from './cli.js';

const MiB = 1024 * 1024;
const SIZE = 512 * MiB;
const BLOCK = 4 * MiB;
/** Random data at unaligned places (a run crosses chunk and block boundaries): 24 MiB in all. */
const DATA_AT = [3 * MiB + 4096, 201 * MiB + 12345, 400 * MiB];
const DATA = DATA_AT.length * 8 * MiB;

async function sparseImage(path: string): Promise<void> {
  await fs.writeFile(path, '');
  await fs.truncate(path, SIZE);
  const fh = await fs.open(path, 'r+');
  for (const at of DATA_AT) await fh.write(randomBytes(8 * MiB), 0, 8 * MiB, at);
  await fh.close();
}

/** A sparse file of `size` bytes, all hole, or full of random bytes (an old disk). */
async function target(path: string, size = SIZE, full = false): Promise<void> {
  await fs.rm(path, { force: true });
  await fs.writeFile(path, '');
  await fs.truncate(path, size);
  if (full) execFileSync('dd', ['if=/dev/urandom', `of=${path}`, 'bs=4M', `count=${size / (4 * MiB)}`, 'conv=notrunc', 'status=none']);
}

const allocated = (path: string) => Number(execFileSync('du', ['--block-size=1', path], { encoding: 'utf8' }).split('\t')[0]);

describe('e2e: sparse images and thin targets', function () {
  let sshd: TestSshd;
  let dir: string;
  let src: string;
  let n = 0;
  const journal = () => join(dir, `j${++n}.journal`);
  const ssh = (h: TestSshd) => ['-p', String(h.port), '-i', h.clientKeyPath, '--known-hosts', h.knownHostsPath, '--yes', '--json', '--progress', 'none', '-b', '4M'];

  before(async function () {
    requireReal(this, 'OpenSSH sshd (root)', sshdAvailable());
    dir = await makeTempDir('ddt-e2e-sparse-');
    src = join(dir, 'src.img');
    await sparseImage(src);
    sshd = await startSshd();
    await initChecksums();
  });
  after(async () => sshd?.stop());

  it('the checksum of N zeros, computed once per length, equals hashing them; answers carry zeros=', async () => {
    for (const algo of ['xxh64', 'sha256'] as const) {
      for (const len of [512, MiB + 512, 64 * MiB]) {
        const h = createHasher(algo);
        h.update(Buffer.alloc(len));
        assert.equal(zeroDigest(algo, len), h.digest(), `${algo} ${len}`);
      }
    }
    assert.deepEqual(answerWords('OK 0123456789abcdef deferred zeros=hole'), { head: 'OK 0123456789abcdef', words: ['deferred', 'zeros=hole'] });
    assert.equal(zerosOf(answerWords('OK 0123456789abcdef zeros=offload').words), 'offload');
    assert.equal(zerosOf(answerWords('OK 0123456789abcdef').words), undefined);
  });

  it('the reader reports the holes of a file and proves them as zeros without reading them: checksums equal reading it', async function () {
    requireReal(this, 'the native addon (npm run build)', sparseCalls() !== undefined);
    const fh = await fs.open(src, 'r');
    const ranges = dataRanges(fh.fd, 0, SIZE)!;
    await fh.close();
    // ext4 allocates in 4 KiB blocks: each run of data is reported rounded out to them.
    assert.equal(ranges.length, DATA_AT.length);
    ranges.forEach((r, i) => {
      assert.ok(r.offset <= DATA_AT[i]! && r.offset + r.length >= DATA_AT[i]! + 8 * MiB, JSON.stringify(r));
      assert.ok(r.length <= 8 * MiB + 8192, JSON.stringify(r));
    });
    const reader = await BlockReader.open(src);
    const whole = await fs.readFile(src);
    for (const algo of ['xxh64', 'sha256'] as const) {
      for (const b of planBlocks(SIZE, 64 * MiB)) {
        const h = createHasher(algo);
        h.update(whole.subarray(b.offset, b.offset + b.length));
        const want = h.digest();
        assert.equal((await reader.hashBlock(b, algo)).checksum, want, `hashBlock ${b.index} ${algo}`);
        const opened = await reader.openBlock(b, algo);
        if (opened.payload.kind === 'data') for await (const _ of opened.payload.chunks);
        assert.equal(await opened.checksum, want, `openBlock ${b.index} ${algo}`);
      }
    }
    await reader.close();
    // Of 2 × 2 passes over the image, only the 64 MiB blocks holding data were read, and of those only their data chunks.
    assert.ok(reader.holeBytes >= 4 * (SIZE - 3 * 64 * MiB), `hole bytes ${reader.holeBytes}`);
  });

  for (const via of [['--via', 'openssh'], ['--via', 'stream'], ['--via', 'sftp'], ['--engine', 'rsync']]) {
    it(`send ${via.join(' ')} onto an old full remote file: it ends sparse (allocation ≤ data + one block), bytes equal`, async () => {
      const dst = join(dir, 'remote.img');
      await target(dst, SIZE, true);
      const r = await runCli(['send', src, `root@127.0.0.1:${dst}`, ...ssh(sshd), ...via, '--journal', journal()]);
      assert.equal(r.code, 0, r.stderr);
      const s = jsonOf(r);
      assert.equal(s.verified, SIZE / BLOCK);
      assert.ok(allocated(dst) <= DATA + BLOCK, `allocated ${allocated(dst)}`);
      assert.ok((s.bytesHoles as number) >= SIZE - DATA - 3 * BLOCK, `holes ${s.bytesHoles}`);
      assert.equal((s.bytesHoles as number) + (s.bytesWritten as number) + (s.bytesOffloaded as number), SIZE);
      assert.equal(await sha256File(dst), await sha256File(src));
    });
  }

  it('a run killed half-way and resumed: the target ends sparse, the summary counts the holes of both runs', async () => {
    const dst = join(dir, 'resumed.img');
    await target(dst, SIZE, true);
    const j = journal();
    // Paced, so that the kill lands while blocks are still to do.
    const run = startCli(['send', src, `root@127.0.0.1:${dst}`, ...ssh(sshd), '--bwlimit', '4M', '--journal', j]);
    const poll = setInterval(() => {
      const text = existsSync(j) ? readFileSync(j, 'utf8') : '';
      if ((text.match(/"state":"verified"/g) ?? []).length >= 20) run.child.kill('SIGKILL');
    }, 50);
    const first = await run.done;
    clearInterval(poll);
    assert.equal(first.signal, 'SIGKILL', `the first run was not killed: ${first.stderr}`);
    const r = await runCli(['resume', j, '--json', '--progress', 'none']);
    assert.equal(r.code, 0, r.stderr);
    const s = jsonOf(r);
    assert.equal(s.verified, SIZE / BLOCK);
    assert.ok((s.bytesHoles as number) >= SIZE - DATA - 3 * BLOCK, `holes ${s.bytesHoles}`);
    assert.ok(allocated(dst) <= DATA + BLOCK, `allocated ${allocated(dst)}`);
    assert.equal(await sha256File(dst), await sha256File(src));
  });

  it('--no-sparse writes the zeros: the target is allocated whole, the journal records sparse: false', async () => {
    const dst = join(dir, 'nosparse.img');
    await target(dst);
    const j = journal();
    const r = await runCli(['send', src, `root@127.0.0.1:${dst}`, ...ssh(sshd), '--no-sparse', '--journal', j]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(allocated(dst) >= SIZE, `allocated ${allocated(dst)}`);
    assert.equal(jsonOf(r).bytesWritten, SIZE);
    assert.equal((JSON.parse((await fs.readFile(j, 'utf8')).split('\n')[0]!) as { options: { sparse: boolean } }).options.sparse, false);
    assert.equal(await sha256File(dst), await sha256File(src));
  });

  it('a send of 1 GiB or more installs ddt-hash in the background for its read-backs; a smaller one does not', async () => {
    const big = join(dir, 'big.img');
    await fs.writeFile(big, '');
    await fs.truncate(big, 2048 * MiB);
    const fh = await fs.open(big, 'r+');
    for (const at of [5 * MiB, 1500 * MiB + 777]) await fh.write(randomBytes(8 * MiB), 0, 8 * MiB, at);
    await fh.close();
    const dst = join(dir, 'big-dst.img');
    await target(dst, 2048 * MiB);
    const env = { DDT_DEBUG: '1' };
    const r = await runCli(['send', big, `root@127.0.0.1:${dst}`, ...ssh(sshd), '--journal', journal()], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /ddt-hash installed/);
    assert.equal(jsonOf(r).verified, 512);
    assert.equal(await sha256File(dst), await sha256File(big));
    assert.ok(allocated(dst) <= 16 * MiB + 2 * BLOCK, `allocated ${allocated(dst)}`);
    await fs.rm(dst);
    await fs.rm(big);

    const small = join(dir, 'small-dst.img');
    await target(small);
    const s = await runCli(['send', src, `root@127.0.0.1:${small}`, ...ssh(sshd), '--journal', journal()], { env });
    assert.equal(s.code, 0, s.stderr);
    assert.doesNotMatch(s.stderr, /ddt-hash/);
    assert.equal(await sha256File(small), await sha256File(src));
  });

  it('--discard with --no-sparse is refused before anything connects (exit 2)', async () => {
    const r = await runCli(['send', src, `root@127.0.0.1:${join(dir, 'x.img')}`, ...ssh(sshd), '--no-sparse', '--discard', '--journal', journal()]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--discard/);
  });

  it('pull into a new file: the file is sparse; ddt status shows the holes', async () => {
    const dst = join(dir, 'pulled.img');
    await fs.rm(dst, { force: true });
    const j = journal();
    const r = await runCli(['pull', `root@127.0.0.1:${src}`, dst, ...ssh(sshd), '--journal', j]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(allocated(dst) <= DATA + BLOCK, `allocated ${allocated(dst)}`);
    assert.equal(await sha256File(dst), await sha256File(src));
    const st = await runCli(['status', j, '--json']);
    const s = JSON.parse(st.stdout) as Record<string, number>;
    assert.ok(s.bytesHoles! >= SIZE - DATA - 3 * BLOCK, st.stdout);
    assert.equal(s.bytesHoles! + s.bytesWritten! + s.bytesOffloaded!, SIZE);
  });

  it('copy onto an old full file: holes punched where the source has zeros, bytes equal', async () => {
    const dst = join(dir, 'copied.img');
    await target(dst, SIZE, true);
    const r = await runCli(['copy', src, dst, '--yes', '--json', '--progress', 'none', '-b', '4M', '--journal', journal()]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(allocated(dst) <= DATA + BLOCK, `allocated ${allocated(dst)}`);
    assert.ok((jsonOf(r).sourceHoleBytes as number) >= SIZE - DATA - 3 * BLOCK || sparseCalls() === undefined);
    assert.equal(await sha256File(dst), await sha256File(src));
  });

  it('a loop device over a full sparse file: zero blocks are offloaded (the backing file is punched), bytes equal', async function () {
    requireReal(this, 'loop devices (root)', loopAvailable());
    const backing = join(dir, 'backing.img');
    await target(backing, SIZE, true);
    const loop = await attachLoop(backing);
    try {
      const r = await runCli(['send', src, `root@127.0.0.1:${loop.dev}`, ...ssh(sshd), '--journal', journal()]);
      assert.equal(r.code, 0, r.stderr);
      const s = jsonOf(r);
      assert.ok((s.bytesOffloaded as number) >= SIZE - DATA - 3 * BLOCK, `offloaded ${s.bytesOffloaded}`);
      assert.ok(allocated(backing) <= DATA + BLOCK, `allocated ${allocated(backing)}`);
      assert.equal(await sha256File(loop.dev, SIZE), await sha256File(src));
      // The same into the device from here (copy): offloads too.
      execFileSync('dd', ['if=/dev/urandom', `of=${loop.dev}`, 'bs=4M', 'count=64', 'conv=fsync', 'status=none']);
      const c = await runCli(['copy', src, loop.dev, '--yes', '--json', '--progress', 'none', '-b', '4M', '--journal', journal()]);
      assert.equal(c.code, 0, c.stderr);
      assert.ok((jsonOf(c).bytesOffloaded as number) >= SIZE - DATA - 3 * BLOCK, c.stdout);
      assert.ok(allocated(backing) <= DATA + BLOCK, `allocated ${allocated(backing)}`);
      assert.equal(await sha256File(loop.dev, SIZE), await sha256File(src));
    } finally {
      await loop.detach();
    }
  });

  it('--target-zeroed on a sparse target proves the zero blocks by reading them back, writing nothing', async () => {
    const dst = join(dir, 'zeroed.img');
    await target(dst);
    const r = await runCli(['send', src, `root@127.0.0.1:${dst}`, ...ssh(sshd), '--target-zeroed', '--journal', journal()]);
    assert.equal(r.code, 0, r.stderr);
    const s = jsonOf(r);
    assert.ok((s.zeroBlocks as number) >= SIZE / BLOCK - 9, `zero blocks ${s.zeroBlocks}`);
    assert.ok((s.bytesWritten as number) <= DATA + 3 * BLOCK, `written ${s.bytesWritten}`);
    assert.ok(allocated(dst) <= DATA + BLOCK, `allocated ${allocated(dst)}`);
    assert.equal(await sha256File(dst), await sha256File(src));
  });

  describe('busybox host (no punch, no conv=sparse)', function () {
    let host: TestSshd;
    before(async function () {
      requireReal(this, 'busybox minimal host (root, busybox, unshare)', minimalHostAvailable());
      host = await startMinimalHost();
    });
    after(async () => host?.stop());

    it('send onto a new sparse file: zeros already there are left alone, so it stays sparse; bytes equal', async () => {
      const dst = join(dir, 'bb.img');
      await target(dst);
      const r = await runCli(['send', src, `root@127.0.0.1:${dst}`, ...ssh(host), '--journal', journal()]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(allocated(dst) <= DATA + BLOCK, `allocated ${allocated(dst)}`);
      assert.ok((jsonOf(r).bytesHoles as number) >= SIZE - DATA - 3 * BLOCK, r.stdout);
      assert.equal(await sha256File(dst), await sha256File(src));
    });

    it('onto an old full file the zeros are written (nothing can punch there): bytes equal', async () => {
      const dst = join(dir, 'bb-full.img');
      await target(dst, SIZE, true);
      const r = await runCli(['send', src, `root@127.0.0.1:${dst}`, ...ssh(host), '--journal', journal()]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await sha256File(dst), await sha256File(src));
    });

    it('--no-sparse allocates there too', async () => {
      const dst = join(dir, 'bb-nosparse.img');
      await target(dst);
      const r = await runCli(['send', src, `root@127.0.0.1:${dst}`, ...ssh(host), '--no-sparse', '--journal', journal()]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(allocated(dst) >= SIZE, `allocated ${allocated(dst)}`);
    });

    it('pull from it into a new file: sparse here', async () => {
      const dst = join(dir, 'bb-pulled.img');
      await fs.rm(dst, { force: true });
      const r = await runCli(['pull', `root@127.0.0.1:${src}`, dst, ...ssh(host), '--journal', journal()]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(allocated(dst) <= DATA + BLOCK, `allocated ${allocated(dst)}`);
      assert.equal(await sha256File(dst), await sha256File(src));
    });
  });
});
