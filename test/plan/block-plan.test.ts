import { UsageError } from '../harness/errors.js';
import assert from 'node:assert/strict';
import { blockCount, mergeRanges, planBlocks, validateBlockSize } from '../../src/plan/block-plan.js';

describe('block plan', () => {
  it('covers an odd size exactly, last block short', () => {
    const size = 10 * 4096 + 123;
    const blocks = planBlocks(size, 8192);
    assert.equal(blocks.length, blockCount(size, 8192));
    assert.equal(blocks[0]!.offset, 0);
    let end = 0;
    for (const [i, b] of blocks.entries()) {
      assert.equal(b.index, i);
      assert.equal(b.offset, end);
      end += b.length;
    }
    assert.equal(end, size);
    assert.equal(blocks.at(-1)!.length, size - 5 * 8192);
  });

  it('a 1-byte source is one 1-byte block; a block larger than the source is one short block', () => {
    assert.deepEqual(planBlocks(1, 512), [{ index: 0, offset: 0, length: 1 }]);
    assert.deepEqual(planBlocks(1000, 64 * 1024 * 1024), [{ index: 0, offset: 0, length: 1000 }]);
  });

  it('handles offsets beyond 4 GiB without precision loss', () => {
    const size = 3 * 2 ** 40 + 512; // 3 TiB + 512
    const blocks = planBlocks(size, 64 * 2 ** 20);
    assert.equal(blocks.at(-1)!.offset + blocks.at(-1)!.length, size);
  });

  it('rejects block sizes that are not positive multiples of 512', () => {
    for (const bad of [0, -512, 1000, 513, 1.5 * 512]) {
      assert.throws(() => validateBlockSize(bad), UsageError);
    }
  });

  it('merges adjacent and overlapping ranges', () => {
    assert.deepEqual(
      mergeRanges([
        { offset: 100, length: 50 },
        { offset: 0, length: 100 },
        { offset: 300, length: 10 },
        { offset: 305, length: 10 },
      ]),
      [
        { offset: 0, length: 150 },
        { offset: 300, length: 15 },
      ],
    );
  });
});
