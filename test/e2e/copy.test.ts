import assert from 'node:assert/strict';
import { execFileSync, execSync } from 'node:child_process';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { attachLoop, fileOfSize, loopAvailable, makeTempDir, sha256File } from '../harness/loop.js';
import { haveCommand, NEEDS, requireReal } from '../harness/real.js';
import { jsonOf, runCli, startCli } from './cli.js';

const MiB = 1024 * 1024;

describe('e2e: ddt copy / verify / status / resume (built CLI)', function () {
  let dir: string;
  before(async () => (dir = await makeTempDir('ddt-e2e-copy-')));

  async function same(a: string, b: string, length: number): Promise<void> {
    assert.equal(await sha256File(b, length), await sha256File(a, length), `${b} differs from ${a}`);
  }

  for (const [name, size, bs] of [
    ['odd size, not a multiple of the block size nor of 4096', 10 * MiB + 4097, '1M'],
    ['a 1-byte file', 1, '64M'],
    ['a block size larger than the source', 3 * MiB + 512, '8M'],
  ] as const) {
    it(`copies ${name} into a new file, every block verified`, async () => {
      const src = join(dir, `src-${size}.img`);
      const dst = join(dir, `dst-${size}.img`);
      await fileOfSize(src, size, 'mixed', size);
      const r = await runCli(['copy', src, dst, '-b', bs, '--json', '--journal', join(dir, `j-${size}.journal`)]);
      assert.equal(r.code, 0, r.stderr);
      const s = jsonOf(r);
      assert.equal(s.ok, true);
      assert.equal(s.verified, s.blocks);
      assert.equal(s.bytesTotal, size);
      assert.equal((await fs.stat(dst)).size, size);
      await same(src, dst, size);
    });
  }

  it('copies a mixed image onto a loop device with --yes, counts zero blocks, and verify agrees', async function () {
    requireReal(this, NEEDS.loop, loopAvailable());
    const src = join(dir, 'mixed.img');
    await fileOfSize(src, 48 * MiB, 'mixed', 11);
    const backing = join(dir, 'loop-target.img');
    await fileOfSize(backing, 64 * MiB, 'random', 12);
    const loop = await attachLoop(backing);
    try {
      const r = await runCli(['copy', src, loop.dev, '-b', '1M', '--yes', '--json', '--journal', join(dir, 'loop.journal')]);
      assert.equal(r.code, 0, r.stderr);
      const s = jsonOf(r);
      const zeros = execSync(`python3 -c "
import sys
d=open('${src}','rb').read()
print(sum(1 for i in range(0,len(d),1<<20) if d[i:i+(1<<20)].count(0)==len(d[i:i+(1<<20)])))"`).toString().trim();
      assert.equal(s.zeroBlocks, Number(zeros));
      assert.ok(Number(zeros) > 0, 'the mixed image should have zero blocks');
      await same(src, loop.dev, 48 * MiB);
      const v = await runCli(['verify', src, loop.dev, '-b', '1M', '--json']);
      assert.equal(v.code, 0, v.stderr);
      assert.equal(jsonOf(v).different, 0);
    } finally {
      await loop.detach();
    }
  });

  it('verify finds a flipped byte and names its range; exit 4', async () => {
    const src = join(dir, 'v-src.img');
    const dst = join(dir, 'v-dst.img');
    await fileOfSize(src, 5 * MiB + 1000, 'random', 5);
    await fs.copyFile(src, dst);
    const at = 3 * MiB + 12345;
    const fh = await fs.open(dst, 'r+');
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, at);
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, at);
    await fh.close();
    const r = await runCli(['verify', src, dst, '-b', '1M', '--json']);
    assert.equal(r.code, 4);
    const j = jsonOf(r);
    assert.equal(j.different, 1);
    assert.deepEqual(j.differences, [{ offset: 3 * MiB, length: MiB }]);
    const human = await runCli(['verify', src, dst, '-b', '1M']);
    assert.equal(human.code, 4);
    assert.match(human.stdout, new RegExp(`^${3 * MiB}\\.\\.${4 * MiB} \\(${MiB} bytes\\)$`, 'm'));
  });

  it('resumes after SIGKILL of a running copy: continues at the first unproven block, bytes equal', async function () {
    const src = join(dir, 'kill-src.img');
    const dst = join(dir, 'kill-dst.img');
    const journal = join(dir, 'kill.journal');
    const size = 160 * MiB + 512;
    await fileOfSize(src, size, 'random', 21);
    const run = startCli(['copy', src, dst, '-b', '1M', '--channels', '2', '--journal', journal, '--progress', 'none']);
    // Kill once a few blocks are proven, well before the end.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const verified = existsSync(journal) ? (readFileSync(journal, 'utf8').match(/"state":"verified"/g) ?? []).length : 0;
      if (verified >= 5) break;
      if (Date.now() > deadline) throw new Error('copy made no progress');
      await new Promise((r) => setTimeout(r, 5));
    }
    run.child.kill('SIGKILL');
    const killed = await run.done;
    assert.equal(killed.signal, 'SIGKILL');
    const before = jsonOf(await runCli(['status', journal, '--json']));
    assert.ok((before.verified as number) >= 5 && (before.verified as number) < (before.blocks as number), `verified ${before.verified}`);
    const r = await runCli(['resume', journal, '--json', '--progress', 'none']);
    assert.equal(r.code, 0, r.stderr);
    const s = jsonOf(r);
    assert.equal(s.verified, s.blocks);
    assert.ok((s.sent as number) <= (s.blocks as number) - (before.verified as number), `resent ${s.sent} blocks`);
    await same(src, dst, size);
    const again = await runCli(['resume', journal]);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /nothing to do/);
    const st = await runCli(['status', journal]);
    assert.match(st.stdout, new RegExp(`${s.blocks}/${s.blocks} blocks verified`));
  });

  it('resume refuses a source that changed size, exit 2, target untouched', async () => {
    const src = join(dir, 'chg-src.img');
    const dst = join(dir, 'chg-dst.img');
    const journal = join(dir, 'chg.journal');
    await fileOfSize(src, 4 * MiB, 'random', 31);
    assert.equal((await runCli(['copy', src, dst, '-b', '1M', '--journal', journal])).code, 0);
    // Make the journal unfinished, then grow the source.
    const lines = readFileSync(journal, 'utf8').split('\n').filter((l) => !l.includes('"block":3,'));
    await fs.writeFile(journal, lines.join('\n'));
    await fs.appendFile(src, Buffer.alloc(512, 1));
    const before = await sha256File(dst);
    const r = await runCli(['resume', journal]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /source .* changed/);
    assert.equal(await sha256File(dst), before);
  });

  describe('refusals: exit 2, one clear line, nothing written', () => {
    let src: string;
    before(async () => {
      src = join(dir, 'refuse-src.img');
      await fileOfSize(src, 2 * MiB, 'random', 41);
    });

    async function refused(args: string[], target: string, pattern: RegExp): Promise<void> {
      const before = existsSync(target) ? await sha256File(target) : undefined;
      const r = await runCli(args);
      assert.equal(r.code, 2, `exit ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.equal(r.stderr.trim().split('\n').length, 1, `more than one line: ${r.stderr}`);
      const after = existsSync(target) ? await sha256File(target) : undefined;
      assert.equal(after, before, 'target changed');
    }

    it('a target smaller than the source', async () => {
      const small = join(dir, 'small.img');
      await fileOfSize(small, MiB, 'random', 42);
      await refused(['copy', src, small, '--yes', '--journal', join(dir, 'r1.journal')], small, /smaller than the source/);
    });

    it('an existing target without --yes and without a terminal', async () => {
      const t = join(dir, 'exists.img');
      await fileOfSize(t, 2 * MiB, 'random', 43);
      await refused(['copy', src, t, '--journal', join(dir, 'r2.journal')], t, /--yes/);
      assert.ok(!existsSync(join(dir, 'r2.journal')), 'a refused run must not leave a journal');
    });

    it('source and target are the same file', async () => {
      await refused(['copy', src, src, '--yes', '--journal', join(dir, 'r3.journal')], src, /same/);
    });

    it('a missing source, an empty source, a bad block size, a bad option value', async () => {
      const t = join(dir, 'never.img');
      await refused(['copy', join(dir, 'nope.img'), t, '--journal', join(dir, 'r4.journal')], t, /does not exist/);
      const empty = join(dir, 'empty.img');
      await fs.writeFile(empty, '');
      await refused(['copy', empty, t], t, /empty/);
      await refused(['copy', src, t, '-b', '1000'], t, /multiple of 512/);
      await refused(['copy', src, t, '-b', 'lots'], t, /--block-size/);
      await refused(['copy', src, t, '--channels', '0'], t, /--channels/);
      assert.ok(!existsSync(t), 'a refused copy must not create the target');
    });

    it('an existing journal', async () => {
      const t = join(dir, 'jt.img');
      const j = join(dir, 'existing.journal');
      await fs.writeFile(j, '{}\n');
      await refused(['copy', src, t, '--journal', j], t, /already exists/);
      assert.ok(!existsSync(t));
    });

    it('an image file that backs an attached loop device', async function () {
      requireReal(this, NEEDS.loop, loopAvailable());
      const t = join(dir, 'backing.img');
      await fileOfSize(t, 4 * MiB, 'random', 44);
      const loop = await attachLoop(t);
      try {
        await refused(['copy', src, t, '--yes', '--journal', join(dir, 'r5.journal')], t, /backs \/dev\/loop/);
      } finally {
        await loop.detach();
      }
    });

    it('a mounted loop device, and a device whose partition is mounted', async function () {
      requireReal(this, `${NEEDS.loop}, mkfs.ext4, sfdisk, partx`, loopAvailable() && ['mkfs.ext4', 'sfdisk', 'partx'].every(haveCommand));
      const img = join(dir, 'mounted.img');
      await fileOfSize(img, 16 * MiB, 'zero');
      const loop = await attachLoop(img);
      const mnt = await makeTempDir('ddt-mnt-');
      execFileSync('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', loop.dev]);
      execFileSync('mount', ['-o', 'ro', loop.dev, mnt]); // read-only: no journal commits change the bytes under the test
      try {
        await refused(['copy', src, loop.dev, '--yes', '--journal', join(dir, 'r6.journal')], loop.dev, /mounted on/);
      } finally {
        execFileSync('umount', [mnt]);
        await loop.detach();
      }
      // Partitioned: the whole disk is refused when one of its partitions is mounted.
      const disk = join(dir, 'parted.img');
      await fileOfSize(disk, 24 * MiB, 'zero');
      execSync(`printf 'label: dos\\nstart=2048, size=30000, type=83\\n' | sfdisk -q ${disk}`);
      const pdev = execFileSync('losetup', ['--find', '--show', '--partscan', disk]).toString().trim();
      try {
        // The kernel's own partition scan is not always seen here: ask for it explicitly.
        if (!existsSync(`${pdev}p1`)) execFileSync('partx', ['-a', pdev], { stdio: 'ignore' });
        for (let i = 0; i < 100 && !existsSync(`${pdev}p1`); i++) await new Promise((r) => setTimeout(r, 50));
        execFileSync('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', `${pdev}p1`]);
        execFileSync('mount', ['-o', 'ro', `${pdev}p1`, mnt]);
        try {
          await refused(['copy', src, pdev, '--yes', '--journal', join(dir, 'r7.journal')], pdev, new RegExp(`${pdev}p1 is mounted`));
        } finally {
          execFileSync('umount', [mnt]);
        }
      } finally {
        execFileSync('partx', ['-d', pdev], { stdio: 'ignore' });
        execFileSync('losetup', ['-d', pdev]);
      }
    });

    it('a loop device in use as swap', async function () {
      requireReal(this, `${NEEDS.loop}, mkswap, swapon`, loopAvailable() && haveCommand('swapon'));
      const img = join(dir, 'swap.img');
      await fileOfSize(img, 16 * MiB, 'zero');
      const loop = await attachLoop(img);
      execFileSync('mkswap', [loop.dev], { stdio: 'ignore' });
      execFileSync('swapon', [loop.dev]);
      try {
        await refused(['copy', src, loop.dev, '--yes', '--journal', join(dir, 'r8.journal')], loop.dev, /swap/);
      } finally {
        execFileSync('swapoff', [loop.dev]);
        await loop.detach();
      }
    });
  });

  it('--dry-run prints the plan and writes nothing', async () => {
    const src = join(dir, 'dry-src.img');
    const t = join(dir, 'dry-dst.img');
    await fileOfSize(src, MiB, 'random', 51);
    const r = await runCli(['copy', src, t, '--dry-run', '--journal', join(dir, 'dry.journal')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /dry run/);
    assert.ok(!existsSync(t));
    assert.ok(!existsSync(join(dir, 'dry.journal')));
  });

  it('--progress json writes parseable progress lines and a final done event to stderr', async () => {
    const src = join(dir, 'pj-src.img');
    const dst = join(dir, 'pj-dst.img');
    await fileOfSize(src, 8 * MiB, 'random', 61);
    const r = await runCli(['copy', src, dst, '-b', '1M', '--progress', 'json', '--journal', join(dir, 'pj.journal')]);
    assert.equal(r.code, 0, r.stderr);
    const events = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as { type: string; ok?: boolean });
    assert.equal(events.at(-1)?.type, 'done');
    assert.equal(events.at(-1)?.ok, true);
  });
});
