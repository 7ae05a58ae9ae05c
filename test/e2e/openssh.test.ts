// `--via openssh`: blocks over sessions of the local OpenSSH client multiplexed on ControlMaster
// connections (the default where it can work), against the harness sshd, built CLI.
import assert from 'node:assert/strict';
import { promises as fs, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { attachLoop, fileOfSize, loopAvailable, makeTempDir, sha256File } from '../harness/loop.js';
import { haveCommand, NEEDS, requireReal } from '../harness/real.js';
import { childPids, sshdAvailable, startSshd, type TestSshd } from '../harness/sshd.js';
import { jsonOf, runCli, startCli } from './cli.js';
import { countConnections, sshArgs, waitForVerified } from './remote-helpers.js';

const MiB = 1024 * 1024;

/** All descendants of `pid`. */
function descendants(pid: number): number[] {
  const kids = childPids(pid);
  return [...kids, ...kids.flatMap(descendants)];
}

function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

function viaOf(journal: string): string | undefined {
  return (JSON.parse(readFileSync(journal, 'utf8').split('\n')[0]!) as { path: { name: string } }).path.name;
}

describe('e2e: --via openssh (OpenSSH ControlMaster sessions carry the blocks)', function () {
  let sshd: TestSshd;
  let dir: string;
  let src: string;

  before(async function () {
    requireReal(this, NEEDS.sshd, sshdAvailable());
    requireReal(this, 'ssh', haveCommand('ssh'));
    requireReal(this, 'xxhsum', haveCommand('xxhsum'));
    dir = await makeTempDir('ddt-e2e-openssh-');
    sshd = await startSshd();
    src = join(dir, 'mixed.img');
    await fileOfSize(src, 24 * MiB, 'mixed', 501);
  });
  after(async () => sshd?.stop());

  it('is the default: a mixed image to a loop device, bytes equal, connections never above --connections', async function () {
    requireReal(this, NEEDS.loop, loopAvailable());
    const backing = join(dir, 'loop.img');
    await fileOfSize(backing, 24 * MiB, 'random', 502);
    const loop = await attachLoop(backing);
    try {
      for (const connections of ['2', '3']) {
        const journal = join(dir, `default-${connections}.journal`);
        const run = startCli(['send', src, `root@127.0.0.1:${loop.dev}`, ...sshArgs(sshd), '-b', '1M', '--connections', connections, '--yes', '--json', '--progress', 'none', '--journal', journal]);
        const { total } = await countConnections(sshd, run.done);
        const r = await run.done;
        assert.equal(r.code, 0, r.stderr);
        assert.equal(viaOf(journal), 'openssh');
        assert.equal(jsonOf(r).verified, 24);
        assert.ok(total >= 1 && total <= Number(connections), `the sshd accepted ${total} connections with --connections ${connections}`);
        assert.equal(await sha256File(loop.dev), await sha256File(src));
      }
    } finally {
      await loop.detach();
    }
  });

  it('--via openssh with --connections 1: exit 2, names what to do, target unchanged', async () => {
    const target = join(dir, 'one-conn.img');
    await fileOfSize(target, 24 * MiB, 'random', 503);
    const before = await sha256File(target);
    const r = await runCli(['send', src, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--via', 'openssh', '--connections', '1', '--yes', '--journal', join(dir, 'one.journal')]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--via openssh needs --connections 2 or more/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.equal(await sha256File(target), before);
  });

  it('without ssh on PATH: --via openssh is refused (exit 2), the default falls back to an ssh2 path', async () => {
    const target = join(dir, 'no-ssh.img');
    await fileOfSize(target, 24 * MiB, 'random', 504);
    const before = await sha256File(target);
    const emptyPath = await makeTempDir('ddt-e2e-nopath-');
    const refused = await runCli(['send', src, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--via', 'openssh', '--yes', '--journal', join(dir, 'nossh1.journal')], { env: { PATH: emptyPath } });
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /ssh\) not found on PATH: install the openssh-client package/);
    assert.equal(await sha256File(target), before);

    const journal = join(dir, 'nossh2.journal');
    const r = await runCli(['send', src, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '-b', '1M', '--yes', '--json', '--progress', 'none', '--journal', journal], { env: { PATH: emptyPath } });
    assert.equal(r.code, 0, r.stderr);
    assert.notEqual(viaOf(journal), 'openssh');
    assert.equal(await sha256File(target), await sha256File(src));
  });

  it('a run killed mid-way over openssh resumes over ssh2 (--via stream), and the other way round', async () => {
    for (const [first, then] of [
      ['openssh', 'stream'],
      ['stream', 'openssh'],
    ] as const) {
      const target = join(dir, `cross-${first}.img`);
      await fileOfSize(target, 24 * MiB, 'zero');
      const journal = join(dir, `cross-${first}.journal`);
      // --bwlimit keeps the run slow enough to be killed in the middle.
      const run = startCli(['send', src, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '-b', '1M', '--via', first, '--bwlimit', '4M', '--yes', '--progress', 'none', '--journal', journal]);
      await waitForVerified(journal, 3, undefined, run);
      run.child.kill('SIGKILL');
      await run.done;
      assert.equal(viaOf(journal), first);
      const r = await runCli(['resume', journal, '--via', then, '--json', '--progress', 'none']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(jsonOf(r).verified, 24);
      assert.equal(await sha256File(target), await sha256File(src));
    }
  });

  it('survives either connection killed mid-run: the master\'s (its sessions come back) and the ssh2 one', async () => {
    for (const which of ['master', 'ssh2'] as const) {
      const target = join(dir, `kill-${which}.img`);
      await fileOfSize(target, 24 * MiB, 'zero');
      const journal = join(dir, `kill-${which}.journal`);
      const run = startCli(['send', src, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '-b', '1M', '--channels', '2', '--bwlimit', '6M', '--yes', '--json', '--progress', 'none', '--journal', journal]);
      await waitForVerified(journal, 3, undefined, run);
      // The master's own session runs `cat` (it ends when ddt's end of its stdin closes).
      const conns = sshd.connectionPids();
      const isMaster = (pid: number) => descendants(pid).some((p) => commOf(p) === 'cat');
      const victim = conns.find((pid) => isMaster(pid) === (which === 'master'));
      assert.ok(victim, `no ${which} connection among ${conns.length}`);
      process.kill(victim, 'SIGKILL');
      const r = await run.done;
      assert.equal(r.code, 0, r.stderr);
      if (which === 'master') assert.match(r.stderr, /OpenSSH connection that carries the blocks was lost/);
      assert.equal(jsonOf(r).verified, 24);
      assert.equal(await sha256File(target), await sha256File(src));
    }
  });

  it('a server that allows fewer sessions than asked: completes with fewer, and says so', async () => {
    const small = await startSshd({ maxSessions: 3 });
    try {
      const target = join(dir, 'maxsessions.img');
      await fs.writeFile(target, '');
      await fs.truncate(target, 24 * MiB);
      const r = await runCli(['send', src, `root@127.0.0.1:${target}`, ...sshArgs(small), '-b', '1M', '--via', 'openssh', '--channels', '6', '--yes', '--json', '--progress', 'none', '--journal', join(dir, 'maxs.journal')]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /refused an OpenSSH session|MaxSessions/i);
      assert.equal(jsonOf(r).verified, 24);
      assert.equal(await sha256File(target), await sha256File(src));
    } finally {
      await small.stop();
    }
  });
});
