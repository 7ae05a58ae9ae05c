// ddt clean against the real sshd: a killed job's staging dir, work dir and stale lock removed by
// its journal (and the job still resumable), a whole host's leftovers listed and removed with
// --yes, and the refusals: a job that still runs, a missing journal, JOURNAL and --host.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { chown, copyFile, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatBytes } from '../../src/format.js';
import { fileOfSize, makeTempDir, sha256File } from '../harness/loop.js';
import { haveCommand, NEEDS, requireReal } from '../harness/real.js';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd.js';
import { until } from '../harness/until.js';
import { createUser, usersAvailable, type TestUser } from '../harness/users.js';
import { jsonOf, runCli, startCli } from './cli.js';
import { sshArgs, verifiedCount, waitForVerified } from './remote-helpers.js';

const MiB = 1024 * 1024;
/** Root's lock dirs on this host (the harness sshd logs in as root). */
const ROOT_LOCKS = '/var/lib/ddt/locks';

function jobIdOf(journal: string): string {
  return (JSON.parse(readFileSync(journal, 'utf8').split('\n')[0]!) as { jobId: string }).jobId;
}

/** Every path under `dir`, for "nothing changed" (sorted, relative). */
function tree(dir: string, prefix = ''): string[] {
  return readdirSync(join(dir, prefix), { withFileTypes: true })
    .flatMap((e) => {
      const rel = join(prefix, e.name);
      return e.isDirectory() ? [`${rel}/`, ...tree(dir, rel)] : [rel];
    })
    .sort();
}

/** A lock dir whose owner line names a process that does not exist (and a record next to it). */
async function plantStaleLock(base: string, key: string, job: string): Promise<{ lock: string; last: string }> {
  await mkdir(base, { recursive: true, mode: 0o700 });
  const lock = join(base, `${key}.lock`);
  await mkdir(lock);
  await writeFile(join(lock, 'owner'), `pid=999999999 start=1 job=${job} run=${job}.x since=1\n`);
  const last = join(base, `${key}.last`);
  await writeFile(last, `job=${job} run=${job}.x state=writing\n`);
  return { lock, last };
}

/** A lock dir's owner line ('' once it is gone). */
function ownerOf(lock: string): string {
  try {
    return readFileSync(join(lock, 'owner'), 'utf8');
  } catch {
    return '';
  }
}

/** Processes whose command line names a helper of work dir `dir`. */
function helpersOf(dir: string): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .filter((n) => {
      try {
        return readFileSync(`/proc/${n}/cmdline`, 'utf8').includes(`${dir}/ddt-helper.sh`);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** Text as a regular expression that matches only itself. */
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Field 22 of /proc/PID/stat, as the helper names a process. */
function startOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

describe('e2e: ddt clean', function () {
  let sshd: TestSshd;
  let dir: string;
  let home: string;
  const planted: string[] = [];

  before(async function () {
    requireReal(this, NEEDS.sshd, sshdAvailable());
    requireReal(this, 'xxhsum', haveCommand('xxhsum'));
    dir = await makeTempDir('ddt-e2e-clean-');
    sshd = await startSshd();
    home = realpathSync(sshd.home);
  });
  after(async () => {
    for (const p of planted) await rm(p, { recursive: true, force: true });
    await sshd?.stop();
  });

  it("removes a killed --via sftp send's staging dir, work dir and stale lock, names them; again: nothing to remove; resume still finishes", async () => {
    const src = join(dir, 'killed-src.img');
    await fileOfSize(src, 64 * MiB, 'random', 501);
    const target = join(dir, 'killed-dst.img');
    await fileOfSize(target, 64 * MiB, 'zero');
    const journal = join(dir, 'killed.journal');
    const remoteDir = realpathSync(await makeTempDir('ddt-e2e-clean-remote-'));
    const run = startCli(['send', src, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--via', 'sftp', '--remote-dir', remoteDir, '-b', '8M', '--connections', '1', '--channels', '2', '--yes', '--progress', 'none', '--journal', journal]);
    // Killed while a block is staged: its file is there to be counted and removed.
    const staged = () => readdirSync(remoteDir).some((n) => n.startsWith('.ddt-staging-') && readdirSync(join(remoteDir, n)).some((f) => f.startsWith('block-')));
    await until('a staged block file', staged, 60_000, 2);
    run.child.kill('SIGKILL');
    await run.done;
    const job = jobIdOf(journal);
    const staging = join(remoteDir, `.ddt-staging-${job}`);
    const workDir = join(home, '.ddt', job);
    assert.ok(existsSync(staging) && existsSync(join(workDir, '.ddt-workdir')), 'the killed run left its staging dir and work dir');
    // The killed run's lock holder ends once sshd has seen the connection go.
    await until('the killed run to release its lock', () => !readdirSync(ROOT_LOCKS).some((n) => n.endsWith('.lock') && ownerOf(join(ROOT_LOCKS, n)).includes(`job=${job} `)), 15_000);
    // Its helpers end too (a block file they were writing may still go): then the staging dir holds still.
    await until("the killed run's helpers to end", () => helpersOf(workDir).length === 0, 15_000);
    const blocks = readdirSync(staging).filter((f) => /^block-\d+$/.test(f));
    const bytes = blocks.reduce((n, f) => n + statSync(join(staging, f)).size, 0);
    const key = `f-0_${4_000_000_000 + Math.floor(Math.random() * 1e8)}`;
    const stale = await plantStaleLock(ROOT_LOCKS, key, job);
    planted.push(stale.lock, stale.last);

    const r = await runCli(['clean', journal]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^removed staging dir root@127\\.0\\.0\\.1:${esc(staging)} \\(${blocks.length} block files?, ${esc(formatBytes(bytes))}\\)$`, 'm'));
    assert.match(r.stdout, new RegExp(`^removed helper work dir root@127\\.0\\.0\\.1:${esc(workDir)} \\([1-9]\\d* files?, [\\d.]+ [KMG]?i?B\\)`, 'm'));
    assert.match(r.stdout, new RegExp(`^removed stale lock dir root@127\\.0\\.0\\.1:${esc(stale.lock)} \\(job ${job}\\)$`, 'm'));
    assert.equal(r.stdout.trim().split('\n').length, 3, r.stdout);
    assert.equal(existsSync(staging), false, 'staging dir removed');
    assert.equal(existsSync(workDir), false, 'work dir removed');
    assert.equal(existsSync(stale.lock), false, 'stale lock dir removed');
    assert.equal(readFileSync(stale.last, 'utf8'), `job=${job} run=${job}.x state=writing\n`, 'the last-writer record is kept');
    assert.deepEqual(readdirSync(join(home, '.ddt')).filter((n) => n.startsWith('clean-')), [], "clean's own work dir is gone too");

    const again = await runCli(['clean', journal, '--json']);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(jsonOf(again), { ok: true, exitCode: 0, host: 'root@127.0.0.1', job, removed: 0, items: [] });
    const text = await runCli(['clean', journal]);
    assert.equal(text.stdout, `nothing to remove for job ${job} on root@127.0.0.1\n`);

    const resumed = await runCli(['resume', journal, '--json', '--progress', 'none']);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(jsonOf(resumed).verified, 8);
    assert.equal(await sha256File(target), await sha256File(src));
    assert.equal(existsSync(staging), false);
  });

  it('refuses a job that still runs (exit 2, nothing removed), by its open journal here and by its held lock there; the send still finishes', async () => {
    const src = join(dir, 'running-src.img');
    await fileOfSize(src, 8 * MiB, 'random', 502);
    const target = join(dir, 'running-dst.img');
    await fileOfSize(target, 8 * MiB, 'zero');
    const journal = join(dir, 'running.journal');
    const remoteDir = realpathSync(await makeTempDir('ddt-e2e-clean-running-'));
    const run = startCli(['send', src, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--via', 'sftp', '--remote-dir', remoteDir, '-b', '1M', '--bwlimit', '1M', '--connections', '1', '--channels', '2', '--yes', '--progress', 'none', '--journal', journal]);
    try {
      await waitForVerified(journal, 1, undefined, run);
      const job = jobIdOf(journal);
      const before = { remote: tree(remoteDir), work: tree(join(home, '.ddt', job)) };
      assert.ok(before.remote.some((p) => p.startsWith(`.ddt-staging-${job}`)), 'the running send stages');
      assert.ok(before.work.includes('.ddt-workdir'));
      const here = await runCli(['clean', journal]);
      assert.equal(here.code, 2, here.stderr);
      assert.match(here.stderr, new RegExp(`^ddt: error: job ${job} is still running: process ${run.child.pid} on this host has its journal open; nothing removed`));
      // A copy of the journal is open nowhere: the remote lock tells.
      const copy = join(dir, 'running-copy.journal');
      await copyFile(journal, copy);
      const there = await runCli(['clean', copy, '--json']);
      assert.equal(there.code, 2, there.stderr);
      assert.match(String(jsonOf(there).error), new RegExp(`^job ${job} is still running: its lock root@127\\.0\\.0\\.1:${ROOT_LOCKS}/\\S+\\.lock is held by a live process; nothing removed`));
      assert.equal(jsonOf(there).exitCode, 2);
      assert.equal(here.stdout, '');
      assert.ok(existsSync(join(remoteDir, `.ddt-staging-${job}`)) && existsSync(join(home, '.ddt', job, '.ddt-workdir')), 'nothing removed');
      assert.ok(verifiedCount(journal) >= 1);
    } finally {
      const r = await run.done;
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal(await sha256File(target), await sha256File(src));
  });

  it('exit 2 for a missing journal, for JOURNAL and --host together, and for neither', async () => {
    const missing = await runCli(['clean', join(dir, 'no-such.journal')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^ddt: error: journal \S+no-such\.journal does not exist/);
    const both = await runCli(['clean', join(dir, 'no-such.journal'), '--host', 'root@127.0.0.1']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /give a journal \(ddt clean JOURNAL\) or a host \(ddt clean --host \[user@\]host\), not both/);
    const neither = await runCli(['clean']);
    assert.equal(neither.code, 2);
    assert.match(neither.stderr, /give a journal \(ddt clean JOURNAL\) or a host/);
    const hostOnly = await runCli(['clean', join(dir, 'no-such.journal'), '--sudo']);
    assert.equal(hostOnly.code, 2);
    assert.match(hostOnly.stderr, /--sudo is for clean --host/);
  });

  it('a copy journal: nothing to clean, exit 0', async () => {
    const src = join(dir, 'copy-src.img');
    await fileOfSize(src, MiB, 'random', 503);
    const journal = join(dir, 'copy.journal');
    const c = await runCli(['copy', src, join(dir, 'copy-dst.img'), '--yes', '--progress', 'none', '--journal', journal]);
    assert.equal(c.code, 0, c.stderr);
    const r = await runCli(['clean', journal]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'nothing to clean: a copy journal has no remote host\n');
  });

  describe('--host (a login user of its own: its locks are in its $HOME)', () => {
    let user: TestUser;
    let live: ChildProcess | undefined;

    before(async function () {
      requireReal(this, 'root, useradd, sudo, visudo', usersAvailable());
      user = await createUser({ sshd });
    });
    after(async () => {
      live?.kill('SIGKILL');
      await user?.remove();
    });

    it('lists the leftovers and removes nothing without --yes; with --yes removes those not in use, only block files of a hand-made staging dir', async () => {
      const h = realpathSync(user.home);
      const dead = '20260101T000000Z-deadbeef';
      const busy = '20260101T000000Z-0000beef';
      const stage = join(h, 'stage');
      // A killed job: staging in $HOME and in a --remote-dir, its work dir, a stale lock.
      await mkdir(join(h, `.ddt-staging-${dead}`), { recursive: true });
      await writeFile(join(h, `.ddt-staging-${dead}`, 'block-0'), Buffer.alloc(MiB, 1));
      await writeFile(join(h, `.ddt-staging-${dead}`, 'block-3'), Buffer.alloc(4096, 3));
      await mkdir(join(stage, `.ddt-staging-${dead}`), { recursive: true });
      await writeFile(join(stage, `.ddt-staging-${dead}`, 'block-1'), Buffer.alloc(8192, 1));
      await mkdir(join(h, '.ddt', dead), { recursive: true });
      await writeFile(join(h, '.ddt', dead, '.ddt-workdir'), '');
      await writeFile(join(h, '.ddt', dead, 'ddt-helper.sh'), 'echo\n');
      await writeFile(join(h, '.ddt', dead, 'pids'), '999999999\n');
      const stale = await plantStaleLock(join(h, '.ddt', 'locks'), 'f-9_1', dead);
      // Hand-made dirs that look like staging: one with a block file and a note, one with only a note.
      await mkdir(join(h, '.ddt-staging-x'));
      await writeFile(join(h, '.ddt-staging-x', 'block-0'), 'b');
      await writeFile(join(h, '.ddt-staging-x', 'notes.txt'), 'mine');
      await mkdir(join(h, '.ddt-staging-y'));
      await writeFile(join(h, '.ddt-staging-y', 'notes.txt'), 'mine');
      // A job whose helper still runs: its work dir, staging dir and lock are in use.
      const busyDir = join(h, '.ddt', busy);
      await mkdir(busyDir);
      await writeFile(join(busyDir, '.ddt-workdir'), '');
      await mkdir(join(h, `.ddt-staging-${busy}`));
      await writeFile(join(h, `.ddt-staging-${busy}`, 'block-2'), 'b');
      live = spawn('sh', ['-c', 'sleep 600; :', 'ddt-helper', join(busyDir, 'ddt-helper.sh'), busy], { stdio: 'ignore' });
      await until('the stand-in helper', () => existsSync(`/proc/${live!.pid}/stat`));
      await writeFile(join(busyDir, 'pids'), `${live.pid}\n`);
      await mkdir(join(h, '.ddt', 'locks', 'f-9_2.lock'));
      await writeFile(join(h, '.ddt', 'locks', 'f-9_2.lock', 'owner'), `pid=${live.pid} start=${startOf(live.pid!)} job=${busy} run=${busy}.1 since=1\n`);
      await chownTree(h, user.uid, user.gid);

      const args = ['clean', '--host', `${user.name}@127.0.0.1`, '-p', String(sshd.port), '-i', user.keyPath, '--known-hosts', sshd.knownHostsPath, '--remote-dir', stage];
      const where = (p: string) => `${user.name}@127.0.0.1:${p}`;
      const before = tree(h);
      const listed = await runCli(args);
      assert.equal(listed.code, 0, listed.stderr);
      const lines = listed.stdout.trim().split('\n');
      const expected = [
        `would remove staging dir ${where(join(h, `.ddt-staging-${dead}`))} (2 block files, 1.0 MiB)`,
        `would remove staging dir ${where(join(h, '.ddt-staging-x'))} (1 block file, 1 B) but not its 1 other entry (the dir stays)`,
        `left alone: ${where(join(h, '.ddt-staging-y'))} holds no block files of ddt's (1 other entry)`,
        `would remove staging dir ${where(join(stage, `.ddt-staging-${dead}`))} (1 block file, 8.0 KiB)`,
        `would remove helper work dir ${where(join(h, '.ddt', dead))} (3 files, 15 B)`,
        `would remove stale lock dir ${where(stale.lock)} (job ${dead})`,
        'nothing removed: run it again with --yes to remove what is listed as "would remove"',
      ];
      for (const l of expected) assert.ok(lines.includes(l), `missing line:\n${l}\nin:\n${listed.stdout}`);
      for (const [p, why] of [
        [join(h, `.ddt-staging-${busy}`), `job ${busy} is running`],
        [busyDir, 'a helper of it is running'],
        [join(h, '.ddt', 'locks', 'f-9_2.lock'), 'held by a live process'],
      ]) {
        assert.ok(lines.some((l) => l.startsWith('in use, kept: ') && l.includes(`${where(p!)} `) && l.endsWith(`: ${why}`)), `${p} not listed as in use (${why}):\n${listed.stdout}`);
      }
      assert.equal(lines.length, expected.length + 3, listed.stdout);
      assert.deepEqual(tree(h), before, 'nothing changed without --yes');

      const removed = await runCli([...args, '--yes', '--json']);
      assert.equal(removed.code, 0, removed.stderr);
      const out = jsonOf(removed) as { removed: number; items: Array<{ path: string; state: string }> };
      const stateOf = (p: string) => out.items.find((i) => i.path === p)?.state;
      assert.equal(out.removed, 5);
      assert.equal(stateOf(join(h, `.ddt-staging-${dead}`)), 'removed');
      assert.equal(stateOf(join(h, '.ddt-staging-y')), 'kept');
      assert.equal(stateOf(busyDir), 'in-use');
      assert.equal(existsSync(join(h, `.ddt-staging-${dead}`)), false);
      assert.equal(existsSync(join(stage, `.ddt-staging-${dead}`)), false);
      assert.equal(existsSync(join(h, '.ddt', dead)), false);
      assert.equal(existsSync(stale.lock), false);
      assert.equal(existsSync(stale.last), true, 'the last-writer record is kept');
      assert.deepEqual(await readdir(join(h, '.ddt-staging-x')), ['notes.txt'], 'only the block file went; the dir and the note stay');
      assert.deepEqual(await readdir(join(h, '.ddt-staging-y')), ['notes.txt']);
      for (const p of [join(h, `.ddt-staging-${busy}`, 'block-2'), join(busyDir, 'pids'), join(h, '.ddt', 'locks', 'f-9_2.lock', 'owner')]) assert.ok(existsSync(p), `${p} is in use: kept`);
      assert.equal(live.exitCode, null, 'the running helper was left alone');
      assert.deepEqual(readdirSync(join(h, '.ddt')).filter((n) => n.startsWith('clean-')), []);
    });
  });
});

async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  await chown(dir, uid, gid);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) await chownTree(join(dir, e.name), uid, gid);
    else await chown(join(dir, e.name), uid, gid);
  }
}
