// The joined helper's `lock`: one holder per target, a dead holder's lock taken over, the
// last-writer record, and `prehash`, which reads a target before its lock is taken; under
// dash, and under busybox ash with busybox's applets only.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, copyFile, link, mkdir, readFile, readdir, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { appletDir, busyboxArgs, busyboxAvailable } from '../harness/busybox.js';
import { attachLoop, loopAvailable, makeTempDir } from '../harness/loop.js';
import { haveCommand, haveRoot, NEEDS, requireReal } from '../harness/real.js';
import { until } from '../harness/until.js';

const SCRIPT = fileURLToPath(new URL('../../dist/ddt-helper.sh', import.meta.url));
const ARCH = process.arch === 'arm64' ? 'aarch64' : 'x86_64';
/** The streaming hasher built for this machine (a static binary: busybox's sessions run it too). */
const BUILD = fileURLToPath(new URL(`../../dist/native/ddt-hash-${ARCH}`, import.meta.url));

/** Every helper process started here: none may outlive its test (see afterEach). */
const running = new Set<Helper>();
const killLeftovers = () => Promise.all([...running].map((h) => h.kill('SIGKILL')));

/** A `lock` (or any helper subcommand) process: its answer lines as they come, its stdin open. */
class Helper {
  readonly lines: string[] = [];
  private buf = '';
  private readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<number | null>;

  constructor(cmd: string, args: string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(cmd, args, { env });
    this.child.stdout.setEncoding('latin1');
    this.child.stdout.on('data', (s: string) => {
      this.buf += s;
      for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
        this.lines.push(this.buf.slice(0, nl));
        this.buf = this.buf.slice(nl + 1);
      }
    });
    this.child.stdin.on('error', () => undefined);
    this.exited = new Promise((resolve) =>
      this.child.on('close', (code) => {
        running.delete(this);
        resolve(code);
      }),
    );
    running.add(this);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The answer lines once there are `n` of them (or the process ended). */
  async first(n: number): Promise<string[]> {
    let ended = false;
    void this.exited.then(() => (ended = true));
    await until(`${n} answer line(s) (so far ${JSON.stringify(this.lines)})`, () => this.lines.length >= n || ended, 15_000);
    return this.lines.slice(0, n);
  }

  send(line: string): void {
    this.child.stdin.write(`${line}\n`);
  }

  end(): Promise<number | null> {
    this.child.stdin.end();
    return this.exited;
  }

  kill(sig: NodeJS.Signals): Promise<number | null> {
    this.child.kill(sig);
    return this.exited;
  }
}

for (const shell of ['dash', 'busybox'] as const) {
  describe(`helper lock (${shell})`, function () {
    this.timeout(60_000);
    let dir: string;
    let wd: string;
    let base: string;
    let bin: string;
    let n = 0;

    before(async function () {
      if (shell === 'dash') requireReal(this, 'dash', haveCommand('dash'));
      else requireReal(this, NEEDS.busybox, busyboxAvailable());
      dir = await makeTempDir(`ddt-lock-${shell}-`);
      wd = join(dir, 'work');
      await mkdir(wd);
      if (shell === 'busybox') bin = await appletDir(join(dir, 'bin'));
    });

    beforeEach(async () => {
      base = join(dir, `locks${++n}`); // each test its own lock dir, made by the helper
    });
    afterEach(killLeftovers);

    const env = (): NodeJS.ProcessEnv => ({ ...process.env, DDT_HELPER_LOCK_DIR: base });
    const helper = (args: string[]) =>
      shell === 'dash' ? new Helper('dash', [SCRIPT, ...args], env()) : new Helper('unshare', busyboxArgs(bin, ['sh', SCRIPT, ...args]), env());
    const lock = (target: string, job: string, run = 'r1') => helper(['lock', target, wd, job, run]);
    const target = async (name: string) => {
      const p = join(dir, name);
      await writeFile(p, Buffer.alloc(4096));
      return p;
    };
    const keyOf = async (p: string) => {
      const st = await stat(p, { bigint: true });
      return `f-${st.dev}_${st.ino}`;
    };

    it('a second holder is refused, naming the first; the first keeps the lock', async () => {
      const t = await target('two.img');
      const a = lock(t, 'job-a');
      assert.deepEqual(await a.first(1), ['LOCKED last=none']);
      const owner = await readFile(join(base, `${await keyOf(t)}.lock`, 'owner'), 'utf8');
      assert.match(owner, new RegExp(`^pid=${a.pid} start=\\d+ job=job-a run=r1 since=\\d+\\n$`));
      const b = lock(t, 'job-b');
      const [busy] = await b.first(1);
      assert.match(busy!, new RegExp(`^BUSY job=job-a run=r1 since=\\d+ pid=${a.pid}$`));
      assert.equal(await b.exited, 3);
      // Another path to the same file (a hard link) is the same target.
      const alias = join(dir, 'two-alias.img');
      await link(t, alias);
      const c = lock(alias, 'job-c');
      assert.match((await c.first(1))[0]!, /^BUSY job=job-a /);
      assert.equal(await c.exited, 3);
      assert.equal(await a.end(), 0);
      assert.match(await readFile(join(wd, 'pids'), 'utf8'), new RegExp(`^${a.pid}$`, 'm'), 'kill-stale can find the holder');
    });

    it('WRITING, then CLEAN, mark the record; EOF releases the lock; the next holder reads the record', async () => {
      const t = await target('clean.img');
      const key = await keyOf(t);
      const a = lock(t, 'job-a', 'run-1');
      await a.first(1);
      assert.equal(existsSync(join(base, `${key}.last`)), false, 'taking the lock writes no record');
      a.send('PING');
      a.send('WRITING');
      assert.deepEqual(await a.first(3), ['LOCKED last=none', 'PONG', 'OK']);
      assert.equal(await readFile(join(base, `${key}.last`), 'utf8'), 'job=job-a run=run-1 state=writing\n');
      a.send('CLEAN');
      assert.deepEqual(await a.first(4), ['LOCKED last=none', 'PONG', 'OK', 'OK']);
      assert.equal(await readFile(join(base, `${key}.last`), 'utf8'), 'job=job-a run=run-1 state=clean\n');
      a.send('WHAT');
      assert.match((await a.first(5))[4]!, /^ERR unknown request 'WHAT'$/);
      assert.equal(await a.end(), 0);
      assert.equal(existsSync(join(base, `${key}.lock`)), false, 'the lock dir is gone');
      const b = lock(t, 'job-b', 'run-1');
      assert.deepEqual(await b.first(1), ['LOCKED last=job=job-a run=run-1 state=clean']);
      b.send('WRITING');
      await b.first(2);
      await b.end();
      const c = lock(t, 'job-c', 'run-1');
      assert.deepEqual(await c.first(1), ['LOCKED last=job=job-b run=run-1 state=writing'], 'a run that ended without CLEAN leaves `writing`');
      await c.end();
      const d = lock(t, 'job-d', 'run-1');
      assert.deepEqual(await d.first(1), ['LOCKED last=job=job-b run=run-1 state=writing'], 'a holder that never asked for WRITING left the record alone');
      await d.end();
      assert.equal((await stat(base)).mode & 0o777, 0o700);
    });

    it('END lets the lock go, then removes the work dir and ends the job\'s other helpers, and says so', async () => {
      const t = await target('end.img');
      const key = await keyOf(t);
      const own = join(dir, 'job-e');
      await mkdir(own);
      await writeFile(join(own, '.ddt-workdir'), '');
      await copyFile(SCRIPT, join(own, 'ddt-helper.sh'));
      const run = (args: string[]) => (shell === 'dash' ? new Helper('dash', [join(own, 'ddt-helper.sh'), ...args], env()) : new Helper('unshare', busyboxArgs(bin, ['sh', join(own, 'ddt-helper.sh'), ...args]), env()));
      const a = run(['lock', t, own, 'job-e', 'run-1']);
      await a.first(1);
      // Another helper of the job, still running: a second target's holder.
      const other = await target('end-other.img');
      const b = run(['lock', other, own, 'job-e', 'run-1']);
      await b.first(1);
      a.send('CLEAN');
      a.send('END');
      assert.deepEqual(await a.first(3), ['LOCKED last=none', 'OK', 'ENDED removed=1']);
      assert.equal(await a.exited, 0, 'it ends without waiting for the end of its input');
      assert.equal(await readFile(join(base, `${key}.last`), 'utf8'), 'job=job-e run=run-1 state=clean\n');
      assert.equal(existsSync(join(base, `${key}.lock`)), false, 'the lock dir is gone');
      assert.equal(existsSync(own), false, 'the work dir is gone');
      assert.notEqual(await b.exited, 0, "the job's other helper was ended");
      // A dir that is not a ddt work dir stays; the lock goes all the same.
      const c = lock(t, 'job-f', 'run-1');
      await c.first(1);
      c.send('END');
      assert.deepEqual(await c.first(2), ['LOCKED last=job=job-e run=run-1 state=clean', 'ENDED removed=0']);
      assert.equal(await c.exited, 0);
      assert.equal(existsSync(join(base, `${key}.lock`)), false);
      assert.ok(existsSync(join(wd, 'pids')), 'the shared work dir (no marker) is left alone');
    });

    it('a holder killed with SIGKILL: the next one takes the lock over and says whose it was', async () => {
      const t = await target('kill.img');
      const a = lock(t, 'job-a');
      await a.first(1);
      a.send('WRITING');
      await a.first(2);
      await a.kill('SIGKILL');
      const b = lock(t, 'job-b');
      assert.deepEqual(await b.first(2), [`TAKEN job=job-a pid=${a.pid}`, 'LOCKED last=job=job-a run=r1 state=writing']);
      const c = lock(t, 'job-c');
      assert.match((await c.first(1))[0]!, /^BUSY job=job-b /);
      await c.exited;
      await b.end();
      assert.deepEqual((await readdir(base)).sort(), [`${await keyOf(t)}.last`], 'no stale dir or claim is left');
    });

    it('kill-stale ends a holder left by an earlier run of the job, and the lock goes with it', async () => {
      const t = await target('term.img');
      const a = lock(t, 'job-stale');
      await a.first(1);
      const ks = helper(['kill-stale', wd, 'job-stale']);
      assert.deepEqual(await ks.first(1), ['killed=1']);
      assert.equal(await a.exited, 143);
      assert.equal(existsSync(join(base, `${await keyOf(t)}.lock`)), false);
    });

    it('racing takers of a dead holder lock: exactly one wins', async () => {
      const t = await target('dead-race.img');
      const dead = lock(t, 'job-dead');
      await dead.first(1);
      dead.send('WRITING');
      await dead.first(2);
      await dead.kill('SIGKILL');
      const takers = ['job-1', 'job-2', 'job-3', 'job-4'].map((j) => lock(t, j));
      await Promise.all(takers.map((h) => h.first(1)));
      await Promise.all(takers.map((h) => (h.lines[0]!.startsWith('BUSY') ? h.exited : h.first(2))));
      const winners = takers.filter((h) => h.lines.at(-1)?.startsWith('LOCKED'));
      assert.equal(winners.length, 1, JSON.stringify(takers.map((h) => h.lines)));
      assert.deepEqual(winners[0]!.lines, [`TAKEN job=job-dead pid=${dead.pid}`, 'LOCKED last=job=job-dead run=r1 state=writing']);
      for (const h of takers) if (h !== winners[0]) assert.match(h.lines.join('|'), /^BUSY job=job-\d /);
      await winners[0]!.end();
    });

    it('a lock dir without an owner is taken once it is old; racing takers: exactly one wins', async () => {
      const t = await target('race.img');
      const lockDir = join(base, `${await keyOf(t)}.lock`);
      await mkdir(lockDir, { recursive: true, mode: 0o700 });
      const old = new Date(Date.now() - 60_000);
      await utimes(lockDir, old, old);
      const takers = ['job-1', 'job-2', 'job-3', 'job-4'].map((j) => lock(t, j));
      const answers = await Promise.all(takers.map((h) => h.first(1).then(() => h.lines[0]!)));
      await Promise.all(takers.map((h) => (h.lines[0]!.startsWith('BUSY') ? h.exited : h.first(2))));
      const winners = takers.filter((h) => h.lines.at(-1)?.startsWith('LOCKED'));
      assert.equal(winners.length, 1, JSON.stringify(takers.map((h) => h.lines)));
      assert.deepEqual(winners[0]!.lines, ['TAKEN job=unknown pid=unknown', 'LOCKED last=none']);
      const winner = winners[0]!;
      for (const [i, h] of takers.entries()) {
        if (h === winner) continue;
        assert.match(answers[i]!, /^BUSY job=job-\d /);
        assert.equal(await h.exited, 3);
      }
      await winner.end();
    });

    it('a missing target is ERR, exit 2; so is a lock dir that is a symlink or not ours', async () => {
      const gone = lock(join(dir, 'nope.img'), 'job-a');
      assert.match((await gone.first(1))[0]!, /^ERR target missing, or neither a block device nor a regular file: /);
      assert.equal(await gone.exited, 2);
      const t = await target('base.img');
      const real = join(dir, `real${n}`);
      await mkdir(real);
      await symlink(real, base);
      const linked = lock(t, 'job-a');
      assert.match((await linked.first(1))[0]!, /^ERR lock dir .* is not a directory \(a symlink\?\)$/);
      assert.equal(await linked.exited, 2);
      if (haveRoot()) {
        base = join(dir, `theirs${n}`);
        await mkdir(base);
        await chown(base, 65534, 65534);
        const theirs = lock(t, 'job-a');
        assert.match((await theirs.first(1))[0]!, /^ERR lock dir .* is not owned by uid 0$/);
        assert.equal(await theirs.exited, 2);
      }
    });

    it('a block device is keyed by its device number', async function () {
      requireReal(this, NEEDS.loop, loopAvailable());
      const file = await target('loop.img');
      const loop = await attachLoop(file);
      try {
        const a = lock(loop.dev, 'job-a');
        assert.deepEqual(await a.first(1), ['LOCKED last=none']);
        const st = await stat(loop.dev, { bigint: true });
        const major = (st.rdev >> 8n) & 0xfffn;
        const minor = (st.rdev & 0xffn) | ((st.rdev >> 12n) & ~0xffn);
        assert.equal(existsSync(join(base, `b-${major}_${minor}.lock`)), true);
        await a.end();
      } finally {
        await loop.detach();
      }
    });

    it("prehash: the record as found before its first read, then the kept ddt-hash's answers; nothing read while a live holder has the lock", async () => {
      const t = await target('pre.img');
      await writeFile(t, randomBytes(4096));
      const hashers = join(dir, `hashers${n}`);
      await mkdir(hashers);
      const kept = `ddt-hash-${ARCH}-0123456789abcdef`;
      await copyFile(BUILD, join(hashers, kept));
      await chmod(join(hashers, kept), 0o755);
      const prehash = async (names: string[]) => {
        const p = helper(['prehash', hashers, t, '1024', 'xxh64', 'xxh64', ...names]);
        p.send('0 4096 4096');
        assert.equal(await p.end(), 0);
        return p.lines;
      };
      // What the build itself answers for the same runs: 4 units, then the block.
      const own = execFileSync(BUILD, ['ranges', t, '1024', 'xxh64', 'xxh64'], { input: '0 4096 4096\n', encoding: 'latin1' }).trim().split('\n');
      assert.equal(own.length, 5);
      assert.deepEqual(await prehash(['ddt-hash-other-0000000000000000', kept]), [`PREHASH ${kept} last=none`, ...own]);
      const a = lock(t, 'job-a');
      await a.first(1);
      a.send('WRITING');
      await a.first(2);
      assert.deepEqual(await prehash([kept]), ['NO busy'], 'a live holder may be writing now');
      await a.end();
      assert.deepEqual(await prehash([kept]), [`PREHASH ${kept} last=job=job-a run=r1 state=writing`, ...own]);
      assert.deepEqual(await prehash([`ddt-hash-other-0000000000000000`]), [`NO no kept ddt-hash for ${ARCH}`]);
      // A holder that has made the lock dir and not yet written its owner is about to hold it.
      await mkdir(join(base, `${await keyOf(t)}.lock`));
      assert.deepEqual(await prehash([kept]), ['NO busy']);
    });
  });
}

describe('helper lock: the default lock dir', function () {
  afterEach(killLeftovers);
  it('root keeps locks and records in /var/lib/ddt/locks', async function () {
    requireReal(this, 'root, dash', haveRoot() && haveCommand('dash'));
    const dir = await makeTempDir('ddt-lock-default-');
    const t = join(dir, 't.img');
    await writeFile(t, Buffer.alloc(4096));
    const st = await stat(t, { bigint: true });
    const key = `f-${st.dev}_${st.ino}`;
    // An earlier run's file may have had this inode: its record is not this test's.
    await rm(`/var/lib/ddt/locks/${key}.last`, { force: true });
    const env = { ...process.env };
    delete env.DDT_HELPER_LOCK_DIR;
    const a = new Helper('dash', [SCRIPT, 'lock', t, dir, 'job-default', 'r1'], env);
    try {
      assert.deepEqual(await a.first(1), ['LOCKED last=none']);
      assert.equal(existsSync(`/var/lib/ddt/locks/${key}.lock/owner`), true);
      assert.equal((await stat('/var/lib/ddt/locks')).mode & 0o777, 0o700);
      assert.equal(await a.end(), 0);
      assert.equal(existsSync(`/var/lib/ddt/locks/${key}.lock`), false);
    } finally {
      await a.end();
      await rm(`/var/lib/ddt/locks/${key}.last`, { force: true });
    }
  });
});
