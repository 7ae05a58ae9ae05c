import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import type { BlockPart } from '../../src/block/types.js';
import { CompressionPolicy } from '../../src/engine/compress.js';

async function* chunksOf(...bufs: Buffer[]): AsyncGenerator<Buffer> {
  for (const b of bufs) yield b;
}

async function collect(policy: CompressionPolicy, offset: number, ...bufs: Buffer[]): Promise<BlockPart[]> {
  const parts: BlockPart[] = [];
  for await (const p of policy.parts(offset, chunksOf(...bufs))) parts.push(p);
  return parts;
}

describe('compression policy: a block as parts', () => {
  const text = Buffer.from('the quick brown fox jumps over the lazy dog\n'.repeat(20000));
  const noise = randomBytes(256 * 1024);
  const zeros = Buffer.alloc(128 * 1024);

  it('gzip: text is sent compressed (and inflates back), noise raw, zeros as a command', async () => {
    const parts = await collect(new CompressionPolicy('gzip'), 1000, text, noise, zeros);
    assert.deepEqual(parts.map((p) => p.kind), ['gzip', 'raw', 'zero']);
    assert.deepEqual(parts.map((p) => p.offset), [1000, 1000 + text.length, 1000 + text.length + noise.length]);
    const [g] = parts;
    assert.ok(g!.kind === 'gzip' && gunzipSync(g.data).equals(text));
    assert.ok(g!.kind === 'gzip' && g.data.length < text.length / 4);
  });

  it('none: every non-zero part goes raw', async () => {
    const parts = await collect(new CompressionPolicy('none'), 0, text, zeros);
    assert.deepEqual(parts.map((p) => p.kind), ['raw', 'zero']);
  });

  it('auto: does not compress while the link outruns gzip, but probes now and then', async () => {
    const policy = new CompressionPolicy('auto');
    const parts = await collect(policy, 0, ...Array.from({ length: 32 }, () => text));
    const gz = parts.filter((p) => p.kind === 'gzip').length;
    assert.ok(gz >= 1 && gz <= 4, `${gz} of 32 parts compressed before the link was measured`);
  });

  it('whole blocks or parts: none never, gzip always, auto whole until the link is measured', () => {
    assert.equal(new CompressionPolicy('none').wantsParts(), false);
    assert.equal(new CompressionPolicy('gzip').wantsParts(), true);
    const auto = new CompressionPolicy('auto');
    assert.deepEqual([auto.wantsParts(), auto.wantsParts(), auto.wantsParts()], [false, false, false]);
  });

  async function sendWhole(p: CompressionPolicy, ...bufs: Buffer[]): Promise<Buffer[]> {
    const out: Buffer[] = [];
    for await (const c of p.sampled(chunksOf(...bufs))) out.push(c);
    await p.measured;
    return out;
  }

  it('auto: whole blocks while the link outruns gzip, parts while it is slower (gzip measured on samples of whole blocks)', async () => {
    const fast = new CompressionPolicy('auto');
    const slow = new CompressionPolicy('auto');
    for (const p of [fast, slow]) {
      const sent = await sendWhole(p, zeros, text, noise);
      assert.deepEqual(sent, [zeros, text, noise], 'a sampled block goes out unchanged');
      p.noteWire(1);
    }
    await new Promise((r) => setTimeout(r, 1100));
    fast.noteWire(64 * 1024 * 1024 * 1024); // 64 GiB in ≈ 1 s: faster than any gzip
    const picks = Array.from({ length: 32 }, () => fast.wantsParts());
    assert.equal(picks.filter(Boolean).length, 0, `parts chosen ${picks.filter(Boolean).length} of 32 times`);
    slow.noteWire(1024); // ≈ 1 KB/s: gzip pays
    assert.ok(Array.from({ length: 32 }, () => slow.wantsParts()).every(Boolean));
  });

  it('auto: a sample is a non-zero chunk of one whole block in 16; none is taken under none', async () => {
    const slowLink = async (p: CompressionPolicy) => {
      p.noteWire(1);
      await new Promise((r) => setTimeout(r, 1100));
      return p.wantsParts();
    };
    // Only zero chunks in the sampled block: gzip stays unmeasured, so whole blocks even on a slow link.
    const zerosOnly = new CompressionPolicy('auto');
    await sendWhole(zerosOnly, zeros, zeros);
    for (let i = 0; i < 15; i++) await sendWhole(zerosOnly, text); // blocks 2..16 are not sampled
    assert.equal(await slowLink(zerosOnly), false);
    await sendWhole(zerosOnly, zeros, text); // block 17 is
    assert.equal(zerosOnly.wantsParts(), true);
    const none = new CompressionPolicy('none');
    assert.deepEqual(await sendWhole(none, text), [text]);
    none.noteWire(1);
    assert.equal(await slowLink(none), false);
  });
});
