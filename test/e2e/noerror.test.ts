// --noerror end to end: the built CLI reads a loop device whose chosen sectors fail with a
// real kernel EIO (FUSE fixture). With --noerror the run finishes with exit 5, the bad ranges
// in the summary, the journal and `ddt status`, and the target equal to the source with those
// sectors zeroed. Without it the run stops with exit 4 and a resumable journal.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileOfSize, makeTempDir } from '../harness/loop.js';
import { NEEDS, requireReal } from '../harness/real.js';
import { fuseAvailable, withBadSectorDevice } from '../fixtures/bad-device.js';
import { jsonOf, runCli } from './cli.js';

const MiB = 1024 * 1024;

describe('e2e: --noerror on a source with unreadable sectors', function () {
  let dir: string;
  let image: string;
  const bad = [2048 + 5, 2048 + 6, 6000];

  before(async function () {
    requireReal(this, NEEDS.fuse, fuseAvailable());
    dir = await makeTempDir('ddt-e2e-noerror-');
    image = join(dir, 'source.img');
    await fileOfSize(image, 4 * MiB, 'random', 201);
  });

  it('with --noerror: exit 5, bad ranges reported, target = source with those sectors zeroed', async () => {
    const target = join(dir, 'target.img');
    const journal = join(dir, 'noerror.journal');
    let r!: Awaited<ReturnType<typeof runCli>>;
    await withBadSectorDevice(image, bad, async (dev) => {
      r = await runCli(['copy', dev, target, '-b', '1M', '--noerror', '--json', '--progress', 'none', '--journal', journal]);
    });
    assert.equal(r.code, 5, r.stderr);
    const s = jsonOf(r);
    assert.equal(s.verified, 4);
    assert.deepEqual(s.badRanges, [
      { offset: (2048 + 5) * 512, length: 1024 },
      { offset: 6000 * 512, length: 512 },
    ]);
    const expected = await readFile(image);
    for (const sector of bad) expected.fill(0, sector * 512, sector * 512 + 512);
    assert.ok((await readFile(target)).equals(expected), 'target is not the source with bad sectors zeroed');
    const st = jsonOf(await runCli(['status', journal, '--json']));
    assert.deepEqual(st.badRanges, s.badRanges);
    assert.match(readFileSync(journal, 'utf8'), /"state":"bad","ranges":\[/);
    const human = await runCli(['status', journal]);
    assert.match(human.stdout, /unreadable source ranges: 1051136\.\.1052160, 3072000\.\.3072512/);
  });

  it('without --noerror: a read error stops the run with exit 4 and a resumable journal', async () => {
    const target = join(dir, 'target-stop.img');
    const journal = join(dir, 'stop.journal');
    let r!: Awaited<ReturnType<typeof runCli>>;
    await withBadSectorDevice(image, bad, async (dev) => {
      r = await runCli(['copy', dev, target, '-b', '1M', '--channels', '1', '--json', '--progress', 'none', '--journal', journal]);
    });
    assert.equal(r.code, 4, r.stderr);
    const s = jsonOf(r);
    assert.equal(s.ok, false);
    assert.match(String(s.error), /cannot read source .* ddt resume/);
    const st = jsonOf(await runCli(['status', journal, '--json']));
    assert.equal(st.verified, 1, 'the block before the bad one is proven');
    assert.match(String(st.lastError), /cannot read source/);
  });
});
