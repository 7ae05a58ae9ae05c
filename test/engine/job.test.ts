// The job skeleton in process, on local files (a copy goes through every step a send does but
// the SSH ones): dry run, confirmation, the journal, the lock, and what a resume re-checks.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runJob } from '../../src/engine/job.js';
import type { NewJob } from '../../src/engine/job-setup.js';
import type { JobUi } from '../../src/engine/ui.js';
import { readJournal } from '../../src/journal/journal.js';
import { lockLocalTarget } from '../../src/local/lock.js';
import { UsageError } from '../harness/errors.js';
import { TEST_OPTIONS } from '../harness/header.js';
import { makeTempDir } from '../harness/loop.js';

const MiB = 1024 * 1024;

function ui(answer = true): JobUi & { warnings: string[]; asked: string[] } {
  const warnings: string[] = [];
  const asked: string[] = [];
  return {
    warnings,
    asked,
    confirm: async (q) => {
      asked.push(q);
      return answer;
    },
    emit: (e) => {
      if (e.type === 'warning') warnings.push(e.message);
    },
    signal: new AbortController().signal,
  };
}

describe('engine/job: the skeleton on local ends', () => {
  let dir: string;
  let n = 0;
  before(async () => {
    dir = await makeTempDir('ddt-job-');
    process.env.DDT_LOCK_DIR = join(dir, 'locks');
  });
  after(() => {
    delete process.env.DDT_LOCK_DIR;
  });

  async function copyJob(over: Partial<NewJob> = {}): Promise<NewJob & { src: string; dst: string }> {
    const k = ++n;
    const src = join(dir, `src-${k}.img`);
    const dst = join(dir, `dst-${k}.img`);
    await writeFile(src, Buffer.concat([randomBytes(3 * MiB), Buffer.alloc(MiB)]));
    await writeFile(dst, Buffer.alloc(4 * MiB, 7));
    return { kind: 'new', command: 'copy', source: src, target: dst, src, dst, blockSize: MiB, checksum: 'auto', options: TEST_OPTIONS, ssh: { acceptNewHostKey: false }, journal: join(dir, `j-${k}.journal`), yes: false, dryRun: false, ...over };
  }

  it('a new copy: asks before overwriting, journals a typed header, ends byte-identical, lock released', async () => {
    const job = await copyJob();
    const u = ui();
    const out = await runJob(job, u);
    assert.equal(out.kind, 'done');
    assert.ok(out.kind === 'done' && out.summary.ok && out.summary.verified === 4);
    assert.match(u.asked[0]!, /^Overwrite file .*dst-\d+\.img \(4194304 bytes\) with .*src-\d+\.img \(4194304 bytes\)\?$/);
    assert.ok((await readFile(job.dst)).equals(await readFile(job.src)));
    const h = readJournal(job.journal!).header;
    assert.equal(h.path.name, 'local');
    assert.equal(h.target.device?.kind, 'file');
    assert.deepEqual(readJournal(job.journal!).runs.map((r) => r.event), ['start', 'end']);
    const locks = join(dir, 'locks');
    assert.equal(readFileSync(join(locks, (await import('node:fs')).readdirSync(locks).find((f) => f.endsWith('.last') && readFileSync(join(locks, f), 'utf8').includes(h.jobId))!), 'utf8').trim().split(' ').pop(), 'state=clean');
    assert.equal((await import('node:fs')).readdirSync(locks).filter((f) => f.endsWith('.lock')).length, 0);
  });

  it('a dry run and a "no" write nothing', async () => {
    const job = await copyJob();
    const before = await readFile(job.dst);
    const dry = await runJob({ ...job, dryRun: true }, ui());
    assert.equal(dry.kind, 'dry-run');
    await assert.rejects(runJob(job, ui(false)), (e: unknown) => e instanceof UsageError && /not confirmed/.test(e.message));
    assert.ok((await readFile(job.dst)).equals(before));
    assert.equal(existsSync(job.journal!), false);
    // Neither left a last-writer record: a run that wrote nothing does not make a resume re-check.
    const probe = await lockLocalTarget(job.dst, 'probe-job', 'probe-job.1');
    assert.equal(probe.last, undefined);
    await probe.release();
  });

  it('a target another run holds is refused (exit 2) naming its job, nothing written', async () => {
    const job = await copyJob({ yes: true });
    const before = await readFile(job.dst);
    const held = await lockLocalTarget(job.dst, 'other-job', 'other-job.1');
    try {
      await assert.rejects(runJob(job, ui()), (e: unknown) => e instanceof UsageError && /being written by job other-job/.test(e.message));
      assert.ok((await readFile(job.dst)).equals(before));
    } finally {
      await held.release();
    }
  });

  it('resume: after another job wrote the target, the proven blocks are re-checked and the changed ones sent again', async () => {
    const job = await copyJob({ yes: true });
    assert.equal((await runJob(job, ui())).kind, 'done');
    // Another job overwrites block 1 (and holds, then frees, the lock like any writer).
    const other = await lockLocalTarget(job.dst, 'other-job', 'other-job.2');
    await other.writing();
    const fh = await (await import('node:fs/promises')).open(job.dst, 'r+');
    await fh.write(Buffer.alloc(MiB, 9), 0, MiB, MiB);
    await fh.close();
    await other.release();
    // The journal says every block is proven; resume does not believe it blindly.
    const state = readJournal(job.journal!);
    for (const b of state.blocks.values()) assert.equal(b.state, 'verified');
    const u = ui();
    const out = await runJob({ kind: 'resume', journal: job.journal!, state, overrides: {} }, u);
    assert.ok(out.kind === 'done' && out.summary.ok, JSON.stringify(out));
    assert.match(u.warnings.join('\n'), /re-checking the 4 block\(s\).*the target's record names job other-job as its last writer/);
    assert.match(u.warnings.join('\n'), /1 block\(s\) proven earlier read differently/);
    assert.equal(out.kind === 'done' && out.summary.sent, 1);
    assert.ok((await readFile(job.dst)).equals(await readFile(job.src)));
  });

  it('resume refuses a target that is another file now (same path, same size), whatever --yes says', async () => {
    const job = await copyJob({ yes: true, options: { ...TEST_OPTIONS, retries: 0 } });
    // Interrupt after the header: a journal whose blocks are all pending.
    const ac = new AbortController();
    ac.abort();
    await runJob(job, { ...ui(), signal: ac.signal }).catch(() => undefined);
    const state = readJournal(job.journal!);
    // Another file renamed over the path (created while the old one exists: another inode).
    await writeFile(`${job.dst}.new`, Buffer.alloc(4 * MiB));
    await rename(`${job.dst}.new`, job.dst);
    await assert.rejects(runJob({ kind: 'resume', journal: job.journal!, state, overrides: {} }, ui()), (e: unknown) => e instanceof UsageError && /not the one this job wrote: it is a different file/.test(e.message));
  });
});
