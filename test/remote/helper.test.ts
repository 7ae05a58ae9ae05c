// RemoteHelper against the harness's real sshd: install, probe, housekeeping, quoting.
import { UsageError } from '../harness/errors.js';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { initChecksums } from '../../src/checksum/hasher.js';
import { hasherBuild } from '../../src/checksum/ddt-hash.js';
import { hasherOffer } from '../../src/remote/native-hasher.js';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createHash, randomBytes } from 'node:crypto';
import { zeroChunk } from '../../src/block/zero.js';
import { RemoteHelper } from '../../src/remote/helper.js';
import { SshPool } from '../../src/transport/ssh-pool.js';
import { readFileSync } from 'node:fs';
import { attachLoop, fileOfSize, loopAvailable, makeTempDir } from '../harness/loop.js';
import { haveCommand, NEEDS, requireReal } from '../harness/real.js';
import { childPids, poolOptions, sshdAvailable, startSshd, type TestSshd } from '../harness/sshd.js';
import { until } from '../harness/until.js';

const run = promisify(execFile);
const MiB = 1 << 20;

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1');
  } catch {
    return '';
  }
}

describe('remote/helper (real sshd)', function () {
  this.timeout(60_000);
  let sshd: TestSshd;
  let pool: SshPool;
  let dir: string;

  before(async function () {
    requireReal(this, NEEDS.sshd, sshdAvailable());
    sshd = await startSshd();
    pool = await SshPool.open(poolOptions(sshd, { connections: 1, channelsPerConnection: 4 }));
    dir = await makeTempDir('ddt-helper-test-');
  });
  after(async () => {
    await pool?.close();
    await sshd?.stop();
  });

  it('installs the script once into a private ~/.ddt/<jobId> and cleans it up', async () => {
    const helper = await RemoteHelper.install(pool, { jobId: 'job-install.1' });
    assert.equal(helper.workDir, join(sshd.home, '.ddt', 'job-install.1'));
    const st = await stat(helper.workDir);
    assert.equal((st.mode & 0o777).toString(8), '700');
    assert.deepEqual(await readFile(helper.scriptPath), await readFile(new URL('../../dist/ddt-helper.sh', import.meta.url)));
    // Installing again for the same job (a resume) reuses the directory.
    const again = await RemoteHelper.install(pool, { jobId: 'job-install.1' });
    assert.equal(again.workDir, helper.workDir);
    await helper.cleanup();
    assert.equal(existsSync(helper.workDir), false);
  });

  it('refuses job ids and work dirs that are not plain', async () => {
    await assert.rejects(RemoteHelper.install(pool, { jobId: '../x' }), UsageError);
    await assert.rejects(RemoteHelper.install(pool, { jobId: 'a b' }), UsageError);
    await assert.rejects(RemoteHelper.install(pool, { jobId: 'ok', workDirBase: 'relative' }), UsageError);
  });

  it('with the probe, self-tests the kept ddt-hash for this host beside it: none kept, kept and good, kept and broken', async function () {
    await initChecksums();
    const offer = await hasherOffer();
    requireReal(this, 'ddt-hash built for this machine (npm run build)', offer !== undefined);
    const arch = process.arch === 'arm64' ? 'aarch64' : 'x86_64';
    const name = offer!.names.find((n) => n.startsWith(`ddt-hash-${arch}-`))!;
    const cacheDir = join(sshd.home, '.ddt', '.hashers');
    const kept = join(cacheDir, name);
    const file = join(dir, 'with-hasher.img');
    await fileOfSize(file, MiB, 'random');
    const install = async (job: string, expect = offer!.expect) => {
      const helper = await RemoteHelper.install(pool, { jobId: job, probe: { target: file, remoteDir: dir }, hasher: { names: offer!.names, expect } });
      const p = await helper.probe(file, dir);
      // The probe's answer comes through whole after the hasher's line.
      assert.equal(p.exists, true);
      assert.equal(p.size, MiB);
      return helper;
    };
    await rm(cacheDir, { recursive: true, force: true });
    const none = await install('hasher-none');
    assert.equal(none.keptHasher, undefined, 'nothing kept: no answer');
    assert.equal(existsSync(join(none.workDir, 'ddt-hash')), false);
    await none.cleanup();

    await mkdir(cacheDir, { recursive: true });
    await copyFile(fileURLToPath(hasherBuild(arch)), kept);
    const good = await install('hasher-good');
    assert.deepEqual(good.keptHasher, { name, answer: 'hasher=ok' });
    assert.ok((await stat(join(good.workDir, 'ddt-hash'))).mode & 0o100, 'installed, executable');
    await good.cleanup();

    // A self-test that cannot pass (the answer expected is not what it prints): the kept copy
    // goes, nothing is installed, and the probe is answered all the same.
    const bad = await install('hasher-bad', `${offer!.expect}x`);
    assert.equal(bad.keptHasher?.name, name);
    assert.match(bad.keptHasher!.answer, /^hasher=failed self-test/);
    assert.equal(existsSync(kept), false, 'the kept copy that failed was removed');
    assert.equal(existsSync(join(bad.workDir, 'ddt-hash')), false);
    await bad.cleanup();
  });

  it('a later install on the host copies the script kept beside the hashers, once its bytes check out; other bytes under its name are not used', async function () {
    await initChecksums();
    const offer = await hasherOffer();
    requireReal(this, 'ddt-hash built for this machine (npm run build)', offer !== undefined);
    const script = await readFile(new URL('../../dist/ddt-helper.sh', import.meta.url));
    const cacheDir = join(sshd.home, '.ddt', '.hashers');
    const file = join(dir, 'kept-script.img');
    await fileOfSize(file, MiB, 'random');
    const install = async (job: string) => {
      const helper = await RemoteHelper.install(pool, { jobId: job, probe: { target: file, remoteDir: dir }, hasher: offer! });
      assert.equal((await helper.probe(file, dir)).size, MiB, 'probed all the same');
      assert.deepEqual(await readFile(helper.scriptPath), script, 'the script installed is this ddt\'s');
      await helper.cleanup();
      return helper.scriptFrom;
    };
    await rm(cacheDir, { recursive: true, force: true });
    assert.equal(await install('script-first'), 'sent', 'nothing kept yet: the bytes sent');
    const kept = (await readdir(cacheDir)).filter((n) => n.startsWith('ddt-helper-'));
    assert.equal(kept.length, 1, 'the first install kept a copy');
    assert.equal(await install('script-again'), 'kept', 'the kept copy');
    // Other bytes under the same name (a copy cut short, edited): stdin's copy is installed, and
    // replaces the copy, which the next install takes again.
    await writeFile(join(cacheDir, kept[0]!), Buffer.concat([script, Buffer.from('\necho tampered\n')]));
    assert.equal(await install('script-tampered'), 'sent');
    assert.deepEqual(await readFile(join(cacheDir, kept[0]!)), script, 'the kept copy is this ddt\'s again');
    assert.equal(await install('script-mended'), 'kept');
  });

  it('probes a regular file', async () => {
    const helper = await RemoteHelper.install(pool, { jobId: 'probe-file' });
    const file = join(dir, 'target.img');
    await fileOfSize(file, 5 * MiB + 512, 'random');
    const p = await helper.probe(file, dir);
    assert.equal(p.exists, true);
    assert.equal(p.type, 'file');
    assert.equal(p.size, 5 * MiB + 512);
    assert.equal(p.mounted, false);
    assert.equal(p.swap, false);
    assert.deepEqual(p.holders, []);
    assert.equal(p.writable, true);
    assert.ok(p.free > 0);
    assert.equal(p.xxhsum, haveCommand('xxhsum'), 'xxhsum is seen where it is installed');
    assert.equal(p.sha256sum, true);
    assert.equal(p.seekBytes, true);
    assert.ok(p.cores >= 1);
    assert.ok(p.pid > 1);
    const missing = await helper.probe(join(dir, 'nope'));
    assert.equal(missing.exists, false);
    assert.equal(missing.type, 'other');
    await assert.rejects(helper.probe('relative/path'), UsageError);
    await helper.cleanup();
  });

  it('the probe answers every key once: the host\'s tools (asked in the background) and the target\'s', async () => {
    const helper = await RemoteHelper.install(pool, { jobId: 'probe-keys' });
    const file = join(dir, 'keys.img');
    await fileOfSize(file, MiB, 'zero');
    for (let i = 0; i < 3; i++) {
      const lines = (await helper.run(['probe', file, dir])).split('\n').filter(Boolean);
      const keys = lines.map((l) => l.slice(0, l.indexOf('=')));
      assert.ok(lines.every((l) => /^[a-z0-9_]+=/.test(l)), `only key=value lines: ${lines.find((l) => !/^[a-z0-9_]+=/.test(l))}`);
      assert.deepEqual(keys.filter((k, at) => keys.indexOf(k) !== at), [], 'no key twice (the two shells never print the same)');
      const tools = ['xxhsum', 'sha256sum', 'openssl', 'seek_bytes', 'nocache', 'cores', 'perl', 'hash_tools', 'dd_iflags', 'dd_oflags', 'dd_conv', 'dd_stats', 'gzip', 'missing', 'arch'];
      const target = ['exists', 'type', 'size', 'sector', 'mounted', 'swap', 'holders', 'writable', 'free', 'dir', 'dir_ok', 'dir_size', 'direct', 'pid', 'punch', 'zeroout', 'zero_sparse', 'zero_discard', 'id_kind', 'id_size', 'id_key'];
      assert.deepEqual([...tools, ...target].filter((k) => !keys.includes(k)), [], 'every key there');
      const kv = new Map(lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      assert.equal(kv.get('size'), String(MiB));
      assert.equal(kv.get('id_size'), String(MiB));
      assert.match(kv.get('dd_iflags')!, /skip_bytes/);
      assert.equal(kv.get('arch'), (await run('uname', ['-m'])).stdout.trim());
    }
    await helper.cleanup();
  });

  it('install can probe in the same round trip: probe() with those arguments answers from it once, then asks again', async () => {
    const file = join(dir, 'early.img');
    await fileOfSize(file, MiB, 'zero');
    const helper = await RemoteHelper.install(pool, { jobId: 'probe-early', probe: { target: file, remoteDir: dir } });
    assert.equal(existsSync(join(helper.workDir, 'ddt-helper.sh')), true, 'installed as without the probe');
    const early = await helper.probe(file, dir);
    assert.equal(early.size, MiB);
    await writeFile(file, Buffer.alloc(2 * MiB)); // a second probe() must see this, not the install's answer
    assert.equal((await helper.probe(file, dir)).size, 2 * MiB);
    await helper.cleanup();
    // Its arguments are checked as probe()'s are, before anything runs remotely; quoted as one argument each.
    const odd = await RemoteHelper.install(pool, { jobId: 'probe-early-2', probe: { target: `${dir}/x\u0000y` } }).catch((e: unknown) => e);
    assert.ok(odd instanceof UsageError, 'a path the client refuses never reaches the remote host');
    const quoted = `${dir}/t; touch pwned4`;
    const q = await RemoteHelper.install(pool, { jobId: 'probe-early-3', probe: { target: quoted } });
    assert.equal((await q.probe(quoted)).exists, false);
    assert.equal(existsSync(join(sshd.home, 'pwned4')), false);
    await q.cleanup();
  });

  it('probes a loop device: size, sector, mounted, and the backing file as held', async function () {
    requireReal(this, `${NEEDS.loop}, mkfs.ext4`, loopAvailable() && haveCommand('mkfs.ext4'));
    const helper = await RemoteHelper.install(pool, { jobId: 'probe-loop' });
    const file = join(dir, 'loop.img');
    await fileOfSize(file, 8 * MiB, 'zero');
    const loop = await attachLoop(file);
    try {
      const p = await helper.probe(loop.dev);
      assert.equal(p.type, 'block');
      assert.equal(p.size, 8 * MiB);
      assert.equal(p.sector, 512);
      assert.equal(p.mounted, false);
      assert.equal(p.direct, true);
      // The image file is in use by the loop device.
      const img = await helper.probe(file);
      assert.deepEqual(img.holders, [loop.dev.replace('/dev/', '')]);
      // Mounted (through the device) → mounted=1.
      await run('mkfs.ext4', ['-q', '-F', loop.dev]);
      const mnt = join(dir, 'mnt');
      await mkdir(mnt, { recursive: true });
      await run('mount', [loop.dev, mnt]);
      try {
        assert.equal((await helper.probe(loop.dev)).mounted, true);
      } finally {
        await run('umount', [mnt]);
      }
    } finally {
      await loop.detach();
      await helper.cleanup();
    }
  });

  it('a target path with shell metacharacters is one argument, never shell', async () => {
    const helper = await RemoteHelper.install(pool, { jobId: 'quoting' });
    // Relative markers: a command that ran would create them in the session's cwd (its HOME).
    const evil = `${dir}/t; touch pwned1; $(touch pwned2) \`touch pwned3\` 'q" > x`;
    const p = await helper.probe(evil);
    assert.equal(p.exists, false);
    // create-file makes a file with exactly that name, a worker writes into it.
    assert.equal(await helper.createFile(evil, 4096), true);
    assert.equal((await stat(evil)).size, 4096);
    const w = await helper.openWorker(evil, pool);
    const ac = new AbortController();
    const sum = (await w.writeBlock({ index: 0, offset: 0, length: 3 }, (async function* () { yield Buffer.from('abc'); })(), 'sha256', ac.signal)).checksum;
    assert.equal(sum, 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    await w.close();
    assert.equal((await readFile(evil)).subarray(0, 3).toString(), 'abc');
    for (const m of ['pwned1', 'pwned2', 'pwned3']) {
      assert.equal(existsSync(join(sshd.home, m)), false, m);
      assert.equal(existsSync(join(dir, m)), false, m);
    }
    await helper.cleanup();
  });

  it('X: a block with zero chunks goes as frames, zeros as a length only; W counts them but sends them', async () => {
    const helper = await RemoteHelper.install(pool, { jobId: 'sparse', probe: { target: join(dir, 'x.img') } });
    assert.equal((await helper.probe(join(dir, 'x.img'))).perl, true, 'this host runs perl');
    const file = join(dir, 'x.img');
    await writeFile(file, randomBytes(8 * MiB));
    const a = randomBytes(MiB);
    const parts = [zeroChunk(MiB), a, Buffer.alloc(MiB), Buffer.alloc(MiB), a.subarray(0, 4096)];
    const block = { index: 0, offset: MiB, length: 3 * MiB + MiB + 4096 };
    const expected = createHash('sha256').update(Buffer.concat(parts)).digest('hex');
    const w = await helper.openWorker(file, pool);
    const ac = new AbortController();
    const payload = () => (async function* () { yield* parts; })();
    let wire = 0;
    const x = await w.writeBlock(block, payload(), 'sha256', ac.signal, { framed: true, onWire: (n) => (wire += n) });
    assert.deepEqual(x, { checksum: expected, deferred: false, zeroBytes: 3 * MiB });
    assert.equal(wire, MiB + 4096);
    assert.ok((await readFile(file)).subarray(MiB, MiB + block.length).equals(Buffer.concat(parts)));
    wire = 0;
    const wr = await w.writeBlock({ ...block, offset: 0 }, payload(), 'sha256', ac.signal, { onWire: (n) => (wire += n) });
    assert.deepEqual(wr, { checksum: expected, deferred: false, zeroBytes: 3 * MiB });
    assert.equal(wire, block.length);
    await w.close();
    await helper.cleanup();
  });

  it('kill-stale ends helpers of this job left from an earlier run (by PID, checked against cmdline)', async () => {
    const first = await RemoteHelper.install(pool, { jobId: 'stale-job' });
    const file = join(dir, 'stale.img');
    await writeFile(file, Buffer.alloc(MiB));
    const w = await first.openWorker(file, pool);
    const ac = new AbortController();
    await w.hash({ index: 0, offset: 0, length: 4096 }, 'sha256', ac.signal); // it is up and serving
    const pids = (await readFile(join(first.workDir, 'pids'), 'utf8')).trim().split('\n').map(Number);
    assert.equal(pids.length, 1);
    assert.ok(existsSync(`/proc/${pids[0]}`));
    // An unrelated process whose PID is written into the list must survive.
    const { spawn } = await import('node:child_process');
    const bystander = spawn('sleep', ['30'], { stdio: 'ignore' });
    await writeFile(join(first.workDir, 'pids'), `${pids[0]}\n${bystander.pid}\n`);
    const resumed = await RemoteHelper.install(pool, { jobId: 'stale-job' });
    assert.equal(await resumed.killStale(), 1);
    await assert.rejects(w.hash({ index: 0, offset: 0, length: 4096 }, 'sha256', ac.signal), /gone/);
    assert.equal(existsSync(`/proc/${pids[0]}`), false);
    assert.equal(bystander.exitCode, null, 'bystander still running');
    bystander.kill();
    await w.close();
    await resumed.cleanup();
  });

  it('a housekeeping command whose connection drops before its exit status runs again on a new connection', async () => {
    const warnings: string[] = [];
    const own = await SshPool.open(poolOptions(sshd, { connections: 1, channelsPerConnection: 2, onWarning: (m) => warnings.push(m) }));
    const { spawn } = await import('node:child_process');
    let stale: ReturnType<typeof spawn> | undefined;
    try {
      const helper = await RemoteHelper.install(own, { jobId: 'drop-job' });
      // A stale helper of this job that notes every TERM and lives on: kill-stale waits ~2 s
      // for it before KILL, a window in which the connection is killed.
      const marks = join(dir, 'drop-job.terms');
      stale = spawn('sh', ['-c', `trap 'echo term >>"$3"' TERM; while :; do sleep 0.05; done`, 'ddt-helper', helper.workDir, 'drop-job', marks], { stdio: 'ignore' });
      await writeFile(join(helper.workDir, 'pids'), `${stale.pid}\n`);
      const killed = helper.killStale();
      const terms = async () => (existsSync(marks) ? (await readFile(marks, 'utf8')).split('\n').filter(Boolean).length : 0);
      await until('a TERM at the stale helper', async () => (await terms()) >= 1);
      for (const pid of sshd.connectionPids()) process.kill(pid, 'SIGKILL');
      assert.ok((await killed) >= 1);
      assert.ok((await terms()) >= 2, 'kill-stale ran a second time');
      assert.ok(warnings.some((w) => /lost/.test(w)), warnings.join('\n'));
      await new Promise((r) => (stale!.exitCode !== null || stale!.signalCode !== null ? r(undefined) : stale!.once('exit', r)));
      assert.equal(stale.signalCode, 'SIGKILL');
      await helper.cleanup();
    } finally {
      stale?.kill('SIGKILL');
      await own.close();
    }
  });

  it('kill-stale also ends the dd a helper was running (no stale writer survives a resume)', async () => {
    const first = await RemoteHelper.install(pool, { jobId: 'stale-dd' });
    const file = join(dir, 'stale-dd.img');
    await writeFile(file, Buffer.alloc(MiB));
    const w = await first.openWorker(file, pool);
    const ac = new AbortController();
    let sentFirst!: () => void;
    const started = new Promise<void>((r) => (sentFirst = r));
    const pending = w.writeBlock(
      { index: 0, offset: 0, length: MiB },
      (async function* () {
        yield Buffer.alloc(4096, 1);
        sentFirst();
        await new Promise(() => undefined); // the rest never comes: dd waits on stdin
      })(),
      'sha256',
      ac.signal,
    );
    pending.catch(() => undefined);
    await started;
    let helperPid = 0;
    let dd: number[] = [];
    for (let i = 0; i < 200 && dd.length === 0; i++) {
      helperPid = Number((await readFile(join(first.workDir, 'pids'), 'utf8').catch(() => '')).trim());
      dd = helperPid ? childPids(helperPid).filter((p) => /^dd\0/.test(cmdline(p))) : [];
      if (!dd.length) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(dd.length, 1, 'dd is running under the helper');
    const resumed = await RemoteHelper.install(pool, { jobId: 'stale-dd' });
    assert.equal(await resumed.killStale(), 2);
    for (const pid of [helperPid, ...dd]) assert.equal(existsSync(`/proc/${pid}/cmdline`) && cmdline(pid) !== '', false, `pid ${pid} gone`);
    await assert.rejects(pending);
    ac.abort();
    await resumed.cleanup();
  });

  it('cleanup refuses a directory that ddt did not create', async () => {
    const helper = await RemoteHelper.install(pool, { jobId: 'marker' });
    const foreign = join(dir, 'foreign');
    await mkdir(foreign);
    await assert.rejects(
      (async () => {
        const { runRemote } = await import('../../src/remote/run.js');
        const res = await runRemote(pool, `sh ${helper.scriptPath} cleanup ${foreign}`);
        if (res.code !== 0) throw new Error(res.stderr);
      })(),
      /not a ddt work directory/,
    );
    assert.equal(existsSync(foreign), true);
    await helper.cleanup();
  });
});
