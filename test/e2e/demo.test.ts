// `ddt demo` end to end: exits 0 and leaves nothing behind, also when interrupted.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { sshdMissing } from '../../src/demo/private-sshd.js';
import { haveRoot, NEEDS, requireReal } from '../harness/real.js';
import { sshdAvailable } from '../harness/sshd.js';
import { jsonOf, runCli, startCli, type CliResult } from './cli.js';

/** The demo's temp dir, from its narrative on stderr. */
function demoDir(stderr: string): string {
  const m = /generated (\/\S+)\/source\.img/.exec(stderr);
  assert.ok(m, `no demo dir in: ${stderr}`);
  return m[1]!;
}

/** Everything the demo could leave behind, for its dir: processes, loop devices, the dir. */
function leftovers(dir: string): string[] {
  const found: string[] = [];
  if (existsSync(dir)) found.push(`dir ${dir}`);
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/cmdline`, 'latin1') + readFileSync(`/proc/${pid}/environ`, 'latin1');
    } catch {
      continue; // gone, or not ours to read
    }
    if (text.includes(dir)) found.push(`process ${pid}: ${readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0/g, ' ')}`);
  }
  for (const dev of readdirSync('/sys/block').filter((n) => n.startsWith('loop'))) {
    try {
      const backing = readFileSync(`/sys/block/${dev}/loop/backing_file`, 'utf8');
      if (backing.includes(dir)) found.push(`/dev/${dev} -> ${backing.trim()}`);
    } catch {
      // not attached
    }
  }
  return found;
}

describe('e2e: ddt demo', function () {
  before(function () {
    requireReal(this, NEEDS.sshd, sshdAvailable());
  });

  it('--size 64M: sends, verifies, exits 0 and leaves no loop device, sshd process or temp dir', async () => {
    const r = await runCli(['demo', '--size', '64M', '--json', '--progress', 'plain']);
    assert.equal(r.code, 0, r.stderr);
    const s = jsonOf(r);
    assert.equal(s.ok, true);
    assert.equal(s.command, 'send');
    assert.equal(s.verified, s.blocks);
    assert.equal(s.bytesTotal, 64 * 1024 * 1024);
    const verify = s.verify as { blocks: number; identical: number; different: number };
    assert.equal(verify.different, 0);
    assert.equal(verify.identical, verify.blocks);
    if (haveRoot()) assert.match(r.stderr, /target: loop device \/dev\/loop\d+/);
    assert.match(r.stderr, /private sshd \(pid \d+\) on 127\.0\.0\.1:\d+/);
    assert.match(r.stderr, /cleaned up: sshd \(pid \d+\) stopped, .*removed/);
    const dir = demoDir(r.stderr);
    assert.deepEqual(leftovers(dir), []);
  });

  it('the human summary says what was proven, how fast, and what verify found', async () => {
    const r = await runCli(['demo', '--size', '8M', '-b', '1M', '--progress', 'none']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^done: 8\/8 blocks verified \((xxh64|sha256)\)/m);
    assert.match(r.stdout, /8\.0 MiB proven in \S+ \([\d.]+ \S+\/s\), [\d.]+ \S+ on the wire/);
    assert.match(r.stdout, /^verify: 8\/8 blocks identical/m);
    assert.deepEqual(leftovers(demoDir(r.stderr)), []);
  });

  it('Ctrl-C during the transfer: exit 130, and still nothing left behind', async () => {
    const run = startCli(['demo', '--size', '512M', '--progress', 'plain']);
    let stderr = '';
    run.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    for (let i = 0; i < 6000 && !/running: ddt send/.test(stderr); i++) await new Promise((res) => setTimeout(res, 10));
    assert.match(stderr, /running: ddt send/, 'the demo did not get to the transfer');
    await new Promise((res) => setTimeout(res, 300));
    run.child.kill('SIGINT');
    const r: CliResult = await run.done;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /cleaned up: /);
    assert.deepEqual(leftovers(demoDir(r.stderr)), []);
  });

  it('refuses a bad --size with exit 2 and creates nothing', async () => {
    const r = await runCli(['demo', '--size', '1000']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--size must be at least 1M/);
    assert.doesNotMatch(r.stderr, /generated/);
  });

  it('without sshd the message says how to install it', () => {
    const msg = sshdMissing((cmd) => cmd !== 'sshd');
    assert.match(msg!, /apt-get install -y openssh-server/);
    assert.equal(sshdMissing(() => true), undefined);
  });
});
