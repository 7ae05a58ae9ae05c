// Crash safety: SIGKILL the built CLI at seeded random moments during a send and
// resume after each kill. After every kill, every block the journal calls verified must hold
// exactly the source's bytes on the target; at the end the target equals the source.
// Replay a failure with DDT_CRASH_SEED=<seed printed below>.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isProven, readJournal } from '../../src/journal/journal.js';
import { fileOfSize, makeTempDir, sha256File } from '../harness/loop.js';
import { NEEDS, requireReal } from '../harness/real.js';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd.js';
import { jsonOf, runCli, startCli } from './cli.js';

const KiB = 1024;
const KILLS = 20;
const BLOCK = 256 * KiB;
const SIZE = 32 * 1024 * KiB;

function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('e2e: crash safety under repeated SIGKILL and resume', function () {
  let sshd: TestSshd;
  let dir: string;
  before(async function () {
    requireReal(this, NEEDS.sshd, sshdAvailable());
    dir = await makeTempDir('ddt-e2e-crash-');
    sshd = await startSshd();
  });
  after(async () => sshd?.stop());

  it(`${KILLS} seeded kills at random moments: proven blocks are always right, the end is byte-identical`, async function () {
    const seed = Number(process.env.DDT_CRASH_SEED ?? Math.floor(Math.random() * 1e9));
    console.log(`      crash test seed ${seed} (replay: DDT_CRASH_SEED=${seed})`);
    const rand = prng(seed);
    const src = join(dir, 'src.img');
    const dst = join(dir, 'dst.img');
    const journal = join(dir, 'crash.journal');
    await fileOfSize(src, SIZE, 'random', seed % 1000);
    await fileOfSize(dst, SIZE, 'zero');
    const source = readFileSync(src);
    const ssh = ['-p', String(sshd.port), '-i', sshd.clientKeyPath, '--known-hosts', sshd.knownHostsPath];
    const common = ['--json', '--progress', 'none'];
    let kills = 0;
    let cycles = 0;
    let worstWasted = 0;
    let finished = false;
    while (kills < KILLS) {
      cycles++;
      assert.ok(cycles < KILLS * 6, `only ${kills} kills landed in ${cycles} runs`);
      const args = !existsSync(journal)
        ? ['send', src, `root@127.0.0.1:${dst}`, ...ssh, '-b', String(BLOCK), '--connections', '2', '--channels', '2', '--yes', '--journal', journal, ...common]
        : ['resume', journal, ...common];
      const run = startCli(args);
      // Connection setup takes a few hundred ms; spread kills over setup and transfer.
      const delay = 150 + Math.floor(rand() * 900);
      const timer = setTimeout(() => run.child.kill('SIGKILL'), delay);
      const r = await run.done;
      clearTimeout(timer);
      if (r.signal === 'SIGKILL') kills++;
      else {
        assert.equal(r.code, 0, `run ${cycles} failed: ${r.stderr}`);
        finished = true;
      }
      if (!existsSync(journal)) continue; // killed before the journal existed: nothing promised yet
      // Every block the journal proves must be right on the target now.
      const state = readJournal(journal);
      const target = readFileSync(dst);
      let wasted = 0;
      for (let i = 0; i < state.header.blocks; i++) {
        const range = [i * BLOCK, Math.min(SIZE, (i + 1) * BLOCK)] as const;
        const same = sha(target.subarray(...range)) === sha(source.subarray(...range));
        if (isProven(state.blocks.get(i))) assert.ok(same, `block ${i} recorded verified but wrong (seed ${seed}, run ${cycles})`);
        else if (same) wasted++; // written before the kill, not yet proven: will be re-sent
      }
      worstWasted = Math.max(worstWasted, wasted);
      if (finished) {
        // Start over so every cycle has work: a finished job has nothing left to kill.
        finished = false;
        await fileOfSize(dst, SIZE, 'zero');
        await rm(journal);
      }
    }
    // The last kill may have landed before a new run wrote its journal: then start it afresh.
    const last = existsSync(journal)
      ? await runCli(['resume', journal, ...common])
      : await runCli(['send', src, `root@127.0.0.1:${dst}`, ...ssh, '-b', String(BLOCK), '--yes', '--journal', journal, ...common]);
    assert.equal(last.code, 0, last.stderr);
    assert.equal(jsonOf(last).verified, SIZE / BLOCK);
    assert.equal(await sha256File(dst), await sha256File(src));
    console.log(`      ${kills} kills; worst re-sent after one kill: ${worstWasted} block(s) = ${worstWasted * BLOCK} bytes (bound: 2×2×${BLOCK})`);
    assert.ok(worstWasted <= 2 * 2, `more blocks in flight than connections × channels: ${worstWasted}`);
  });
});
