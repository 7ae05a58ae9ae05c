// lockRemoteTarget through a real sshd: the lock's holder dies (as when its connection drops)
// and is replaced by the same run; unless the target's record changed meanwhile.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isDdtError } from '../../src/errors.js';
import { RemoteHelper } from '../../src/remote/helper.js';
import { lockRemoteTarget, openLockSession, type RemoteLock } from '../../src/remote/target-lock.js';
import { SshPool } from '../../src/transport/ssh-pool.js';
import { makeTempDir } from '../harness/loop.js';
import { haveRoot, NEEDS, requireReal } from '../harness/real.js';
import { poolOptions, sshdAvailable, startSshd, type TestSshd } from '../harness/sshd.js';
import { until } from '../harness/until.js';

const run = promisify(execFile);

describe('remote/target-lock: the lock after its holder is gone (real sshd)', function () {
  this.timeout(120_000);
  let sshd: TestSshd;
  let dir: string;
  const opened: Array<{ pool: SshPool; helper: RemoteHelper; lock?: RemoteLock; record: string }> = [];

  before(async function () {
    // The records of root's locks live in /var/lib/ddt/locks on the (local) target host.
    requireReal(this, `${NEEDS.sshd}, root`, sshdAvailable() && haveRoot());
    sshd = await startSshd();
    dir = await makeTempDir('ddt-tlock-');
  });
  after(async () => {
    await sshd?.stop();
  });
  afterEach(async () => {
    for (const o of opened.splice(0)) {
      await o.lock?.release().catch(() => undefined);
      await o.helper.cleanup().catch(() => undefined);
      await o.pool.close();
      await rm(o.record, { force: true });
    }
  });

  async function locked(name: string, o: { write?: boolean } = {}) {
    const target = join(dir, `${name}.img`);
    await writeFile(target, Buffer.alloc(1 << 20));
    const st = await stat(target, { bigint: true });
    const record = `/var/lib/ddt/locks/f-${st.dev}_${st.ino}.last`;
    await rm(record, { force: true }); // an earlier file with this inode left it
    const pool = await SshPool.open(poolOptions(sshd, { connections: 1, channelsPerConnection: 4 }));
    const jobId = `tlock-${name}-${process.pid}`;
    const helper = await RemoteHelper.install(pool, { jobId });
    const entry: (typeof opened)[number] = { pool, helper, record };
    opened.push(entry);
    const warnings: string[] = [];
    const ac = new AbortController();
    const lock = await lockRemoteTarget(helper, target, `${jobId}.r1`, target, { signal: ac.signal, warn: (m) => warnings.push(m) });
    entry.lock = lock;
    if (o.write !== false) await lock.writing();
    return { target, record, lock, jobId, warnings, helper, workDir: helper.workDir };
  }

  /** PIDs of the helper processes holding `target`'s lock. */
  const holders = (target: string) =>
    run('pgrep', ['-f', `ddt-helper.sh lock ${target} `]).then(
      ({ stdout }) => stdout.split(/\s+/).filter(Boolean),
      () => [] as string[],
    );

  /** The helper process holding `target`'s lock, killed as a dropped connection would end it. */
  async function killHolder(target: string): Promise<string[]> {
    const before = await holders(target);
    assert.ok(before.length > 0, 'no lock holder to kill');
    await run('kill', ['-KILL', ...before]);
    return before;
  }

  it('a run that never asked to write leaves the record as it was when it finishes; the lock goes', async () => {
    const t = await locked('unwritten', { write: false });
    await writeFile(t.record, 'job=earlier-job run=earlier-job.x state=clean\n');
    assert.equal(await t.lock.finish(), false, 'not asked to remove the work dir');
    assert.equal(await readFile(t.record, 'utf8'), 'job=earlier-job run=earlier-job.x state=clean\n');
    assert.deepEqual(await holders(t.target), [], 'the holder ended with the lock');
    assert.ok((await stat(t.workDir)).isDirectory(), 'the work dir stays');
  });

  it('finish({ removeWorkDir }): the record says clean, the lock goes, then the work dir and the job\'s other helpers', async () => {
    const t = await locked('end');
    // Another helper of the same job, still running: a block worker waiting for requests.
    const worker = await t.helper.control.exec(t.helper.command('serve', t.target, t.workDir), {});
    const workers = () => run('pgrep', ['-f', `ddt-helper.sh serve ${t.target} `]).then(({ stdout }) => stdout.split(/\s+/).filter(Boolean), () => [] as string[]);
    await until('the worker runs', async () => (await workers()).length === 1);
    assert.equal(await t.lock.finish({ removeWorkDir: true }), true);
    assert.match(await readFile(t.record, 'utf8'), new RegExp(`^job=${t.jobId} run=${t.jobId}\\.r1 state=clean\\n$`));
    assert.deepEqual(await holders(t.target), [], 'the holder ended with the lock');
    await assert.rejects(stat(t.workDir), { code: 'ENOENT' }, 'the work dir is gone');
    assert.deepEqual(await workers(), [], "the job's other helper ended before the dir went");
    await t.helper.control.release(worker);
    // A run that never asked to write: the record stays as it was, the dir goes all the same.
    const u = await locked('end-unwritten', { write: false });
    await writeFile(u.record, 'job=earlier-job run=earlier-job.x state=clean\n');
    assert.equal(await u.lock.finish({ removeWorkDir: true }), true);
    assert.equal(await readFile(u.record, 'utf8'), 'job=earlier-job run=earlier-job.x state=clean\n');
    await assert.rejects(stat(u.workDir), { code: 'ENOENT' });
  });

  it('a lock session opened before the install runs the lock once told what to lock; one never taken ends', async () => {
    const waiting = () => run('pgrep', ['-f', '^sh -c .* ddt-lock']).then(({ stdout }) => stdout.split(/\s+/).filter(Boolean), () => [] as string[]);
    const target = join(dir, 'early.img');
    await writeFile(target, Buffer.alloc(1 << 20));
    const st = await stat(target, { bigint: true });
    const record = `/var/lib/ddt/locks/f-${st.dev}_${st.ino}.last`;
    await rm(record, { force: true });
    const pool = await SshPool.open(poolOptions(sshd, { connections: 1, channelsPerConnection: 4 }));
    const ac = new AbortController();
    // Opened while there is no work dir yet: it waits.
    const session = openLockSession(pool, { signal: ac.signal });
    const unused = openLockSession(pool, { signal: ac.signal });
    await until('two lock sessions waiting', async () => (await waiting()).length === 2);
    const jobId = `tlock-early-${process.pid}`;
    const helper = await RemoteHelper.install(pool, { jobId });
    opened.push({ pool, helper, record });
    const before = await waiting();
    const lock = await lockRemoteTarget(helper, target, `${jobId}.r1`, target, { signal: ac.signal, warn: () => undefined, session });
    opened.at(-1)!.lock = lock;
    const [holder] = await holders(target);
    assert.ok(holder && before.includes(holder), `the lock runs in a waiting session (holder ${holder}, waiting ${before.join(' ')})`);
    await lock.writing();
    assert.match(await readFile(record, 'utf8'), new RegExp(`^job=${jobId} run=${jobId}\\.r1 state=writing\\n$`));
    await unused.discard();
    await until('the session never taken ended', async () => (await waiting()).length === 0);
    assert.equal(await lock.finish({ removeWorkDir: true }), true);
    // A session that ended before it was taken: the lock takes a session of its own.
    const gone = openLockSession(pool, { signal: ac.signal });
    await until('a lock session waiting', async () => (await waiting()).length === 1);
    await run('pkill', ['-f', '^sh -c .* ddt-lock']);
    await until('it ended', async () => (await waiting()).length === 0);
    const helper2 = await RemoteHelper.install(pool, { jobId: `${jobId}-2` });
    const again = await lockRemoteTarget(helper2, target, `${jobId}-2.r1`, target, { signal: ac.signal, warn: () => undefined, session: gone });
    assert.equal((await holders(target)).length, 1);
    assert.equal(await again.finish({ removeWorkDir: true }), true);
  });

  it('the same run takes its lock back: held() resolves and the record still names it', async () => {
    const t = await locked('back');
    const killed = await killHolder(t.target);
    // A new holder, not the killed one, once ddt has noticed the drop.
    await until('a new lock holder', async () => (await holders(t.target)).some((pid) => !killed.includes(pid)));
    await t.lock.held();
    // It answers as the lock's holder: the record says this run finished, and the lock goes.
    await t.lock.finish();
    const { stdout } = await run('cat', [t.record]);
    assert.match(stdout, new RegExp(`job=${t.jobId} run=${t.jobId}\\.r1 state=clean`));
    assert.deepEqual(await holders(t.target), [], 'the holder ended with the lock');
  });

  it('a record that changed while no one held the lock: the lock is lost, held() rejects (exit 4, resumable)', async () => {
    const t = await locked('lost');
    // Another job's run wrote the target between the drop and the return.
    await writeFile(t.record, 'job=other-job run=other-job.x state=writing\n');
    await killHolder(t.target);
    // Until ddt notices the drop, held() has nothing to say against the old holder.
    await until('the lock to be lost', () => t.lock.held().then(() => false, () => true));
    await assert.rejects(
      () => t.lock.held(),
      (err: unknown) => isDdtError(err, 'LOCK_LOST') && /record changed meanwhile/.test((err as Error).message) && /other-job/.test((err as Error).message),
    );
    await assert.rejects(() => t.lock.writing(), (err: unknown) => isDdtError(err, 'LOCK_LOST'));
    // It let the lock go: the other job's record is left as it was.
    const { stdout } = await run('cat', [t.record]);
    assert.match(stdout, /job=other-job/);
  });
});
