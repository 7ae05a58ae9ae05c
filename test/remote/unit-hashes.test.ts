// The client's side of `V`: blocks grouped into runs and requests, the answer lines mapped back to
// blocks and units; and the unit checksums this side computes for the same blocks.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { differingUnits, BlockDigester } from '../../src/checksum/block-digest.js';
import { checksumOf, initChecksums } from '../../src/checksum/hasher.js';
import { planBlocks } from '../../src/plan/block-plan.js';
import { digestsOf, hashRequests } from '../../src/remote/unit-hashes.js';

async function* linesOf(lines: string[]): AsyncGenerator<string> {
  for (const l of lines) yield l;
}

describe('remote/unit-hashes: V requests and their answers', () => {
  before(initChecksums);

  it('contiguous blocks make one run, the short last one included; gaps start new runs', () => {
    const blocks = planBlocks(10 * 4096 + 100, 4096);
    const [req] = hashRequests(blocks, 'xxh64', { unit: 1024, algo: 'xxh64' });
    assert.equal(req!.text, `V 1024 1 xxh64 xxh64\n0 41060 4096\n`);
    // 10 blocks of 4 units (+1 line each), then one of 100 bytes (1 line).
    assert.equal(req!.lines, 10 * 5 + 1);
    const some = [blocks[0]!, blocks[1]!, blocks[5]!, blocks[10]!];
    const [gappy] = hashRequests(some, 'sha256');
    assert.equal(gappy!.text, `V 4096 3 sha256 sha256\n0 8192 4096\n20480 4096 4096\n40960 100 100\n`);
    assert.equal(gappy!.lines, 4);
  });

  it('many blocks go in several requests', () => {
    const reqs = hashRequests(planBlocks(3000 * 512, 512), 'xxh64');
    assert.deepEqual(
      reqs.map((r) => r.blocks.length),
      [1024, 1024, 952],
    );
  });

  it('answer lines become digests; an ERR leaves that checksum out, and the next block keeps its place', async () => {
    const blocks = planBlocks(3 * 2048, 2048);
    const [req] = hashRequests(blocks, 'xxh64', { unit: 1024, algo: 'xxh64' });
    const h = (n: number) => n.toString(16).padStart(16, '0');
    const lines = [`OK ${h(1)}`, `OK ${h(2)}`, `OK ${h(3)}`, `ERR read failed`, `OK ${h(5)}`, `OK ${h(6)}`, `OK ${h(7)}`, `OK ${h(8)}`, `ERR read short`];
    const got = [];
    for await (const d of digestsOf(req!.blocks, linesOf(lines)[Symbol.asyncIterator](), 'xxh64', { unit: 1024, algo: 'xxh64' })) got.push(d);
    assert.deepEqual(got[0], { block: blocks[0], checksum: h(3), units: [h(1), h(2)] });
    assert.deepEqual(got[1], { block: blocks[1], checksum: h(6) }); // a unit unknown: no units
    assert.deepEqual(got[2], { block: blocks[2], checksum: undefined, units: [h(7), h(8)] });
  });

  it('a garbled line is a protocol error, not a checksum', async () => {
    const [req] = hashRequests(planBlocks(512, 512), 'xxh64');
    await assert.rejects(async () => {
      for await (const _ of digestsOf(req!.blocks, linesOf(['OK nothex'])[Symbol.asyncIterator](), 'xxh64'));
    }, /bad checksum line/);
  });
});

describe('checksum/block-digest', () => {
  before(initChecksums);

  it('unit and block checksums do not depend on how the bytes are cut', () => {
    const data = randomBytes(5 * 1000 + 7);
    const whole = new BlockDigester(data.length, 'sha256', { unit: 1000, algo: 'xxh64' });
    whole.update(data);
    const pieces = new BlockDigester(data.length, 'sha256', { unit: 1000, algo: 'xxh64' });
    for (let at = 0; at < data.length; at += 333) pieces.update(data.subarray(at, at + 333));
    const a = whole.digest();
    assert.deepEqual(pieces.digest(), a);
    assert.equal(a.checksum, checksumOf('sha256', data));
    assert.equal(a.units!.length, 6);
    assert.equal(a.units![5], checksumOf('xxh64', data.subarray(5000)));
    // One unit or less: the block's checksum only.
    const small = new BlockDigester(1000, 'xxh64', { unit: 1000, algo: 'xxh64' });
    small.update(data.subarray(0, 1000));
    assert.deepEqual(small.digest(), { checksum: checksumOf('xxh64', data.subarray(0, 1000)) });
  });

  it('differing units become merged byte ranges', () => {
    const block = { offset: 10_000, length: 4500 };
    const a = ['a', 'b', 'c', 'd', 'e'];
    assert.deepEqual(differingUnits(block, 1000, a, ['a', 'x', 'x', 'd', 'x']), [
      { offset: 11_000, length: 2000 },
      { offset: 14_000, length: 500 },
    ]);
    assert.deepEqual(differingUnits(block, 1000, a, a), []);
  });
});
