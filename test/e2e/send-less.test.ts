// Sending less (issue: skip-identical, zero blocks, --target-zeroed, --compress, --bwlimit,
// multipath), end to end against the real sshd: bytes on the wire come from the summary.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { fileOfSize, makeTempDir, sha256File } from '../harness/loop.js';
import { NEEDS, requireReal } from '../harness/real.js';
import { establishedTo } from '../harness/tcp.js';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd.js';
import { jsonOf, runCli, startCli } from './cli.js';

const MiB = 1024 * 1024;

describe('e2e: sending less', function () {
  let sshd: TestSshd;
  let dir: string;
  const ssh = () => ['-p', String(sshd.port), '-i', sshd.clientKeyPath, '--known-hosts', sshd.knownHostsPath, '--yes', '--json', '--progress', 'none'];

  before(async function () {
    requireReal(this, NEEDS.sshd, sshdAvailable());
    dir = await makeTempDir('ddt-e2e-less-');
    sshd = await startSshd({ listen: ['127.0.0.1', '127.0.0.2'] });
  });
  after(async () => sshd?.stop());

  it('--skip-identical: a re-sync of a 512 MiB image with 1 % changed sends < 2 % of its bytes', async () => {
    const src = join(dir, 'resync-src.img');
    const dst = join(dir, 'resync-dst.img');
    await fileOfSize(src, 512 * MiB, 'random', 401);
    await fileOfSize(dst, 512 * MiB, 'zero');
    const first = await runCli(['send', src, `root@127.0.0.1:${dst}`, ...ssh(), '-b', '1M', '--journal', join(dir, 'resync1.journal')]);
    assert.equal(first.code, 0, first.stderr);
    // Change 1 % of the image: 5 scattered 1 MiB regions (≈ 1 % of 512 blocks).
    const fh = await fs.open(src, 'r+');
    for (const block of [3, 100, 222, 377, 500]) await fh.write(randomBytes(MiB), 0, MiB, block * MiB);
    await fh.close();
    const again = await runCli(['send', src, `root@127.0.0.1:${dst}`, ...ssh(), '-b', '1M', '--skip-identical', '--compress', 'none', '--journal', join(dir, 'resync2.journal')]);
    assert.equal(again.code, 0, again.stderr);
    const s = jsonOf(again);
    assert.equal(s.verified, 512);
    assert.equal(s.identicalBlocks, 507);
    assert.equal(s.sent, 5);
    assert.ok((s.bytesOnWire as number) < 0.02 * 512 * MiB, `sent ${s.bytesOnWire} bytes`);
    assert.equal(await sha256File(dst), await sha256File(src));
  });

  it('a 1 GiB sparse image (≈ 5 % data) onto a zeroed target with --target-zeroed sends < 10 %', async () => {
    // 1 MiB of data every 20 MiB; 4 MiB blocks, so zero runs inside blocks matter too: they go
    // as commands when blocks travel as parts, which --compress gzip always does (auto only
    // while the link is slower than gzip, and loopback is not).
    const src = join(dir, 'sparse.img');
    const dst = join(dir, 'sparse-dst.img');
    await fs.writeFile(src, '');
    await fs.truncate(src, 1024 * MiB);
    const fh = await fs.open(src, 'r+');
    for (let i = 0; i < 1024; i += 20) await fh.write(randomBytes(MiB), 0, MiB, i * MiB);
    await fh.close();
    await fs.writeFile(dst, '');
    await fs.truncate(dst, 1024 * MiB);
    const r = await runCli(['send', src, `root@127.0.0.1:${dst}`, ...ssh(), '-b', '4M', '--target-zeroed', '--compress', 'gzip', '--journal', join(dir, 'sparse.journal')]);
    assert.equal(r.code, 0, r.stderr);
    const s = jsonOf(r);
    assert.equal(s.verified, 256);
    assert.ok((s.zeroBlocks as number) >= 200, `zero blocks ${s.zeroBlocks}`);
    assert.ok((s.bytesOnWire as number) < 0.1 * 1024 * MiB, `sent ${s.bytesOnWire} bytes`);
    assert.equal(await sha256File(dst), await sha256File(src));
  });

  it('--target-zeroed writes a zero block anyway when the target turns out not to be zero', async () => {
    const src = join(dir, 'zsrc.img');
    const dst = join(dir, 'zdst.img');
    await fileOfSize(src, 8 * MiB, 'zero');
    await fileOfSize(dst, 8 * MiB, 'random', 402);
    const r = await runCli(['send', src, `root@127.0.0.1:${dst}`, ...ssh(), '-b', '1M', '--target-zeroed', '--journal', join(dir, 'zeroed.journal')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(jsonOf(r).zeroBlocks, 8);
    assert.equal(jsonOf(r).bytesOnWire, 0);
    assert.equal(await sha256File(dst), await sha256File(src));
  });

  it('--compress gzip: a text-heavy image sends < 50 % of its bytes', async () => {
    const src = join(dir, 'text.img');
    const dst = join(dir, 'text-dst.img');
    await fileOfSize(src, 64 * MiB, 'text', 403);
    await fileOfSize(dst, 64 * MiB, 'zero');
    const r = await runCli(['send', src, `root@127.0.0.1:${dst}`, ...ssh(), '-b', '8M', '--compress', 'gzip', '--journal', join(dir, 'text.journal')]);
    assert.equal(r.code, 0, r.stderr);
    const s = jsonOf(r);
    assert.ok((s.bytesOnWire as number) < 0.5 * 64 * MiB, `sent ${s.bytesOnWire} bytes`);
    assert.equal(await sha256File(dst), await sha256File(src));
  });

  it('--bwlimit 20M keeps a 100 MiB send at ≥ 4 s', async () => {
    const src = join(dir, 'bw.img');
    const dst = join(dir, 'bw-dst.img');
    await fileOfSize(src, 100 * MiB, 'random', 404);
    await fileOfSize(dst, 100 * MiB, 'zero');
    const t0 = Date.now();
    const r = await runCli(['send', src, `root@127.0.0.1:${dst}`, ...ssh(), '-b', '4M', '--compress', 'none', '--bwlimit', '20M', '--journal', join(dir, 'bw.journal')]);
    const took = (Date.now() - t0) / 1000;
    assert.equal(r.code, 0, r.stderr);
    // 100 MiB at 20 MiB/s is 5 s; a quarter-second burst allowance and process start-up aside.
    assert.ok(took >= 4, `took only ${took} s`);
    assert.equal(await sha256File(dst), await sha256File(src));
  });

  it('multipath: connections are spread over both addresses of the host', async () => {
    const src = join(dir, 'mp.img');
    const dst = join(dir, 'mp-dst.img');
    await fileOfSize(src, 96 * MiB, 'random', 405);
    await fileOfSize(dst, 96 * MiB, 'zero');
    const run = startCli(['send', src, `root@127.0.0.1,127.0.0.2:${dst}`, ...ssh(), '-b', '1M', '--connections', '2', '--journal', join(dir, 'mp.journal')]);
    const seen = new Set<string>();
    let done = false;
    void run.done.finally(() => (done = true));
    while (!done) {
      for (const c of establishedTo(sshd.port)) if (/^127\.0\.0\.[12]$/.test(c.peer)) seen.add(c.peer);
      await new Promise((r) => setTimeout(r, 20));
    }
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([...seen].sort(), ['127.0.0.1', '127.0.0.2']);
    assert.equal(await sha256File(dst), await sha256File(src));
  });
});
