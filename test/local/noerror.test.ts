// --noerror at the source: BlockReader against a loop device with real bad
// sectors (kernel EIO via the FUSE fixture). Without noerror a bad sector stops
// the read (SourceReadError, exit 4); with it the block reads as the image with
// exactly the bad sectors zeroed, hashed as such, and reports those sectors.

import { SourceReadError } from '../harness/errors.js';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checksumOf, initChecksums } from '../../src/checksum/hasher.js';
import { mergeRanges, planBlocks } from '../../src/plan/block-plan.js';
import type { ByteRange, OpenedBlock } from '../../src/block/types.js';
import { BlockReader } from '../../src/local/block-reader.js';
import { fileOfSize, makeTempDir } from '../harness/loop.js';
import { NEEDS, requireReal } from '../harness/real.js';
import { fuseAvailable, withBadSectorDevice } from '../fixtures/bad-device.js';

const SECTOR = 512;
const SIZE = 2 * 1024 * 1024; // 4096 sectors
const BLOCK = 256 * 1024; // 512 sectors
const CHUNK = 64 * 1024; // 128 sectors
const ZERO_BLOCK = 3; // all zeros in the image, with one bad sector
const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
const BAD = [
  9, ...range(20, 22), // first chunk of block 0
  127, 128, // across a chunk boundary: one range
  511, 512, // across a block boundary: one range in each block
  ZERO_BLOCK * 512 + 64, // inside the zero block
  ...range(5 * 512 + 128, 5 * 512 + 255), // one whole chunk of block 5
  4095, // the last sector of the device
];

async function payloadBytes(opened: OpenedBlock, length: number): Promise<Buffer> {
  if (opened.payload.kind !== 'data') return Buffer.alloc(length);
  const parts: Buffer[] = [];
  for await (const c of opened.payload.chunks) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

describe('source: --noerror on a device with bad sectors', () => {
  let image: string;
  let expected: Buffer; // the image with the bad sectors zeroed
  const blocks = planBlocks(SIZE, BLOCK);

  /** The bad sectors of one block as merged byte ranges. */
  function badIn(b: { offset: number; length: number }): ByteRange[] {
    return mergeRanges(
      BAD.map((s) => ({ offset: s * SECTOR, length: SECTOR })).filter((r) => r.offset >= b.offset && r.offset < b.offset + b.length),
    );
  }

  before(async function () {
    requireReal(this, NEEDS.fuse, fuseAvailable());
    await initChecksums();
    image = join(await makeTempDir('ddt-noerror-'), 'backing.img');
    await fileOfSize(image, SIZE, 'random', 5);
    const data = await readFile(image);
    data.fill(0, ZERO_BLOCK * BLOCK, (ZERO_BLOCK + 1) * BLOCK);
    await writeFile(image, data);
    expected = Buffer.from(data);
    for (const s of BAD) expected.fill(0, s * SECTOR, (s + 1) * SECTOR);
  });

  it('without noerror: a bad sector is a SourceReadError (exit 4); clean blocks still read', async () => {
    await withBadSectorDevice(image, BAD, async (dev) => {
      const reader = await BlockReader.open(dev, CHUNK);
      try {
        const isReadError = (err: unknown) => err instanceof SourceReadError && err.exitCode === 4 && /at byte \d+/.test(err.message);
        for (const i of [0, 1, 5, 7]) {
          const b = blocks[i]!;
          await assert.rejects(async () => payloadBytes(await reader.openBlock(b, 'xxh64'), b.length), isReadError, `openBlock ${i}`);
          await assert.rejects(reader.hashBlock(b, 'sha256'), isReadError, `hashBlock ${i}`);
        }
        // Without a list to record into, even a noerror reader would not swallow the error.
        await assert.rejects(reader.readChunk(0, CHUNK), isReadError);
        const clean = blocks[2]!;
        const opened = await reader.openBlock(clean, 'xxh64');
        assert.ok((await payloadBytes(opened, clean.length)).equals(expected.subarray(clean.offset, clean.offset + clean.length)));
        assert.deepEqual(await opened.badRanges, []);
      } finally {
        await reader.close();
      }
    });
  });

  it('with noerror: zeros exactly where sectors are bad, checksums of those bytes, bad ranges merged', async () => {
    await withBadSectorDevice(image, BAD, async (dev) => {
      const reader = await BlockReader.open(dev, CHUNK, { noerror: true, sectorSize: SECTOR });
      try {
        const all: ByteRange[] = [];
        for (const b of blocks) {
          const want = expected.subarray(b.offset, b.offset + b.length);
          const opened = await reader.openBlock(b, 'xxh64');
          assert.equal(opened.payload.kind, b.index === ZERO_BLOCK ? 'zero' : 'data', `block ${b.index} payload kind`);
          assert.ok((await payloadBytes(opened, b.length)).equals(want), `block ${b.index} bytes`);
          const [sum, ranges] = await Promise.all([opened.checksum, opened.badRanges]);
          assert.equal(sum, checksumOf('xxh64', want), `block ${b.index} checksum`);
          assert.deepEqual(ranges, badIn(b), `block ${b.index} bad ranges`);
          all.push(...ranges);

          const hashed = await reader.hashBlock(b, 'sha256');
          assert.equal(hashed.checksum, checksumOf('sha256', want), `block ${b.index} hashBlock checksum`);
          assert.equal(hashed.zero, b.index === ZERO_BLOCK);
          assert.deepEqual(hashed.badRanges, badIn(b), `block ${b.index} hashBlock bad ranges`);
        }
        // Across blocks, the reported ranges are the bad sectors merged (sector-exact, not per page).
        assert.deepEqual(mergeRanges(all), [
          { offset: 9 * SECTOR, length: SECTOR },
          { offset: 20 * SECTOR, length: 3 * SECTOR },
          { offset: 127 * SECTOR, length: 2 * SECTOR },
          { offset: 511 * SECTOR, length: 2 * SECTOR },
          { offset: (ZERO_BLOCK * 512 + 64) * SECTOR, length: SECTOR },
          { offset: (5 * 512 + 128) * SECTOR, length: 128 * SECTOR },
          { offset: 4095 * SECTOR, length: SECTOR },
        ]);
      } finally {
        await reader.close();
      }
    });
  });
});
