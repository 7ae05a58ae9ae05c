// A GPT disk onto a larger one: the backup GPT header stays where the source ended. Without
// --fix-gpt the summary says so and how to move it; with --fix-gpt ddt moves it once every
// block is proven, on a local target (copy, pull) and on a remote one through the helper
// (send), and the target then is what `sfdisk --relocate gpt-bak-std` makes of the copy.
// Real parts: GPTs made by sfdisk on loop devices, the harness sshd, the built CLI.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { attachLoop, fileOfSize, loopAvailable, makeTempDir, type LoopDevice } from '../harness/loop.js';
import { haveCommand, NEEDS, requireReal } from '../harness/real.js';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd.js';
import { jsonOf, runCli } from './cli.js';
import { sshArgs } from './remote-helpers.js';

const MiB = 1024 * 1024;

/** `sfdisk --verify` of a device: its report on stdout and stderr, whatever the exit status. */
function verifyReport(dev: string): string {
  const r = spawnSync('sfdisk', ['--verify', dev], { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`;
}

/** What `sfdisk --relocate gpt-bak-std` makes of `target`'s file with the source copied over its start. */
async function relocatedBySfdisk(sourceImg: string, targetImg: string, scratch: string): Promise<Buffer> {
  const bytes = await readFile(targetImg);
  (await readFile(sourceImg)).copy(bytes, 0);
  await writeFile(scratch, bytes);
  execFileSync('sfdisk', ['-q', '--relocate', 'gpt-bak-std', scratch], { stdio: 'ignore' });
  return readFile(scratch);
}

describe('e2e: a GPT source on a larger target', function () {
  let dir: string;
  let source: LoopDevice;
  let sourceImg: string;
  const loops: LoopDevice[] = [];

  /**
   * A 48 MiB target, and what --fix-gpt must leave on it: what sfdisk makes of the source copied
   * over its start. Random, not zeros: the backup area must be written whole.
   */
  async function target(name: string): Promise<LoopDevice & { expected: Buffer }> {
    const file = join(dir, `${name}.img`);
    await fileOfSize(file, 48 * MiB, 'random', 5);
    const expected = await relocatedBySfdisk(sourceImg, file, join(dir, `${name}.expected`));
    const loop = await attachLoop(file);
    loops.push(loop);
    return Object.assign(loop, { expected });
  }

  before(async function () {
    requireReal(this, `${NEEDS.loop}, sfdisk`, loopAvailable() && haveCommand('sfdisk'));
    dir = await makeTempDir('ddt-e2e-gpt-');
    sourceImg = join(dir, 'source.img');
    await fileOfSize(sourceImg, 32 * MiB, 'mixed', 9);
    source = await attachLoop(sourceImg);
    loops.push(source);
    // stderr: the kernel's partition re-read, which a loop device without partscan refuses
    execFileSync('sfdisk', ['-q', source.dev], { input: 'label: gpt\n,8M,L\n,4M,S\n,,L\n', stdio: ['pipe', 'ignore', 'pipe'] });
  });
  after(async () => {
    for (const l of loops.reverse()) await l.detach().catch(() => undefined);
  });

  it('copy without --fix-gpt: exit 0, and the summary says the backup header is not at the end and how to move it', async () => {
    const t = await target('plain');
    const r = await runCli(['copy', source.dev, t.dev, '--yes', '--json', '--progress', 'none', '-b', '4M', '--journal', join(dir, 'plain.journal')]);
    assert.equal(r.code, 0, r.stderr);
    const s = jsonOf(r);
    const warnings = s.warnings as string[];
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /the source has a GPT and the target is larger: the backup GPT header stays at sector 65535, not at the end of \/dev\/loop\d+/);
    assert.match(warnings[0]!, new RegExp(`sgdisk -e ${t.dev}\`.*sfdisk --relocate gpt-bak-std ${t.dev}\`.*--fix-gpt`));
    assert.equal(s.gptFixed, undefined);
    assert.match(r.stderr, /ddt: warning: the source has a GPT/, 'also said where the run is watched');
    assert.match(verifyReport(t.dev), /backup GPT table is not on the end of the device/);
  });

  it('copy --fix-gpt: the backup moves to the target end, proven; the target is what sfdisk --relocate makes', async () => {
    const t = await target('fixed');
    const r = await runCli(['copy', source.dev, t.dev, '--fix-gpt', '--yes', '--json', '--progress', 'none', '-b', '4M', '--journal', join(dir, 'fixed.journal')]);
    assert.equal(r.code, 0, r.stderr);
    const s = jsonOf(r);
    assert.equal(s.warnings, undefined);
    assert.match(s.gptFixed as string, /backup header moved to the end of the target \(sector 98303\).*sectors 0-1 and 98271-98303 written and read back/);
    assert.match(verifyReport(t.dev), /No errors detected/);
    assert.ok((await readFile(t.dev)).equals(t.expected), 'byte for byte what sfdisk --relocate gpt-bak-std makes');
  });

  describe('over SSH', () => {
    let sshd: TestSshd;
    before(async function () {
      requireReal(this, NEEDS.sshd, sshdAvailable());
      sshd = await startSshd();
    });
    after(async () => sshd?.stop());

    it('send: the warning names the host to run the commands on; with --fix-gpt the helper moves the backup', async () => {
      const t = await target('sent');
      const first = await runCli(['send', source.dev, `root@127.0.0.1:${t.dev}`, ...sshArgs(sshd), '--via', 'stream', '--yes', '--json', '--progress', 'none', '-b', '4M', '--journal', join(dir, 'sent-plain.journal')]);
      assert.equal(first.code, 0, first.stderr);
      assert.match((jsonOf(first).warnings as string[])[0]!, new RegExp(`sfdisk --relocate gpt-bak-std ${t.dev}\` on root@127\\.0\\.0\\.1,`));
      const r = await runCli(['send', source.dev, `root@127.0.0.1:${t.dev}`, ...sshArgs(sshd), '--via', 'stream', '--fix-gpt', '--yes', '--json', '--progress', 'none', '-b', '4M', '--journal', join(dir, 'sent.journal')]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(jsonOf(r).gptFixed as string, /sector 98303/);
      assert.match(verifyReport(t.dev), /No errors detected/);
      assert.ok((await readFile(t.dev)).equals(t.expected));
    });

    it('pull without --fix-gpt names the host the commands are for; with it, the local target is fixed', async () => {
      const t = await target('pulled');
      const r = await runCli(['pull', `root@127.0.0.1:${source.dev}`, t.dev, ...sshArgs(sshd), '--yes', '--json', '--progress', 'none', '-b', '4M', '--journal', join(dir, 'pulled.journal')]);
      assert.equal(r.code, 0, r.stderr);
      assert.match((jsonOf(r).warnings as string[])[0]!, new RegExp(`sgdisk -e ${t.dev}\``), 'the target is here: no host to name');
      const again = await runCli(['pull', `root@127.0.0.1:${source.dev}`, t.dev, ...sshArgs(sshd), '--fix-gpt', '--yes', '--json', '--progress', 'none', '-b', '4M', '--journal', join(dir, 'pulled-fixed.journal')]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(verifyReport(t.dev), /No errors detected/);
      assert.ok((await readFile(t.dev)).equals(t.expected));
    });
  });
});
