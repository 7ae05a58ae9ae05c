// SIGINT/SIGTERM end a run with 130 within about a second in every phase, and a second signal
// at once; the journal stays consistent and a resume completes. Also: files the user points at
// are read with a bound (`-i /dev/zero` is refused at once, not read forever). Built CLI.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { isProven, readJournal } from '../../src/journal/journal.js';
import { fileOfSize, makeTempDir, sha256File } from '../harness/loop.js';
import { requireReal } from '../harness/real.js';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd.js';
import { jsonOf, runCli, startCli, type CliResult } from './cli.js';
import { sshArgs, waitForVerified } from './remote-helpers.js';

const MiB = 1024 * 1024;

/** Signal `child` and measure how long it takes to be gone. */
async function stopTimed(run: ReturnType<typeof startCli>, sig: NodeJS.Signals): Promise<{ r: CliResult; ms: number }> {
  const t0 = Date.now();
  run.child.kill(sig);
  const r = await run.done;
  return { r, ms: Date.now() - t0 };
}

/** A port that accepts TCP connections and never says a word (no SSH banner). */
async function silentPort(): Promise<{ server: Server; port: number; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer((s) => sockets.push(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port, sockets };
}

describe('e2e: signals in every phase, bounded reads', function () {
  let dir: string;
  let src: string;
  before(async () => {
    dir = await makeTempDir('ddt-e2e-signals-');
    src = join(dir, 'src.img');
    await fileOfSize(src, 32 * MiB, 'random', 77);
  });

  for (const via of ['openssh', 'stream'] as const) {
    it(`a port that never sends an SSH banner (--via ${via}): SIGTERM after 1 s → exit 130 in < 2 s`, async () => {
      const silent = await silentPort();
      const known = join(dir, 'known_hosts-empty');
      writeFileSync(known, '');
      try {
        // A socket that is never asked: the connection stalls before authentication anyway.
        const run = startCli(['send', src, `root@127.0.0.1:/tmp/ddt-never-${via}.img`, '-p', String(silent.port), '--known-hosts', known, '--ssh-config', '/dev/null', '--via', via, '--yes', '--progress', 'none', '--journal', join(dir, `silent-${via}.journal`)], { env: { SSH_AUTH_SOCK: join(dir, 'no-agent') } });
        await new Promise((r) => setTimeout(r, 1000));
        assert.ok(silent.sockets.length >= 1, 'ddt connected');
        const { r, ms } = await stopTimed(run, 'SIGTERM');
        console.log(`      exit ${ms} ms after SIGTERM`);
        assert.equal(r.code, 130, r.stderr);
        assert.ok(ms < 2000, `exit took ${ms} ms`);
        assert.match(r.stderr, /SIGTERM received, stopping/);
      } finally {
        for (const s of silent.sockets) s.destroy();
        silent.server.close();
      }
    });
  }

  it('a second signal exits at once', async () => {
    const silent = await silentPort();
    try {
      const run = startCli(['send', src, `root@127.0.0.1:/tmp/ddt-never.img`, '-p', String(silent.port), '--ssh-config', '/dev/null', '--via', 'stream', '--yes', '--progress', 'none', '--journal', join(dir, 'twice.journal')], { env: { SSH_AUTH_SOCK: join(dir, 'no-agent') } });
      await new Promise((r) => setTimeout(r, 800));
      run.child.kill('SIGINT');
      const { r, ms } = await stopTimed(run, 'SIGINT');
      assert.equal(r.code, 130, r.stderr);
      assert.ok(ms < 500, `exit took ${ms} ms`);
    } finally {
      silent.server.close();
    }
  });

  it('-i /dev/zero: exit 2 at once naming the file, without reading it', async () => {
    let peakKiB = 0;
    const run = startCli(['send', src, 'root@127.0.0.1:/dev/null', '-i', '/dev/zero', '--ssh-config', '/dev/null', '--yes', '--progress', 'none', '--journal', join(dir, 'zero.journal')]);
    const t0 = Date.now();
    const sample = setInterval(() => {
      try {
        const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${run.child.pid}/status`, 'utf8'));
        if (hwm) peakKiB = Math.max(peakKiB, Number(hwm[1]));
      } catch {
        /* gone */
      }
    }, 5);
    const r = await run.done;
    clearInterval(sample);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^ddt: error: identity file \/dev\/zero is not a regular file/);
    assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
    assert.ok(peakKiB < 200 * 1024, `peak RSS ${peakKiB} KiB`);
  });

  it('an identity file over 64 KiB, an ssh config that is a directory: exit 2 naming them', async () => {
    const big = join(dir, 'big_key');
    writeFileSync(big, Buffer.alloc(65 * 1024, 'A'));
    const a = await runCli(['send', src, 'root@127.0.0.1:/dev/null', '-i', big, '--ssh-config', '/dev/null', '--yes']);
    assert.equal(a.code, 2, a.stderr);
    assert.match(a.stderr, /identity file .*big_key is larger than 64 KiB/);
    const b = await runCli(['send', src, 'root@127.0.0.1:/dev/null', '--ssh-config', dir, '--yes']);
    assert.equal(b.code, 2, b.stderr);
    assert.match(b.stderr, /ssh config .* is not a regular file/);
  });

  describe('during a transfer', function () {
    let sshd: TestSshd;
    before(async function () {
      requireReal(this, 'OpenSSH sshd (root)', sshdAvailable());
      sshd = await startSshd();
    });
    after(async () => sshd?.stop());

    for (const via of ['openssh', 'stream'] as const) {
      it(`SIGINT during the transfer (--via ${via}): 130 in < 2 s, the journal consistent, resume completes`, async () => {
        const dst = join(dir, `dst-${via}.img`);
        const journal = join(dir, `int-${via}.journal`);
        await fileOfSize(dst, 32 * MiB, 'zero');
        const run = startCli(['send', src, `root@127.0.0.1:${dst}`, ...sshArgs(sshd), '--via', via, '-b', '1M', '--bwlimit', '4M', '--yes', '--progress', 'none', '--journal', journal]);
        await waitForVerified(journal, 4, undefined, run);
        const { r, ms } = await stopTimed(run, 'SIGINT');
        console.log(`      exit ${ms} ms after SIGINT`);
        assert.equal(r.code, 130, r.stderr);
        assert.ok(ms < 2000, `exit took ${ms} ms`);
        // Every block the journal calls proven holds the source's bytes.
        const state = readJournal(journal);
        const source = readFileSync(src);
        const target = readFileSync(dst);
        let proven = 0;
        for (let i = 0; i < 32; i++) {
          if (!isProven(state.blocks.get(i))) continue;
          proven++;
          assert.ok(source.subarray(i * MiB, (i + 1) * MiB).equals(target.subarray(i * MiB, (i + 1) * MiB)), `block ${i} proven but different`);
        }
        assert.ok(proven >= 4 && proven < 32, `${proven} blocks proven`);
        const resumed = await runCli(['resume', journal, '--json', '--progress', 'none']);
        assert.equal(resumed.code, 0, resumed.stderr);
        assert.equal(jsonOf(resumed).verified, 32);
        assert.equal(await sha256File(dst), await sha256File(src));
      });
    }
  });
});
