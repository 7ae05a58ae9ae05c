// ddt used as a careless or hostile user would: two writers on one target, a target that moved
// under a resume, another job's writes, crafted journals, escapes, odd operands. Each refusal is
// exit 2 with one line, and nothing is written where nothing should be.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileOfSize, makeTempDir, sha256File } from '../harness/loop.js';
import { haveCommand, requireReal } from '../harness/real.js';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd.js';
import { jsonOf, runCli, startCli } from './cli.js';
import { countConnections, sshArgs, verifiedCount, waitForVerified } from './remote-helpers.js';

const MiB = 1024 * 1024;

/** A journal header, as crafted journals edit it. */
type Header = { options: { connections: number }; blocks: number; target: { path: string } };

/** One line on stderr, and it is an error. */
function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n').filter((l) => !/warning/.test(l));
  assert.equal(lines.length, 1, stderr);
  return lines[0]!;
}

describe('e2e: hostile input and careless use', function () {
  let sshd: TestSshd;
  let dir: string;

  before(async function () {
    requireReal(this, 'OpenSSH sshd (root)', sshdAvailable());
    requireReal(this, 'xxhsum', haveCommand('xxhsum'));
    dir = await makeTempDir('ddt-e2e-hostile-');
    sshd = await startSshd();
  });
  after(async () => sshd?.stop());

  it('two sends to one remote target: the second is refused naming the first job, the first ends byte-identical', async () => {
    const a = join(dir, 'a.img');
    const b = join(dir, 'b.img');
    const t = join(dir, 'two-writers.img');
    await fileOfSize(a, 32 * MiB, 'random', 1601);
    await fileOfSize(b, 32 * MiB, 'random', 1602);
    await fileOfSize(t, 32 * MiB, 'zero');
    const ja = join(dir, 'a.journal');
    const first = startCli(['send', a, `root@127.0.0.1:${t}`, ...sshArgs(sshd), '-b', '1M', '--bwlimit', '8M', '--yes', '--json', '--progress', 'none', '--journal', ja]);
    await waitForVerified(ja, 2, undefined, first);
    const second = await runCli(['send', b, `root@127.0.0.1:${t}`, ...sshArgs(sshd), '-b', '1M', '--yes', '--json', '--progress', 'none', '--journal', join(dir, 'b.journal')]);
    assert.equal(second.code, 2, second.stderr);
    const jobA = (JSON.parse(readFileSync(ja, 'utf8').split('\n')[0]!) as { jobId: string }).jobId;
    assert.match(oneLine(second.stderr), new RegExp(`being written by job ${jobA}`));
    assert.equal(existsSync(join(dir, 'b.journal')), false, 'the refused run wrote no journal');
    const r = await first.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await sha256File(t), await sha256File(a));
  });

  it('two copies to one local target: the second is refused, the first ends byte-identical', async () => {
    const a = join(dir, 'ca.img');
    const t = join(dir, 'copy-target.img');
    // Large enough that the first copy (one block at a time, each flushed and read back) is
    // still running when the second one starts.
    await fileOfSize(a, 512 * MiB, 'random', 1603);
    await fileOfSize(t, 512 * MiB, 'zero');
    const ja = join(dir, 'ca.journal');
    const first = startCli(['copy', a, t, '-b', '4M', '--channels', '1', '--yes', '--progress', 'none', '--journal', ja]);
    await waitForVerified(ja, 1, undefined, first);
    const second = await runCli(['copy', join(dir, 'a.img'), t, '-b', '1M', '--yes', '--progress', 'none', '--journal', join(dir, 'cb.journal')]);
    assert.equal(second.code, 2, second.stderr);
    assert.match(oneLine(second.stderr), /being written by job/);
    assert.equal((await first.done).code, 0);
    assert.equal(await sha256File(t), await sha256File(a));
  });

  it('resume refuses a target path that points at another file now (a moved symlink), and writes nothing there', async () => {
    const src = join(dir, 'moved-src.img');
    const fileA = join(dir, 'moved-a.img');
    const fileB = join(dir, 'moved-b.img');
    const link = join(dir, 'moved-link.img');
    await fileOfSize(src, 32 * MiB, 'random', 1604);
    await fileOfSize(fileA, 32 * MiB, 'zero');
    await fileOfSize(fileB, 32 * MiB, 'random', 1605);
    await symlink(fileA, link);
    const j = join(dir, 'moved.journal');
    const run = startCli(['send', src, `root@127.0.0.1:${link}`, ...sshArgs(sshd), '-b', '1M', '--bwlimit', '8M', '--yes', '--progress', 'none', '--journal', j]);
    await waitForVerified(j, 2, undefined, run);
    run.child.kill('SIGINT');
    assert.equal((await run.done).code, 130);
    await unlink(link);
    await symlink(fileB, link);
    const before = await sha256File(fileB);
    const r = await runCli(['resume', j, '--progress', 'none']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(oneLine(r.stderr), /is not the one this job wrote: it is a different file/);
    assert.equal(await sha256File(fileB), before);
  });

  it('resume after another job wrote the target: the proven blocks are re-checked, the changed ones sent again', async () => {
    const src = join(dir, 'rw-src.img');
    const other = join(dir, 'rw-other.img');
    const t = join(dir, 'rw-target.img');
    await fileOfSize(src, 32 * MiB, 'random', 1606);
    await fileOfSize(other, 32 * MiB, 'random', 1607);
    await fileOfSize(t, 32 * MiB, 'zero');
    const j = join(dir, 'rw.journal');
    const run = startCli(['send', src, `root@127.0.0.1:${t}`, ...sshArgs(sshd), '-b', '1M', '--bwlimit', '8M', '--yes', '--progress', 'none', '--journal', j]);
    await waitForVerified(j, 4, undefined, run);
    run.child.kill('SIGINT');
    assert.equal((await run.done).code, 130);
    const proven = verifiedCount(j);
    // Another job writes the whole target.
    const o = await runCli(['send', other, `root@127.0.0.1:${t}`, ...sshArgs(sshd), '-b', '1M', '--yes', '--progress', 'none', '--journal', join(dir, 'rw-other.journal')]);
    assert.equal(o.code, 0, o.stderr);
    const r = await runCli(['resume', j, '--json', '--progress', 'none']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /re-checking the \d+ block\(s\) an earlier run proved.*the target's record names job \S+ as its last writer/);
    assert.equal(jsonOf(r).sent, 32, `all ${proven} proven blocks differ now, and the rest were never sent`);
    assert.equal(await sha256File(t), await sha256File(src));
  });

  describe('crafted journals: exit 2 naming the line and the field, nothing connects', () => {
    let good: string[];
    before(async () => {
      const src = join(dir, 'j-src.img');
      const t = join(dir, 'j-target.img');
      await fileOfSize(src, 8 * MiB, 'random', 1608);
      await fileOfSize(t, 8 * MiB, 'zero');
      const j = join(dir, 'good.journal');
      const r = await runCli(['send', src, `root@127.0.0.1:${t}`, ...sshArgs(sshd), '-b', '1M', '--yes', '--progress', 'none', '--journal', j]);
      assert.equal(r.code, 0, r.stderr);
      good = readFileSync(j, 'utf8').trim().split('\n');
    });

    const cases: Array<[string, (h: Header) => unknown, RegExp]> = [
      ['100000 connections', (h) => (h.options.connections = 100000), /line 1: options\.connections must be an integer from 1 to 64, got 100000/],
      ['1e15 blocks', (h) => (h.blocks = 1e15), /line 1: blocks must be an integer from 1 to \d+, got 1000000000000000/],
      ['-5 blocks', (h) => (h.blocks = -5), /line 1: blocks must be an integer/],
      ['a relative remote path', (h) => (h.target.path = 'dev/sda'), /line 1: target\.path must be an absolute path on the remote host/],
      ['a block count that does not fit the size', (h) => (h.blocks = 3), /line 1: blocks must be 8 \(source\.size \/ blockSize/],
    ];
    for (const [what, edit, message] of cases) {
      it(what, async () => {
        const h = JSON.parse(good[0]!) as Header;
        edit(h);
        const j = join(dir, `crafted-${what.replace(/\W+/g, '-')}.journal`);
        await writeFile(j, [JSON.stringify(h), ...good.slice(1)].join('\n') + '\n');
        const logins = countConnections(sshd, (async () => {
          for (const cmd of [['status', j], ['resume', j, '--progress', 'none']]) {
            const r = await runCli(cmd);
            assert.equal(r.code, 2, `${cmd[0]}: ${r.stderr}`);
            assert.match(oneLine(r.stderr), message);
          }
        })());
        assert.equal((await logins).total, 0, 'nothing connected');
      });
    }

    it('a null line and a line of garbage in the middle', async () => {
      const j = join(dir, 'null.journal');
      await writeFile(j, [good[0], 'null', ...good.slice(1)].join('\n') + '\n');
      const r = await runCli(['status', j]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(oneLine(r.stderr), /line 2: not a record/);
    });

    it('a journal that is not a regular file, and a directory', async () => {
      for (const p of ['/dev/zero', dir]) {
        const r = await runCli(['status', p]);
        assert.equal(r.code, 2, r.stderr);
        assert.match(oneLine(r.stderr), /is not a regular file/);
      }
    });

    it('escapes in a journal never reach the terminal', async () => {
      const h = JSON.parse(good[0]!) as Header;
      h.target.path = '/tmp/x\u001b]0;owned\u0007\u001b[2J\u001b[32mAll good, 8/8 verified\u001b[0m';
      const j = join(dir, 'escapes.journal');
      const fail = { type: 'run', event: 'end', time: new Date().toISOString(), exitCode: 4, error: 'boom\u001b[2J\u009b31m' };
      await writeFile(j, [JSON.stringify(h), JSON.stringify(fail)].join('\n') + '\n');
      const r = await runCli(['status', j]);
      assert.equal(r.code, 4, r.stderr);
      assert.ok(!r.stdout.includes('\u001b') && !r.stdout.includes('\u0007') && !r.stdout.includes('\u009b'), JSON.stringify(r.stdout));
      assert.match(r.stdout, /last error: boom\?\[2J\?31m/);
    });
  });

  it('status exits 0 for a finished job, 4 for an unfinished one', async () => {
    const src = join(dir, 'st-src.img');
    const t = join(dir, 'st-target.img');
    await fileOfSize(src, 4 * MiB, 'random', 1609);
    const j = join(dir, 'st.journal');
    assert.equal((await runCli(['copy', src, t, '-b', '1M', '--yes', '--progress', 'none', '--journal', j])).code, 0);
    assert.equal((await runCli(['status', j])).code, 0);
    const lines = readFileSync(j, 'utf8').trim().split('\n');
    await writeFile(j, lines.filter((l) => !l.includes('"block":2,')).join('\n') + '\n');
    const r = await runCli(['status', j, '--json']);
    assert.equal(r.code, 4, r.stderr);
    assert.equal(jsonOf(r).pending, 1);
  });

  it('refused before connecting: a journal that cannot be created, a target in a directory that does not exist', async () => {
    const src = join(dir, 'pre-src.img');
    await fileOfSize(src, 4 * MiB, 'random', 1610);
    const t = join(dir, 'pre-target.img');
    await fileOfSize(t, 4 * MiB, 'zero');
    const noDir = join(dir, 'no-such-dir');
    const probes = countConnections(sshd, (async () => {
      const j = await runCli(['send', src, `root@127.0.0.1:${t}`, ...sshArgs(sshd), '--yes', '--journal', join(noDir, 'x.journal')]);
      assert.equal(j.code, 2, j.stderr);
      assert.match(oneLine(j.stderr), /cannot create journal .*no-such-dir does not exist/);
    })());
    assert.equal((await probes).total, 0);
    for (const cmd of ['copy', 'pull']) {
      const from = cmd === 'copy' ? src : `root@127.0.0.1:${src}`;
      const r = await runCli([cmd, from, join(noDir, 'out.img'), ...(cmd === 'pull' ? sshArgs(sshd) : []), '--yes', '--journal', join(dir, `${cmd}-nodir.journal`)]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(oneLine(r.stderr), /directory .*no-such-dir does not exist/);
    }
    assert.equal(await sha256File(t), await sha256File(t));
  });

  it("'--' ends the options: a file whose name starts with '-'", async () => {
    const sub = join(dir, 'dash');
    await mkdir(sub);
    await fileOfSize(join(sub, '-odd.img'), 2 * MiB, 'random', 1611);
    const r = await runCli(['copy', '--yes', '--progress', 'none', '--journal', join(sub, 'j.journal'), '--', '-odd.img', '-copy.img'], { cwd: sub });
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await readFile(join(sub, '-copy.img'))).equals(await readFile(join(sub, '-odd.img'))));
    await rename(join(sub, '-copy.img'), join(sub, 'done.img'));
  });
});
