// The joined helper on a host that has only busybox (busybox ash as sh, busybox dd without
// conv=nocreat or byte counts, busybox sha256sum, no perl, xxhsum or openssl): probe, every
// serve verb against a loop device and a file, byte-compared and hashed here; then the same
// host without its hash applets, where the helper must say what is missing and never hang.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, realpath, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { appletDir, busyboxAvailable, inBusybox } from '../harness/busybox.js';
import { attachLoop, loopAvailable, makeTempDir, type LoopDevice } from '../harness/loop.js';
import { haveCommand, NEEDS, requireReal } from '../harness/real.js';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('../../dist/ddt-helper.sh', import.meta.url));
const MiB = 1 << 20;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const kv = (text: string) => Object.fromEntries(text.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));

interface Answer {
  line: string;
  data?: Buffer;
  trailer?: string;
}

/** Answer lines, with R's `D <n>` frames split off (their bytes, then the trailer line). */
function answers(out: Buffer): Answer[] {
  const list: Answer[] = [];
  const lineAt = (at: number) => {
    const nl = out.indexOf(10, at);
    assert.ok(nl >= 0, `no line end after byte ${at}: ${JSON.stringify(out.subarray(at, at + 200).toString('latin1'))}`);
    return { text: out.subarray(at, nl).toString('latin1'), next: nl + 1 };
  };
  for (let at = 0; at < out.length; ) {
    const head = lineAt(at);
    at = head.next;
    if (!head.text.startsWith('D ')) {
      list.push({ line: head.text });
      continue;
    }
    const n = Number(head.text.slice(2));
    const data = out.subarray(at, at + n);
    at += n;
    const trailer = lineAt(at);
    at = trailer.next;
    list.push({ line: head.text, data, trailer: trailer.text });
  }
  return list;
}

const req = (head: string, body?: Buffer) => Buffer.concat([Buffer.from(`${head}\n`), body ?? Buffer.alloc(0)]);
const xframes = (parts: Array<Buffer | number>) =>
  Buffer.concat(parts.flatMap((p) => (typeof p === 'number' ? [Buffer.from(`Z${String(p).padStart(14)}\n`)] : [Buffer.from(`D${String(p.length).padStart(14)}\n`), p])));

describe('helper on a busybox-only host (unshare, busybox ash)', function () {
  this.timeout(120_000);
  let dir: string;
  let wd: string;
  let bin: string;
  let bare: string;

  before(async function () {
    requireReal(this, NEEDS.busybox, busyboxAvailable());
    dir = await makeTempDir('ddt-busybox-');
    wd = join(dir, 'work');
    await mkdir(wd);
    bin = await appletDir(join(dir, 'bin'));
    bare = await appletDir(join(dir, 'bare'), ['sha256sum', 'sha1sum', 'sha512sum', 'sha3sum', 'md5sum']);
  });

  const helper = (b: string, args: string[], input?: Buffer) => inBusybox(b, ['sh', SCRIPT, ...args], { input });

  it('nothing but busybox is reachable in there', async () => {
    const r = await inBusybox(bin, ['sh', '-c', 'for t in perl xxhsum openssl /usr/bin/perl /bin/dd; do command -v $t || echo "no $t"; done; dd --help 2>&1 | head -n 1']);
    assert.match(r.out.toString(), /no perl\nno xxhsum\nno openssl\nno \/usr\/bin\/perl\n\/bin\/dd\nBusyBox/);
  });

  it('probe: the dd it has, the hash tool it has, nothing missing', async () => {
    const file = join(dir, 'probe.img');
    await writeFile(file, randomBytes(MiB));
    const r = await helper(bin, ['probe', file, dir]);
    assert.equal(r.code, 0, r.err);
    const p = kv(r.out.toString());
    assert.equal(p.type, 'file');
    assert.equal(p.size, String(MiB));
    assert.equal(p.seek_bytes, '1');
    assert.equal(p.nocache, '0');
    assert.equal(p.perl, '0');
    assert.equal(p.xxhsum, '0');
    assert.equal(p.hash_tools, 'sha256sum');
    assert.equal(p.dd_stats, 'records');
    assert.deepEqual(p.dd_conv!.split(','), ['notrunc', 'fsync'], 'busybox dd has no conv=nocreat');
    assert.deepEqual(p.dd_iflags!.split(','), ['skip_bytes', 'count_bytes', 'fullblock', 'direct']);
    assert.deepEqual(p.dd_oflags!.split(','), ['seek_bytes', 'direct']);
    assert.equal(p.gzip, '1');
    assert.equal(p.missing, '');
  });

  /** Every verb against `target` (initially `image`): answers, then the bytes the target ends with. */
  async function everyVerb(target: string, image: Buffer): Promise<void> {
    const expect = Buffer.from(image);
    const put = (off: number, b: Buffer) => b.copy(expect, off);
    const a = randomBytes(3_000_000); // not a multiple of 1 MiB: dd's last record is short
    const b = randomBytes(MiB);
    const c = randomBytes(300_000);
    const xblock = Buffer.concat([Buffer.alloc(MiB), c, Buffer.alloc(4096)]);
    const d1 = randomBytes(512 << 10);
    const d2 = Buffer.alloc(512 << 10, 'compressible text ');
    const staged = randomBytes(100_000);
    const stagedPath = join(dir, 'staged.blk');
    await writeFile(stagedPath, staged);
    const input = Buffer.concat([
      req('N 0 0'),
      req(`W 4096 ${a.length} sha256`, a),
      req(`W ${4 * MiB} ${b.length} sha256 defer`, b),
      req(`Z ${5 * MiB} 8192 sha256`),
      req(`X ${6 * MiB} ${xblock.length} sha256`, xframes([MiB, c, 4096])),
      req(`P ${8 * MiB} ${d1.length}`, d1),
      req(`G ${8 * MiB + d1.length} ${d2.length} ${gzipSync(d2).length}`, gzipSync(d2)),
      req(`E ${9 * MiB} ${MiB}`),
      req(`S ${8 * MiB} ${2 * MiB} sha256`),
      req(`F ${10 * MiB} ${staged.length} sha256 ${stagedPath}`),
      req('Y 0 0'),
      req(`W 0 5 xxh64`, Buffer.from('never')),
      req(`H 0 ${image.length} sha256`),
      req(`H ${image.length - 4096} 8192 sha256`),
      req('Q'),
    ]);
    put(4096, a);
    put(4 * MiB, b);
    put(5 * MiB, Buffer.alloc(8192));
    put(6 * MiB, xblock);
    put(8 * MiB, Buffer.concat([d1, d2, Buffer.alloc(MiB)]));
    put(10 * MiB, staged);
    // A write may defer its flush only where it bypasses the page cache (a tmpfs file cannot).
    const direct = kv((await helper(bin, ['probe', target])).out.toString()).direct === '1';
    const r = await helper(bin, ['serve', target, wd], input);
    assert.equal(r.timedOut, false);
    assert.deepEqual(
      answers(r.out).map((x) => x.line),
      [
        'OK',
        `OK ${sha256(a)}`,
        `OK ${sha256(b)}${direct ? ' deferred' : ''}`,
        `OK ${sha256(Buffer.alloc(8192))}`,
        `OK ${sha256(xblock)}`,
        'OK',
        'OK',
        'OK',
        `OK ${sha256(expect.subarray(8 * MiB, 10 * MiB))}`,
        `OK ${sha256(staged)}`,
        'OK',
        'ERR missing tool xxhsum: cannot compute xxh64 here (install xxhash, or use sha256)',
        `OK ${sha256(expect)}`,
        'ERR read-back short: 4096 of 8192 bytes (range beyond end of target?)',
      ],
      r.err,
    );
    assert.equal(r.code, 0);
    assert.equal(existsSync(stagedPath), false, 'a staged file is removed once written');
    assert.ok((await readFile(target)).equals(expect), 'the target holds exactly what was written');

    // R, the target as a pull source: data, a zero range, a short last record, past the end.
    const end = image.length;
    const reads = await helper(bin, ['serve', target, wd], Buffer.from(
      [`R 4096 ${a.length} sha256`, `R ${5 * MiB} 8192 sha256`, `R 12345 1000 sha256`, `R ${end - 100} 4096 sha256`, `R 0 4096 sha256`, 'Q', ''].join('\n'),
    ));
    const got = answers(reads.out);
    assert.equal(got.length, 5, reads.err);
    assert.equal(got[0]!.line, `D ${a.length}`);
    assert.ok(got[0]!.data!.equals(a));
    assert.equal(got[0]!.trailer, `OK ${sha256(a)}`);
    assert.equal(got[1]!.line, `Z ${sha256(Buffer.alloc(8192))}`);
    assert.ok(got[2]!.data!.equals(expect.subarray(12345, 13345)));
    assert.equal(got[2]!.trailer, `OK ${sha256(expect.subarray(12345, 13345))}`);
    assert.equal(got[3]!.line, 'D 4096');
    assert.equal(got[3]!.data!.length, 4096, 'the frame keeps its length');
    assert.ok(got[3]!.data!.subarray(0, 100).equals(expect.subarray(end - 100)));
    assert.match(got[3]!.trailer!, /^ERR read short: 100 of 4096 bytes \(the source ends/);
    assert.equal(got[4]!.trailer, `OK ${sha256(expect.subarray(0, 4096))}`, 'and the next request reads fine');
  }

  it('serve, a loop device: W Z X P G E S F Y H and R, byte for byte', async function () {
    requireReal(this, NEEDS.loop, loopAvailable());
    const image = randomBytes(16 * MiB);
    const file = join(dir, 'loop.img');
    await writeFile(file, image);
    let loop: LoopDevice | undefined;
    try {
      loop = await attachLoop(file);
      const p = kv((await helper(bin, ['probe', loop.dev])).out.toString());
      assert.equal(p.type, 'block');
      assert.equal(p.size, String(16 * MiB));
      assert.equal(p.direct, '1');
      await everyVerb(loop.dev, image);
      // A write that fails part-way (past the device's end) still takes its whole frame.
      const over = await helper(bin, ['serve', loop.dev, wd], Buffer.concat([req(`W ${16 * MiB - 4096} 3000000 sha256`, randomBytes(3_000_000)), req('N 0 0')]));
      const lines = answers(over.out).map((x) => x.line);
      assert.equal(lines.length, 2, lines.join('\n'));
      assert.match(lines[0]!, /^ERR write failed: .*No space left on device/);
      assert.equal(lines[1], 'OK');
    } finally {
      await loop?.detach();
    }
  });

  it('probe sees a mounted loop device, and its backing file as held (busybox stat, cat, df)', async function () {
    requireReal(this, `${NEEDS.loop}, mkfs.ext4`, loopAvailable() && haveCommand('mkfs.ext4'));
    const file = join(dir, 'mounted.img');
    await writeFile(file, Buffer.alloc(16 * MiB));
    const loop = await attachLoop(file);
    const mnt = join(dir, 'mnt');
    try {
      await run('mkfs.ext4', ['-q', '-F', loop.dev]);
      await mkdir(mnt, { recursive: true });
      await run('mount', [loop.dev, mnt]);
      try {
        const p = kv((await helper(bin, ['probe', loop.dev, mnt])).out.toString());
        assert.equal(p.mounted, '1');
        assert.equal(p.sector, '512');
        assert.ok(Number(p.free) > 0 && Number(p.dir_size) > 0, 'df -P under busybox');
        const img = kv((await helper(bin, ['probe', file])).out.toString());
        assert.equal(img.holders, loop.dev.replace('/dev/', ''));
      } finally {
        await run('umount', [mnt]);
      }
    } finally {
      await loop.detach();
    }
  });

  it('serve, a regular file: the same', async () => {
    const image = randomBytes(12 * MiB);
    const file = join(dir, 'file.img');
    await writeFile(file, image);
    await everyVerb(file, image);
  });

  it('a target path that vanished is never created: every write is refused, its payload skipped', async () => {
    const gone = join(dir, 'gone.img');
    const gz = gzipSync(Buffer.from('abcd'));
    const staged = join(dir, 'staged-gone.blk');
    await writeFile(staged, 'abcd');
    const input = Buffer.concat([
      req('W 0 4 sha256', Buffer.from('abcd')),
      req('X 0 4100 sha256', xframes([Buffer.from('abcd'), 4096])),
      req('Z 0 4096 sha256'),
      req(`F 0 4 sha256 ${staged}`),
      req('P 0 4', Buffer.from('abcd')),
      req(`G 0 4 ${gz.length}`, gz),
      req('E 0 4096'),
      req('S 0 4096 sha256'),
      req('Y 0 0'),
      req('H 0 4 sha256'),
      req('N 0 0'),
    ]);
    const r = await helper(bin, ['serve', gone, wd], input);
    const lines = answers(r.out).map((x) => x.line);
    assert.equal(lines.length, 11, lines.join('\n'));
    for (const l of lines.slice(0, 9)) assert.equal(l, `ERR write failed: ${gone}: No such file or directory`);
    assert.match(lines[9]!, /^ERR read-back failed/);
    assert.equal(lines[10], 'OK');
    assert.equal(existsSync(gone), false);
    assert.equal(existsSync(staged), true, 'the staged file stays where it was not written');
  });

  it('identity of a loop device and of a file: what resume compares, and the lock key', async function () {
    requireReal(this, NEEDS.loop, loopAvailable());
    const file = join(dir, 'ident.img');
    await writeFile(file, Buffer.alloc(2 * MiB));
    const f = kv((await helper(bin, ['identity', file])).out.toString());
    const fst = await stat(file, { bigint: true });
    assert.equal(f.kind, 'file');
    assert.equal(f.size, String(2 * MiB));
    assert.equal(f.ino, String(fst.ino));
    assert.equal(f.dev, String(fst.dev));
    assert.equal(f.key, `f-${fst.dev}_${fst.ino}`, 'the name its lock has');
    assert.equal(f.writable, '1');
    const loop = await attachLoop(file);
    try {
      const b = kv((await helper(bin, ['identity', loop.dev])).out.toString());
      const bst = await stat(loop.dev, { bigint: true });
      const major = (bst.rdev >> 8n) & 0xfffn;
      const minor = (bst.rdev & 0xffn) | ((bst.rdev >> 12n) & ~0xffn);
      assert.equal(b.kind, 'block');
      assert.equal(b.size, String(2 * MiB));
      assert.equal(b.devno, `${major}:${minor}`);
      assert.equal(b.key, `b-${major}_${minor}`);
      assert.equal(b.backing, await realpath(file), 'a loop device names its backing file');
      assert.equal(b.serial, b.backing, 'as serial too, where the device has none');
    } finally {
      await loop.detach();
    }
  });

  describe('without hash applets', () => {
    it('probe names the missing tool', async () => {
      const file = join(dir, 'bare-probe.img');
      await writeFile(file, Buffer.alloc(4096));
      const p = kv((await helper(bare, ['probe', file])).out.toString());
      assert.equal(p.hash_tools, '');
      assert.equal(p.missing, 'sha256sum');
      assert.equal(p.sha256sum, '0');
    });

    it('serve refuses at once, naming the tool, and writes nothing; R does not hang', async () => {
      const before = randomBytes(64 << 10);
      const file = join(dir, 'bare.img');
      await writeFile(file, before);
      const input = Buffer.concat([req('W 0 4 sha256', Buffer.from('abcd')), req('R 0 4096 sha256'), req('H 0 4096 sha256'), req('X 0 4096 sha256', xframes([4096])), req('N 0 0')]);
      const r = await inBusybox(bare, ['sh', SCRIPT, 'serve', file, wd], { input, timeoutMs: 20_000 });
      assert.equal(r.timedOut, false, 'the worker answered every request');
      const why = 'ERR missing tool sha256sum: cannot compute sha256 here (neither sha256sum nor openssl works)';
      assert.deepEqual(answers(r.out).map((x) => x.line), [why, why, why, why, 'OK']);
      assert.equal(r.code, 0);
      assert.ok((await readFile(file)).equals(before));
    });
  });
});
