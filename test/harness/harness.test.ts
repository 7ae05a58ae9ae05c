// Smoke tests of the shared test harness, against the real sshd, ssh client
// and loop devices: if these fail, every integration test would be suspect.

import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { open, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { attachLoop, fileOfSize, loopAvailable, makeTempDir, removeTempDir, sha256File } from './loop.js';
import { haveCommand, haveRoot, missingLine, missingParts, NEEDS, partsMissing, requireReal } from './real.js';
import { sshdAvailable, startSshd, type TestSshd } from './sshd.js';
import { until } from './until.js';

const execFileP = promisify(execFile);
const MiB = 1 << 20;

function ssh(sshd: TestSshd, command: string, extra: string[] = [], host = sshd.host) {
  return execFileP('ssh', [...sshd.sshArgs(), ...extra, `${sshd.user}@${host}`, command], { timeout: 30_000 });
}

// Start a long-running remote command; resolves once it has printed its PID.
function sshSession(sshd: TestSshd, extra: string[]): Promise<{ child: ChildProcess; remotePid: number }> {
  const child = spawn('ssh', [...sshd.sshArgs(), ...extra, `${sshd.user}@${sshd.host}`, 'echo ready $$; exec sleep 60']);
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (data: Buffer) => {
      const ready = /ready (\d+)/.exec(data.toString());
      if (ready) resolve({ child, remotePid: Number(ready[1]) });
    });
    child.once('exit', (code) => reject(new Error(`ssh session exited early (${code})`)));
  });
}

// Gone or a zombie: orphans are reaped by init, which here can take a while.
function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] === 'Z';
  } catch {
    return true;
  }
}

const exitOf = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', resolve)));

describe('test harness', () => {
  // Only this file's dirs: removeTempDirs() would also take other suites'.
  const dirs: string[] = [];
  const tempDir = async (prefix: string) => {
    dirs.push(await makeTempDir(prefix));
    return dirs[dirs.length - 1];
  };
  after(async () => {
    for (const dir of dirs) await removeTempDir(dir);
  });

  describe('startSshd', () => {
    let sshd: TestSshd | undefined;
    before(async function () {
      requireReal(this, `${NEEDS.sshd}, ssh`, sshdAvailable() && haveCommand('ssh'));
      sshd = await startSshd();
    });
    after(async () => sshd?.stop());

    it('runs a command over ssh with an empty HOME', async () => {
      const { stdout } = await ssh(sshd!, 'echo hello; echo $HOME');
      assert.deepEqual(stdout.trim().split('\n'), ['hello', sshd!.home]);
      assert.deepEqual(await readdir(sshd!.home), []);
    });

    it('describes its host key for known_hosts', async () => {
      const { port, hostPublicKey } = sshd!;
      assert.match(hostPublicKey, /^ssh-ed25519 AAAA[A-Za-z0-9+/=]+$/);
      assert.match(sshd!.hostKeyFingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
      assert.equal(await readFile(sshd!.knownHostsPath, 'utf8'), `[127.0.0.1]:${port} ${hostPublicKey}\n`);
      assert.deepEqual(sshd!.hosts, ['127.0.0.1']);
    });

    it('lists connection pids, and killing one drops that connection', async () => {
      // An earlier test's connection on this shared sshd may still be closing.
      await until('no connection left from earlier tests', () => sshd!.connectionPids().length === 0);
      const session = await sshSession(sshd!, []);
      const pids = sshd!.connectionPids();
      assert.equal(pids.length, 1);
      process.kill(pids[0], 'SIGTERM');
      assert.notEqual(await exitOf(session.child), 0);
      await until('connection gone', () => sshd!.connectionPids().length === 0);
    });
  });

  it('stop() kills the listener, its connections and orphaned sessions, and removes the dir', async function () {
    requireReal(this, `${NEEDS.sshd}, ssh`, sshdAvailable() && haveCommand('ssh'));
    const sshd = await startSshd();
    const first = await sshSession(sshd, []);
    const second = await sshSession(sshd, []);
    const connections = sshd.connectionPids();
    assert.equal(connections.length, 2);
    // sshd does not end a session's processes when its connection dies: the
    // remote `sleep` lives on, re-parented to init.
    process.kill(connections[0], 'SIGKILL');
    await exitOf(first.child);
    assert.equal(gone(first.remotePid), false, 'the orphaned session process still runs');
    await sshd.stop();
    await exitOf(second.child);
    for (const pid of [sshd.pid, ...connections, first.remotePid, second.remotePid]) assert.ok(gone(pid), `pid ${pid} gone`);
    assert.equal(existsSync(sshd.dir), false);
  });

  it('listens on every address in `listen`', async function () {
    requireReal(this, `${NEEDS.sshd}, ssh`, sshdAvailable() && haveCommand('ssh'));
    const sshd = await startSshd({ listen: ['127.0.0.1', '127.0.0.2'] });
    try {
      assert.equal((await readFile(sshd.knownHostsPath, 'utf8')).trim().split('\n').length, 2);
      const { stdout } = await ssh(sshd, 'echo second', [], '127.0.0.2');
      assert.equal(stdout.trim(), 'second');
    } finally {
      await sshd.stop();
    }
  });

  it('maxSessions: 2 refuses a third session on one connection', async function () {
    requireReal(this, `${NEEDS.sshd}, ssh`, sshdAvailable() && haveCommand('ssh'));
    const sshd = await startSshd({ maxSessions: 2, extraConfig: ['ClientAliveInterval 30'] });
    const config = await readFile(join(sshd.dir, 'sshd_config'), 'utf8');
    assert.match(config, /^MaxSessions 2$/m);
    assert.match(config, /^ClientAliveInterval 30$/m);
    // One TCP connection (ControlMaster) carrying several session channels.
    // ProxyCommand=false stops a refused mux client from quietly falling
    // back to a connection of its own.
    const mux = ['-o', `ControlPath=${join(sshd.dir, 'cm')}`, '-o', 'ProxyCommand=false'];
    const master = spawn('ssh', [...sshd.sshArgs(), '-o', `ControlPath=${join(sshd.dir, 'cm')}`, '-o', 'ControlMaster=yes', '-N', `root@${sshd.host}`]);
    let masterErr = '';
    master.stderr.on('data', (data: Buffer) => (masterErr += data.toString()));
    const sessions: ChildProcess[] = [];
    try {
      await until('control master', () => existsSync(join(sshd.dir, 'cm')));
      for (let i = 0; i < 2; i++) sessions.push((await sshSession(sshd, mux)).child);
      await assert.rejects(ssh(sshd, 'echo third', mux), (err: { stdout?: string }) => !err.stdout?.includes('third'));
      await until('channel refusal at the master', () => /open failed/.test(masterErr));
      assert.equal(sshd.connectionPids().length, 1);
    } finally {
      for (const child of [...sessions, master]) child.kill();
      await sshd.stop();
    }
  });

  it('attaches a loop device, writes through it and detaches it', async function () {
    requireReal(this, NEEDS.loop, loopAvailable());
    const dir = await tempDir('ddt-harness-');
    const file = join(dir, 'disk.img');
    await fileOfSize(file, 8 * MiB, 'mixed', 7);
    const loop = await attachLoop(file);
    const pattern = randomBytes(MiB);
    try {
      assert.match((await execFileP('losetup', ['-a'])).stdout, new RegExp(`^${loop.dev}: .*\\(${file}\\)$`, 'm'));
      const dev = await open(loop.dev, 'r+');
      await dev.write(pattern, 0, MiB, MiB);
      await dev.sync();
      await dev.close();
      const back = Buffer.alloc(MiB);
      const img = await open(file, 'r');
      await img.read(back, 0, MiB, MiB);
      await img.close();
      assert.ok(back.equals(pattern), 'bytes written via the loop device are in the file');
    } finally {
      await loop.detach();
    }
    const listed = (await execFileP('losetup', ['-a'])).stdout;
    assert.ok(!listed.split('\n').some((line) => line.startsWith(`${loop.dev}:`) && line.includes(file)), listed);
  });

  it('attaches a loop device with direct I/O when asked (the benchmarks read it as a disk), without by default', async function () {
    requireReal(this, NEEDS.loop, loopAvailable());
    const dir = await tempDir('ddt-harness-');
    const file = join(dir, 'disk.img');
    await fileOfSize(file, 4 * MiB, 'zero');
    const dio = (dev: string) => readFile(`/sys/block/${dev.replace('/dev/', '')}/loop/dio`, 'utf8').then((s) => s.trim());
    for (const [opts, want] of [[{ directIo: true }, '1'], [{}, '0']] as const) {
      const loop = await attachLoop(file, opts);
      try {
        assert.equal(await dio(loop.dev), want, `${loop.dev} attached with ${JSON.stringify(opts)}`);
      } finally {
        await loop.detach();
      }
    }
  });

  describe('fileOfSize', () => {
    let dir: string;
    before(async () => {
      dir = await tempDir('ddt-data-');
    });

    for (const fill of ['random', 'zero', 'text', 'mixed'] as const) {
      it(`${fill}: same seed gives the same bytes, at the exact size`, async () => {
        const [a, b, c] = ['a', 'b', 'c'].map((name) => join(dir, `${fill}-${name}`));
        await fileOfSize(a, 5 * MiB + 123, fill, 42);
        await fileOfSize(b, 5 * MiB + 123, fill, 42);
        await fileOfSize(c, 5 * MiB + 123, fill, 43);
        assert.equal((await stat(a)).size, 5 * MiB + 123);
        assert.equal(await sha256File(a), await sha256File(b));
        if (fill !== 'zero') assert.notEqual(await sha256File(a), await sha256File(c));
      });
    }

    it('mixed holds zero, text and random 4 KiB blocks', async () => {
      const file = join(dir, 'mixed');
      await fileOfSize(file, 64 * MiB, 'mixed', 1);
      const data = await readFile(file);
      const kinds = { zero: 0, text: 0, random: 0 };
      for (let at = 0; at < data.length; at += 4096) {
        const block = data.subarray(at, at + 4096);
        if (block.every((byte) => byte === 0)) kinds.zero++;
        else if (block.every((byte) => byte === 10 || (byte >= 32 && byte < 127))) kinds.text++;
        else kinds.random++;
      }
      const blocks = data.length / 4096;
      for (const [kind, count] of Object.entries(kinds)) assert.ok(count > blocks * 0.05, `${kind}: ${count}/${blocks}`);
    });

    it('sha256File hashes a prefix', async () => {
      const file = join(dir, 'prefix');
      await fileOfSize(file, 2 * MiB, 'random', 5);
      await fileOfSize(join(dir, 'prefix-half'), MiB, 'random', 5);
      assert.equal(await sha256File(file, MiB), await sha256File(join(dir, 'prefix-half')));
      assert.equal(await sha256File(file, 0), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    });
  });

  describe('requireReal', () => {
    const saved = process.env.CI;
    afterEach(() => {
      if (saved === undefined) delete process.env.CI;
      else process.env.CI = saved;
    });
    const fakeContext = () => {
      const ctx = { skipped: false, skip: () => void (ctx.skipped = true) };
      return ctx;
    };

    it('skips locally and fails in CI when a part is missing; the skip names the part for the end', () => {
      const check = requireReal;
      delete process.env.CI;
      const local = fakeContext();
      check(local as unknown as Mocha.Context, 'a unicorn', false);
      assert.equal(local.skipped, true);
      assert.ok(missingParts().parts.has('a unicorn'));
      missingParts().parts.delete('a unicorn'); // this run does not lack one
      process.env.CI = 'true';
      assert.throws(() => check(fakeContext() as unknown as Mocha.Context, 'a unicorn', false), /CI requires a unicorn/);
      const present = fakeContext();
      check(present as unknown as Mocha.Context, 'a unicorn', true);
      assert.equal(present.skipped, false);
    });

    it('names only the parts that are missing here, and the packages npm run setup installs', () => {
      const root = haveRoot() ? [] : ['root'];
      assert.deepEqual(partsMissing('root, sh, ddt-no-such-tool'), [...root, 'ddt-no-such-tool']);
      assert.deepEqual(partsMissing('sh, /dev/ddt-no-such-device, python3-fusepy'), ['/dev/ddt-no-such-device']);
      assert.deepEqual(partsMissing('sh, /dev/null, python3-fusepy'), ['python3-fusepy'], 'nothing checkable is missing: the part in words');
      assert.equal(missingLine(new Map()), '');
      assert.equal(
        missingLine(new Map([['xxhsum', 'xxhash'], ['root', undefined], ['sfdisk', 'fdisk'], ['/dev/fuse', undefined]])),
        'missing here: /dev/fuse, root, sfdisk, xxhsum (their tests were skipped); install them with: npm run setup (Debian packages fdisk xxhash); run the tests as root for the ones that need root',
      );
    });

    it('the reporter prints that line just above its summary, which stays the last line', async () => {
      const spec = join(await tempDir('ddt-reporter-'), 'missing.test.ts');
      const real = new URL('./real.ts', import.meta.url).pathname;
      await writeFile(spec, `import { requireReal } from '${real}';\ndescribe('needs', function () {\n  it('a tool', function () { requireReal(this, 'sh, ddt-no-such-tool', false); });\n  it('nothing', () => undefined);\n});\n`);
      const mocha = new URL('../../node_modules/mocha/bin/mocha.js', import.meta.url).pathname;
      const reporter = new URL('../reporter.cjs', import.meta.url).pathname;
      const env = { ...process.env };
      delete env.CI;
      const { stdout } = await execFileP(process.execPath, [mocha, '--no-config', '--node-option', 'import=tsx', '--reporter', reporter, spec], { env });
      const lines = stdout.trimEnd().split('\n');
      assert.equal(lines.at(-1), '1 passed, 0 failed, 1 skipped');
      assert.equal(lines.at(-2), 'missing here: ddt-no-such-tool (their tests were skipped)');
    });
  });
});
