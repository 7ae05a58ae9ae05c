// Transport faults during a send: a remote dd killed mid-block, the host gone for longer than
// --reconnect-timeout. The first costs one re-sent block; the second ends the run with exit 4,
// a consistent journal and the advice to resume — and the resume completes.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileOfSize, makeTempDir, sha256File } from '../harness/loop.js';
import { NEEDS, requireReal } from '../harness/real.js';
import { processState } from '../harness/ssh-run.js';
import { sshdAvailable, startSshd } from '../harness/sshd.js';
import { until } from '../harness/until.js';
import { jsonOf, runCli, startCli } from './cli.js';
import { verifiedCount } from './remote-helpers.js';

const MiB = 1024 * 1024;

/** Polled often: a block's dd lives for a few ms. */
const waitFor = (what: string, cond: () => boolean) => until(what, cond, 60_000, 5);

/**
 * PIDs of dd processes writing a block into `target` (the helper's write step: data from its
 * stdin, at an offset), from /proc. Not the worker's one-off check that the target takes O_DIRECT
 * writes (`dd if=/dev/null of=TARGET count=0`): killing that one costs no block.
 */
function ddWriting(target: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      const block = argv.some((a) => a.startsWith('seek=')) && !argv.some((a) => a.startsWith('if='));
      if (argv[0]?.endsWith('dd') && argv.includes(`of=${target}`) && block) pids.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return pids;
}

/**
 * Kill `pid` only while it certainly still runs: a dd that has just finished (a zombie, or one
 * inside its exit) takes a signal without error and ends with its own status, and its block is
 * then fine. Stopped first, a process that shows as stopped has not exited, and SIGKILL ends it.
 */
function killMidWrite(pid: number): boolean {
  try {
    process.kill(pid, 'SIGSTOP');
  } catch {
    return false; // ESRCH: that dd just finished
  }
  for (let i = 0; i < 2000; i++) {
    const state = processState(pid);
    if (state === 'T') {
      process.kill(pid, 'SIGKILL');
      return true;
    }
    if (state === '' || state === 'Z' || state === 'X') return false;
  }
  try {
    process.kill(pid, 'SIGCONT'); // never stopped (exiting): leave it be
  } catch {
    /* gone */
  }
  return false;
}

describe('e2e: transport faults during ddt send', function () {
  let dir: string;
  before(async function () {
    requireReal(this, NEEDS.sshd, sshdAvailable());
    dir = await makeTempDir('ddt-e2e-faults-');
  });

  it('a remote dd killed mid-block: that block is re-sent and the run completes', async () => {
    const sshd = await startSshd();
    try {
      const src = join(dir, 'dd-src.img');
      const dst = join(dir, 'dd-dst.img');
      await fileOfSize(src, 64 * MiB, 'random', 301);
      await fileOfSize(dst, 64 * MiB, 'zero');
      const run = startCli(['send', src, `root@127.0.0.1:${dst}`, '-p', String(sshd.port), '-i', sshd.clientKeyPath, '--known-hosts', sshd.knownHostsPath, '-b', '4M', '--channels', '2', '--yes', '--json', '--progress', 'none', '--journal', join(dir, 'dd.journal')]);
      // A block's dd may finish between finding and killing it: try the next one then.
      await waitFor('a remote dd writing the target, killed', () => ddWriting(dst).some(killMidWrite));
      const r = await run.done;
      assert.equal(r.code, 0, r.stderr);
      const s = jsonOf(r);
      assert.equal(s.verified, 16);
      assert.ok((s.retransmitted as number) >= 1, 'the killed block must have been re-sent');
      assert.equal(await sha256File(dst), await sha256File(src));
    } finally {
      await sshd.stop();
    }
  });

  it('the host gone longer than --reconnect-timeout: exit 4, journal consistent, resume completes', async () => {
    let sshd = await startSshd();
    const src = join(dir, 'gone-src.img');
    const dst = join(dir, 'gone-dst.img');
    const journal = join(dir, 'gone.journal');
    await fileOfSize(src, 96 * MiB, 'random', 302);
    await fileOfSize(dst, 96 * MiB, 'zero');
    try {
      const knownHosts = join(dir, 'gone_known_hosts');
      const run = startCli(['send', src, `root@127.0.0.1:${dst}`, '-p', String(sshd.port), '-i', sshd.clientKeyPath, '--known-hosts', sshd.knownHostsPath, '-b', '1M', '--yes', '--json', '--progress', 'none', '--reconnect-timeout', '3s', '--journal', journal]);
      await waitFor('three verified blocks', () => verifiedCount(journal) >= 3);
      const started = Date.now();
      await sshd.stop(); // listener and every connection: the host is gone
      const r = await run.done;
      const took = Date.now() - started;
      assert.equal(r.code, 4, r.stderr);
      assert.match(r.stdout + r.stderr, /ddt resume/);
      assert.ok(took < 30_000, `gave up after ${took} ms, expected about the 3 s timeout`);
      const before = jsonOf(await runCli(['status', journal, '--json']));
      assert.ok((before.verified as number) >= 3 && (before.verified as number) < 96);
      // The host comes back (a new sshd: new port and keys, given as resume overrides where allowed).
      sshd = await startSshd();
      const { writeFile } = await import('node:fs/promises');
      await writeFile(knownHosts, readFileSync(sshd.knownHostsPath));
      const lines = readFileSync(journal, 'utf8').split('\n');
      const header = JSON.parse(lines[0]!);
      header.target.remote.port = sshd.port; // the same host would be on the same port; our test sshd is not
      await writeFile(journal, [JSON.stringify(header), ...lines.slice(1)].join('\n'));
      const resumed = await runCli(['resume', journal, '-i', sshd.clientKeyPath, '--known-hosts', knownHosts, '--json', '--progress', 'none']);
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.equal(await sha256File(dst), await sha256File(src));
    } finally {
      await sshd.stop();
    }
  });
});
