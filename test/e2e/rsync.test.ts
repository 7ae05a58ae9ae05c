import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attachLoop, fileOfSize, loopAvailable, makeTempDir, sha256File } from '../harness/loop.js';
import { commandPath, haveCommand, haveRoot, NEEDS, requireReal } from '../harness/real.js';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd.js';
import { jsonOf, runCli, startCli } from './cli.js';
import { sshArgs, countConnections, waitForVerified, type Dropped } from './remote-helpers.js';
import { establishedTo } from '../harness/tcp.js';

const MiB = 1024 * 1024;

/** PIDs of OpenSSH ControlMasters that ddt started for this sshd (`ssh -M … -p PORT`). */
function masterPids(port: number): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    const p = argv.indexOf('-p');
    if (argv.includes('-M') && argv.some((a) => a.includes('/ddt-ssh-')) && p >= 0 && argv[p + 1] === String(port)) pids.push(Number(name));
  }
  return pids;
}

async function noMasterLeft(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (masterPids(port).length > 0) {
    if (Date.now() > deadline) throw new Error(`ControlMaster still running: ${masterPids(port).join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface BlockSums {
  source?: string;
  target?: string;
  how?: string;
}

/** Last verified record per block: what `ddt resume` and `ddt status` trust. */
function verifiedBlocks(journal: string): Map<number, BlockSums> {
  const out = new Map<number, BlockSums>();
  for (const line of readFileSync(journal, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as { type: string; block: number; state: string } & BlockSums;
    if (r.type === 'block' && r.state === 'verified') out.set(r.block, { source: r.source, target: r.target, how: r.how });
  }
  return out;
}

function headerOf(journal: string): Record<string, unknown> & { jobId: string; path: { name: string; remoteDir?: string } } {
  return JSON.parse(readFileSync(journal, 'utf8').split('\n')[0]!) as Record<string, unknown> & { jobId: string; path: { name: string; remoteDir?: string } };
}

/** The engine a journal's job began with: its path is rsync's, or one of the native engine's. */
function engineOf(journal: string): string {
  return headerOf(journal).path.name === 'rsync' ? 'rsync' : 'native';
}

async function acceptedLogins(s: TestSshd): Promise<number> {
  return ((await fs.readFile(s.logPath, 'utf8')).match(/Accepted publickey/g) ?? []).length;
}

describe('e2e: ddt send --engine rsync (real sshd, real rsync)', function () {
  let sshd: TestSshd;
  let dir: string;
  let mixed: string;

  before(async function () {
    requireReal(this, NEEDS.sshd, sshdAvailable());
    requireReal(this, 'rsync, ssh', haveCommand('rsync') && haveCommand('ssh'));
    requireReal(this, 'xxhsum', haveCommand('xxhsum'));
    dir = await makeTempDir('ddt-e2e-rsync-');
    sshd = await startSshd();
    mixed = join(dir, 'mixed.img');
    await fileOfSize(mixed, 24 * MiB + 4096, 'mixed', 201);
  });
  after(async () => sshd?.stop());
  afterEach(async () => {
    if (sshd) await noMasterLeft(sshd.port);
  });

  it('sends a mixed image to a loop device: bytes equal, nothing left behind, connections ≤ --connections', async function () {
    requireReal(this, NEEDS.loop, loopAvailable());
    const backing = join(dir, 'loop-target.img');
    await fileOfSize(backing, 32 * MiB, 'random', 202);
    const loop = await attachLoop(backing);
    const stage = await makeTempDir('ddt-e2e-rsync-stage-');
    try {
      const journal = join(dir, 'loop.journal');
      const run = startCli(['send', mixed, `root@127.0.0.1:${loop.dev}`, ...sshArgs(sshd), '--engine', 'rsync', '-b', '1M', '--connections', '2', '--channels', '3', '--local-dir', stage, '--yes', '--json', '--progress', 'none', '--journal', journal]);
      const { total: conns } = await countConnections(sshd, run.done);
      const r = await run.done;
      assert.equal(r.code, 0, r.stderr);
      const s = jsonOf(r);
      assert.equal(s.ok, true);
      assert.equal(s.engine, 'rsync');
      assert.equal(s.blocks, 25);
      assert.equal(s.verified, 25);
      assert.ok((s.zeroBlocks as number) > 0, 'the mixed image has whole zero blocks');
      assert.equal(engineOf(journal), 'rsync');
      assert.equal(conns, 2, `the sshd accepted ${conns} connections (ssh2 pool + ControlMaster must be ≤ 2)`);
      assert.equal(await sha256File(loop.dev, 24 * MiB + 4096), await sha256File(mixed));
      assert.deepEqual(await fs.readdir(stage), [], 'local staging dir left behind');
      const workDirs = join(sshd.home, '.ddt');
      assert.deepEqual(existsSync(workDirs) ? await fs.readdir(workDirs) : [], [], 'remote work dir left behind');
    } finally {
      await loop.detach();
    }
  });

  it('records the same per-block checksums as the native engine (xxh64 and sha256)', async () => {
    for (const checksum of ['xxh64', 'sha256']) {
      const sums: Record<string, Map<number, BlockSums>> = {};
      for (const engine of ['native', 'rsync']) {
        const target = join(dir, `parity-${checksum}-${engine}.img`);
        await fileOfSize(target, 25 * MiB, 'zero');
        const journal = join(dir, `parity-${checksum}-${engine}.journal`);
        const r = await runCli(['send', mixed, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--engine', engine, '-b', '1M', '--checksum', checksum, '--yes', '--json', '--progress', 'none', '--journal', journal]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(jsonOf(r).engine, engine);
        assert.equal(await sha256File(target, 24 * MiB + 4096), await sha256File(mixed));
        const h = headerOf(journal);
        assert.equal(h.checksum, checksum);
        assert.equal(h.blockSize, MiB);
        sums[engine] = verifiedBlocks(journal);
      }
      assert.equal(sums.native!.size, 25);
      assert.deepEqual([...sums.rsync!.entries()].sort((a, b) => a[0] - b[0]), [...sums.native!.entries()].sort((a, b) => a[0] - b[0]), `${checksum} journals differ`);
      for (const b of sums.native!.values()) assert.equal(b.source, b.target);
    }
  });

  for (const [first, second] of [
    ['native', 'rsync'],
    ['rsync', 'native'],
  ] as const) {
    it(`resumes a ${first} send killed with SIGKILL using --engine ${second}`, async () => {
      const src = join(dir, `x-${first}-src.img`);
      await fileOfSize(src, 64 * MiB, 'random', first === 'native' ? 203 : 204);
      const target = join(dir, `x-${first}-dst.img`);
      await fileOfSize(target, 64 * MiB, 'zero');
      const journal = join(dir, `x-${first}.journal`);
      const run = startCli(['send', src, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--engine', first, '-b', '1M', '--yes', '--progress', 'none', '--journal', journal]);
      await waitForVerified(journal, 4, undefined, run);
      run.child.kill('SIGKILL');
      await run.done;
      const before = jsonOf(await runCli(['status', journal, '--json']));
      assert.ok((before.verified as number) >= 4 && (before.verified as number) < 64, `verified before: ${before.verified}`);
      // A killed rsync run's ControlMaster ends by itself (its stdin from ddt is gone).
      await noMasterLeft(sshd.port);

      const r = await runCli(['resume', journal, '--engine', second, '--json', '--progress', 'none']);
      assert.equal(r.code, 0, r.stderr);
      const s = jsonOf(r);
      assert.equal(s.engine, second);
      assert.equal(s.verified, 64);
      assert.ok((s.sent as number) <= 64 - (before.verified as number), `sent ${s.sent} after ${before.verified} were verified`);
      assert.equal(await sha256File(target), await sha256File(src));
      assert.equal(engineOf(journal), first, 'the header keeps the engine the job began with');
      assert.equal(verifiedBlocks(journal).size, 64);
      // What the killed run left locally (staged blocks, socket dir) is gone after the resume.
      const jobId = headerOf(journal).jobId;
      assert.deepEqual(readdirSync(tmpdir()).filter((n) => n.includes(jobId)), []);
    });
  }

  it('survives losing the ControlMaster mid-run: reconnects within the connection budget', async () => {
    const src = join(dir, 'lost-src.img');
    await fileOfSize(src, 48 * MiB, 'random', 205);
    const target = join(dir, 'lost-dst.img');
    await fileOfSize(target, 48 * MiB, 'zero');
    const journal = join(dir, 'lost.journal');
    const run = startCli(['send', src, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--engine', 'rsync', '-b', '1M', '--connections', '2', '--yes', '--json', '--progress', 'none', '--journal', journal]);
    const dropped: Dropped[] = [];
    const sampled = countConnections(sshd, run.done, dropped);
    await waitForVerified(journal, 4, undefined, run);
    const masters = masterPids(sshd.port);
    assert.equal(masters.length, 1, `masters: ${masters.join(', ')}`);
    const ports = establishedTo(sshd.port, masters[0]!).map((c) => String(c.localPort));
    assert.equal(ports.length, 1, `the master's connections: ${ports.join(', ')}`);
    process.kill(masters[0]!, 'SIGKILL');
    dropped.push({ port: ports[0]!, offset: readFileSync(sshd.logPath, 'utf8').length });
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /OpenSSH connection that carries rsync was lost/);
    assert.equal(jsonOf(r).verified, 48);
    // The lost master's connection is replaced: 3 accepted in all, never more than 2 at once.
    const { total, most } = await sampled;
    assert.ok(most <= 2 && total === 3, `the sshd accepted ${total} connections, ${most} at once`);
    assert.equal(await sha256File(target), await sha256File(src));
  });

  it('never opens more TCP connections than --connections, and refuses --connections 1', async () => {
    const target = join(dir, 'conns.img');
    await fileOfSize(target, 25 * MiB, 'random', 206);
    const run = startCli(['send', mixed, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--engine', 'rsync', '-b', '512K', '--connections', '3', '--channels', '2', '--yes', '--json', '--progress', 'none', '--journal', join(dir, 'conns.journal')]);
    const { total } = await countConnections(sshd, run.done);
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    assert.ok(total >= 2 && total <= 3, `the sshd accepted ${total} connections with --connections 3`);
    assert.equal(await sha256File(target, 24 * MiB + 4096), await sha256File(mixed));

    const before = await sha256File(target);
    const logins = await acceptedLogins(sshd);
    const one = await runCli(['send', mixed, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--engine', 'rsync', '--connections', '1', '--yes', '--journal', join(dir, 'conns1.journal')]);
    assert.equal(one.code, 2, one.stderr);
    assert.match(one.stderr, /--connections 2 or more/);
    assert.equal(await sha256File(target), before);
    assert.equal(await acceptedLogins(sshd), logins, 'refused before connecting');
    assert.ok(!existsSync(join(dir, 'conns1.journal')));
  });

  it('completes with fewer rsync sessions (one warning at most) when the server allows only 2 sessions', async () => {
    const small = await startSshd({ maxSessions: 2 });
    try {
      const target = join(dir, 'maxsessions.img');
      await fileOfSize(target, 25 * MiB, 'zero');
      const r = await runCli(['send', mixed, `root@127.0.0.1:${target}`, ...sshArgs(small), '--engine', 'rsync', '-b', '1M', '--channels', '4', '--yes', '--json', '--progress', 'plain', '--journal', join(dir, 'ms.journal')]);
      assert.equal(r.code, 0, r.stderr);
      const warnings = r.stderr.split('\n').filter((l) => /session for rsync/i.test(l));
      // Two helper workers' rsyncs plus the master's own session exceed 2 in practice; never more than one warning.
      assert.ok(warnings.length <= 1, r.stderr);
      assert.equal(await sha256File(target, 24 * MiB + 4096), await sha256File(mixed));
    } finally {
      await small.stop();
    }
  });

  describe('refusals: exit 2, nothing written', () => {
    let target: string;
    let before: string;
    beforeEach(async () => {
      target = join(dir, 'refuse.img');
      await fileOfSize(target, 25 * MiB, 'random', 207);
      before = await sha256File(target);
    });

    it('rsync missing on this host (PATH without it): names the package, never connects', async () => {
      const bin = await makeTempDir('ddt-e2e-nopath-');
      await fs.symlink(commandPath('ssh')!, join(bin, 'ssh'));
      const logins = await acceptedLogins(sshd);
      const journal = join(dir, 'nolocal.journal');
      const r = await runCli(['send', mixed, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--engine', 'rsync', '--yes', '--journal', journal], { env: { PATH: bin } });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /rsync is not installed on this host.*install the rsync package/);
      assert.equal(await sha256File(target), before);
      assert.ok(!existsSync(journal));
      assert.equal(await acceptedLogins(sshd), logins);
    });

    it('rsync missing on the remote host (its PATH without it): names the package', async () => {
      const noRsync = await startSshd({ extraConfig: ['PermitUserEnvironment PATH'] });
      try {
        // Sessions of this key get a PATH with every tool of /usr/bin but rsync.
        const bin = join(noRsync.dir, 'bin-without-rsync');
        await fs.mkdir(bin);
        for (const name of await fs.readdir('/usr/bin')) if (name !== 'rsync') await fs.symlink(join('/usr/bin', name), join(bin, name));
        const keys = join(noRsync.dir, 'authorized_keys');
        await fs.writeFile(keys, `environment="PATH=${bin}" ${await fs.readFile(keys, 'utf8')}`);
        const journal = join(dir, 'noremote.journal');
        const r = await runCli(['send', mixed, `root@127.0.0.1:${target}`, ...sshArgs(noRsync), '--engine', 'rsync', '--yes', '--journal', journal]);
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, /rsync is not installed on 127\.0\.0\.1.*install the rsync package/);
        assert.equal(await sha256File(target), before);
        assert.ok(!existsSync(journal));
        const workDirs = join(noRsync.home, '.ddt');
        assert.deepEqual(existsSync(workDirs) ? await fs.readdir(workDirs) : [], []);
      } finally {
        await noRsync.stop();
      }
    });

    it('a --local-dir too small for one block', async function () {
      requireReal(this, 'root', haveRoot());
      const small = await makeTempDir('ddt-e2e-smallfs-');
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', small]);
      try {
        const journal = join(dir, 'smallfs.journal');
        const r = await runCli(['send', mixed, `root@127.0.0.1:${target}`, ...sshArgs(sshd), '--engine', 'rsync', '-b', '16M', '--local-dir', small, '--yes', '--journal', journal]);
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, /local staging dir .* free; a block needs 16\.0 MiB/);
        assert.equal(await sha256File(target), before);
        assert.ok(!existsSync(journal));
        assert.deepEqual(await fs.readdir(small), []);
      } finally {
        execFileSync('umount', [small]);
      }
    });
  });

  it("the original script's command line: --local_device … --TargetHost … is send, --restart REPORT is resume", async () => {
    const src = join(dir, 'legacy-src.img');
    await fileOfSize(src, 64 * MiB, 'random', 208);
    const target = join(dir, 'legacy-dst.img');
    await fileOfSize(target, 64 * MiB, 'zero');
    const transferDir = await makeTempDir('ddt-e2e-transfer-dir-');
    const journal = join(dir, 'legacy.journal');
    const run = startCli([
      '--local_device', src,
      '--remote_device', target,
      '--TargetHost', 'root@127.0.0.1',
      `--remote_transfer_dir=${transferDir}`,
      '--ssh_port', String(sshd.port),
      '--keep_logs',
      '-i', sshd.clientKeyPath, '--known-hosts', sshd.knownHostsPath,
      '--engine', 'rsync', '-b', '1M', '--yes', '--progress', 'none', '--journal', journal,
    ]);
    await waitForVerified(journal, 3, undefined, run);
    run.child.kill('SIGKILL');
    await run.done;
    const h = headerOf(journal) as unknown as { command: string; jobId: string; path: { name: string; remoteDir: string }; target: { path: string; remote: { port: number } }; options: { keepLogs: boolean } };
    assert.equal(h.command, 'send');
    assert.equal(h.path.name, 'rsync');
    assert.equal(h.target.path, target);
    assert.equal(h.target.remote.port, sshd.port);
    assert.equal(h.options.keepLogs, true);
    assert.equal(h.path.remoteDir, transferDir);
    await noMasterLeft(sshd.port);

    const r = await runCli(['--restart', journal, '--json', '--progress', 'none']);
    assert.equal(r.code, 0, r.stderr);
    const s = jsonOf(r);
    assert.equal(s.verified, 64);
    assert.equal(s.engine, 'rsync');
    assert.equal(await sha256File(target), await sha256File(src));
    assert.deepEqual(await fs.readdir(transferDir), [], 'the staging dir in --remote_transfer_dir is removed after success');
    assert.ok(existsSync(join(sshd.home, '.ddt', h.jobId)), '--keep_logs keeps the remote work dir');
    await fs.rm(join(sshd.home, '.ddt', h.jobId), { recursive: true, force: true });
  });
});
