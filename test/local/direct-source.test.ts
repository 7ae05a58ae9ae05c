// A block device that holds a mounted filesystem, read as a source: what the reader and the local
// ddt-hash see must be the bytes on the device. Through the page cache they are not always: a
// block read once while the filesystem was mounted stays cached, and writes the filesystem makes
// around that cache (ext4's journal superblock, here) leave the cached copy stale, even once it
// is remounted read-only, as for the last pass of a live copy. The test makes that state, checks
// that a buffered read does show it (else it would show nothing), and reads with ddt.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { checksumOf, initChecksums } from '../../src/checksum/hasher.js';
import { BlockReader } from '../../src/local/block-reader.js';
import { localHasher } from '../../src/local/local-hasher.js';
import { planBlocks } from '../../src/plan/block-plan.js';
import { staleMountedDevice, type StaleDevice } from '../fixtures/stale-device.js';
import { loopAvailable, makeTempDir } from '../harness/loop.js';
import { haveCommand, NEEDS, requireReal } from '../harness/real.js';

const MiB = 1024 * 1024;

describe('source: a block device under a mounted filesystem is read from the device', function () {
  this.timeout(120_000);
  let dir: string;
  let stale: StaleDevice;
  let dev: string;
  let onDevice: Buffer;

  before(async function () {
    requireReal(this, NEEDS.loop, loopAvailable());
    requireReal(this, 'mkfs.ext4 (e2fsprogs)', haveCommand('mkfs.ext4'));
    await initChecksums();
    dir = await makeTempDir('ddt-direct-src-');
    stale = await staleMountedDevice(dir);
    ({ dev, onDevice } = stale);
  });

  after(async () => {
    await stale?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('the page cache does hold blocks that are not on the device (the case this is about)', () => {
    assert.equal(stale.cached.length, onDevice.length);
    assert.ok(!stale.cached.equals(onDevice), 'a buffered read of the mounted device gave the bytes on it: this kernel shows no stale blocks, so the tests below prove nothing here');
  });

  it('the reader gives the bytes on the device, block by block, and checksums them', async () => {
    const reader = await BlockReader.open(dev);
    try {
      for (const b of planBlocks(onDevice.length, 8 * MiB)) {
        const want = onDevice.subarray(b.offset, b.offset + b.length);
        const opened = await reader.openBlock(b, 'xxh64');
        if (opened.payload.kind === 'data') {
          const parts: Buffer[] = [];
          for await (const c of opened.payload.chunks) parts.push(Buffer.from(c));
          assert.ok(Buffer.concat(parts).equals(want), `block ${b.index}: not the bytes on the device`);
        } else assert.ok(want.equals(Buffer.alloc(b.length)), `block ${b.index} reported zero but is not`);
        assert.equal(await opened.checksum, checksumOf('xxh64', want), `block ${b.index}`);
        assert.equal((await reader.hashBlock(b, 'xxh64')).checksum, checksumOf('xxh64', want), `block ${b.index} (hashed)`);
      }
    } finally {
      await reader.close();
    }
  });

  it('ddt-hash on this machine (--skip-identical) hashes the bytes on the device', async function () {
    requireReal(this, 'ddt-hash built for this machine (npm run build)', localHasher() !== undefined);
    const reader = await BlockReader.open(dev);
    try {
      const blocks = planBlocks(onDevice.length, 8 * MiB);
      let n = 0;
      for await (const d of reader.hashStream!(blocks, 'xxh64', new AbortController().signal)) {
        assert.equal(d.checksum, checksumOf('xxh64', onDevice.subarray(d.block.offset, d.block.offset + d.block.length)), `block ${d.block.index}`);
        n++;
      }
      assert.equal(n, blocks.length);
    } finally {
      await reader.close();
    }
  });
});
