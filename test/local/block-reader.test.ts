import assert from 'node:assert/strict';
import { execSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { initChecksums, checksumOf } from '../../src/checksum/hasher.js';
import { planBlocks } from '../../src/plan/block-plan.js';
import { BlockReader } from '../../src/local/block-reader.js';
import { probeDevice, splitDevno } from '../../src/local/device.js';
import { attachLoop, fileOfSize, makeTempDir, loopAvailable } from '../harness/loop.js';
import { NEEDS, requireReal, haveCommand } from '../harness/real.js';

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of chunks) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

describe('source: block reader', () => {
  let dir: string;
  before(async () => {
    await initChecksums();
    dir = await makeTempDir('ddt-reader-');
  });

  it("a delta's ranges go as few parts: a run of zeros as one, a run of data as one of up to 8 MiB", async () => {
    const MiB = 1024 * 1024;
    const path = join(dir, 'delta.img');
    // 1 MiB chunks: 3 data, 2 zero, 12 data, 1 zero, then data to the end (24 MiB in all).
    const file = Buffer.alloc(24 * MiB);
    for (const [from, to] of [[0, 3], [5, 17], [18, 24]]) for (let m = from!; m < to!; m++) file.fill(m + 1, m * MiB, (m + 1) * MiB);
    await fs.writeFile(path, file);
    const reader = await BlockReader.open(path, MiB);
    try {
      const block = { index: 0, offset: 0, length: file.length };
      // Two ranges: parts never span the gap between them.
      const ranges = [{ offset: 0, length: 19 * MiB }, { offset: 20 * MiB, length: 4 * MiB }];
      const parts: { kind: string; offset: number; length: number }[] = [];
      for await (const p of reader.openRanges(block, ranges)) {
        const expected = file.subarray(p.offset, p.offset + p.length);
        if (p.kind === 'raw') assert.ok(p.data.equals(expected), `part at ${p.offset}: bytes differ`);
        else assert.ok(expected.equals(Buffer.alloc(p.length)), `part at ${p.offset} reported zero but is not`);
        parts.push({ kind: p.kind, offset: p.offset / MiB, length: p.length / MiB });
      }
      assert.deepEqual(parts, [
        { kind: 'raw', offset: 0, length: 3 },
        { kind: 'zero', offset: 3, length: 2 },
        { kind: 'raw', offset: 5, length: 8 },
        { kind: 'raw', offset: 13, length: 4 },
        { kind: 'zero', offset: 17, length: 1 },
        { kind: 'raw', offset: 18, length: 1 },
        { kind: 'raw', offset: 20, length: 4 },
      ]);
    } finally {
      await reader.close();
    }
  });

  it('streams each block in chunks; bytes and checksum equal dd | xxhsum -H64 of the range', async function () {
    requireReal(this, 'xxhsum', haveCommand('xxhsum'));
    const path = join(dir, 'mixed.img');
    const size = 5 * 1024 * 1024 + 4097; // not a multiple of 4096
    await fileOfSize(path, size, 'mixed', 7);
    const file = await fs.readFile(path);
    const reader = await BlockReader.open(path, 256 * 1024);
    try {
      for (const b of planBlocks(size, 1024 * 1024)) {
        const opened = await reader.openBlock(b, 'xxh64');
        const expected = file.subarray(b.offset, b.offset + b.length);
        if (opened.payload.kind === 'data') assert.ok((await collect(opened.payload.chunks)).equals(expected));
        else assert.ok(expected.equals(Buffer.alloc(b.length)), `block ${b.index} reported zero but is not`);
        const viaDd = execSync(
          `dd if=${path} bs=64K iflag=skip_bytes,count_bytes skip=${b.offset} count=${b.length} status=none | xxhsum -H64`,
        ).toString().split(/\s+/)[0];
        assert.equal(await opened.checksum, viaDd, `block ${b.index}`);
      }
    } finally {
      await reader.close();
    }
  });

  it('detects an all-zero block as a zero payload, and a block with one late non-zero byte as data', async () => {
    const path = join(dir, 'zeros.img');
    const buf = Buffer.alloc(3 * 65536);
    buf[65536 + 65535] = 1; // last byte of block 1
    await fs.writeFile(path, buf);
    const reader = await BlockReader.open(path, 4096);
    try {
      const [b0, b1, b2] = planBlocks(buf.length, 65536);
      const z = await reader.openBlock(b0!, 'sha256');
      assert.equal(z.payload.kind, 'zero');
      assert.equal(await z.checksum, checksumOf('sha256', Buffer.alloc(65536)));
      const d = await reader.openBlock(b1!, 'sha256');
      assert.equal(d.payload.kind, 'data');
      if (d.payload.kind === 'data') assert.ok((await collect(d.payload.chunks)).equals(buf.subarray(65536, 131072)));
      assert.equal(await d.checksum, checksumOf('sha256', buf.subarray(65536, 131072)));
      assert.equal((await reader.hashBlock(b2!, 'xxh64')).zero, true);
      assert.equal((await reader.hashBlock(b1!, 'xxh64')).zero, false);
    } finally {
      await reader.close();
    }
  });

  it('probes a loop device through sysfs: size and logical sector size', async function () {
    requireReal(this, NEEDS.loop, loopAvailable());
    const path = join(dir, 'loop.img');
    await fileOfSize(path, 3 * 1024 * 1024, 'random', 3);
    const loop = await attachLoop(path);
    try {
      const info = await probeDevice(loop.dev);
      assert.equal(info?.kind, 'block');
      assert.equal(info?.size, 3 * 1024 * 1024);
      assert.equal(info?.sectorSize, Number(execSync(`blockdev --getss ${loop.dev}`).toString().trim()));
    } finally {
      await loop.detach();
    }
  });

  it('splits dev_t like glibc major()/minor()', () => {
    assert.deepEqual(splitDevno((8n << 8n) | 17n), { major: 8, minor: 17 });
    // minor ≥ 256 uses the high bits
    const major = 259n;
    const minor = 300n;
    const rdev = ((major & 0xfffn) << 8n) | ((major & ~0xfffn) << 32n) | (minor & 0xffn) | ((minor & ~0xffn) << 12n);
    assert.deepEqual(splitDevno(rdev), { major: 259, minor: 300 });
  });
});
