// --reconnect-timeout is an upper bound from the moment data stops moving to the exit, and a
// link that comes back inside it is used: a private sshd in a network namespace behind a veth
// pair whose link is taken down in the middle of a send. Built CLI.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileOfSize, makeTempDir, sha256File } from '../harness/loop.js';
import { requireReal } from '../harness/real.js';
import { startVethHost, vethHostAvailable, type VethHost } from '../harness/veth-host.js';
import { jsonOf, runCli, startCli } from './cli.js';
import { waitForVerified } from './remote-helpers.js';

const MiB = 1024 * 1024;
const SIZE = 48 * MiB;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('e2e: --reconnect-timeout bounds an outage, and a link back in time is used', function () {
  let host: VethHost;
  let dir: string;
  let src: string;
  let srcSum: string;
  before(async function () {
    requireReal(this, 'root, sshd and iproute2 (network namespaces)', vethHostAvailable());
    dir = await makeTempDir('ddt-e2e-reconnect-');
    host = await startVethHost();
    src = join(dir, 'src.img');
    await fileOfSize(src, SIZE, 'random', 4242);
    srcSum = await sha256File(src);
  });
  after(async () => host?.stop());

  const send = (via: string, dst: string, journal: string) =>
    startCli(
      ['send', src, `root@${host.host}:${dst}`, '-p', String(host.sshd.port), '-i', host.sshd.clientKeyPath, '--known-hosts', host.knownHostsPath, '--ssh-config', '/dev/null',
        '--via', via, '-b', '1M', '--bwlimit', '3M', '--reconnect-timeout', '15s', '--yes', '--progress', 'json', '--journal', journal],
      { env: { SSH_AUTH_SOCK: '', DDT_DEBUG: '1' } },
    );

  it('a host whose link is down (TCP connect pending): SIGTERM after 1 s → exit 130 in < 2 s', async () => {
    await host.linkDown();
    try {
      const run = send('stream', join(dir, 'never.img'), join(dir, 'never.journal'));
      await sleep(1000);
      const t0 = Date.now();
      run.child.kill('SIGTERM');
      const r = await run.done;
      const ms = Date.now() - t0;
      console.log(`      exit ${ms} ms after SIGTERM`);
      assert.equal(r.code, 130, r.stderr);
      assert.ok(ms < 2000, `exit took ${ms} ms`);
    } finally {
      await host.linkUp();
    }
  });

  for (const via of ['openssh', 'stream']) {
    it(`--via ${via}: link down 8 s with --reconnect-timeout 15s → the run finishes byte-identical`, async () => {
      const dst = join(dir, `dst-short-${via}.img`);
      const journal = join(dir, `short-${via}.journal`);
      await fileOfSize(dst, SIZE, 'zero');
      const run = send(via, dst, journal);
      await waitForVerified(journal, 6);
      await host.linkDown();
      await sleep(8000);
      await host.linkUp();
      // A run still going well after the link is back: its output so far says where it waits.
      const r = await Promise.race([run.done, sleep(80_000).then(() => undefined)]);
      if (!r) {
        run.child.kill('SIGKILL');
        assert.fail(`still running 80 s after the link came back:\n${run.sofar()}`);
      }
      const said = r.stderr.split('\n').filter((l) => !l.startsWith('ddt: +')).join('\n'); // without the trace's lines
      console.log(`      ${(said.match(/lost/g) ?? []).length} connection(s) lost and taken back`);
      assert.equal(r.code, 0, r.stderr.slice(-2000));
      assert.equal(await sha256File(dst), srcSum);
      assert.match(said, /lost/, 'the outage was noticed');
    });

    it(`--via ${via}: link down 45 s → exit 4 within 15 s + 5 s of the loss; resume completes`, async () => {
      const dst = join(dir, `dst-long-${via}.img`);
      const journal = join(dir, `long-${via}.journal`);
      await fileOfSize(dst, SIZE, 'zero');
      const run = send(via, dst, journal);
      await waitForVerified(journal, 6);
      const lost = Date.now();
      await host.linkDown();
      const r = await Promise.race([run.done, sleep(45_000).then(() => undefined)]);
      const took = Date.now() - lost;
      // The link stays down for the whole 45 s, as the scenario says, whatever the outcome.
      await sleep(Math.max(0, 45_000 - (Date.now() - lost)));
      await host.linkUp();
      console.log(`      exit ${r?.code} ${(took / 1000).toFixed(1)} s after the link went down`);
      assert.ok(r, 'still running 45 s after the loss');
      assert.equal(r.code, 4, r.stderr.slice(-2000));
      assert.ok(took <= 20_000, `exit ${(took / 1000).toFixed(1)} s after the loss`);
      assert.match(r.stderr, /gave up after/);
      const resumed = await runCli(['resume', journal, '--json', '--progress', 'none']);
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.equal(jsonOf(resumed).verified, SIZE / MiB);
      assert.equal(await sha256File(dst), srcSum);
      assert.ok(readFileSync(journal, 'utf8').includes('"event":"end"'));
    });
  }
});
